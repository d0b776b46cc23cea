"""Import of the authors' released checkpoints (github.com/wwangcece/TADM) into a model directory.

Their two files (their DFRM file and their LoRA file):

* the DFRM: a torch pickle ``{"state_dict": {...}}`` (a bare state dict is accepted too) with the module names
  ``down_module``, ``latent_module``, ``fusing_module``, ``final_module``, ``inv_module``;
* TADM: a torch pickle with ``rank_unet``, ``unet_lora_target_modules``, ``state_dict_unet`` (peft LoRA entries,
  adapter ``default``, plus the fully trained ``conv_in``), ``rank_vae``, ``vae_lora_target_modules``,
  ``state_dict_vae`` (adapter ``vae_skip``), ``state_dict_timemapping`` (the TPM) and ``state_dict_refiner``.

Both are read with ``weights_only=True`` (no code runs). Every key must map: a missing or extra key is an error
that names it.

What the imported model computes is what their released inference (``src/inference_tadm.py`` and
``src/tadm_tile.py``) computes, which produced their published figures:

* the DFRM sees the *unscaled* latent there, as in their training: it gets ``latent_scale = 1/0.18215``, so that it
  sees exactly those tensors while the rest of this project passes scaled latents;
* the TPM sees the *scaled* latent at their inference (the tensor the UNet sees) but saw the unscaled one in their
  training forward. ``tpm_input="released"`` (the default) reproduces the inference; ``"training"`` the training
  forward (``latent_scale = 1/0.18215``). ``tadm.json`` records which (``tpm_input``: ``scaled`` / ``unscaled``),
  so the two give two model ids;
* the base model is SD 2.1 at 768 px (v-prediction), which their training and inference scripts download when
  no ``--sd_path`` is given (and their run scripts give none): preset ``sd21``;
* the VAE is ``stabilityai/sd-vae-ft-mse``, with which they encode and decode and on which their decoder LoRA was
  trained, referenced apart from the base (``vae``);
* tiles, padding and VAE tiling follow their script (``layout="official"``, see :mod:`model.layout`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from . import backbones, lora
from .dfrm import DFRM
from .layout import get_layout
from .pipeline import TADMPipeline
from .scheduler import Refiner
from .thumbnail import SUPPORTED_SCALES
from .tpm import TimestepPredictor

logger = logging.getLogger(__name__)

# --tpm-input: which of the authors' code paths the TPM reproduces -> what it sees (tadm.json's ``tpm_input``).
TPM_INPUTS = {"released": "scaled", "training": "unscaled"}
TADM_KEYS = {
    "rank_unet", "unet_lora_target_modules", "state_dict_unet",
    "rank_vae", "vae_lora_target_modules", "state_dict_vae",
    "state_dict_timemapping", "state_dict_refiner",
}
UNSCALED = 1 / backbones.SD_SCALING_FACTOR


class OfficialCheckpointError(ValueError):
    """A file that is not a checkpoint of the authors' code, or one whose keys do not map."""


