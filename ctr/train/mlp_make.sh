#!/bin/sh
# Regenerates the bundled neural CTR model end to end:
#   synthetic rows (features/cmd/synthdata, the same rows as make_gbdt.sh)
#   -> PyTorch (ctr/train/mlp_train.py) -> ONNX
#   -> configs/models/mlp.onnx, mlp.manifest.json, mlp.parity.json
# and the tiny test model ctr/testdata/mlp_tiny.* (schema-drawn rows, no data).
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
"$PYTHON" ctr/train/mlp_train.py --tiny --out ctr/testdata --name mlp_tiny --seed "$SEED"
echo "mlp_make: wrote $OUT/mlp.onnx $OUT/mlp.manifest.json $OUT/mlp.parity.json and ctr/testdata/mlp_tiny.*" >&2
