#!/usr/bin/env bash
# The nano model's one recipe: gather the photos, then stage 0 -> 1 -> 2 -> 3, resumable.
#
#   scripts/train_nano.sh [RUN_DIR]          # default RUN_DIR: ~/.cache/tadm/nano-${SCALE}x
#
# Training accumulates across runs: when the repository ships weights for this scale
# (model/weights/nano-${SCALE}x, committed by scripts/ship_nano.sh), the first stage starts from them instead of
# from scratch, with a fresh optimiser warmed up over WARMUP steps; every later stage starts from the stage before,
# so the shipped DFRM, TPM, refiner and adapters are continued too. training.json keeps each run's segments.
#
# 32x shares the 16x model's backbone: SCALE=32 runs stages 1-3 only, on the VAE and UNet of BACKBONE (default
# ~/.cache/tadm/nano-16x/stage0/model, a 16x run's stage 0 where there is one, else the shipped 16x model).
#
# Every stage writes RUN_DIR/stageN/ (model/, checkpoints/, log.jsonl). Re-running the same command continues:
# a finished stage (its model/ exists) is skipped, an interrupted one resumes from its latest checkpoint
# (--resume, exact: same batches, same RNG). To end a stage early, stop the script and re-run it with that
# stage's step count lowered to its latest checkpoint (e.g. STAGE0_STEPS=2400) and its halving interval kept
# (STAGE0_HALVE, default 2/3 of the planned steps; training.json records the value given): the stage then writes
# its model at once and the next one starts.
#
# Settings (environment, defaults in brackets):
#   SCALE [16]   STAGES ["0 1 2 3"; 32x: "1 2 3"]   WARMUP [100]   BACKBONE (32x)   THREADS [1]   NICE [10]
#   CROP [128; 32x: 192]   BATCH [8]   CHECKPOINT_EVERY [200]
#   STAGE0_STEPS [5000]  STAGE1_STEPS [4000]  STAGE2_STEPS [400]  STAGE3_STEPS [1500]
#   STAGE0_LR [6e-4]  STAGE1_LR [5e-4]  STAGE2_LR [3e-4]  STAGE3_LR [1e-4]   STAGEn_HALVE [2/3 of the stage's steps]
#   GD_CHANNELS, GD_RES_BLOCKS, GD_SHUFFLE [unset]: grow G_d (the DFRM's thumbnail-to-latent decoder) to this
#     width / number of Resblocks / width between shuffles before training, keeping its outputs (tadm train
#     --decoder-channels etc.; a no-op once the model has that size, so they may stay set on a resumed run)
#   GE_CHANNELS, GE_RES_BLOCKS [unset]: grow G_e (the DFRM's image-and-latent-to-thumbnail encoder: its latent
#     branch's width, the Resblocks of that branch and of the fusion) the same way, keeping its thumbnails (tadm
#     train --encoder-channels / --encoder-res-blocks)
#   UNET_LORA_RANK [unset]: raise the UNet LoRA rank to this before training, keeping its outputs (tadm train
#     --unet-lora-rank, model/training/grow_lora.py; a no-op once the model has that rank)
#   STAGEn_LOSS_WEIGHTS [none]: the stage's loss weights replaced by term name, "TERM=WEIGHT ..." (tadm train
#     --loss-weight, recorded in training.json; e.g. STAGE3_LOSS_WEIGHTS="latent=0.25")
#   EMA_DECAY [unset]: every stage keeps an exponential moving average of its weights and writes it as its model
#     (tadm train --ema-decay, model/training/weight_average.py; e.g. 0.995, over the last ~200 steps: at batch 3
#     the last step's weights are a noisy sample, checkpoints 100 steps apart differ by up to 0.04 dB)
#   STAGEn_SECONDS [none]: a time budget; the stage ends when its loop has run that long (or at its steps, if
#     sooner) and writes its model from the steps done (training.json records them and the planned steps)
#   START [model/weights/nano-${SCALE}x]: the model the first stage continues, e.g. a run committed unshipped
#     (model/weights/nano-16x-run, when a run ended below the shipped model on the training photos)
#   SEED [the start model's cumulative steps, 0 without one]: the seed of the crops (tadm train --seed). With one
#     fixed seed every continuation at the same crop and batch would begin on the same crops in the same order;
#     seeded by the steps already trained, each continuation draws new ones, and a resumed run (same START) the
#     same ones again
#   HARD_SCENES [0]: the fraction of crops turned into night, fog, high-key or out-of-focus scenes (tadm train
#     --hard-scenes, model/training/scenes.py): flat and dark areas are rare in the photos and weigh little in MSE
#   PHOTOS [~/.cache/tadm/photos]   GATHER [1; 0: PHOTOS/images is ready, do not fetch]   WORKERS [1]
#   WIKI_DIR [unset]: a folder of more training photos for gather_training_photos.sh (skipped when absent)
#   TADM [.venv/bin/tadm; e.g. "python3 -m service.cli" where the package is not installed]
# On a GPU host raise BATCH/CROP (scripts/train_remote.sh does, for a host reached by copying files); the commands
# are the same. CROP's default is the recipe of the first runs (2026-12-01). 32x crops are larger: with 128 px its
# thumbnails are 4x4, every pixel at a border, and a 32x stage 1 trained so reached 16.49 dB PSNR-Y on Kodak
# against 19.61 after 1,500 more steps on 192 px crops (docs/training-log.md, 2026-12-01). Later runs continue on
# larger crops, given on the command line: 192 px at 16x since 2026-12-01; for stage 3 since 2026-12-02,
# CROP=320 BATCH=3 (about the pixels of 192 px x 8 per step; the thumbnails 20x20 at 16x and 10x10 at 32x, the
# latent the 80x80 serving tile). docs/training-log.md records each run's command and what it gave.
# THREADS defaults to 1: on the 2 shared cores of the development machine a stage-0 step (batch 8, 128 px) took
# 1.5-2.9 s on one thread and 20-23 s on two (OpenMP threads waiting on each other while other jobs hold a core).
# On a dedicated host set THREADS to its core count.
# Stages 2-3 use --perceptual-loss none (pixel MSE only), so that the recipe runs without downloading LPIPS or DISTS
# weights; this is the documented substitute and training.json records it.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
RUN="${1:-${HOME}/.cache/tadm/nano-${SCALE:-16}x}"
SCALE="${SCALE:-16}"
if [[ "$SCALE" == 32 ]]; then STAGES="${STAGES:-1 2 3}"; else STAGES="${STAGES:-0 1 2 3}"; fi
WARMUP="${WARMUP:-100}"
# A START given by hand must be a model: a mistyped one would otherwise start the run from scratch, silently.
[[ -z "${START:-}" || -f "$START/tadm.json" ]] || { echo "START $START is not a model directory" >&2; exit 2; }
START="${START:-$REPO/model/weights/nano-${SCALE}x}"
BACKBONE="${BACKBONE:-}"
if [[ "$SCALE" == 32 && -z "$BACKBONE" ]]; then
  BACKBONE="${HOME}/.cache/tadm/nano-16x/stage0/model"
  [[ -f "$BACKBONE/tadm.json" ]] || BACKBONE="$REPO/model/weights/nano-16x"