def load_pickle(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or unsafe pickles
        raise OfficialCheckpointError(f"{path} cannot be read as a weights-only torch checkpoint: {exc}") from exc


def _count(state: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def dfrm_from_state_dict(state: dict[str, torch.Tensor]) -> DFRM:
    """Build a DFRM whose sizes are read off the state dict, then load it strictly."""
    try:
        stages = _count(state, r"down_module\.(\d+)\.downsample\.1\.weight")
        config = {
            "scale": 2**stages,
            "latent_channels": state["latent_module.0.conv_in.weight"].shape[1],
            "pixel_channels": state["down_module.0.conv_in.weight"].shape[0],
            "hidden_channels": state["latent_module.0.conv_in.weight"].shape[0],
            "num_res_blocks": _count(state, r"latent_module\.(\d+)\.res_block\.0\.weight"),
            "num_inv_blocks": _count(state, r"inv_module\.(\d+)\.F\.conv1\.weight"),
            "inv_growth": state["inv_module.0.F.conv1.weight"].shape[0],
        }
    except KeyError as exc:
        raise OfficialCheckpointError(f"DFRM checkpoint lacks {exc}: not a DFRM of the authors' code") from exc
    if config["scale"] not in SUPPORTED_SCALES:
        raise OfficialCheckpointError(f"DFRM checkpoint has {stages} pixel stages (scale {2**stages}); need one of "
                                      f"{SUPPORTED_SCALES}")
    module = DFRM(**config, latent_scale=UNSCALED)
    _load_strict(module, state, "DFRM")
    return module


def tpm_from_state_dict(state: dict[str, torch.Tensor], latent_scale: float = 1.0) -> TimestepPredictor:
    try:
        linears = sorted(int(m.group(1)) for k in state if (m := re.match(r"time_predict\.fuse_mlp\.(\d+)\.weight", k)))
        config = {
            "latent_channels": state["noise_esti.0.conv_in.weight"].shape[1],
            "channels": state["noise_esti.0.conv_in.weight"].shape[0],
            "num_res_blocks": _count(state, r"noise_esti\.(\d+)\.conv1\.weight"),
            "mlp_hidden": state["time_predict.fuse_mlp.0.weight"].shape[0],
            "mlp_depth": len(linears) - 2,
        }
    except KeyError as exc:
        raise OfficialCheckpointError(f"state_dict_timemapping lacks {exc}") from exc
    module = TimestepPredictor(**config, latent_scale=latent_scale)
    _load_strict(module, state, "TPM (state_dict_timemapping)")
    return module


def refiner_from_state_dict(state: dict[str, torch.Tensor]) -> Refiner:
    try:
        config = {
            "latent_channels": state["zero_conv_out.conv_in.weight"].shape[0],
            "channels": state["resnet_blocks.0.conv_in.weight"].shape[0],
            "num_res_blocks": _count(state, r"resnet_blocks\.(\d+)\.conv1\.weight"),
        }
    except KeyError as exc:
        raise OfficialCheckpointError(f"state_dict_refiner lacks {exc}") from exc
    module = Refiner(**config)
    _load_strict(module, state, "refiner (state_dict_refiner)")
    return module


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise OfficialCheckpointError(
            f"{what}: {len(missing)} missing keys {missing[:3]}, {len(extra)} unexpected keys {extra[:3]}"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise OfficialCheckpointError(f"{what}: `{key}` is {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    module.load_state_dict(state, strict=True)


def _check_targets(given: object, expected: object, what: str) -> None:
    if isinstance(given, (list, tuple)) and isinstance(expected, (list, tuple)):
        same = set(given) == set(expected)  # order does not matter to peft
    else:
        same = given == expected
    if not same:
        raise OfficialCheckpointError(f"{what} LoRA targets {given!r} differ from the expected {expected!r}")


def import_official(
    dfrm_path: str | Path,
    tadm_path: str | Path,
    output: str | Path,
    **options: Any,
) -> TADMPipeline:
    """Convert the authors' checkpoints into a model directory at ``output`` and return the pipeline.

    ``options`` are :func:`build_official`'s.
    """
    imported = build_official(dfrm_path, tadm_path, **options)
    imported.save_pretrained(output)
    logger.info("imported %sx TADM as model %s into %s", imported.scale, imported.model_id, output)
    return imported


def build_official(
    dfrm_path: str | Path,
    tadm_path: str | Path,
    *,
    base: str | None = None,
    vae: str | None = backbones.SD_VAE_FT_MSE_HUB_ID,
    preset: str = "sd21",
    tpm_input: str = "released",
    layout: str = "official",
) -> TADMPipeline:
    """The pipeline of the authors' checkpoints, not yet saved.

    ``preset``/``base`` choose the backbone the LoRA applies to (SD 2.1 by default; tests pass ``tiny``, which is
    built with random weights and takes no ``vae``); ``vae`` is a VAE of its own (None: the base's);
    ``tpm_input`` is ``released`` or ``training`` (see the module docstring); ``layout`` ``official`` or
    ``project`` (:mod:`model.layout`).
    """
    if tpm_input not in TPM_INPUTS:
        raise ValueError(f"`tpm_input` must be one of {sorted(TPM_INPUTS)} but is {tpm_input!r}")
    # 1. Read both pickles without running code
    dfrm_file = load_pickle(Path(dfrm_path))
    dfrm_state = dfrm_file.get("state_dict", dfrm_file) if isinstance(dfrm_file, dict) else None
    tadm = load_pickle(Path(tadm_path))
    if not isinstance(dfrm_state, dict):
        raise OfficialCheckpointError(f"{dfrm_path} does not hold a state dict")
    if not is_tadm_checkpoint(tadm):
        have = sorted(tadm) if isinstance(tadm, dict) else type(tadm).__name__
        raise OfficialCheckpointError(f"{tadm_path} is not a TADM checkpoint: needs {sorted(TADM_KEYS)}, has {have}")
    _check_targets(tadm["unet_lora_target_modules"], lora.UNET_LORA_TARGETS, "UNet")
    _check_targets(tadm["vae_lora_target_modules"], lora.VAE_LORA_TARGETS, "VAE")

    # 2. The small modules, sizes read from their weights
    dfrm = dfrm_from_state_dict(dfrm_state)
    tpm_scale = 1.0 if TPM_INPUTS[tpm_input] == "scaled" else UNSCALED
    tpm = tpm_from_state_dict(tadm["state_dict_timemapping"], tpm_scale)
    refiner = refiner_from_state_dict(tadm["state_dict_refiner"])

    # 3. The backbone with adapters of the checkpoint's ranks, loaded strictly
    pretrained = backbones.get_preset(preset).hub_id is not None
    pipe = TADMPipeline.from_preset(preset, scale=dfrm.config.scale, pretrained=pretrained, base=base,
                                    vae=vae if pretrained else None)
    unet_rank, vae_rank = int(tadm["rank_unet"]), int(tadm["rank_vae"])
    if unet_rank != pipe.config["unet_lora_rank"] or vae_rank != pipe.config["vae_lora_rank"]:
        pipe = _with_ranks(pipe, unet_rank, vae_rank)
    base_conv_in = lora.base_state_dict(pipe.unet)["conv_in.weight"].clone()
    try:
        lora.load_adapter_state_dict(pipe.unet, tadm["state_dict_unet"], "state_dict_unet", lora.UNET_FULL_TRAINED)
        lora.load_adapter_state_dict(pipe.vae, tadm["state_dict_vae"], "state_dict_vae")
    except (KeyError, ValueError) as exc:
        raise OfficialCheckpointError(str(exc)) from exc
    _log_conv_in_distance(base_conv_in, lora.base_state_dict(pipe.unet)["conv_in.weight"], pipe.config["base"])

    # 4. Assemble
    config = {**pipe.config, "imported_from": "wwangcece/TADM", "tpm_input": TPM_INPUTS[tpm_input],
              "layout": get_layout(layout).name}
    return TADMPipeline(
        vae=pipe.vae, unet=pipe.unet, dfrm=dfrm, tpm=tpm, refiner=refiner, empty_prompt=pipe.empty_prompt,
        config=config,
    )


def is_tadm_checkpoint(obj: object) -> bool:
    return isinstance(obj, dict) and TADM_KEYS <= set(obj)


CHECKPOINT_SUFFIXES = (".pkl", ".pth", ".pt", ".ckpt")


def find_official_checkpoints(directory: str | Path, scale: int) -> tuple[Path, Path]:
    """The DFRM and TADM checkpoints for ``scale`` among the files under ``directory`` (their Google Drive
    folder as downloaded), recognised by content, not by name: a TADM checkpoint by its keys, a DFRM by its
    module names, its scale by its number of pixel stages. A TADM checkpoint does not record its scale; when
    there are several, the one whose file name holds the number ``scale`` (``model_sr_x16.pkl``) is taken."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES)
    dfrms: dict[int, list[Path]] = {}
    tadms: list[Path] = []
    other: list[str] = []
    for path in files:
        try:
            obj = load_pickle(path)
        except OfficialCheckpointError:
            other.append(f"{path.name} (unreadable)")
            continue
        state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if is_tadm_checkpoint(obj):
            tadms.append(path)
        elif isinstance(state, dict) and "down_module.0.conv_in.weight" in state:
            dfrms.setdefault(2 ** _count(state, r"down_module\.(\d+)\.downsample\.1\.weight"), []).append(path)
        else:
            other.append(path.name)
        del obj, state
    found = (f"found DFRMs {({k: [p.name for p in v] for k, v in sorted(dfrms.items())})}, TADM checkpoints "
             f"{[p.name for p in tadms]}, other files {other}")
    if len(dfrms.get(scale, [])) != 1:
        raise OfficialCheckpointError(f"{directory}: need exactly one {scale}x DFRM checkpoint; {found}")
    named = [p for p in tadms if re.search(rf"(?<!\d){scale}(?!\d)", p.name)]
    if len(tadms) == 1:
        named = tadms
    if len(named) != 1:
        raise OfficialCheckpointError(
            f"{directory}: need one TADM checkpoint, or one whose name holds {scale} among several; {found}"
        )
    return dfrms[scale][0], named[0]


def _log_conv_in_distance(base: torch.Tensor, trained: torch.Tensor, base_info: dict) -> None:
    """The checkpoint's UNet conv_in was trained in full starting from the base's: a fine-tune stays near its
    start, so the distance is evidence of which base the checkpoint was trained on (import with each candidate
    and compare)."""
    distance = float((trained.float() - base.float()).norm() / base.float().norm().clamp_min(1e-12))
    logger.info("UNet conv_in: relative L2 distance of the checkpoint's to the base's (%s) is %.4f",
                base_info.get("ref", base_info["kind"]), distance)


def _with_ranks(pipe: TADMPipeline, unet_rank: int, vae_rank: int) -> TADMPipeline:
    """Re-attach the adapters with the checkpoint's ranks (the authors' scripts default to several)."""
    for module in (pipe.unet, pipe.vae):
        module.delete_adapters([lora.UNET_ADAPTER if module is pipe.unet else lora.VAE_ADAPTER])
    lora.attach_unet_lora(pipe.unet, unet_rank)
    lora.attach_vae_lora(pipe.vae, vae_rank)
    config = {**pipe.config, "unet_lora_rank": unet_rank, "vae_lora_rank": vae_rank}
    return TADMPipeline(
        vae=pipe.vae, unet=pipe.unet, dfrm=pipe.dfrm, tpm=pipe.tpm, refiner=pipe.refiner,
        empty_prompt=pipe.empty_prompt, config=config,
    )
