#!/usr/bin/env bash
# Train the nano model on a lent GPU machine: one prepared device call (issue 12, item 6), evaluated here on CPU.
#
#   scripts/device_train_nano.sh pack                    # here: .device/ = the photos as JPEG + diffusers' wheels
#   device run, carry [".device"], timeout_s 600:  bash scripts/device_train_nano.sh train
#   scripts/device_train_nano.sh unpack FILES_AT [RUN]   # here: the run's stage-1 and stage-3 models into RUN
#   SCALE=16 scripts/ship_nano.sh [RUN]                  # here: float16 weights, Kodak-24 on CPU, training.json
#
# The device machine reaches nothing outside it: the training photos travel with the working tree (64 MiB in
# all, the repository ~28 MiB of it), so `pack` writes them as JPEG (quality 85, longer side <= 1600 px: about
# 25 MB for the 151 photos) into .device/photos/images, with the two wheels its image lacks (diffusers,
# importlib_metadata) into .device/whl. `.device/` is git-ignored.
#
# `train` continues the shipped weights of SCALE (model/weights/nano-${SCALE}x) through stages 1-3 with
# scripts/train_nano.sh, each stage on a time budget (STAGE1_SECONDS, STAGE2_SECONDS, STAGE3_SECONDS: 200, 60,
# 180 by default, so that the call ends well inside its 600 s with the machine's start outside it), at a GPU's
# batch and crop (BATCH 32, CROP 256; the learning rates and warm-up of train_nano.sh, no halving within a
# budget). Then it packs stage1/model, stage3/model and the logs into $OUT as run.tar.part-* (15 MiB pieces:
# files come back at 16 MiB at most).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEVICE_DIR="${DEVICE_DIR:-$REPO/.device}"
SCALE="${SCALE:-16}"

pack() {
  local python="${PYTHON:-$REPO/.venv/bin/python}"
  mkdir -p "$DEVICE_DIR/photos/images" "$DEVICE_DIR/whl"
  "$REPO/scripts/gather_training_photos.sh" "${PHOTOS:-${HOME}/.cache/tadm/photos}"
  "$python" - "${PHOTOS:-${HOME}/.cache/tadm/photos}/images" "$DEVICE_DIR/photos/images" <<'EOF'
import sys
from pathlib import Path

from PIL import Image

source, dest = Path(sys.argv[1]), Path(sys.argv[2])
total = 0
for path in sorted(source.iterdir()):
    out = dest / f"{path.stem}.jpg"
    if not out.exists():
        with Image.open(path) as image:  # already oriented, RGB and at most 1600 px (gather_training_photos.sh)
            image.convert("RGB").save(out, "JPEG", quality=85)
    total += out.stat().st_size
print(f"{len(list(dest.iterdir()))} photos, {total / 1e6:.1f} MB in {dest}")
EOF
  # the versions of this machine's install, for the device's Python 3.12
  local diffusers importlib_metadata
  diffusers="$("$python" -c 'import importlib.metadata as m; print(m.version("diffusers"))')"
  importlib_metadata="$("$python" -c 'import importlib.metadata as m; print(m.version("importlib_metadata"))')"
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEVICE_DIR/whl" "diffusers==$diffusers" "importlib_metadata==$importlib_metadata"
  du -sh "$DEVICE_DIR"
  echo "next: a device run carrying .device: bash scripts/device_train_nano.sh train"
}

train() {
  : "${OUT:?train runs on the device machine, where OUT is the folder whose files come back}"
  [[ -e "${RUN:-/tmp/run}" ]] && { echo "${RUN:-/tmp/run} exists: train starts a fresh run" >&2; exit 2; }
  if compgen -G "$DEVICE_DIR/whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$DEVICE_DIR"/whl/*.whl
  elif ! python3 -c 'import diffusers' 2>/dev/null; then
    echo "no wheels in $DEVICE_DIR/whl and no diffusers here: run pack first" >&2; exit 2
  fi
  export PYTHONPATH="/tmp/site:$REPO" PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no NVIDIA GPU: training on CPU"
  local run="${RUN:-/tmp/run}" status=0
  SCALE="$SCALE" STAGES="1 2 3" GATHER=0 PHOTOS="$DEVICE_DIR/photos" TADM="python3 -m service.cli" \
    THREADS="${THREADS:-8}" WORKERS="${WORKERS:-6}" NICE=0 BATCH="${BATCH:-32}" CROP="${CROP:-256}" \
    STAGE1_STEPS=1000000 STAGE2_STEPS=1000000 STAGE3_STEPS=1000000 \
    STAGE1_SECONDS="${STAGE1_SECONDS:-200}" STAGE2_SECONDS="${STAGE2_SECONDS:-60}" \
    STAGE3_SECONDS="${STAGE3_SECONDS:-180}" CHECKPOINT_EVERY=1000000 \
    TQDM_MININTERVAL=20 bash "$REPO/scripts/train_nano.sh" "$run" 2>&1 | tr '\r' '\n' \
    | tee "$OUT/train.log" || status=$?
  # whatever stages finished come back, also when a later one failed
  (cd "$run" && tar cf - --ignore-failed-read stage1/model stage3/model stage*/log.jsonl 2>/dev/null) \
    | split -b 15m - "$OUT/run.tar.part-"
  ls -l "$OUT"
  return "$status"
}

unpack() {
  local files_at="${1:?usage: $0 unpack FILES_AT [RUN_DIR]}" run="${2:-${HOME}/.cache/tadm/nano-${SCALE}x}"
  compgen -G "$files_at/run.tar.part-*" >/dev/null || { echo "no run.tar.part-* under $files_at" >&2; exit 2; }
  [[ -e "$run" ]] && { echo "$run exists: move it away or name another RUN_DIR" >&2; exit 2; }
  mkdir -p "$run"
  cat "$files_at"/run.tar.part-* | tar xf - -C "$run"
  ls "$run"
  echo "next: SCALE=$SCALE scripts/ship_nano.sh $run"
}

case "${1:-}" in
  pack) pack ;;
  train) train ;;
  unpack) shift; unpack "$@" ;;
  *) echo "usage: $0 pack | train | unpack FILES_AT [RUN_DIR]" >&2; exit 2 ;;
esac
