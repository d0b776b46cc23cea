"""What a training stage starts from: the previous stage's model directory (checked to be that stage's), or a
preset for a first stage, optionally with another model's trained backbone (VAE and UNet) copied in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from model import lora
from model.dfrm import DFRM
from model.pipeline import TADMPipeline

from . import history as training_history
from . import stages
from .checkpointing import TrainingSetupError
from .config import TrainConfig
from .grow_lora import grow_unet_lora
from .widen import widen_decoder, widen_encoder


def load_start_model(config: TrainConfig, stage: stages.Stage) -> TADMPipeline:
    """The model this stage starts from (the previous stage's directory, or a preset for a first stage), with
    the backbone of ``config.backbone`` when one is given."""
    pipe = _start_model(config, stage)
    if config.backbone is not None:
        adopt_backbone(pipe, TADMPipeline.from_pretrained(config.backbone))
    return pipe


def resize_decoder(pipe: TADMPipeline, config: TrainConfig) -> tuple[int, int, int] | None:
    """Grow the start model's G_d to the size ``config`` asks for, keeping its outputs (see
    :mod:`model.training.widen`); returns the size it had when it grew, else ``None``."""
    if config.decoder_channels is None and config.decoder_res_blocks is None and config.shuffle_channels is None:
        return None
    return _regrow_dfrm(
        pipe, lambda dfrm: dfrm.decoder_shape,
        lambda dfrm: widen_decoder(dfrm, channels=config.decoder_channels, res_blocks=config.decoder_res_blocks,
                                   shuffle_channels=config.shuffle_channels, seed=config.seed))


def resize_encoder(pipe: TADMPipeline, config: TrainConfig) -> tuple[int, int] | None:
    """Grow the start model's G_e to the size ``config`` asks for, keeping its thumbnails (see
    :mod:`model.training.widen`); returns the size it had when it grew, else ``None``."""
    if config.encoder_channels is None and config.encoder_res_blocks is None:
        return None
    return _regrow_dfrm(
        pipe, lambda dfrm: dfrm.encoder_shape,
        lambda dfrm: widen_encoder(dfrm, channels=config.encoder_channels, res_blocks=config.encoder_res_blocks,
                                   seed=config.seed))


def _regrow_dfrm(pipe: TADMPipeline, shape_of: Callable[[DFRM], Any], widen: Callable[[DFRM], DFRM]) -> Any:
    """Replace ``pipe``'s DFRM by ``widen(dfrm)``; the shape it had (by ``shape_of``) when that changed it, else
    ``None`` (asking for the size a model already has is not growth, so a resumed run records nothing)."""
    before = shape_of(pipe.dfrm)
    try:
        wider = widen(pipe.dfrm)
    except ValueError as exc:
        raise TrainingSetupError(str(exc)) from exc
    if shape_of(wider) == before:
        return None
    pipe.dfrm = wider
    pipe.model_id = pipe.compute_model_id()
    return before


def raise_unet_lora_rank(pipe: TADMPipeline, config: TrainConfig) -> int | None:
    """Raise the start model's UNet LoRA rank to ``config.unet_lora_rank``, keeping its outputs (see
    :mod:`model.training.grow_lora`); returns the rank it had when it grew, else ``None``."""
    if config.unet_lora_rank is None:
        return None
    try:
        return grow_unet_lora(pipe, config.unet_lora_rank, seed=config.seed)
    except ValueError as exc:
        raise TrainingSetupError(str(exc)) from exc


def _start_model(config: TrainConfig, stage: stages.Stage) -> TADMPipeline:
    if config.init is not None:
        pipe = TADMPipeline.from_pretrained(config.init)
        # The thumbnail-consistency step corrects this model's reconstructions, and the plain rule's threshold was
        # chosen on them; once the stage changes them neither fits, so the trained model goes without both
        # (model.training.consistency trains a new step, model.training.plain_rule_choice chooses a new rule).
        pipe.consistency = None
        pipe.plain_rule = None
        done = training_history.last_stage(training_history.read(config.init))
        if stage.previous is not None and config.check_previous_stage and done != stage.previous:
            raise TrainingSetupError(
                f"{stage.name} starts from a model trained by {stage.previous}, but {config.init} was last "
                f"trained by {done or 'nothing (no ' + training_history.HISTORY_NAME + ')'}; pass --skip-stage-check to override"
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
