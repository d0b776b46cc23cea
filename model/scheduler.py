"""The hybrid time scheduler (the paper): z0 = S_fixed(ẑ, ε, t0) + S_learned(ẑ, ε, t).

S_fixed is the standard one-step x0 estimate at a constant t0 (50) under the base model's noise schedule;
S_learned (the :class:`Refiner`) is a small network conditioned on the TPM's t, zero-initialised so that a
fresh model is exactly the fixed one-step formula.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .blocks import ConvBlock, ResidualBlockNoBN, zero_init


def alphas_cumprod(beta_start: float, beta_end: float, num_train_timesteps: int, beta_schedule: str) -> torch.Tensor:
    """ᾱ_t of a DDPM noise schedule, computed in float64."""
    if beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    elif beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    else:
        raise ValueError(f"`beta_schedule` must be 'scaled_linear' or 'linear' but is {beta_schedule!r}")
    return torch.cumprod(1 - betas, 0)


class FixedOneStep:
    """x0 from (x_t, model output) at one fixed timestep t0, for ε-, v- or sample-prediction."""

    def __init__(self, noise_scheduler_config: dict, t0: int = 50) -> None:
        prediction_type = noise_scheduler_config.get("prediction_type", "epsilon")
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unsupported `prediction_type` {prediction_type!r}")
        acp = alphas_cumprod(
            noise_scheduler_config.get("beta_start", 0.00085),
            noise_scheduler_config.get("beta_end", 0.012),
            noise_scheduler_config.get("num_train_timesteps", 1000),
            noise_scheduler_config.get("beta_schedule", "scaled_linear"),
        )
        self.prediction_type, self.t0 = prediction_type, t0
        self.sqrt_acp = float(acp[t0].sqrt())
        self.sqrt_one_minus_acp = float((1 - acp[t0]).sqrt())

    def __call__(self, sample: torch.Tensor, model_output: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return (sample - self.sqrt_one_minus_acp * model_output) / self.sqrt_acp
        if self.prediction_type == "v_prediction":
            return self.sqrt_acp * sample - self.sqrt_one_minus_acp * model_output
        return model_output


class Refiner(ModelMixin, ConfigMixin):
    r"""S_learned: a t-conditioned correction added to the fixed one-step estimate.

    ``h = ConvBlock(2C -> c)([ẑ, ε])``; ``num_res_blocks`` times ``h = ResidualBlock(h) + temb(t)``;
    ``out = ConvBlock(c -> C)(h)`` with a zero-initialised conv, so the refiner starts at exactly 0.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, channels: int = 64, num_res_blocks: int = 6) -> None:
        super().__init__()
        self.time_proj = Timesteps(channels, flip_sin_to_cos=False, downscale_freq_shift=1)
        self.time_embedding = TimestepEmbedding(channels, channels)
        # Index 0 is the input ConvBlock, then the residual blocks (the authors' layout, kept for import).
        self.resnet_blocks = nn.ModuleList(
            [ConvBlock(2 * latent_channels, channels)] + [ResidualBlockNoBN(channels) for _ in range(num_res_blocks)]
        )
        self.zero_conv_out = ConvBlock(channels, latent_channels)
        zero_init(self.zero_conv_out.conv_in)

    def forward(self, sample: torch.Tensor, model_output: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        h = self.resnet_blocks[0](torch.cat((sample, model_output), 1))  # (B, c, h, w)
        temb = self.time_embedding(self.time_proj(timestep).to(h.dtype))[:, :, None, None]  # (B, c, 1, 1)
        for block in self.resnet_blocks[1:]:
            h = block(h) + temb
        return self.zero_conv_out(h)


class HybridScheduler(nn.Module):
    """z0 = FixedOneStep(ẑ, ε) + Refiner(ẑ, ε, t)."""

    def __init__(self, refiner: Refiner, noise_scheduler_config: dict, t0: int = 50) -> None:
        super().__init__()
        self.refiner = refiner
        self.fixed = FixedOneStep(noise_scheduler_config, t0)

    def forward(self, sample: torch.Tensor, model_output: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.fixed(sample, model_output) + self.refiner(sample, model_output, timestep)