fi
THREADS="${THREADS:-1}"
NICE="${NICE:-10}"
if [[ "$SCALE" == 32 ]]; then CROP="${CROP:-192}"; else CROP="${CROP:-128}"; fi
BATCH="${BATCH:-8}"
CHECKPOINT_EVERY="${CHECKPOINT_EVERY:-200}"
if [[ -z "${SEED:-}" ]]; then
  SEED=0
  [[ -f "$START/training.json" ]] && SEED="$(python3 -c 'import json, sys
print(sum(json.load(open(sys.argv[1])).get("cumulative_steps", {}).values()))' "$START/training.json")"
fi
PHOTOS="${PHOTOS:-${HOME}/.cache/tadm/photos}"
GATHER="${GATHER:-1}"
WORKERS="${WORKERS:-1}"
read -ra TADM <<< "${TADM:-$REPO/.venv/bin/tadm}"

declare -A STEPS=([0]="${STAGE0_STEPS:-5000}" [1]="${STAGE1_STEPS:-4000}" [2]="${STAGE2_STEPS:-400}"
                  [3]="${STAGE3_STEPS:-1500}")
declare -A HALVE=([0]="${STAGE0_HALVE:-$(( ${STEPS[0]} * 2 / 3 ))}" [1]="${STAGE1_HALVE:-$(( ${STEPS[1]} * 2 / 3 ))}"
                   [2]="${STAGE2_HALVE:-$(( ${STEPS[2]} * 2 / 3 ))}" [3]="${STAGE3_HALVE:-$(( ${STEPS[3]} * 2 / 3 ))}")
