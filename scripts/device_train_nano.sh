#!/usr/bin/env bash
# Train the nano models on a lent GPU machine: one prepared device call (issue 12, item 6), evaluated here on CPU.
#
#   scripts/device_train_nano.sh pack                    # here: .device/ = the photos as WebP + diffusers' wheels
#   device run, carry [".device"], timeout_s 570:  bash scripts/device_train_nano.sh jobs .device/jobs
#   scripts/device_train_nano.sh unpack FILES_AT LABEL DIR   # here: a job's float16 model into DIR
#   MODEL=DIR SCALE=32 scripts/ship_nano.sh              # here: ship it after it won on the training photos
#
# What travels is limited to 64 MiB in all, and the repository's tracked files are ~46 MB of it (the two shipped
# models), so `pack` keeps the rest small: the 151 photos as WebP quality 80 (longer side <= 1600 px, as
# gather_training_photos.sh left them: ~16 MB) in .device/photos/images, and the wheels the device image lacks in
# .device/whl: diffusers without its pipelines (this project uses its models, schedulers and config classes only:
# 6.4 -> 2.3 MB), importlib_metadata, and the peft this machine runs (the image's own version is unknown).
# `.device/` is git-ignored.
#
# `jobs FILE` runs several trainings side by side on the one GPU (the nano models are too small to fill it), one
# per line of FILE: `LABEL VAR=VALUE ...`, the variables those of train_nano.sh (SCALE, STAGES, CROP, BATCH,
# STAGE3_LR, STAGE3_SECONDS, EMA_DECAY, ...; values without spaces), its run in RUNS_DIR/run-LABEL [/tmp].
# Each job is `train`: it continues the shipped weights of its SCALE
# (model/weights/nano-${SCALE}x) through STAGES ["1 2 3"], each stage on a time budget (STAGEn_SECONDS: 200, 60,
# 180 by default, so that the call ends well inside its limit with the machine's start outside it) at a GPU's
# batch and crop (BATCH 32, CROP 256 unless set; no halving within a budget). Then it stores the last stage's
# model as float16 (model.training.ship) and packs the files that differ from the shipped model (with the logs)
# into $OUT/LABEL.tar.gz.part-* (15 MiB pieces: files come back at 16 MiB at most, 8 files in all).
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
    out = dest / f"{path.stem}.webp"
    if not out.exists():
        with Image.open(path) as image:  # already oriented, RGB and at most 1600 px (gather_training_photos.sh)
            image.convert("RGB").save(out, "WEBP", quality=80, method=4)
    total += out.stat().st_size
print(f"{len(list(dest.iterdir()))} photos, {total / 1e6:.1f} MB in {dest}")
EOF
  # the versions of this machine's install, for the device's Python 3.12
  local versions
  versions="$("$python" -c 'import importlib.metadata as m
print(*(f"{n}=={m.version(n)}" for n in ("diffusers", "importlib_metadata", "peft")))')"
  # shellcheck disable=SC2086  # the three requirements, split on purpose
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEVICE_DIR/whl" $versions
  "$python" - "$DEVICE_DIR"/whl/diffusers-*.whl <<'EOF'
import sys
import zipfile
from pathlib import Path

# diffusers' pipelines are two thirds of its wheel and never imported here (diffusers loads them lazily)
for wheel in map(Path, sys.argv[1:]):
    with zipfile.ZipFile(wheel) as full:
        kept = [i for i in full.infolist() if not i.filename.startswith(("diffusers/pipelines/",
                                                                         "diffusers/modular_pipelines/"))]
        if len(kept) == len(full.infolist()):
            continue
        with zipfile.ZipFile(wheel.with_suffix(".trimmed"), "w", zipfile.ZIP_DEFLATED) as trimmed:
            for info in kept:
                trimmed.writestr(info, full.read(info))
    wheel.with_suffix(".trimmed").replace(wheel)
    print(f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB without its pipelines")
EOF
  du -sh "$DEVICE_DIR"
  echo "next: a device run carrying .device: bash scripts/device_train_nano.sh jobs .device/jobs"
}

install_wheels() {
  # unpacked, not pip-installed: the trimmed diffusers wheel no longer matches its RECORD
  compgen -G "$DEVICE_DIR/whl/*.whl" >/dev/null || return 0
  python3 -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall("/tmp/site") for w in sys.argv[1:]]' \
    "$DEVICE_DIR"/whl/*.whl
}

