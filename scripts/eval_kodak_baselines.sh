#!/usr/bin/env bash
# The baseline tables of docs/evaluation/kodak-baselines: bicubic, JPEG, WebP and AVIF at the bytes of a bicubic
# thumbnail PNG, on the 24 Kodak photographs, at 16x and 32x. CPU only; a few minutes per scale on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# The photographs: the first argument, else TADM_KODAK_DIR, else shared/data/kodak beside the repository.
DATA="${1:-${TADM_KODAK_DIR:-$(dirname "$PWD")/shared/data/kodak}}"
DEST="${2:-docs/evaluation/kodak-baselines}"
[[ -d "$DATA" ]] || { echo "Kodak photographs not found at $DATA (pass their folder, or set TADM_KODAK_DIR)" >&2; exit 2; }
for scale in 16 32; do
  nice .venv/bin/tadm eval "$DATA" --scale "$scale" --methods bicubic,jpeg,webp,avif -o "$DEST" --crops 2
done
