#!/usr/bin/env bash
# Train the nano models on a remote GPU host (one without network access, or with a limit on what a transfer
# carries) and bring the results back: pack here, run there, unpack here, ship here.
#
#   scripts/train_remote.sh pack                            # here: REMOTE_DIR = the photos as WebP + wheels
#   RESULTS=DIR bash scripts/train_remote.sh jobs FILE      # GPU host, in a copy of the repository with REMOTE_DIR
#   scripts/train_remote.sh unpack DIR LABEL MODEL_DIR      # here: a job's float16 model, from DIR's pieces
#   MODEL=MODEL_DIR SCALE=32 scripts/ship_nano.sh           # here: evaluated and shipped like any run
#
# `pack` keeps what travels small: the training photos as WebP (longer side <= 1600 px, as
# gather_training_photos.sh left them: ~16 MB at quality 80) in REMOTE_DIR/photos/images, and in REMOTE_DIR/whl
# the wheels the GPU host lacks, at the versions installed here: diffusers without its pipelines (the model library
# uses its models, schedulers and config classes only: 6.4 -> 2.3 MB), importlib_metadata and peft.
#
# `jobs FILE` runs several trainings side by side on the one GPU (the nano models are too small to fill a large
# one), one per line of FILE: `LABEL VAR=VALUE ...`, the variables those of train_nano.sh (SCALE, STAGES, CROP,
# BATCH, STAGE3_LR, STAGE3_SECONDS, EMA_DECAY, ...; values without spaces), its run in RUNS_DIR/run-LABEL. Each
# job continues the shipped weights of its SCALE (model/weights/nano-${SCALE}x) through STAGES, each stage on a
# time budget (no halving within it), at a GPU's batch and crop. Then it stores the last stage's model as float16
# (scripts/ship.py) and packs the files that differ from the shipped model, with the logs, into
# RESULTS/LABEL.tar.gz.part-* pieces of PIECE_SIZE.
#
# Settings (environment, defaults in brackets):
#   REMOTE_DIR [.remote, git-ignored]: what `pack` prepares and the jobs read (photos, wheels)
#   pack:   PHOTOS [~/.cache/tadm/photos]   PHOTO_QUALITY [80]   REMOTE_PYTHON [3.12]: the GPU host's Python,
#           for the wheels   WHEELS ["diffusers importlib_metadata peft"; empty: the GPU host has them]
#   jobs:   RESULTS (required): where the packed results go   RUNS_DIR [/tmp]   PIECE_SIZE [15m]: the largest
#           file a transfer back carries (split's size syntax)   STAGES ["1 2 3"]
#           STAGE1_SECONDS [200]  STAGE2_SECONDS [60]  STAGE3_SECONDS [180]   BATCH [32]  CROP [256]
#           THREADS [8]  WORKERS [6]: data loader processes
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
REMOTE_DIR="${REMOTE_DIR:-$REPO/.remote}"
SCALE="${SCALE:-16}"
WHEELS="${WHEELS-diffusers importlib_metadata peft}"

pack() {
  local python="${PYTHON:-$REPO/.venv/bin/python}" photos="${PHOTOS:-${HOME}/.cache/tadm/photos}"
  mkdir -p "$REMOTE_DIR/photos/images" "$REMOTE_DIR/whl"
  "$REPO/scripts/gather_training_photos.sh" "$photos"
  "$python" - "$photos/images" "$REMOTE_DIR/photos/images" "${PHOTO_QUALITY:-80}" <<'PY'
import sys
from pathlib import Path

from PIL import Image

source, dest, quality = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
total = 0
for path in sorted(source.iterdir()):
    out = dest / f"{path.stem}.webp"
    if not out.exists():
        with Image.open(path) as image:  # already oriented, RGB and at most 1600 px (gather_training_photos.sh)
            image.convert("RGB").save(out, "WEBP", quality=quality, method=4)
    total += out.stat().st_size
print(f"{len(list(dest.iterdir()))} photos, {total / 1e6:.1f} MB in {dest}")
PY
  if [[ -n "$WHEELS" ]]; then
    local versions
    # shellcheck disable=SC2086  # the package names, split on purpose
    versions="$("$python" -c 'import importlib.metadata as m, sys
print(*(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $WHEELS)"
    # shellcheck disable=SC2086  # the requirements, split on purpose
    "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "${REMOTE_PYTHON:-3.12}" \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$REMOTE_DIR/whl" $versions
    compgen -G "$REMOTE_DIR/whl/diffusers-*.whl" >/dev/null && "$python" - "$REMOTE_DIR"/whl/diffusers-*.whl <<'PY'
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
PY
  fi
  du -sh "$REMOTE_DIR"
  echo "next, on the GPU host, in a copy of the repository with $REMOTE_DIR: RESULTS=DIR bash scripts/train_remote.sh jobs FILE"
}

install_wheels() {
  # unpacked, not pip-installed: the trimmed diffusers wheel no longer matches its RECORD
  compgen -G "$REMOTE_DIR/whl/*.whl" >/dev/null || return 0
  python3 -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall("/tmp/site") for w in sys.argv[1:]]' \
    "$REMOTE_DIR"/whl/*.whl
}

