"""The training loop: one stage, on one or many GPUs through accelerate.

Recipe (diffusers' training examples): load the start model, freeze it, enable gradients on exactly the
stage's parameters, build the optimiser over them, ``accelerator.prepare``, then loop: micro-batches with
gradient accumulation, mixed precision, gradient clipping, a halving learning-rate schedule, a JSONL log,
validation images and checkpoints every N steps. A stage ends by writing a model directory
(``OUTPUT/model``) that the next stage (or ``tadm upscale --model``) loads.

Checkpoints (:mod:`.checkpointing`) hold only what changes, so that a resumed run continues exactly where the
checkpoint was taken.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from model import lora
from model.pipeline import TADMPipeline

from . import history as training_history
from . import stages
from .checkpointing import (
    TrainingSetupError,
    checkpoint_seconds,
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .data import LatentCache, RandomCrops, StepSampler, find_images
from .losses import PerceptualTerms
from .schedules import halving_schedule

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
HISTORY_NAME = training_history.HISTORY_NAME  # written into each model directory: which stages made it
LOG_NAME = "log.jsonl"


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
    base: str | None = None
    iterations: int | None = None
    lr: float | None = None
    halve_every: int | None = None
    warmup_steps: int = 0  # linear warm-up of a fresh optimiser (a model continued from earlier sessions' weights)
    batch_size: int = 16
    crop_size: int = 512
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
    cache_latents: Path | None = None
    num_workers: int = 2
    check_previous_stage: bool = True


class StageModel(nn.Module):
    """The pipeline's modules under one nn.Module (what accelerate wraps), computing one stage's loss."""

    def __init__(self, pipe: TADMPipeline, stage: stages.Stage, perceptual: PerceptualTerms | None,
                 cache: LatentCache | None) -> None:
        super().__init__()
        self.pipe, self.stage, self.perceptual, self.cache = pipe, stage, perceptual, cache
        # Registered as children so that .parameters() and DDP see them; the pipeline keeps the same objects.
        self.vae, self.unet, self.dfrm, self.tpm, self.refiner = pipe.vae, pipe.unet, pipe.dfrm, pipe.tpm, pipe.refiner

    def forward(self, pixels: torch.Tensor, keys: list[str]) -> dict[str, torch.Tensor]:
        if self.cache is not None:
            z = self.cache.get_or_encode(keys, pixels, self.pipe.encode_latent)
        else:
            with torch.no_grad():
                z = self.pipe.encode_latent(pixels)  # (B, 4, c/8, c/8), the frozen encoder
        return self.stage.loss(self.pipe, pixels, z, self.perceptual)


def resolved(config: TrainConfig, stage: stages.Stage) -> tuple[int, float, int | None]:
    iterations = config.iterations if config.iterations is not None else stage.iterations
    lr = config.lr if config.lr is not None else stage.lr
    halve_every = config.halve_every if config.halve_every is not None else stage.halve_every
    return iterations, lr, halve_every


def load_start_model(config: TrainConfig, stage: stages.Stage) -> TADMPipeline:
    """The model this stage starts from (the previous stage's directory, or a preset for a first stage), with
    the backbone of ``config.backbone`` when one is given."""
    pipe = _start_model(config, stage)
    if config.backbone is not None:
        adopt_backbone(pipe, TADMPipeline.from_pretrained(config.backbone))
    return pipe


def _start_model(config: TrainConfig, stage: stages.Stage) -> TADMPipeline:
    if config.init is not None:
        pipe = TADMPipeline.from_pretrained(config.init)
        done = training_history.last_stage(training_history.read(config.init))
        if stage.previous is not None and config.check_previous_stage and done != stage.previous:
            raise TrainingSetupError(
                f"{stage.name} starts from a model trained by {stage.previous}, but {config.init} was last "
                f"trained by {done or 'nothing (no ' + HISTORY_NAME + ')'}; pass --skip-stage-check to override"
            )
        if pipe.scale != config.scale:
            raise TrainingSetupError(f"{config.init} is a {pipe.scale}x model, not --scale {config.scale}")
        return pipe
    if stage.previous is not None:
        raise TrainingSetupError(f"{stage.name} needs --init, the model directory written by {stage.previous}")
    if config.preset is None:
        raise TrainingSetupError("give --init MODEL_DIR or --preset NAME to start from")
    # With a backbone given, the preset's own pretrained weights are not needed (nor, for nano, shipped).
    pretrained = not config.random_init and config.preset != "tiny" and config.backbone is None
    return TADMPipeline.from_preset(config.preset, scale=config.scale, pretrained=pretrained, base=config.base,
                                    seed=config.seed)


def adopt_backbone(pipe: TADMPipeline, source: TADMPipeline) -> None:
    """Copy ``source``'s VAE and UNet base weights and empty prompt into ``pipe`` (adapters and TADM modules
    stay): a model of another scale can share one trained backbone (nano's 32x starts from the 16x stage 0)."""
    if source.config["preset"] != pipe.config["preset"]:
        raise TrainingSetupError(f"the backbone is a {source.config['preset']!r} model, the start model "
                                 f"{pipe.config['preset']!r}")
    with torch.no_grad():
        for name in ("vae", "unet"):
            theirs = dict(getattr(source, name).named_parameters())
            for key, p in getattr(pipe, name).named_parameters():
                if not lora.is_adapter_key(key):
                    p.copy_(theirs[key])
    pipe.empty_prompt = source.empty_prompt.clone()


def build_perceptual(names: tuple[str, ...], device: torch.device) -> PerceptualTerms | None:
    """The perceptual loss terms on this process's device; a missing package or weight file is a setup error."""
    from model.evaluation import perceptual

    if not names:
        return None
    try:
        return PerceptualTerms({name: perceptual.load(name, str(device)) for name in names})
    except perceptual.PerceptualUnavailableError as exc:
        raise TrainingSetupError(str(exc)) from exc


def make_optimizer(name: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    raise ValueError(f"`optimizer` must be 'adam' or 'adamw' but is {name!r}")


# -- the loop -------------------------------------------------------------------------------------------------
def train(config: TrainConfig) -> Path:
    """Run one stage; returns the written model directory."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    # 1. Set up: accelerator, seed, start model, trainable parameters
    stage = stages.get_stage(config.stage)
    iterations, lr, halve_every = resolved(config, stage)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pipe = load_start_model(config, stage).to(accelerator.device, torch.float32)  # fp32 master weights
    params = stage.trainable(pipe)
    stages.set_trainable(pipe, params)
    logger.info("%s: %d trainable tensors, %.2f M parameters", stage.name, len(params),
                sum(p.numel() for p in params.values()) / 1e6)
    perceptual = build_perceptual(config.perceptual, accelerator.device) if stage.uses_perceptual else None
    if stage.uses_perceptual and perceptual is None:
        logger.warning("%s trains without LPIPS/DISTS: the pixel-only substitute (recorded in %s)",
                       stage.name, HISTORY_NAME)

    # 2. Data
    paths = find_images(config.data_dirs)
    cache = None
    if config.cache_latents is not None:
        cache = LatentCache(config.cache_latents, f"{pipe.config['preset']}-{config.crop_size}")
    dataset = RandomCrops(paths, config.crop_size, config.seed, grid=64 if cache else None)

    # 3. Optimiser, schedule, resume
    optimizer = make_optimizer(stage.optimizer, list(params.values()), lr)
    # stepped once per optimiser step, on every process
    scheduler = halving_schedule(optimizer, halve_every, config.warmup_steps)
    checkpoint = latest_checkpoint(output_dir) if config.resume else None
    start_step = checkpoint_step(checkpoint) if checkpoint is not None else 0
    earlier_seconds = checkpoint_seconds(checkpoint) if checkpoint is not None else 0.0
    sampler = StepSampler(config.batch_size, start_step, config.gradient_accumulation,
                          accelerator.process_index, accelerator.num_processes)
    # Made before the RNG states are restored: a DataLoader iterator draws its base seed from the global RNG.
    loader = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers))
    if checkpoint is not None:
        load_checkpoint(checkpoint, params, optimizer, scheduler)
        logger.info("resumed from %s at step %d", checkpoint, start_step)
        # The restored schedule keeps the run's own base rate; record that one, not a different --lr.
        restored_lr = float(scheduler.base_lrs[0])
        if restored_lr != lr:
            logger.warning("%s: the resumed run keeps its base learning rate %g (--lr %g is ignored)",
                           stage.name, restored_lr, lr)
            lr = restored_lr
    model = StageModel(pipe, stage, perceptual, cache)
    model, optimizer = accelerator.prepare(model, optimizer)

    # 4. Loop
    log = _Log(output_dir, accelerator.is_main_process)
    bar = tqdm(total=iterations, initial=start_step, unit="step", desc=stage.name,
               disable=not accelerator.is_main_process)
    loop_started = time.perf_counter()

    def loop_seconds() -> float:  # the stage's loop time so far, earlier runs included
        return earlier_seconds + time.perf_counter() - loop_started

    for step in range(start_step, iterations):
        started = time.perf_counter()
        totals: dict[str, float] = {}
        for micro in range(config.gradient_accumulation):
            batch = next(loader)
            pixels = batch["pixels"].to(accelerator.device)
            last = micro == config.gradient_accumulation - 1
            with accelerator.no_sync(model) if not last else nullcontext(), accelerator.autocast():
                terms = model(pixels, list(batch["key"]))
                accelerator.backward(terms["loss"] / config.gradient_accumulation)
            for name, value in terms.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) / config.gradient_accumulation
        grad_norm = accelerator.clip_grad_norm_(list(params.values()), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        done = step + 1
        if not math.isfinite(totals["loss"]):
            raise FloatingPointError(f"loss is {totals['loss']} at step {done}; lower --lr or check the data")
        bar.update(1)
        bar.set_postfix(loss=f"{totals['loss']:.4f}")
        if done % config.log_every == 0 or done == iterations:
            # every process reaches this line at the same step: the logged terms are the mean over processes
            names = sorted(totals)
            means = accelerator.reduce(torch.tensor([totals[n] for n in names], device=accelerator.device), "mean")
            log.write({"step": done, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                       "seconds": time.perf_counter() - started, **dict(zip(names, means.tolist(), strict=True))})
        if done % config.checkpoint_every == 0 and accelerator.is_main_process:
            save_checkpoint(output_dir, done, params, optimizer, scheduler, config.checkpoints_kept, loop_seconds())
        if config.validate_every and done % config.validate_every == 0 and accelerator.is_main_process:
            validate(pipe, config.validation_images or paths[:2], output_dir / "validation" / f"step-{done:08d}",
                     config.crop_size)
            stages.set_trainable(pipe, params)
    bar.close()

    # 5. The model directory for the next stage
    accelerator.wait_for_everyone()
    model_dir = output_dir / MODEL_DIR
    if accelerator.is_main_process:
        for module in pipe.modules:
            module.eval()
        pipe.save_pretrained(model_dir)
        history = training_history.read(config.init) if config.init else training_history.empty()
        if config.backbone is not None:
            history = training_history.with_backbone(history, training_history.read(config.backbone))
        entry = {"stage": stage.name, "iterations": iterations, "lr": lr, "halve_every": halve_every,
                 "warmup_steps": config.warmup_steps, "backbone": str(config.backbone) if config.backbone else None,
                 "batch_size": config.batch_size, "processes": accelerator.num_processes,
                 "gradient_accumulation": config.gradient_accumulation, "crop_size": config.crop_size,
                 "seed": config.seed, "mixed_precision": config.mixed_precision,
                 # a resumed stage ran its first resumed_at_step steps in earlier runs: loop_seconds counts
                 # theirs (up to the checkpoint resumed from) and this run's
                 "resumed_at_step": start_step, "loop_seconds": round(loop_seconds(), 1),
                 "perceptual": sorted(perceptual.functions) if perceptual else [],
                 "data": [str(d) for d in config.data_dirs], "model_id": pipe.model_id,
                 "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        training_history.write(model_dir, training_history.with_stage(history, entry))
        log.close()
    return model_dir


def validate(pipe: TADMPipeline, images: list[Path], directory: Path, crop: int) -> None:
    """Downscale and upscale a centre crop of each validation image; save original | reconstruction."""
    import numpy as np
    from PIL import Image

    from model.evaluation.metrics import y_metrics

    directory.mkdir(parents=True, exist_ok=True)
    for module in pipe.modules:
        module.eval()
    for path in images:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        w, h = image.size
        size = min(crop, w, h) // pipe.scale * pipe.scale
        image = image.crop(((w - size) // 2, (h - size) // 2, (w - size) // 2 + size, (h - size) // 2 + size))
        out = pipe.upscale(pipe.downscale(image))
        sheet = Image.new("RGB", (2 * size, size))
        sheet.paste(image, (0, 0))
        sheet.paste(out, (size, 0))
        sheet.save(directory / f"{path.stem}.png")
        psnr = y_metrics(np.asarray(image), np.asarray(out))["psnr_y"]
        logger.info("validation %s: PSNR-Y %.2f dB", path.name, psnr)


class _Log:
    """JSONL loss log (main process only), mirrored to TensorBoard when it is installed."""

    def __init__(self, output_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.file = (output_dir / LOG_NAME).open("a") if enabled else None
        self.tensorboard = None
        if enabled:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is not None:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(output_dir / "tensorboard"))

    def write(self, record: dict) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            for key, value in record.items():
                if key != "step":
                    self.tensorboard.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()

