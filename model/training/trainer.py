"""The training loop: one stage, on one or many GPUs through accelerate.

Recipe (diffusers' training examples): load the start model, freeze it, enable gradients on exactly the
stage's parameters, build the optimiser over them, ``accelerator.prepare``, then loop: micro-batches with
gradient accumulation, mixed precision, gradient clipping, a halving learning-rate schedule, a JSONL log and
validation images (:mod:`.monitoring`), checkpoints every N steps. A stage starts from the model
:mod:`.start_model` loads and ends by writing a model directory (``OUTPUT/model``) that the next stage (or
``tadm upscale --model``) loads.

Checkpoints (:mod:`.checkpointing`) hold only what changes, so that a resumed run continues exactly where the
checkpoint was taken.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

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
from .config import TrainConfig
from .data import LatentCache, RandomCrops, StepSampler, find_images
from .losses import PerceptualTerms
from .monitoring import TrainingLog, validate
from .schedules import halving_schedule
from .start_model import load_start_model, raise_unet_lora_rank, resize_decoder, resize_encoder
from .weight_average import WeightAverage

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
HISTORY_NAME = training_history.HISTORY_NAME  # written into each model directory: which stages made it
LOG_NAME = "log.jsonl"


class StageModel(nn.Module):
    """The pipeline's modules under one nn.Module (what accelerate wraps), computing one stage's loss."""

    def __init__(self, pipe: TADMPipeline, stage: stages.Stage, perceptual: PerceptualTerms | None,
                 cache: LatentCache | None, loss_weights: dict[str, float]) -> None:
        super().__init__()
        self.pipe, self.stage, self.perceptual, self.cache = pipe, stage, perceptual, cache
        self.loss_weights = loss_weights
        # Registered as children so that .parameters() and DDP see them; the pipeline keeps the same objects.
        self.vae, self.unet, self.dfrm, self.tpm, self.refiner = pipe.vae, pipe.unet, pipe.dfrm, pipe.tpm, pipe.refiner

    def forward(self, pixels: torch.Tensor, keys: list[str]) -> dict[str, torch.Tensor]:
        if self.cache is not None:
            z = self.cache.get_or_encode(keys, pixels, self.pipe.encode_latent)
        else:
            with torch.no_grad():
                z = self.pipe.encode_latent(pixels)  # (B, 4, c/8, c/8), the frozen encoder
        return self.stage.loss(self.pipe, pixels, z, self.perceptual, self.loss_weights)


def resolved(config: TrainConfig, stage: stages.Stage) -> tuple[int, float, int | None]:
    iterations = config.iterations if config.iterations is not None else stage.iterations
    lr = config.lr if config.lr is not None else stage.lr
    halve_every = config.halve_every if config.halve_every is not None else stage.halve_every
    return iterations, lr, halve_every


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
    weights = stages.loss_weights(stage, config.loss_weights)  # refused here, before anything is written
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pipe = load_start_model(config, stage)
    decoder_grown_from = resize_decoder(pipe, config)
    if decoder_grown_from is not None:
        logger.info("%s: G_d grown from %s to %s (channels, Resblocks, width between shuffles), outputs kept",
                    stage.name, decoder_grown_from, pipe.dfrm.decoder_shape)
    encoder_grown_from = resize_encoder(pipe, config)
    if encoder_grown_from is not None:
        logger.info("%s: G_e grown from %s to %s (channels, Resblocks), thumbnails kept", stage.name,
                    encoder_grown_from, pipe.dfrm.encoder_shape)
    lora_grown_from = raise_unet_lora_rank(pipe, config)
    if lora_grown_from is not None:
        logger.info("%s: UNet LoRA rank raised from %d to %d, outputs kept", stage.name, lora_grown_from,
                    config.unet_lora_rank)
    pipe.to(accelerator.device, torch.float32)  # fp32 master weights
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
    dataset = RandomCrops(paths, config.crop_size, config.seed, grid=64 if cache else None,
                          hard_scenes=config.hard_scenes)

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
    # started here, from the start model's weights or the checkpoint's just restored
    average = WeightAverage(params, config.ema_decay) if config.ema_decay is not None else None
    if average is not None and checkpoint is not None and not average.load(checkpoint):
        logger.warning("%s: %s holds no weight average; the average starts from its weights", stage.name,
                       checkpoint)
    model = StageModel(pipe, stage, perceptual, cache, weights)
    model, optimizer = accelerator.prepare(model, optimizer)

    # 4. Loop
    log = TrainingLog(output_dir / LOG_NAME, accelerator.is_main_process)
    bar = tqdm(total=iterations, initial=start_step, unit="step", desc=stage.name,
               disable=not accelerator.is_main_process)
    loop_started = time.perf_counter()

    def loop_seconds() -> float:  # the stage's loop time so far, earlier runs included
        return earlier_seconds + time.perf_counter() - loop_started

    done = start_step
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
        if average is not None:
            average.update(params)
        done = step + 1
        if not math.isfinite(totals["loss"]):
            raise FloatingPointError(f"loss is {totals['loss']} at step {done}; lower --lr or check the data")
        bar.update(1)
        bar.set_postfix(loss=f"{totals['loss']:.4f}", refresh=False)  # drawn at tqdm's own pace
        if done % config.log_every == 0 or done == iterations:
            # every process reaches this line at the same step: the logged terms are the mean over processes
            names = sorted(totals)
            means = accelerator.reduce(torch.tensor([totals[n] for n in names], device=accelerator.device), "mean")
            log.write({"step": done, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                       "seconds": time.perf_counter() - started, **dict(zip(names, means.tolist(), strict=True))})
        if done % config.checkpoint_every == 0 and accelerator.is_main_process:
            save_checkpoint(output_dir, done, params, optimizer, scheduler, config.checkpoints_kept, loop_seconds(),
                            average)
        if config.validate_every and done % config.validate_every == 0 and accelerator.is_main_process:
            validate(pipe, config.validation_images or paths[:2], output_dir / "validation" / f"step-{done:08d}",
                     config.crop_size)
            stages.set_trainable(pipe, params)
        if config.max_seconds is not None and _out_of_time(loop_started, config.max_seconds, accelerator):
            if done < iterations:
                logger.info("%s: --max-seconds %g reached at step %d of %d; writing the model from it",
                            stage.name, config.max_seconds, done, iterations)
            break
    bar.close()

    # 5. The model directory for the next stage
    accelerator.wait_for_everyone()
    model_dir = output_dir / MODEL_DIR
    if accelerator.is_main_process:
        if average is not None:
            average.copy_to(params)  # the stage's model is the average, not the last step's weights
        for module in pipe.modules:
            module.eval()
        pipe.save_pretrained(model_dir)
        history = training_history.read(config.init) if config.init else training_history.empty()
        if config.backbone is not None:
            history = training_history.with_backbone(history, training_history.read(config.backbone))
        # iterations: the steps the stage had; planned_iterations when --max-seconds ended it sooner
        stopped_early = {"planned_iterations": iterations, "max_seconds": config.max_seconds} if done < iterations else {}
        entry = {"stage": stage.name, "iterations": done, **stopped_early, "lr": lr, "halve_every": halve_every,
                 "warmup_steps": config.warmup_steps,
                 "ema_decay": config.ema_decay,  # the model written is that average of the weights; None: the last
                 "backbone": str(config.backbone) if config.backbone else None,
                 # G_d's (channels, Resblocks, width between shuffles); grown_from when this stage grew it
                 "g_d": list(pipe.dfrm.decoder_shape),
                 **({"g_d_grown_from": list(decoder_grown_from)} if decoder_grown_from else {}),
                 # G_e's (channels, Resblocks), the same way
                 "g_e": list(pipe.dfrm.encoder_shape),
                 **({"g_e_grown_from": list(encoder_grown_from)} if encoder_grown_from else {}),
                 "unet_lora_rank": pipe.config["unet_lora_rank"],
                 **({"unet_lora_rank_grown_from": lora_grown_from} if lora_grown_from else {}),
                 "batch_size": config.batch_size, "processes": accelerator.num_processes,
                 "gradient_accumulation": config.gradient_accumulation, "crop_size": config.crop_size,
                 "hard_scenes": config.hard_scenes,
                 "seed": config.seed, "mixed_precision": config.mixed_precision,
                 # a resumed stage ran its first resumed_at_step steps in earlier runs: loop_seconds counts
                 # theirs (up to the checkpoint resumed from) and this run's
                 "resumed_at_step": start_step, "loop_seconds": round(loop_seconds(), 1),
                 "perceptual": sorted(perceptual.functions) if perceptual else [],
                 # the weights the total used; the changed ones also by themselves, for a reader of the history
                 "loss_weights": weights, "loss_weights_changed": dict(config.loss_weights),
                 "data": [str(d) for d in config.data_dirs], "model_id": pipe.model_id,
                 "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        training_history.write(model_dir, training_history.with_stage(history, entry))
        log.close()
    return model_dir


def _out_of_time(loop_started: float, limit: float, accelerator) -> bool:
    """Whether this run's loop has had its ``--max-seconds``; every process takes the same decision (the
    slowest one's), so that none waits at a collective for a process that has stopped."""
    late = torch.tensor([float(time.perf_counter() - loop_started >= limit)], device=accelerator.device)
    return bool(accelerator.reduce(late, "max").item())
