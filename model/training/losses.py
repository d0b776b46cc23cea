"""The stage losses (the supplement's training details), as named terms plus their weighted total ``loss``.

* stage 1: ``3·MSE(y, bicubic↓x) + MSE(G_d(z_lr), z) + MSE(G_d(F⁻¹(Q(F(z_lr)))), z)``
* stage 2: ``2·MSE(x̂, x) + 5·LPIPS-VGG(x̂, x) + 5·DISTS(x̂, x)``
* stage 3: stage 2 + ``MSE(y, bicubic↓x) + MSE(ẑ, z)``

Every term is logged; the weights are data so that a stage added later can reuse the terms. Stages 1 and 3 also
compute ``lr_worst``, the thumbnail's worst local error against bicubic, at weight 0 (not the supplement's; turned on
with ``tadm train --loss-weight lr_worst=W``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.evaluation.metrics import DEVIATION_WINDOW

STAGE1_WEIGHTS = {"lr_guidance": 3.0, "latent_direct": 1.0, "latent_quantized": 1.0, "lr_worst": 0.0}
IMAGE_WEIGHTS = {"mse": 2.0, "lpips": 5.0, "dists": 5.0}
STAGE3_WEIGHTS = {**IMAGE_WEIGHTS, "lr_guidance": 1.0, "latent": 1.0, "lr_worst": 0.0}
# lr_worst's window, in thumbnail pixels: the block that verified ingest's bound on a stored thumbnail and `tadm
# eval`'s "thumbnail's worst 4x4 deviation" look at.
WORST_BLOCK = DEVIATION_WINDOW

# (reference, test) in [-1, 1], (B,3,H,W) -> (B,) distances, differentiable in `test`.
PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class PerceptualTerms:
    """The perceptual distances the image loss uses; an empty mapping is the pixel-only substitute."""

    functions: dict[str, PerceptualFn]

    def __call__(self, reference: torch.Tensor, test: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: fn(reference, test).mean() for name, fn in self.functions.items()}


def bicubic_target(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR guidance target: bicubic downscaling of x to 1/scale with antialiasing (the kernel widened by the
    scale, as MATLAB's ``imresize`` and Pillow do), clamped to [-1, 1]. Without antialiasing a 16x bicubic
    reads a 4x4 neighbourhood out of every 16x16 block: an aliased, noisy target that is not a thumbnail."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", align_corners=False,
                         antialias=True).clamp(-1, 1)


def worst_block_mse(y: torch.Tensor, target: torch.Tensor, block: int = WORST_BLOCK) -> torch.Tensor:
    """The mean over the batch of each thumbnail's largest ``block`` x ``block`` window mean squared error (the
    whole thumbnail when smaller). Why: ``lr_guidance`` is a mean, and a colour blotch over one dark or flat area
    costs it little, while it is what makes a stored thumbnail look wrong; this term's gradient reaches only each
    thumbnail's worst window."""
    squared = (y - target).pow(2).mean(dim=1, keepdim=True)
    window = (min(block, squared.shape[-2]), min(block, squared.shape[-1]))
    return F.avg_pool2d(squared, window, stride=1).flatten(1).amax(dim=1).mean()


def weighted_total(terms: dict[str, torch.Tensor], weights: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """``terms`` plus ``loss``, the sum of each term times its weight (terms without a weight are not summed)."""
    weighted = [weights[name] * value for name, value in terms.items() if name in weights]
    return {**terms, "loss": torch.stack(weighted).sum()}


def decode(pipe, z0: torch.Tensor) -> torch.Tensor:
    """VAE decoder (with its LoRA) on a scaled latent -> pixels (B,3,H,W), float32."""
    return pipe.vae.decode(z0.to(pipe.dtype) / pipe.scaling_factor).sample.float()


def stage1_loss(pipe, x: torch.Tensor, z: torch.Tensor, perceptual: PerceptualTerms | None = None,
                weights: Mapping[str, float] = STAGE1_WEIGHTS) -> dict:
    """DFRM: LR guidance towards bicubic and the two latent reconstructions (direct and through Q)."""
    out = pipe.dfrm(x, z)
    target = bicubic_target(x, pipe.scale)
    terms = {
        "lr_guidance": F.mse_loss(out["y"], target),
        "lr_worst": worst_block_mse(out["y"], target),
        "latent_direct": F.mse_loss(out["z_direct"], z),
        "latent_quantized": F.mse_loss(out["z_hat"], z),
    }
    return weighted_total(terms, weights)


def image_terms(pipe, x: torch.Tensor, z_hat: torch.Tensor, perceptual: PerceptualTerms | None) -> dict:
    """One step on the whole crop (one t per crop), decode, and the image-space terms against x."""
    z0, t = pipe.denoise_step(z_hat)  # (B,4,h,w), (B,)
    x_hat = decode(pipe, z0)
    terms = {"mse": F.mse_loss(x_hat, x)}
    if perceptual is not None:
        terms.update(perceptual(x, x_hat))
    terms["t_mean"] = t.detach().mean()  # logged only: the TPM has no target
    return terms


def stage2_loss(pipe, x: torch.Tensor, z: torch.Tensor, perceptual: PerceptualTerms | None = None,
                weights: Mapping[str, float] = IMAGE_WEIGHTS) -> dict:
    """Enhancement: the frozen DFRM makes the rounded thumbnail and ẑ; the rest learns to restore x."""
    with torch.no_grad():
        z_hat = pipe.dfrm.upscale(pipe.dfrm.downscale(x, z, noise=False))
    return weighted_total(image_terms(pipe, x, z_hat, perceptual), weights)


def stage3_loss(pipe, x: torch.Tensor, z: torch.Tensor, perceptual: PerceptualTerms | None = None,
                weights: Mapping[str, float] = STAGE3_WEIGHTS) -> dict:
    """Joint: gradients flow from the image through the UNet into the DFRM (noisy quantisation)."""
    out = pipe.dfrm(x, z)
    terms = image_terms(pipe, x, out["z_hat"], perceptual)
    target = bicubic_target(x, pipe.scale)
    terms["lr_guidance"] = F.mse_loss(out["y"], target)
    terms["lr_worst"] = worst_block_mse(out["y"], target)
    terms["latent"] = F.mse_loss(out["z_hat"], z)
    return weighted_total(terms, weights)