declare -A LR=([0]="${STAGE0_LR:-6e-4}" [1]="${STAGE1_LR:-5e-4}" [2]="${STAGE2_LR:-3e-4}" [3]="${STAGE3_LR:-1e-4}")
declare -A LOSS_WEIGHTS=([0]="${STAGE0_LOSS_WEIGHTS:-}" [1]="${STAGE1_LOSS_WEIGHTS:-}" [2]="${STAGE2_LOSS_WEIGHTS:-}"
                         [3]="${STAGE3_LOSS_WEIGHTS:-}")
declare -A SECONDS_BUDGET=([0]="${STAGE0_SECONDS:-}" [1]="${STAGE1_SECONDS:-}" [2]="${STAGE2_SECONDS:-}"
                           [3]="${STAGE3_SECONDS:-}")

if [[ "$GATHER" == 1 ]]; then
  "$REPO/scripts/gather_training_photos.sh" "$PHOTOS"
else
  compgen -G "$PHOTOS/images/*" >/dev/null || { echo "GATHER=0 but $PHOTOS/images holds no photos" >&2; exit 2; }
fi

export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
previous=""
first="${STAGES%% *}"
for n in $STAGES; do
  out="$RUN/stage$n"
  if [[ -f "$out/model/tadm.json" ]]; then
    echo "stage$n: done ($out/model)"
  else
    extra=()
    if [[ -n "$previous" ]]; then
      start=(--init "$previous")
    elif [[ "$n" == "$first" && -f "$START/tadm.json" ]]; then
      echo "stage$n: continuing $START (fresh optimiser, $WARMUP warm-up steps)"
      start=(--init "$START" --skip-stage-check)
      extra+=(--warmup-steps "$WARMUP")
    elif [[ "$n" == 0 || ( "$n" == 1 && -n "$BACKBONE" ) ]]; then
      start=(--preset nano)
    else
      start=(--init "$RUN/stage$((n - 1))/model")
    fi
    if [[ "$n" == 1 && -n "$BACKBONE" ]]; then
      [[ -f "$BACKBONE/tadm.json" ]] || { echo "BACKBONE $BACKBONE is not a model directory (train 16x stage 0 first)" >&2; exit 2; }
      extra+=(--backbone "$BACKBONE")
    fi
    [[ "$n" == 2 || "$n" == 3 ]] && extra+=(--perceptual-loss none)
    [[ -n "${SECONDS_BUDGET[$n]}" ]] && extra+=(--max-seconds "${SECONDS_BUDGET[$n]}")
    for weight in ${LOSS_WEIGHTS[$n]}; do extra+=(--loss-weight "$weight"); done
    [[ -n "${GD_CHANNELS:-}" ]] && extra+=(--decoder-channels "$GD_CHANNELS")
    [[ -n "${GD_RES_BLOCKS:-}" ]] && extra+=(--decoder-res-blocks "$GD_RES_BLOCKS")
    [[ -n "${GD_SHUFFLE:-}" ]] && extra+=(--shuffle-channels "$GD_SHUFFLE")
    [[ -n "${GE_CHANNELS:-}" ]] && extra+=(--encoder-channels "$GE_CHANNELS")
    [[ -n "${GE_RES_BLOCKS:-}" ]] && extra+=(--encoder-res-blocks "$GE_RES_BLOCKS")
    [[ -n "${UNET_LORA_RANK:-}" ]] && extra+=(--unet-lora-rank "$UNET_LORA_RANK")
    [[ -n "${EMA_DECAY:-}" ]] && extra+=(--ema-decay "$EMA_DECAY")
    [[ -n "${HARD_SCENES:-}" ]] && extra+=(--hard-scenes "$HARD_SCENES")
    echo "stage$n: training ${STEPS[$n]} steps${SECONDS_BUDGET[$n]:+ or ${SECONDS_BUDGET[$n]} s} into $out (seed $SEED)"
    nice -n "$NICE" "${TADM[@]}" train "stage$n" "${start[@]}" --data "$PHOTOS/images" --output "$out" \
      --scale "$SCALE" --iterations "${STEPS[$n]}" --lr "${LR[$n]}" --lr-halve-every "${HALVE[$n]}" \
      --batch-size "$BATCH" --crop-size "$CROP" --checkpoint-every "$CHECKPOINT_EVERY" --validate-every 0 \
      --num-workers "$WORKERS" --seed "$SEED" --log-every 20 --resume "${extra[@]}"
  fi
  previous="$out/model"
done
echo "model: $previous"