train() {
  : "${OUT:?train runs on the device machine, where OUT is the folder whose files come back}"
  local label="${LABEL:-nano-${SCALE}x}" status=0
  local run="${RUNS_DIR:-/tmp}/run-$label"
  [[ -e "$run" ]] && { echo "$run exists: train starts a fresh run" >&2; exit 2; }
  [[ -d /tmp/site ]] || install_wheels
  export PYTHONPATH="/tmp/site:$REPO" PYTHONUNBUFFERED=1
  python3 -c 'import diffusers' || { echo "diffusers does not import: run pack first" >&2; exit 2; }
  mkdir -p "$run"
  SCALE="$SCALE" STAGES="${STAGES:-1 2 3}" GATHER=0 PHOTOS="$DEVICE_DIR/photos" TADM="python3 -m service.cli" \
    THREADS="${THREADS:-8}" WORKERS="${WORKERS:-6}" NICE=0 BATCH="${BATCH:-32}" CROP="${CROP:-256}" \
    STAGE1_STEPS=1000000 STAGE2_STEPS=1000000 STAGE3_STEPS=1000000 \
    STAGE1_SECONDS="${STAGE1_SECONDS:-200}" STAGE2_SECONDS="${STAGE2_SECONDS:-60}" \
    STAGE3_SECONDS="${STAGE3_SECONDS:-180}" CHECKPOINT_EVERY=1000000 \
    TQDM_MININTERVAL=20 bash "$REPO/scripts/train_nano.sh" "$run" 2>&1 | tr '\r' '\n' \
    > "$run/train.log" || status=$?
  # the last stage that finished comes back (float16, only the files that differ from the shipped model)
  local last="" stage
  for stage in 1 2 3; do [[ -f "$run/stage$stage/model/tadm.json" ]] && last="$run/stage$stage/model"; done
  local ship="$run/ship"
  if [[ -n "$last" ]]; then
    python3 -m model.training.ship weights "$last" --scale "$SCALE" --dest "$ship" >> "$run/train.log" 2>&1 \
      || status=$?
  fi
  local changed=()
  if [[ -d "$ship" ]]; then
    while IFS= read -r file; do
      # tadm.json always: it names the model's scale for unpack
      [[ "$file" == tadm.json ]] || ! cmp -s "$ship/$file" "$REPO/model/weights/nano-${SCALE}x/$file" \
        && changed+=("ship/$file")
    done < <(cd "$ship" && find . -type f | sed 's|^\./||' | sort)
  fi
  (cd "$run" && tar cf - --ignore-failed-read train.log stage*/log.jsonl "${changed[@]}" 2>/dev/null) \
    | gzip -1 | split -b 15m - "$OUT/$label.tar.gz.part-"
  echo "$label: rc $status, last stage ${last:-none}, ${#changed[@]} changed files"
  return "$status"
}

jobs() {
  local file="${1:?usage: $0 jobs FILE}" label vars pids=() labels=() failed=0
  : "${OUT:?jobs runs on the device machine, where OUT is the folder whose files come back}"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no NVIDIA GPU: training on CPU"
  install_wheels
  while read -r label vars; do
    [[ -z "$label" || "$label" == \#* ]] && continue
    # shellcheck disable=SC2086  # VAR=VALUE words, split on purpose
    env $vars LABEL="$label" bash "$0" train &
    pids+=($!); labels+=("$label")
  done < "$file"
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { echo "${labels[$i]} failed" >&2; failed=1; }; done
  for label in "${labels[@]}"; do  # each job's last logged step, for the reply's tail
    echo "== $label"; { tail -n 2 "${RUNS_DIR:-/tmp}/run-$label"/stage*/log.jsonl 2>/dev/null | cut -c1-400; } || true
    { grep -h -i -E "error|Traceback" "${RUNS_DIR:-/tmp}/run-$label/train.log" | tail -n 5; } || true
  done
  ls -l "$OUT"
  return "$failed"
}

unpack() {
  local files_at="${1:?usage: $0 unpack FILES_AT LABEL DIR}" label="${2:?LABEL}" dest="${3:?DIR}"
  compgen -G "$files_at/$label.tar.gz.part-*" >/dev/null || { echo "no $label.tar.gz.part-* under $files_at" >&2; exit 2; }
  [[ -e "$dest" ]] && { echo "$dest exists: move it away or name another DIR" >&2; exit 2; }
  local unpacked
  unpacked="$(mktemp -d)"
  cat "$files_at/$label.tar.gz.part-"* | tar xzf - -C "$unpacked"
  [[ -f "$unpacked/ship/tadm.json" ]] || { echo "$label brought back no model: see $unpacked/train.log" >&2; exit 2; }
  local scale
  scale="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["scale"])' "$unpacked/ship/tadm.json")"
  # the unchanged files are the shipped model's
  mkdir -p "$dest"
  cp -r "$REPO/model/weights/nano-${scale}x/." "$dest/"
  rm -rf "$dest/README.md" "$dest/evaluation"
  cp -r "$unpacked/ship/." "$dest/"
  mkdir -p "$dest.logs"  # the job's output and its stages' log.jsonl, beside the model
  cp -r "$unpacked/train.log" "$unpacked"/stage* "$dest.logs/" 2>/dev/null || true
  rm -rf "$unpacked"
  echo "$dest: the ${scale}x model of $label (logs in $dest.logs); next: MODEL=$dest SCALE=$scale scripts/ship_nano.sh"
}

case "${1:-}" in
  pack) pack ;;
  train) train ;;
  jobs) shift; jobs "$@" ;;
  unpack) shift; unpack "$@" ;;
  *) echo "usage: $0 pack | train | jobs FILE | unpack FILES_AT LABEL DIR" >&2; exit 2 ;;
esac
