"""Choosing and loading the worker's model from the settings (imports torch: worker processes only)."""

from __future__ import annotations

import logging

from ..config import Settings
from ..queue.registry import RANDOM_WEIGHTS_WARNING, ModelInfo

logger = logging.getLogger(__name__)


def load_model(settings: Settings):  # -> (TADMPipeline, ModelInfo)
    """``TADM_MODEL`` (a model directory) if set, else the preset ``TADM_MODEL_PRESET`` at
    ``TADM_MODEL_SCALE``; with ``TADM_ALLOW_RANDOM_WEIGHTS`` a preset without trained weights falls back to
    ``tiny`` with random weights, loudly."""
    import torch

    from model import TADMPipeline
    from model.checkpoints import ModelDirectoryError

    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if settings.model is not None:
        pipe = TADMPipeline.from_pretrained(settings.model, device=device)
        trained = True
    else:
        try:
            pipe = TADMPipeline.from_preset(settings.model_preset, scale=settings.model_scale, device=device)
            trained = settings.model_preset == "nano"  # the only preset whose TADM weights are trained
        except ModelDirectoryError as exc:
            if not settings.allow_random_weights:
                raise
            logger.warning("%s (%s)", exc, "falling back")
            pipe = TADMPipeline.from_preset("tiny", scale=settings.model_scale, pretrained=False, device=device)
            trained = False
    quality = model_quality(settings, pipe) if trained else None
    # the id of the weights as loaded, before the serving switches below
    rule = pipe.plain_rule.min_bicubic_psnr_y if pipe.plain_rule is not None else None
    info = ModelInfo(pipe.model_id, str(pipe.config["preset"]), pipe.scale, trained, quality, rule)
    # Serving switches that change speed, not results (model.performance): LoRA folded into the weights, SDPA
    # attention; NHWC only on CUDA (PyTorch's CPU group norm loses precision in NHWC).
    from model.performance import optimize_for_serving

    optimize_for_serving(pipe)
    if not trained:
        banner = "!" * 100
        logger.warning("\n%s\n!!! WARNING: %s\n%s", banner, RANDOM_WEIGHTS_WARNING, banner)
    elif quality is not None:
        logger.log(logging.WARNING if quality["preview"] else logging.INFO, "%s", quality["summary"])
    return pipe, info


def model_quality(settings: Settings, pipe) -> dict | None:
    """What the loaded weights measured, from their directory's training.json (the shipped nano model's
    directory for the preset); None when nothing was recorded for exactly these weights."""
    from model.backbones import SHIPPED_WEIGHTS_DIR
    from model.quality import measured_quality

    directory = settings.model or SHIPPED_WEIGHTS_DIR / f"{settings.model_preset}-{settings.model_scale}x"
    measured = measured_quality(directory, pipe.model_id, pipe.scale)
    return measured.to_dict() if measured else None
