#!/bin/sh
# The closed-loop demonstration (docs/models.md, "Closed loop"): the bidder
# serving a copy of the bundled models with the row log on, the simulator
# sending traffic whose ground truth drifts at DRIFT seconds, one retrain
# cycle (ctr/train/retrain.py) at RETRAIN_AT seconds on what the bidder
# logged since the drift, the bidder's hot reload of the promoted model, and
# ctr/train/loopeval.py scoring the served pCTR by phase at the end.
#
#   make loopdemo    (= make build; sh ctr/train/loopdemo.sh [DIR], default
#                     out/loopdemo; about 13 minutes)
#
# Environment: RATE (700 req/s), DURATION (720 s), DRIFT (60 s), RETRAIN_AT
# (480 s), HOLDOUT (0.3: retrain.py's --holdout), SEED (5), CTR_BASE (0.06:
# six times the default, for clicks enough that the held-out slice measures
# calibration to about 3%, the gate's tolerance being 5%), PORT (18480;
# PORT+1 is the admin port), RETRAIN=0 to run without the retrain (the baseline), NICE (10),
# BUDGET_X (100): the campaigns are configs/campaigns with their daily and
# total budgets multiplied by this, so that pacing neither throttles the
# bids (more logged rows and clicks) nor runs a campaign out mid-run (the
# campaign mix, hence the traffic the models are judged on, stays the same).
# Needs bin/bidder, bin/simulator, bin/featurestats (make build) and
# python3-onnx, python3-numpy, python3-scipy. Writes DIR/summary.json (the
# phases), DIR/retrain.json, DIR/psi.txt, and the logs.
set -eu
D=${1:-out/loopdemo}
RATE=${RATE:-700}
DURATION=${DURATION:-720}
DRIFT=${DRIFT:-60}
RETRAIN_AT=${RETRAIN_AT:-480}
HOLDOUT=${HOLDOUT:-0.3}
SEED=${SEED:-5}
CTR_BASE=${CTR_BASE:-0.06}
PORT=${PORT:-18480}
RETRAIN=${RETRAIN:-1}
NICE=${NICE:-10}
BUDGET_X=${BUDGET_X:-100}
ROOT=$(pwd)
APORT=$((PORT + 1))

rm -rf "$D"
mkdir -p "$D/models" "$D/data" "$D/sim" "$D/campaigns"
D=$(cd "$D" && pwd)
for f in configs/campaigns/*.yaml; do
	awk -v x="$BUDGET_X" '/^  (daily|total): "[0-9.]+"/ { split($0, a, "\""); printf "%s\"%.2f\"\n", a[1], a[2] * x; next } { print }' \
		"$f" > "$D/campaigns/$(basename "$f")"
done
cp configs/models/mlp.manifest.json configs/models/mlp.onnx configs/models/mlp.parity.json \
	configs/models/gbdt.manifest.json configs/models/gbdt.txt configs/models/gbdt.parity.json "$D/models/"
cat > "$D/bidder.yaml" <<EOF
listen: 127.0.0.1:$PORT
admin_listen: 127.0.0.1:$APORT
public_url: http://127.0.0.1:$PORT
campaigns_dir: $D/campaigns
watch_every: 1s
model:
  gbdt: $D/models/gbdt.manifest.json
  onnx: $D/models/mlp.manifest.json
  onnx_int8: ""
  onnx_library: $ROOT/lib/onnxruntime/libonnxruntime.so.1
  provider: cpu
  row_log: {path: $D/data/rows.bin, sample: 1}
budget:
  store_dir: $D/data/nats
EOF

psi() { # $1: label; the publisher and OS slots' PSI and the served model's name
	printf '%s t=%s ' "$1" $(($(date +%s) - START))
	curl -sf "http://127.0.0.1:$APORT/metrics" | grep -E '^openbidder_feature_psi\{.*slot="(publisher|os)"' | tr '\n' ' '
	echo
}

nice -n "$NICE" "$ROOT/bin/bidder" -config "$D/bidder.yaml" > "$D/bidder.log" 2>&1 &
BPID=$!
trap 'kill -TERM $BPID 2>/dev/null || true; [ -n "${SPID:-}" ] && kill -TERM $SPID 2>/dev/null || true' EXIT
i=0
until curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null; do
	i=$((i + 1)); [ $i -lt 600 ] || { echo "loopdemo: bidder not ready" >&2; exit 1; }; sleep 0.1
done

START=$(date +%s)
nice -n "$NICE" "$ROOT/bin/simulator" run -target "http://127.0.0.1:$PORT/openrtb2/bid" -admin "http://127.0.0.1:$APORT" \
	-rate "$RATE" -duration "${DURATION}s" -seed "$SEED" -drift-at "${DRIFT}s" -ctr-base "$CTR_BASE" \
	-out "$D/sim" -log "$D/sim" > "$D/sim.log" 2>&1 &
SPID=$!
: > "$D/psi.txt"
sleep $((DRIFT - 2)); psi before-drift >> "$D/psi.txt"
T=0
if [ "$RETRAIN" = 1 ]; then
	sleep $((RETRAIN_AT - DRIFT + 2)); psi at-retrain >> "$D/psi.txt"
	nice -n "$NICE" /usr/bin/python3 "$ROOT/ctr/train/retrain.py" --rows "$D/data/rows.bin" --events "$D/data/events.jsonl" \
		--served "$D/models/mlp.manifest.json" --since $((START + DRIFT + 5)) --settle 10 --holdout "$HOLDOUT" \
		--featurestats "$ROOT/bin/featurestats" --report "$D/retrain.json" > "$D/retrain.out" 2> "$D/retrain.err"
	T=$(date +%s)
	tail -1 "$D/retrain.err"
fi
wait $SPID; SPID=
psi end >> "$D/psi.txt"
kill -TERM $BPID; wait $BPID || true
trap - EXIT
END=$((START + DURATION))
if [ "$RETRAIN" = 1 ]; then
	PH="--phase pre=$START:$((START + DRIFT)) --phase old=$((START + DRIFT + 5)):$T --phase new=$((T + 3)):$END"
else
	PH="--phase pre=$START:$((START + DRIFT)) --phase drifted=$((START + DRIFT + 5)):$END"
fi
# shellcheck disable=SC2086
/usr/bin/python3 "$ROOT/ctr/train/loopeval.py" --rows "$D/data/rows.bin" --events "$D/data/events.jsonl" \
	--old "$ROOT/configs/models/mlp.manifest.json" --truth "$D/sim/impressions.jsonl" $PH > "$D/summary.json"
echo "loopdemo: START=$START DRIFT=$((START + DRIFT)) RETRAIN_DONE=$T END=$END" | tee "$D/times.txt"
cat "$D/psi.txt" "$D/summary.json"
