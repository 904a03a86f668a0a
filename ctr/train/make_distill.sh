#!/bin/sh
# Distils the served ONNX model into the GBDT fallback
# configs/models/gbdt_distilled.* (`make distill`; make_models.sh runs it
# after training both models) and measures, on the held-out rows through the
# Go serving path, how much falling back to each GBDT moves bids:
#   servescore -from 0 (the served ONNX model over every row) -> onnx.pred.f32
#     (skipped when TEACHER names that file already)
#   ctr/train/distill.py --wide (the teacher's wide table, exported, plus
#     XGBoost on the residual logit(p_onnx) - wide logit -> LightGBM text)
#   features/cmd/featurestats (feature_stats in the manifest)
#   servescore -heldout 0.25 (ONNX, independent GBDT, distilled GBDT)
#   ctr/train/distill_report.py -> $OUT/DISTILL.md, $OUT/distill.json
#
# Env (defaults): DATA (required) a directory with rows.f32 / rows.json from
# features/cmd/featurize (make_models.sh's WORK/rows); TEACHER (computed) the
# ONNX model's prediction per row of DATA; OUT (configs/models); SAMPLE
# (where distill.py writes the held-out sample with the teacher's
# predictions: ctr/testdata/distill_sample.json, the fixture ctr/distill_test.go
# reads beside configs/models, when OUT is configs/models; else
# $OUT/distill_sample.json, so a distillation elsewhere leaves the fixture
# alone); WORK (a temporary directory); PYTHON (/usr/bin/python3); DISTILL_ARGS (distill.py's
# hyperparameters; default --wide --trees 20 --train-rows 3000000: the wide
# table carried exactly, 20 trees on the residual over the first 3 million
# training rows, about a minute on 2 cores; without --wide, trees alone, as
# the first distilled model: --trees 300, 8 minutes, 6% of bid change).
set -eu
cd "$(dirname "$0")/../.."
: "${DATA:?DATA must name a featurize rows directory (rows.f32, rows.json)}"
OUT=${OUT:-configs/models}
if [ -z "${SAMPLE:-}" ]; then
	mkdir -p "$OUT"
	if [ "$(cd "$OUT" && pwd -P)" = "$(cd configs/models && pwd -P)" ]; then
		SAMPLE=ctr/testdata/distill_sample.json
	else
		SAMPLE=$OUT/distill_sample.json
	fi
fi
PYTHON=${PYTHON:-/usr/bin/python3}
tmpwork=
cleanup() { [ -z "$tmpwork" ] || rm -rf "$tmpwork"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
if [ -n "${WORK:-}" ]; then
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d)
	tmpwork=$WORK
fi
go build -o "$WORK/bin/" ./ctr/train/servescore
if [ -z "${TEACHER:-}" ]; then
	rm -rf "$WORK/distill_teacher"
	"$WORK/bin/servescore" -rows "$DATA/rows.f32" -from 0 -out "$WORK/distill_teacher" "$OUT/mlp.manifest.json"
	TEACHER=$WORK/distill_teacher/onnx.pred.f32
fi
[ -s "$TEACHER" ] || { echo "make_distill: no teacher predictions at $TEACHER (needs ONNX Runtime: make onnxruntime)" >&2; exit 1; }
# shellcheck disable=SC2086
"$PYTHON" ctr/train/distill.py --data "$DATA" --teacher "$TEACHER" --teacher-manifest "$OUT/mlp.manifest.json" \
	--out "$OUT" --sample "$SAMPLE" ${DISTILL_ARGS:---wide --trees 20 --train-rows 3000000} \
	--data-desc "rows $DATA ($(sed -n 's/.*"rows": *\([0-9]*\).*/\1/p' "$DATA/rows.json") rows, request-id hash order); teacher $OUT/mlp.manifest.json scored by servescore; last 25% held out"
# The training distribution per slot, for the drift metrics (as for the
# other two models).
if [ -d features/cmd/featurestats ]; then
	go run ./features/cmd/featurestats -rows "$DATA/rows.f32" "$OUT/gbdt_distilled.manifest.json"
fi
rm -rf "$WORK/distill_ind" "$WORK/distill_dist"
"$WORK/bin/servescore" -rows "$DATA/rows.f32" -heldout 0.25 -out "$WORK/distill_ind" "$OUT/mlp.manifest.json" "$OUT/gbdt.manifest.json"
"$WORK/bin/servescore" -rows "$DATA/rows.f32" -heldout 0.25 -out "$WORK/distill_dist" "$OUT/gbdt_distilled.manifest.json"
"$PYTHON" ctr/train/distill_report.py --data "$DATA" --onnx "$WORK/distill_ind/onnx.pred.f32" \
	--gbdt "independent=$OUT/gbdt.manifest.json=$WORK/distill_ind/gbdt.pred.f32" \
	--gbdt "distilled=$OUT/gbdt_distilled.manifest.json=$WORK/distill_dist/gbdt.pred.f32" --out "$OUT"
