"""The model directory: saving, loading and identifying a TADM model.

Layout (``save_pretrained``)::

    tadm.json                 what this model is: preset, scale, base (and VAE) reference, noise schedule, LoRA
                              ranks (and the UNet's alpha once its rank grew), what the TPM sees
                              (``tpm_input``), how images are tiled (``layout``)
    dfrm/ tpm/ refiner/       diffusers ModelMixin directories (config.json + safetensors)
    adapters.safetensors      UNet LoRA + the fully trained UNet conv_in + VAE-decoder LoRA (peft key names)
    empty_prompt.safetensors  the text encoder's output for "", so serving never loads a text encoder
    backbone/unet, backbone/vae   only for backbones without a pretrained source (tiny, nano, random weights)
    consistency/              optional: the receiver's thumbnail-consistency step (model.consistency) and its
                              training.json; outside the model id, since the thumbnail does not depend on it

The base model (SD 2.1-base, or SD 2.1 for imports) is referenced, never copied; so is a VAE of its own
(``"vae": {"kind": "pretrained", "ref": ...}``; without it the base's VAE is used).
``tpm_input`` records the TPM's input convention: ``scaled`` (the latent the UNet sees; this project's models and
the authors' released inference) or ``unscaled`` (that latent divided by the VAE's scaling factor: the authors'
training forward); :func:`check_tpm_input` holds the TPM's config to it. A directory written before these keys
existed has none of them and loads as before (base VAE, project layout, the TPM's config as saved). The model id is a short hash of the config and every
weight that defines the outputs, computed in float32 so that it does not depend on the device or dtype.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from .dfrm import DFRM

FORMAT_VERSION = 1
CONFIG_NAME = "tadm.json"
ADAPTERS_NAME = "adapters.safetensors"
EMPTY_PROMPT_NAME = "empty_prompt.safetensors"
BACKBONE_DIR = "backbone"
MODEL_ID_LENGTH = 16


class ModelDirectoryError(FileNotFoundError):
    """A path that is not a TADM model directory, or one with missing files."""


def compute_model_id(config: Mapping, tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the canonical config and every tensor (name, shape, float32 bytes), sorted by name."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:MODEL_ID_LENGTH]


def write_config(directory: Path, config: Mapping) -> None:
    (directory / CONFIG_NAME).write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n")


def read_config(directory: Path) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ModelDirectoryError(
            f"{directory} is not a TADM model directory: {CONFIG_NAME} is missing "
            "(make one with `tadm import-official`, `tadm train`, or TADMPipeline.save_pretrained)"
        )
    config = json.loads(path.read_text())
    if config.get("format", 0) > FORMAT_VERSION:
        raise ModelDirectoryError(f"{path} has format {config['format']}, newer than supported ({FORMAT_VERSION})")
    return config


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelDirectoryError(f"model file missing: {path}")
    return load_file(str(path))


def split_prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries of ``tensors`` under ``prefix.``, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def scale_checked(dfrm: DFRM, config: Mapping, directory: Path) -> DFRM:
    """``dfrm``, once its scale is the directory's. The scale is stored twice, in tadm.json (what the service routes
    and validates thumbnails by) and in dfrm/config.json (what the DFRM is built for); a directory whose two
    disagree would label thumbnails with a scale they were not made at."""
    dfrm_scale = dfrm.config.scale
    if int(config["scale"]) != int(dfrm_scale):
        raise ModelDirectoryError(
            f"{directory}: {CONFIG_NAME} gives scale {config['scale']} but dfrm/config.json gives scale "
            f"{dfrm_scale}: the two must agree"
        )
    return dfrm


def check_tpm_input(config: Mapping, latent_scale: float, scaling_factor: float, directory: Path) -> None:
    """The TPM's ``latent_scale`` must be what ``tpm_input`` in tadm.json (hashed into the model id) says."""
    recorded = config.get("tpm_input")
    if recorded is None:  # written before the record existed: the TPM's own config decides, as it did
        return
    expected = {"scaled": 1.0, "unscaled": 1 / scaling_factor}
    if recorded not in expected:
        raise ModelDirectoryError(
            f"{directory}/{CONFIG_NAME}: `tpm_input` must be 'scaled' or 'unscaled' but is {recorded!r}"
        )
    if not math.isclose(latent_scale, expected[recorded], rel_tol=1e-6):
        raise ModelDirectoryError(
            f"{directory}: {CONFIG_NAME} says the TPM sees the {recorded} latent (latent_scale "
            f"{expected[recorded]:.6g}) but tpm/config.json has latent_scale {latent_scale:.6g}"
        )
