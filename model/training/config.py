"""A training run's settings (what ``tadm train`` parses into), read by the trainer and the start model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainConfig:
    """Everything a run needs. ``None`` for lr / halve_every / iterations takes the stage's default."""

    stage: str
    output_dir: Path
    data_dirs: list[Path]
    init: Path | None = None  # a model directory (required from stage 2 on)
    preset: str | None = None  # or a preset for stage 1
    random_init: bool = False  # the preset's architecture with random weights (benchmarks); tiny always is
    backbone: Path | None = None  # a model directory whose VAE, UNet and empty prompt replace the start model's
    scale: int = 16
    # G_d's size: the start model's G_d is widened/deepened to it without changing its outputs (None keeps a size)
    decoder_channels: int | None = None
    decoder_res_blocks: int | None = None
    shuffle_channels: int | None = None
    # G_e's size (its latent branch's width and the Resblocks of that branch and the fusion), grown the same way
    encoder_channels: int | None = None
    encoder_res_blocks: int | None = None
    # the UNet LoRA rank: the start model's adapter is raised to it without changing its outputs (None keeps it)
    unet_lora_rank: int | None = None
    base: str | None = None
    iterations: int | None = None
    max_seconds: float | None = None  # end this run's loop after that long and write the model from its steps
    lr: float | None = None
    halve_every: int | None = None
    # an exponential moving average of the trainable weights, written as the stage's model (None: the last step's)
    ema_decay: float | None = None
    warmup_steps: int = 0  # linear warm-up of a fresh optimiser (a model continued from an earlier run's weights)
    batch_size: int = 16
    crop_size: int = 512
    hard_scenes: float = 0.0  # fraction of crops made night, fog, high-key or soft (model.training.scenes)
    gradient_accumulation: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16
    max_grad_norm: float = 1.0
    checkpoint_every: int = 1000
    checkpoints_kept: int = 3
    validate_every: int = 1000
    validation_images: list[Path] = field(default_factory=list)
    log_every: int = 10
    seed: int = 0
    resume: bool = False
    # LPIPS/DISTS terms of stages 2-3 by name; () is the pixel-only substitute (chosen explicitly in the CLI)
    perceptual: tuple[str, ...] = ()
    # the stage's loss weights replaced by name (e.g. {"latent": 0.25}); {} keeps the supplement's
    loss_weights: dict[str, float] = field(default_factory=dict)
    cache_latents: Path | None = None
    num_workers: int = 2
    check_previous_stage: bool = True
