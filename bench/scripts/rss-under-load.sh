#!/bin/sh
# RSS of the bidder at N campaigns under open-loop load, sampled every 30 s
# (docs/benchmarks.md, "RSS under load for 10 minutes"). Run from the
# repository root after `make build` and `go build -o bin/ ./bench/cmd/e2e`:
#
#   bench/scripts/rss-under-load.sh [CAMPAIGNS] [RATE] [SECONDS]
#
# defaults 10000 campaigns, 10000 requests/s, 600 s. The bidder runs on CPU 0
# and the load generator on CPU 1 where taskset is there; the bidder's
# environment passes through (GOGC=100 ... to compare collector targets).
set -eu
n=${1:-10000}
rate=${2:-10000}
secs=${3:-600}
. "$(dirname "$0")/lib.sh"
./bin/gencampaigns -n "$n" -seed 1 -daily 100000000 -pacing asap -out "$dir/campaigns" >/dev/null 2>&1
cat > "$dir/bidder.yaml" <<YAML
campaigns_dir: $dir/campaigns
listen: 127.0.0.1:19080
admin_listen: 127.0.0.1:19081
notices: {key: rss-under-load-notice-key-0123, hold_ttl: 2s}
budget: {store_dir: $dir/nats}
YAML
# taskset execs the bidder, so $! is the bidder's pid.
$pin0 ./bin/bidder -config "$dir/bidder.yaml" >"$dir/bidder.log" 2>&1 &
pid=$!
waitready http://127.0.0.1:19080/readyz "$dir/bidder.log"
echo "ready: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' ')"
$pin1 ./bin/e2e -openloop 127.0.0.1:19080 -rate "$rate" -duration "${secs}s" -ol-conns 128 >"$dir/load.txt" 2>&1 &
load=$!
t=0
while [ $t -lt "$secs" ]; do
	sleep 30
	t=$((t + 30))
	goal=$(curl -s http://127.0.0.1:19081/metrics | awk '/^go_memstats_next_gc_bytes /{printf "%.0f MB", $2/1e6}')
	echo "t=${t}s $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' ') GC goal $goal"
done
wait $load
cat "$dir/load.txt"
echo "end: $(grep -E 'VmHWM|VmRSS' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ' ')"
