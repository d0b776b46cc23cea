"""Seconds per optimiser step of each training stage (data loading included), with the real trainer.

    .venv/bin/python scripts/bench_train_step.py --preset tiny --crop 128 --batch 2 --steps 6
    .venv/bin/python scripts/bench_train_step.py --preset sd21-base --crop 512 --batch 4 --steps 10 \
        --mixed-precision bf16        # on a GPU; random weights cost what real ones do

Prints the median over the steps after the first (which pays one-off set-up costs) and peak CUDA memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from bench_common import KODAK_DIR
from model.training.trainer import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--scale", type=int, default=16)
    parser.add_argument("--data", type=Path, default=KODAK_DIR, help="photo folder (default: TADM_KODAK_DIR)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"preset {args.preset}, {args.scale}x, crop {args.crop}, batch {args.batch}, {args.steps} steps, "
          f"{device}, mixed precision {args.mixed_precision}")
    with tempfile.TemporaryDirectory() as tmp:
        init = None
        for stage in ("stage1", "stage2", "stage3"):
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            run = Path(tmp) / stage
            config = TrainConfig(
                stage=stage, output_dir=run, data_dirs=[args.data], init=init,
                preset=args.preset if init is None else None, random_init=True, scale=args.scale,
                iterations=args.steps, batch_size=args.batch, crop_size=args.crop, log_every=1,
                checkpoint_every=10**9, validate_every=0, num_workers=1, mixed_precision=args.mixed_precision,
            )
            init = train(config)
            seconds = [json.loads(line)["seconds"] for line in (run / "log.jsonl").read_text().splitlines()]
            peak = f", peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" \
                if torch.cuda.is_available() else ""
            print(f"{stage}: {statistics.median(seconds[1:]):.3f} s/step (median of {len(seconds) - 1}){peak}")


if __name__ == "__main__":
    main()
