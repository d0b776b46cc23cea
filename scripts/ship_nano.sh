#!/usr/bin/env bash
# Ship a trained nano model into the repository and measure it: the end of every training run that is kept.
#
#   scripts/ship_nano.sh [RUN_DIR]      # default RUN_DIR: ~/.cache/tadm/nano-${SCALE}x (what train_nano.sh wrote)
#
# 1. model/weights/nano-${SCALE}x/ <- RUN_DIR/stage3/model (or MODEL), stored as float16 (scripts/ship.py weights)
# 2. Kodak-24 at the model's scale: the shipped weights, the stage-1 model alone (`direct`: no diffusion step;
#    DIRECT_MODEL, default RUN/stage1/model, else the shipped model's own G_d when the run had no stage 1),
#    bicubic, and JPEG / WebP / AVIF at the bicubic thumbnail's bytes -> model/weights/nano-${SCALE}x/evaluation/
#    (table, CSV, rate-distortion plot). Kodak is only ever evaluated on, never trained or tuned on.
# 3. The means go into the shipped training.json (scripts/ship.py evaluation): what the model card,
#    /v1/info and /readyz quote, stamped with the cumulative steps per stage.
# Then write the run's figures into model/weights/nano-${SCALE}x/README.md (the model card) and
# docs/training-log.md, and commit.
#
# Settings: SCALE [16]   THREADS [2]   NOTE [""] (recorded with the evaluation)
#   KODAK [TADM_KODAK_DIR, else shared/data/kodak beside the repository]: the 24 Kodak photographs
#   MODEL [RUN_DIR/stage3/model]: the model to ship, e.g. RUN_DIR/stage2/model for a run that ended with stage 2
#   DEST [model/weights/nano-${SCALE}x]: where it goes; model/weights/nano-${SCALE}x-run keeps a run that ended below
#     the shipped model on the training photos, unserved, for a later run to continue (train_nano.sh START=)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SCALE="${SCALE:-16}"
RUN="${1:-${HOME}/.cache/tadm/nano-${SCALE}x}"
KODAK="${KODAK:-${TADM_KODAK_DIR:-$(dirname "$REPO")/shared/data/kodak}}"
DEST="${DEST:-$REPO/model/weights/nano-${SCALE}x}"
PY="$REPO/.venv/bin/python"
export OMP_NUM_THREADS="${THREADS:-2}"

MODEL="${MODEL:-$RUN/stage3/model}"
[[ -f "$MODEL/tadm.json" ]] || { echo "no model at $MODEL (run scripts/train_nano.sh first, or set MODEL)" >&2; exit 2; }
[[ -d "$KODAK" ]] || { echo "Kodak photographs not found at $KODAK (set KODAK or TADM_KODAK_DIR)" >&2; exit 2; }

"$PY" "$REPO/scripts/ship.py" weights "$MODEL" --scale "$SCALE" --dest "$DEST"
DIRECT="${DIRECT_MODEL:-$RUN/stage1/model}"
if [[ ! -f "$DIRECT/tadm.json" ]]; then
  echo "no stage-1 model in $RUN (the run began at a later stage): \`direct\` is the shipped model's own G_d," \
    "decoded without the diffusion step" >&2
  DIRECT="$DEST"
fi
rm -rf "$DEST/evaluation"
"$REPO/.venv/bin/tadm" eval "$KODAK" --scale "$SCALE" --methods model,direct,bicubic,jpeg,webp,avif \
  --model "$DEST" --direct-model "$DIRECT" --crops 0 --no-perceptual --device cpu -o "$DEST/evaluation"
"$PY" "$REPO/scripts/ship.py" evaluation "$DEST" "$DEST/evaluation/results-${SCALE}x.csv" --set kodak-24 \
  --note "${NOTE:-}"
du -sh "$DEST"
