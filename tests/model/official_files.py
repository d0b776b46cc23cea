"""The authors' checkpoint formats (their DFRM and LoRA files), written from tiny modules of this project with the
authors' names: what the importer and `tadm models pull tadm-official` read. The real checkpoints cannot be
downloaded here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from model import TADMPipeline, lora
from model.dfrm import DFRM
from model.scheduler import Refiner
from model.tpm import TimestepPredictor


def randomised(module: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module.eval()


@dataclass
class OfficialFiles:
    """Their modules (as trained: DFRM and TPM on unscaled latents in their training forward) and their files."""

    dfrm_path: Path
    tadm_path: Path
    dfrm: DFRM
    tpm: TimestepPredictor
    refiner: Refiner
    donor: TADMPipeline  # whose UNet and VAE adapters (and UNet conv_in) the TADM pickle holds
    tadm: dict


def write_official_checkpoints(root: Path, scale: int = 16, *, dfrm_name: str | None = None,
                               tadm_name: str | None = None, bare_dfrm: bool = False) -> OfficialFiles:
    """A DFRM pickle (``{"state_dict": ...}``, or the bare state dict) and a TADM pickle, on the tiny backbone."""
    root.mkdir(parents=True, exist_ok=True)
    dfrm = randomised(DFRM(scale=scale, pixel_channels=4, hidden_channels=16, num_res_blocks=2, num_inv_blocks=2,
                           inv_growth=8), 1)
    tpm = randomised(TimestepPredictor(channels=8, num_res_blocks=2, mlp_hidden=16, mlp_depth=2), 2, std=0.2)
    refiner = randomised(Refiner(channels=8, num_res_blocks=2), 3)
    donor = TADMPipeline.from_preset("tiny", pretrained=False, seed=5)
    for module in (donor.unet, donor.vae):
        with torch.no_grad():
            for name, p in module.named_parameters():
                if "lora_" in name:  # non-zero, so that a LoRA that did not load would show
                    p.normal_(0, 0.01)
    tadm = {
        "rank_unet": donor.config["unet_lora_rank"],
        "unet_lora_target_modules": list(lora.UNET_LORA_TARGETS),
        "state_dict_unet": {k: v for k, v in donor.unet.state_dict().items() if "lora" in k or "conv_in" in k},
        "rank_vae": donor.config["vae_lora_rank"],
        "vae_lora_target_modules": lora.VAE_LORA_TARGETS,
        "state_dict_vae": {k: v for k, v in donor.vae.state_dict().items() if "lora" in k},
        "state_dict_timemapping": tpm.state_dict(),
        "state_dict_refiner": refiner.state_dict(),
    }
    dfrm_path = root / (dfrm_name or f"dfrm_x{scale}.pth")
    tadm_path = root / (tadm_name or f"model_sr_x{scale}.pkl")
    torch.save(dfrm.state_dict() if bare_dfrm else {"state_dict": dfrm.state_dict()}, dfrm_path)
    torch.save(tadm, tadm_path)
    return OfficialFiles(dfrm_path, tadm_path, dfrm, tpm, refiner, donor, tadm)
