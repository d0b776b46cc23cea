"""Stage 0: the nano backbone from scratch (it has no pretrained weights to start from).

One stage trains both backbone networks on their base weights (the LoRA adapters stay untouched, at zero):

* the ``AutoencoderKL`` as an autoencoder: L1 + MSE between the crop and the decoded posterior mean, a small
  KL term, and a term that holds the *scaled* latent (``mean · scaling_factor``, the pipeline's SD convention)
  at unit standard deviation, so that the SD noise schedule, the DFRM targets and ``t0`` mean what they mean
  for Stable Diffusion;
* the ``UNet2DConditionModel`` as an ε-predictor on those scaled latents (detached: the denoiser follows the
  autoencoder, it does not shape it) under the preset's SD noise schedule, conditioned on the stored empty
  prompt as at serving time.

Both are trained in the same steps rather than one after the other: the UNet always sees the current
autoencoder's latents, and a run interrupted at any step leaves a consistent pair.

``python -m model.training.stage0 MODEL_DIR|CHECKPOINT_DIR IMAGE...`` prints the autoencoder's PSNR-Y on whole images (the
bound on everything later stages can reach).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from model import lora

from .losses import weighted_total
from .registry import NamedParameters, Stage, register_stage

STAGE0_WEIGHTS = {"l1": 1.0, "mse": 1.0, "kl": 1e-6, "latent_scale": 0.1, "denoise": 1.0}
# One-step serving denoises at t in [10, 200] (the TPM's range) and t0 = 50; sampling t from the lower part of
# the schedule spends the little training a CPU allows where the model is used, while still covering noise
# well above the serving range.
DENOISE_MAX_T = 500


def backbone_parameters(pipe) -> NamedParameters:
    """The VAE's and UNet's own weights (what ``save_pretrained`` writes as the embedded backbone), no adapters."""
    params = {f"vae.{n}": p for n, p in pipe.vae.named_parameters() if not lora.is_adapter_key(n)}
    params.update({f"unet.{n}": p for n, p in pipe.unet.named_parameters() if not lora.is_adapter_key(n)})
    return params


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean per-element KL(N(mean, exp(logvar)) || N(0, 1))."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()


def noisy_latents(schedule: dict, z0: torch.Tensor, generator: torch.Generator | None = None):
    """``(z_t, t, ε)``: z0 noised at uniform integer t in [0, DENOISE_MAX_T) under the SD schedule."""
    from model.scheduler import alphas_cumprod

    acp = alphas_cumprod(schedule.get("beta_start", 0.00085), schedule.get("beta_end", 0.012),
                         schedule.get("num_train_timesteps", 1000), schedule.get("beta_schedule", "scaled_linear"))
    t = torch.randint(0, DENOISE_MAX_T, (z0.shape[0],), device=z0.device, generator=generator)
    a = acp.to(z0.device)[t].float()[:, None, None, None]
    noise = torch.randn(z0.shape, device=z0.device, dtype=z0.dtype, generator=generator)
    return a.sqrt() * z0 + (1 - a).sqrt() * noise, t, noise


def stage0_loss(pipe, x: torch.Tensor, z: torch.Tensor, perceptual=None,
                weights: Mapping[str, float] = STAGE0_WEIGHTS) -> dict:
    """Autoencoder reconstruction + KL + latent scale, and the UNet's ε-prediction loss.

    ``z`` (the trainer's no-grad encoding) is not used: the encoder is being trained, so it runs here with
    gradients.
    """
    sf = pipe.scaling_factor
    posterior = pipe.vae.encode(x.to(pipe.dtype)).latent_dist
    recon = pipe.vae.decode(posterior.mean).sample.float()
    scaled = posterior.mean.float() * sf  # (B, 4, h, w), what the pipeline calls z
    terms = {
        "l1": F.l1_loss(recon, x),
        "mse": F.mse_loss(recon, x),
        "kl": gaussian_kl(posterior.mean.float(), posterior.logvar.float()),
        "latent_scale": (scaled.std() - 1).pow(2),
    }
    z_t, t, noise = noisy_latents(pipe.config["noise_schedule"], scaled.detach())
    context = pipe.empty_prompt.expand(x.shape[0], -1, -1).to(pipe.dtype)
    eps = pipe.unet(z_t.to(pipe.dtype), t, encoder_hidden_states=context).sample.float()
    terms["denoise"] = F.mse_loss(eps, noise)
    terms["latent_std"] = scaled.detach().std()  # logged only
    terms["psnr"] = (10 * torch.log10(4 / terms["mse"].detach().clamp_min(1e-10)))  # logged only, RGB in [-1,1]
    return weighted_total(terms, weights)


STAGE0 = Stage(
    name="stage0",
    summary="nano only: the VAE as an autoencoder and the UNet as an ε-denoiser from scratch (AdamW 4e-4, 20K)",
    trainable=backbone_parameters, loss=stage0_loss, loss_weights=STAGE0_WEIGHTS,
    optimizer="adamw", lr=4e-4, halve_every=8_000, iterations=20_000, uses_perceptual=False, previous=None,
)
if __name__ != "__main__":  # run as `python -m`, this copy only checks a model; importing `stages` registers it
    register_stage(STAGE0)


@torch.inference_mode()
def autoencoder_psnr_y(pipe, paths) -> dict[str, float]:
    """PSNR-Y (dB) of VAE encode -> decode on each whole image, as the pipeline runs it (tiled when large)."""
    import numpy as np

    from model.evaluation.metrics import y_metrics
    from model.pipeline import TADMPipeline, load_rgb, pil_to_tensor, tensor_to_uint8

    scores = {}
    for path in paths:
        image = load_rgb(path)
        x = TADMPipeline._pad(pil_to_tensor(image), pipe.latent_factor)
        out = pipe.vae.decode(pipe.encode_latent(x) / pipe.scaling_factor).sample
        restored = tensor_to_uint8(out[..., : image.height, : image.width])
        scores[str(path)] = y_metrics(np.asarray(image), restored)["psnr_y"]
    return scores


def load_for_check(path) -> object:
    """A model directory, or a stage-0 checkpoint (``RUN/checkpoints/step-N``: the trainable tensors only) put
    onto the nano preset's random start, so that the autoencoder can be checked while stage 0 still runs."""
    from pathlib import Path

    from model.pipeline import TADMPipeline

    from .checkpointing import load_trainable

    path = Path(path)
    if not (path / "trainable.safetensors").is_file():
        return TADMPipeline.from_pretrained(path)
    pipe = TADMPipeline.from_preset("nano", scale=16, pretrained=False)
    load_trainable(path, backbone_parameters(pipe))
    return pipe


if __name__ == "__main__":
    import sys
    from pathlib import Path

    torch.set_num_threads(1)  # on the shared 2 cores one thread is several times faster than two (measured)
    model = load_for_check(sys.argv[1])
    found = autoencoder_psnr_y(model, [Path(p) for p in sys.argv[2:]])
    for name, value in found.items():
        print(f"{Path(name).name}: {value:.2f} dB")  # noqa: T201
    print(f"mean PSNR-Y of the autoencoder: {sum(found.values()) / len(found):.2f} dB")  # noqa: T201
