"""Raise a trained model's UNet LoRA rank without changing what it computes, so training continues from it.

The nano UNet is trained from scratch in stage 0, yet stages 2 and 3 change it only through its LoRA (and
``conv_in``); a higher rank lets them change it more. peft's LoRA adds ``(alpha / r) · B · A`` to a layer, so a
rank-``R`` adapter equals the rank-``r`` one when

* A's first ``r`` rows and B's first ``r`` columns are the old ones,
* B's new columns are zero (the new directions add nothing until they learn), A's new rows random (so that those
  zero columns get gradients from the first step: d loss / d B = (alpha / R) · g · Aᵀ), and
* alpha grows with the rank (``alpha · R / r``), which keeps the factor ``alpha / r``: the old directions then
  train exactly as before. The model's ``tadm.json`` records the new alpha (``unet_lora_alpha``).
"""

from __future__ import annotations

import torch
from peft import LoraConfig

from model import lora
from model.pipeline import TADMPipeline

PEFT_DEFAULT_ALPHA = LoraConfig().lora_alpha  # what attach_unet_lora uses when a model's config names no alpha


def grow_unet_lora(pipe: TADMPipeline, rank: int, seed: int = 0) -> int | None:
    """Raise ``pipe``'s UNet adapter to ``rank`` in place, keeping its outputs; returns the rank it had when it
    grew, else ``None`` (already that rank). The new A rows are seeded by ``seed``."""
    old_rank = int(pipe.config["unet_lora_rank"])
    if rank < old_rank:
        raise ValueError(f"the UNet LoRA rank can only grow, but it would go from {old_rank} to {rank}")
    if rank == old_rank:
        return None
    if any(layer.merged for _, layer in lora.lora_layers(pipe.unet)):
        raise RuntimeError("cannot grow a merged LoRA (serving mode); grow the model before merging")
    alpha = float(pipe.config.get("unet_lora_alpha", PEFT_DEFAULT_ALPHA)) * rank / old_rank
    old = {k: v.detach().clone() for k, v in lora.adapter_state_dict(pipe.unet).items()}
    pipe.unet.delete_adapters([lora.UNET_ADAPTER])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lora.attach_unet_lora(pipe.unet, rank, alpha=alpha)
    state = pipe.unet.state_dict()
    with torch.no_grad():
        for key, value in old.items():
            target = state[key]
            if ".lora_A." in key:  # (rank, in, k, k) or (rank, in): the old rows first
                target[:old_rank] = value
            elif ".lora_B." in key:  # (out, rank, 1, 1) or (out, rank): the old columns first, the new ones zero
                target.zero_()
                target[:, :old_rank] = value
            else:
                raise KeyError(f"unexpected adapter weight {key!r}")
    pipe.unet.to(pipe.device)  # the new adapter is made on the CPU in float32
    if pipe.dtype != torch.float32:
        pipe.unet.to(pipe.dtype)
    pipe.config = {**pipe.config, "unet_lora_rank": rank, "unet_lora_alpha": alpha}
    pipe.model_id = pipe.compute_model_id()
    return old_rank
