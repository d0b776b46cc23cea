#!/usr/bin/env bash
# The baseline tables of docs/evaluation/kodak-baselines: bicubic, JPEG, WebP and AVIF at the bytes of a bicubic
# thumbnail PNG, on the 24 Kodak photographs, at 16x and 32x. CPU only; a few minutes per scale on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/kodak}"
OUT="${2:-docs/evaluation/kodak-baselines}"
for scale in 16 32; do
  nice .venv/bin/tadm eval "$DATA" --scale "$scale" --methods bicubic,jpeg,webp,avif -o "$OUT" --crops 2
done
