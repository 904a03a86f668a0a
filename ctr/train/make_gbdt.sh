#!/bin/sh
# Regenerates the bundled GBDT model end to end, deterministically:
#   synthetic rows (features/cmd/synthdata) -> XGBoost (ctr/train/gbdt_train.py)
#   -> configs/models/gbdt.txt, gbdt.manifest.json, gbdt.parity.json
# The bundled model now comes from ctr/train/make_models.sh (simulator logs,
# docs/models.md); this script trains on synthetic rows, for comparison, and
# overwrites configs/models/gbdt.* unless OUT says otherwise.
# Needs Go and /usr/bin/python3 with python3-xgboost and python3-numpy (Debian).
# Env: SEED (default 1), ROWS (default 2000000), PYTHON (default /usr/bin/python3), OUT (default configs/models).
set -eu
cd "$(dirname "$0")/../.."
SEED=${SEED:-1}
ROWS=${ROWS:-2000000}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-configs/models}
if ! "$PYTHON" -c 'import xgboost, numpy' 2>/dev/null; then
	echo "make_gbdt: $PYTHON lacks xgboost/numpy; install them with: apt-get install -y python3-xgboost python3-numpy" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./features/cmd/synthdata -seed "$SEED" -n "$ROWS" -out "$tmp"
"$PYTHON" ctr/train/gbdt_train.py --data "$tmp" --out "$OUT" --seed "$SEED" \
	--data-desc "go run ./features/cmd/synthdata -seed $SEED -n $ROWS (synthetic; ground truth in features/cmd/synthdata/truth.go)"
echo "make_gbdt: wrote $OUT/gbdt.txt $OUT/gbdt.manifest.json $OUT/gbdt.parity.json" >&2
