#!/bin/sh
# Regenerates the bundled neural CTR model end to end:
#   synthetic rows (features/cmd/synthdata, the same rows as make_gbdt.sh)
#   -> PyTorch (ctr/train/mlp_train.py) -> ONNX
#   -> configs/models/mlp.onnx, mlp.manifest.json, mlp.parity.json
# and the tiny test models (schema-drawn rows, no data): ctr/testdata/mlp_tiny_rows.*
# (input form rows) and ctr/testdata/mlp_tiny.* (the same weights re-exported to
# input form wide_deep_ids by ctr/train/reexport.py; ctr tests that the two agree).
# Needs Go and /usr/bin/python3 with python3-torch, python3-onnx and
# python3-numpy (Debian: apt-get install -y --no-install-recommends
# python3-torch python3-onnx python3-numpy).
# Env: SEED (default 1), ROWS (default 2000000), PYTHON (default
# /usr/bin/python3), OUT (default configs/models), MLP_ARGS (extra
# mlp_train.py flags).
set -eu
cd "$(dirname "$0")/../.."
SEED=${SEED:-1}
ROWS=${ROWS:-2000000}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-configs/models}
if ! "$PYTHON" -c 'import torch, onnx, numpy' 2>/dev/null; then
	echo "mlp_make: $PYTHON lacks torch/onnx/numpy; install them with: apt-get install -y --no-install-recommends python3-torch python3-onnx python3-numpy" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./features/cmd/synthdata -seed "$SEED" -n "$ROWS" -out "$tmp"
# shellcheck disable=SC2086
"$PYTHON" ctr/train/mlp_train.py --data "$tmp" --out "$OUT" --seed "$SEED" ${MLP_ARGS:-} \
	--data-desc "go run ./features/cmd/synthdata -seed $SEED -n $ROWS (synthetic; ground truth in features/cmd/synthdata/truth.go)"
"$PYTHON" ctr/train/mlp_train.py --tiny --input-form rows --out ctr/testdata --name mlp_tiny_rows --seed "$SEED"
"$PYTHON" ctr/train/reexport.py ctr/testdata/mlp_tiny_rows.manifest.json ctr/testdata --name mlp_tiny
echo "mlp_make: wrote $OUT/mlp.onnx $OUT/mlp.manifest.json $OUT/mlp.parity.json and ctr/testdata/mlp_tiny{,_rows}.*" >&2
