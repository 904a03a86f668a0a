#!/usr/bin/env bash
# smoke-local.sh: the topology of deploy/compose.yaml as plain processes on loopback, for machines without a
# container engine. Three nats-server nodes run deploy/nats/nats.conf and three bidders run
# deploy/compose/bidder.yaml, each with only addresses and paths rewritten (0.0.0.0:PORT -> 127.0.0.1:random,
# /etc/openbidder -> this checkout, nats-N -> 127.0.0.1); Prometheus (when installed) runs
# deploy/prometheus/prometheus.yml the same way. It then checks: every bidder ready (bidder -probe /readyz,
# the image's healthcheck), a bid from each, a billing notice of bidder-1's bid accepted by bidder-2 (the
# shared notice key), /admin/budget with the admin token, and Prometheus scraping all three with the token.
# Exit 0 when all hold. Everything it starts is stopped on exit; it runs for well under a minute.
#
#   bash deploy/smoke-local.sh        (needs go; prometheus optional: apt-get install prometheus)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
# Below Linux's ephemeral range (32768-60999 by default): a port in it can be
# taken meanwhile by an outgoing connection (a CI run at 523cf10 failed with
# bidder-2's listener "address already in use" at 32860).
# Its 60 ports are checked free (bound and let go) before use: on a shared
# machine another user's servers may hold a random base's.
BASE=
for _ in $(seq 20); do
	b=$((20000 + RANDOM % 12000))
	python3 -c 'import socket, sys
b = int(sys.argv[1])
for p in range(b, b + 60):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()' "$b" && { BASE=$b; break; }
done
[ -n "$BASE" ] || { echo "smoke: FAIL: no 60 free ports at 20 random bases" >&2; exit 1; }
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "smoke: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "smoke: FAIL: $*" >&2; tail -n 20 "$WORK"/*.log >&2 || true; exit 1; }
# until_ok SECONDS CMD...: poll CMD every 0.2 s until it succeeds or the deadline passes.
until_ok() {
	local end=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}

export BIDDER_NOTICE_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BIDDER_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NATS_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NATS_ROUTE_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ORT_LIB=$ROOT/lib/onnxruntime/libonnxruntime.so.1

go build -o "$WORK/bin/" ./bidder/cmd/bidder
go build -o "$WORK/bin/nats-server" github.com/nats-io/nats-server/v2

client() { echo $((BASE + $1)); }       # nats-N client port
route() { echo $((BASE + 10 + $1)); }   # nats-N route port
mon() { echo $((BASE + 20 + $1)); }     # nats-N monitoring port
bid() { echo $((BASE + 30 + $1)); }     # bidder-N listener
adm() { echo $((BASE + 40 + $1)); }     # bidder-N admin listener

routes=""
for n in 1 2 3; do routes+="${routes:+,}nats-route://route:$NATS_ROUTE_PASSWORD@127.0.0.1:$(route $n)"; done
for n in 1 2 3; do
	sed -e "s|0.0.0.0:4222|127.0.0.1:$(client $n)|; s|0.0.0.0:8222|127.0.0.1:$(mon $n)|; s|0.0.0.0:6222|127.0.0.1:$(route $n)|" \
		-e "s|store_dir: /data|store_dir: \"$WORK/nats-$n\"|" deploy/nats/nats.conf >"$WORK/nats-$n.conf"
	"$WORK/bin/nats-server" -c "$WORK/nats-$n.conf" --name "nats-$n" --routes "$routes" >"$WORK/nats-$n.log" 2>&1 &
	pids+=($!)
done
for n in 1 2 3; do
	until_ok 30 curl -sf "http://127.0.0.1:$(mon $n)/healthz?js-enabled-only=true" || fail "nats-$n not healthy"
done
echo "smoke: three NATS nodes up (deploy/nats/nats.conf)"

sed -e "s|nats://nats-\([123]\):4222|nats://127.0.0.1:\$NATS\1|g" -e "s|/etc/openbidder/|$ROOT/configs/|g" \
	-e "s|/usr/local/lib/onnxruntime/libonnxruntime.so.1|$ORT_LIB|" deploy/compose/bidder.yaml >"$WORK/bidder.yaml"
