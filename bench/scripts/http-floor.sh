#!/bin/sh
# What a server that does nothing gets on this machine, next to the bidder
# (docs/benchmarks.md, "What a server that does nothing gets here"): open-loop
# latency of bench-e2e's trivial fasthttp 204 server at the given rates, then
# the bidder (1,000 generated campaigns) with all bidding paused (every bid
# request a 204 before parsing) and with bidding on. Run from the repository
# root after `make build` and `go build -o bin/ ./bench/cmd/e2e`:
#
#   bench/scripts/http-floor.sh [CONNECTIONS] [RATE...]
#
# defaults 128 connections, rates 13000 52000. Server on CPU 0, generator on
# CPU 1 where taskset is there; each step 12 s after a 2 s warm-up.
set -eu
conns=${1:-128}
[ $# -gt 0 ] && shift
rates=${*:-13000 52000}
. "$(dirname "$0")/lib.sh"
step() { # ADDR RATE
	$pin1 ./bin/e2e -openloop "$1" -rate "$2" -duration 2s -ol-conns "$conns" >/dev/null
	$pin1 ./bin/e2e -openloop "$1" -rate "$2" -duration 12s -ol-conns "$conns"
}
$pin0 ./bin/e2e -serve trivial -listen 127.0.0.1:19099 >"$dir/trivial.log" 2>&1 &
pid=$!
waitready http://127.0.0.1:19099/
for r in $rates; do echo "trivial, $conns connections: $(step 127.0.0.1:19099 "$r")"; done
stop
./bin/gencampaigns -n 1000 -seed 1 -daily 100000000 -pacing asap -out "$dir/campaigns" >/dev/null 2>&1
for mode in paused bidding; do
	rm -rf "$dir/nats"
	cat >"$dir/bidder.yaml" <<YAML
campaigns_dir: $dir/campaigns
listen: 127.0.0.1:19080
admin_listen: 127.0.0.1:19081
notices: {key: http-floor-notice-key-0123456, hold_ttl: 2s}
budget: {store_dir: $dir/nats}
YAML
	$pin0 ./bin/bidder -config "$dir/bidder.yaml" >"$dir/bidder.log" 2>&1 &
	pid=$!
	waitready http://127.0.0.1:19080/readyz "$dir/bidder.log"
	if [ $mode = paused ]; then
		curl -sf -X POST -H 'Origin: http://127.0.0.1:19081' 'http://127.0.0.1:19081/admin/pause?all=1' >/dev/null
	fi
	for r in $rates; do echo "bidder $mode, $conns connections: $(step 127.0.0.1:19080 "$r")"; done
	stop
done
