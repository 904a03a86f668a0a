#!/bin/sh
# How much work per request a server can do on this machine and still reach
# a given ratio to the trivial server (docs/benchmarks.md, "The work budget
# behind a ratio"). bench-e2e's trivial fasthttp server, with -serve-work W
# burning W of its thread's CPU time on every request before its 204, is
# driven closed-loop by wrk as bench-e2e drives the bidder (-t2 -c32, a POST
# the size of the 1.7 KB site-banner request; the server reads the body and
# ignores it). The works are interleaved over several rounds, since this
# machine's speed drifts within minutes. Each line gives the median req/s
# over the rounds, its ratio to work 0, and the ratio that work 0's time per
# request plus W alone would give. Run from the repository root after
# `go build -o bin/ ./bench/cmd/e2e`:
#
#   bench/scripts/work-budget.sh [ROUNDS] [WORK...]
#
# defaults 3 rounds, works 0 5us 10us 15us 20us 30us; 5 s per step. Server
# on CPU 0, wrk on CPU 1 where taskset is there.
set -eu
rounds=${1:-3}
[ $# -gt 0 ] && shift
works=${*:-0 5us 10us 15us 20us 30us}
command -v wrk >/dev/null || { echo "work-budget.sh: needs wrk" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"
{
	echo 'wrk.method = "POST"'
	echo 'wrk.headers["Content-Type"] = "application/json"'
	printf 'wrk.body = "{\\"id\\":\\"%s\\"}"\n' "$(head -c 1716 /dev/zero | tr '\0' x)"
} >"$dir/post.lua"
for r in $(seq "$rounds"); do
	for w in $works; do
		$pin0 ./bin/e2e -serve trivial -listen 127.0.0.1:19098 -serve-work "$w" >"$dir/server.log" 2>&1 &
		pid=$!
		waitready http://127.0.0.1:19098/
		rps=$($pin1 wrk -t2 -c32 -d5s -s "$dir/post.lua" http://127.0.0.1:19098/ | awk '/^Requests\/sec/ {print $2}')
		stop
		echo "$w $rps" >>"$dir/runs"
		echo "round $r, work $w: $rps req/s" >&2
	done
done
awk -v works="$works" '
function dur(s) { # 0, 500ns, 10us, 1ms -> seconds
	if (s ~ /ns$/) return substr(s, 1, length(s) - 2) / 1e9
	if (s ~ /us$/ || s ~ /µs$/) return substr(s, 1, length(s) - 2) / 1e6
	if (s ~ /ms$/) return substr(s, 1, length(s) - 2) / 1e3
	return s + 0
}
{ v[$1] = v[$1] " " $2 }
END {
	n = split(works, ws, " ")
	for (i = 1; i <= n; i++) {
		m = split(v[ws[i]], a, " ")
		for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
		med[i] = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	printf "%-8s %12s %10s %18s\n", "work", "req/s", "x work 0", "x if work only added"
	for (i = 1; i <= n; i++) {
		t0 = 1 / med[1]
		printf "%-8s %12.0f %10.2f %18.2f\n", ws[i], med[i], med[i] / med[1], t0 / (t0 + dur(ws[i]))
	}
}' "$dir/runs"