sed -i -e "s|\$NATS1|$(client 1)|; s|\$NATS2|$(client 2)|; s|\$NATS3|$(client 3)|" "$WORK/bidder.yaml"
for n in 1 2 3; do
	mkdir -p "$WORK/bidder-$n"
	(cd "$WORK/bidder-$n" && exec "$WORK/bin/bidder" -config "$WORK/bidder.yaml" -log-format json \
		-listen "127.0.0.1:$(bid $n)" -admin-listen "127.0.0.1:$(adm $n)" -public-url "http://127.0.0.1:$(bid $n)" \
		>"$WORK/bidder-$n.log" 2>&1) &
	pids+=($!)
done
for n in 1 2 3; do
	until_ok 120 "$WORK/bin/bidder" -probe "http://127.0.0.1:$(bid $n)/readyz" || fail "bidder-$n not ready"
done
echo "smoke: three bidders ready (deploy/compose/bidder.yaml, replicas 3 on the NATS cluster)"

req=$ROOT/bidder/testdata/requests/site-banner.json
for n in 1 2 3; do
	code=$(curl -s -o "$WORK/bid-$n.json" -w '%{http_code}' -H 'Content-Type: application/json' \
		-H 'x-openrtb-version: 2.6' --data @"$req" "http://127.0.0.1:$(bid $n)/openrtb2/bid")
	[ "$code" = 200 ] || fail "bidder-$n answered $code to a bid request"
done
echo "smoke: a bid from each bidder"
burl=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seatbid"][0]["bid"][0]["burl"])' "$WORK/bid-1.json")
burl=${burl//\$\{AUCTION_PRICE\}/1.00}
burl=${burl/127.0.0.1:$(bid 1)/127.0.0.1:$(bid 2)}
code=$(curl -s -o /dev/null -w '%{http_code}' "$burl")
[ "$code" = 200 ] || fail "bidder-2 answered $code to bidder-1's billing notice"
echo "smoke: bidder-2 accepted bidder-1's billing notice (shared notice key)"
for n in 1 2 3; do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(adm $n)/admin/budget")
	[ "$code" = 401 ] || fail "bidder-$n admin without a token: $code, want 401"
	curl -sf -H "Authorization: Bearer $BIDDER_ADMIN_TOKEN" "http://127.0.0.1:$(adm $n)/admin/budget" >/dev/null ||
		fail "bidder-$n admin with the token"
done
echo "smoke: admin needs the token and takes it"

if command -v prometheus >/dev/null; then
	mkdir -p "$WORK/secrets" "$WORK/prom"
	printf '%s\n' "$BIDDER_ADMIN_TOKEN" >"$WORK/secrets/admin_token"
	sed -e "s|/run/secrets/admin_token|$WORK/secrets/admin_token|; s|/etc/openbidder/monitoring|$ROOT/deploy/monitoring|g" \
		-e "s|bidder-1:8081, bidder-2:8081, bidder-3:8081|127.0.0.1:$(adm 1), 127.0.0.1:$(adm 2), 127.0.0.1:$(adm 3)|" \
		-e "s|127.0.0.1:9090|127.0.0.1:$((BASE + 50))|" deploy/prometheus/prometheus.yml >"$WORK/prometheus.yml"
	prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
		--web.listen-address="127.0.0.1:$((BASE + 50))" >"$WORK/prometheus.log" 2>&1 &
	pids+=($!)
	up3() {
		curl -sf "http://127.0.0.1:$((BASE + 50))/api/v1/query?query=sum(up%7Bjob%3D%22bidder%22%7D)" |
			python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and float(r[0]["value"][1]) == 3 else 1)'
	}
	until_ok 60 up3 || fail "Prometheus does not see three bidders up"
	echo "smoke: Prometheus scrapes the three admin listeners with the token (up == 3)"
else
	echo "smoke: prometheus not installed: scrape not checked"
fi
echo "smoke: ok"
