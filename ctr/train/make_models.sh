#!/bin/sh
# Regenerates both bundled CTR models from simulator logs, end to end
# (`make models`):
#   simulator trainlog (a sink that bids on everything, no HTTP) -> impressions.jsonl
#     (SOURCE=live: simulator sink + simulator run -log over loopback instead)
#   features/cmd/featurize (ortb.Parser + package features)   -> rows.f32 / rows.json
#   ctr/train/gbdt_train.py (XGBoost -> LightGBM text)         -> gbdt.{txt,manifest.json,parity.json}
#   ctr/train/mlp_train.py  (PyTorch wide & deep -> ONNX)      -> mlp.{onnx,manifest.json,parity.json}
#   ctr/train/make_distill.sh (distill.py: a GBDT on the ONNX model's
#     predictions)                                             -> gbdt_distilled.*, DISTILL.md
#   features/cmd/featurestats                                  -> feature_stats in both manifests
#   ctr/train/servescore (the Go serving path on held-out rows)
#   ctr/train/eval_report.py                                   -> EVAL.md, eval.json, calibration.svg
# into $OUT (configs/models). docs/models.md explains the choices and the
# results.
#
# Env (defaults): SEED (11) the simulator seed, also the training seed;
# REQUESTS (40000000: about 39.5 million impressions) and SIM_SPAN (48h, the
# simulated time they cover) for trainlog; SIM_START (2026-06-01T00:00:00Z);
# RATE (2500) requests/s, the arrival rate the simulated clock is drawn at
# (trainlog sets -time-scale to SIM_SPAN x RATE / REQUESTS);
# SOURCE=live sends DURATION (840s) of traffic at RATE to a sink over
# loopback with TIME_SCALE (103) and PORT (18733) instead; WORK (a temporary
# directory, removed at the end unless given: a WORK holding
# logs/impressions.jsonl is reused without running the simulator again); OUT
# (configs/models); PYTHON (/usr/bin/python3); GBDT_ARGS and MLP_ARGS: the
# training scripts' hyperparameters (defaults below: the best of the runs
# docs/models.md lists).
set -eu
cd "$(dirname "$0")/../.."
SEED=${SEED:-11}
RATE=${RATE:-2500}
REQUESTS=${REQUESTS:-40000000}
SIM_SPAN=${SIM_SPAN:-48h}
SOURCE=${SOURCE:-trainlog}
DURATION=${DURATION:-840s}
TIME_SCALE=${TIME_SCALE:-103}
SIM_START=${SIM_START:-2026-06-01T00:00:00Z}
PORT=${PORT:-18733}
OUT=${OUT:-configs/models}
PYTHON=${PYTHON:-/usr/bin/python3}

if ! "$PYTHON" -c 'import xgboost, torch, onnx, numpy' 2>/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		apt-get install -y --no-install-recommends python3-xgboost python3-torch python3-onnx python3-numpy
	else
		echo "make_models: $PYTHON lacks xgboost/torch/onnx/numpy; install them with: apt-get install -y --no-install-recommends python3-xgboost python3-torch python3-onnx python3-numpy" >&2
		exit 1
	fi
fi

sink=
tmpwork=
cleanup() {
	[ -z "$sink" ] || kill "$sink" 2>/dev/null || true
	[ -z "$tmpwork" ] || rm -rf "$tmpwork"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
if [ -n "${WORK:-}" ]; then
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d)
	tmpwork=$WORK
fi
go build -o "$WORK/bin/" ./simulator/cmd/simulator ./features/cmd/featurize ./ctr/train/servescore
# The evaluation scores the held-out rows with the served ONNX file through
# ONNX Runtime, as the bidder does; without the library it reports the
# training framework's numbers for that model instead.
[ -f lib/onnxruntime/libonnxruntime.so.1 ] || bash ctr/install-onnxruntime.sh "$PWD/lib/onnxruntime" ||
	echo "make_models: no ONNX Runtime; the ONNX model is evaluated from its training metrics only" >&2