train() {
  : "${RESULTS:?set RESULTS: the folder the packed results go to}"
  local label="${LABEL:-nano-${SCALE}x}" status=0
  local run="${RUNS_DIR:-/tmp}/run-$label"
  [[ -e "$run" ]] && { echo "$run exists: train starts a fresh run" >&2; exit 2; }
  [[ -d /tmp/site ]] || install_wheels
  export PYTHONPATH="/tmp/site:$REPO" PYTHONUNBUFFERED=1
  python3 -c 'import diffusers' || { echo "diffusers does not import: run pack first" >&2; exit 2; }
  mkdir -p "$run" "$RESULTS"
  SCALE="$SCALE" STAGES="${STAGES:-1 2 3}" GATHER=0 PHOTOS="$REMOTE_DIR/photos" TADM="python3 -m service.cli" \
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
    python3 "$REPO/scripts/ship.py" weights "$last" --scale "$SCALE" --dest "$ship" >> "$run/train.log" 2>&1 \
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
    | gzip -1 | split -b "${PIECE_SIZE:-15m}" - "$RESULTS/$label.tar.gz.part-"
  echo "$label: rc $status, last stage ${last:-none}, ${#changed[@]} changed files"
  return "$status"
}

jobs() {
  local file="${1:?usage: $0 jobs FILE}" label vars pids=() labels=() failed=0
  : "${RESULTS:?set RESULTS: the folder the packed results go to}"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no NVIDIA GPU: training on CPU"
  install_wheels
  while read -r label vars; do
    [[ -z "$label" || "$label" == \#* ]] && continue
    # shellcheck disable=SC2086  # VAR=VALUE words, split on purpose
    env $vars LABEL="$label" bash "$0" train &
    pids+=($!); labels+=("$label")
  done < "$file"
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { echo "${labels[$i]} failed" >&2; failed=1; }; done
  for label in "${labels[@]}"; do  # each job's last logged step and errors, at the end of the output
    echo "== $label"; { tail -n 2 "${RUNS_DIR:-/tmp}/run-$label"/stage*/log.jsonl 2>/dev/null | cut -c1-400; } || true
    { grep -h -i -E "error|Traceback" "${RUNS_DIR:-/tmp}/run-$label/train.log" | tail -n 5; } || true
  done
  ls -l "$RESULTS"
  return "$failed"
}

unpack() {
  local results="${1:?usage: $0 unpack DIR LABEL MODEL_DIR}" label="${2:?LABEL}" dest="${3:?MODEL_DIR}"
  compgen -G "$results/$label.tar.gz.part-*" >/dev/null || { echo "no $label.tar.gz.part-* under $results" >&2; exit 2; }
  [[ -e "$dest" ]] && { echo "$dest exists: move it away or name another MODEL_DIR" >&2; exit 2; }
  local unpacked
  unpacked="$(mktemp -d)"
  cat "$results/$label.tar.gz.part-"* | tar xzf - -C "$unpacked"
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
  *) echo "usage: $0 pack | jobs FILE | unpack DIR LABEL MODEL_DIR" >&2; exit 2 ;;
esac