if [ ! -s "$WORK/logs/impressions.jsonl" ] && [ "$SOURCE" = trainlog ]; then
	# The sink's bids at 50 USD CPM win every auction of the default market
	# (a few video imps excepted), 90% of wins render, and each rendered
	# impression gets a click label drawn from the ground truth.
	"$WORK/bin/simulator" trainlog -n "$REQUESTS" -seed "$SEED" -sim-start "$SIM_START" -rate "$RATE" \
		-sim-span "$SIM_SPAN" -campaigns 20 -creatives 5 -price 50 -log "$WORK/logs"
	desc="simulator seed $SEED: trainlog of $REQUESTS requests over $SIM_SPAN simulated from $SIM_START (sink: 20 campaigns x 5 creatives at 50 USD CPM, always bids), default traffic and ground truth; featurize rows in request-id hash order; last 25% held out"
elif [ ! -s "$WORK/logs/impressions.jsonl" ]; then
	"$WORK/bin/simulator" sink -addr "127.0.0.1:$PORT" -bid-prob 1 -price 50 -campaigns 20 -creatives 5 \
		-for 30m >"$WORK/sink.log" 2>&1 &
	sink=$!
	sleep 1
	# The sink's price always wins, so every request that is answered in time
	# becomes a rendered (90%) labelled impression. Short notice delays keep
	# the run bounded; late notices are off (they only delay the end).
	"$WORK/bin/simulator" run -target "http://127.0.0.1:$PORT/openrtb2/bid" -rate "$RATE" -duration "$DURATION" \
		-seed "$SEED" -sim-start "$SIM_START" -time-scale "$TIME_SCALE" -log "$WORK/logs" -out "$WORK/run" \
		-notice-late 0 -notice-delay 1ms -render-delay 1ms -click-delay 1ms >"$WORK/run.log" 2>&1 || {
		cat "$WORK/run.log" >&2
		exit 1
	}
	kill "$sink"
	wait "$sink" 2>/dev/null || true
	sink=
	desc="simulator seed $SEED: sink (20 campaigns x 5 creatives, always wins) at $RATE req/s for $DURATION, time-scale $TIME_SCALE from $SIM_START, default traffic and ground truth; featurize rows in request-id hash order; last 25% held out"
else
	desc="simulator logs in $WORK/logs (seed $SEED); featurize rows in request-id hash order; last 25% held out"
fi
"$WORK/bin/featurize" -log "$WORK/logs" -out "$WORK/rows" -seed "$SEED" -keys-all-users # simulated users: eval_report.py needs every id

# The two trainings run side by side (one core each).
# shellcheck disable=SC2086
"$PYTHON" ctr/train/gbdt_train.py --data "$WORK/rows" --out "$OUT" --seed "$SEED" --name gbdt-sim-v2 --threads 1 \
	--script ctr/train/make_models.sh ${GBDT_ARGS:---max-bin 4096 --min-child-weight 600 --train-rows 10000000} --data-desc "$desc" &
gbdt=$!
# shellcheck disable=SC2086
"$PYTHON" ctr/train/mlp_train.py --data "$WORK/rows" --out "$OUT" --seed "$SEED" ${MLP_ARGS:-} --data-desc "$desc"
wait "$gbdt"
# The distilled fallback learns the ONNX model just trained (its predictions
# over every row, through ONNX Runtime), so it runs after both; it writes
# gbdt_distilled.* and DISTILL.md / distill.json.
if [ -f lib/onnxruntime/libonnxruntime.so.1 ]; then
	DATA="$WORK/rows" OUT="$OUT" WORK="$WORK" PYTHON="$PYTHON" sh ctr/train/make_distill.sh
else
	echo "make_models: no ONNX Runtime; the distilled GBDT (make distill) is not retrained" >&2
fi
if [ -d features/cmd/featurestats ]; then
	go run ./features/cmd/featurestats -rows "$WORK/rows/rows.f32" "$OUT/gbdt.manifest.json" "$OUT/mlp.manifest.json"
fi
rm -rf "$WORK/pred"
"$WORK/bin/servescore" -rows "$WORK/rows/rows.f32" -heldout 0.25 -out "$WORK/pred" "$OUT/gbdt.manifest.json" "$OUT/mlp.manifest.json"
"$PYTHON" ctr/train/eval_report.py --data "$WORK/rows" --models "$OUT" --pred "$WORK/pred" --sim-report "$WORK/run/report.json"
echo "make_models: wrote $OUT/gbdt.* $OUT/mlp.* $OUT/EVAL.md $OUT/calibration.svg" >&2
