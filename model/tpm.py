"""TPM: the timestep prediction module (the paper).

Rescaling degrades a latent much as forward diffusion does, but not uniformly: the TPM reads a latent (a whole
image or one tile) and predicts the "noise density" t in [t_min, t_max] that the one-step denoiser should
assume for it. There is no target for t; it is learned end to end through the image losses.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .blocks import ConvBlock, ResidualBlockNoBN


class TimePredictHead(nn.Module):
    """Pooled statistics (per-channel mean and std) -> sigmoid score in (0, 1)."""

    def __init__(self, in_features: int, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, hidden)]
        for _ in range(depth):
            layers += [nn.ReLU(), nn.Linear(hidden, hidden)]
        layers += [nn.Linear(hidden, 1), nn.Sigmoid()]
        self.fuse_mlp = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fuse_mlp(features)


class TimestepPredictor(ModelMixin, ConfigMixin):
    r"""Predicts one continuous timestep per latent (B,C,h,w) -> (B,) in [t_min, t_max].

    Args:
        latent_channels: 4 for Stable Diffusion latents.
        channels: width of the convolutional body (32).
        num_res_blocks: residual blocks of the body (6).
        mlp_hidden, mlp_depth: width (512) and hidden-layer count (4) of the head.
        t_min, t_max: the output range (10, 200).
        latent_scale: multiplies the incoming scaled latent: 1 for this project's models and for imported ones by
            default (the authors' released inference), ``1 / 0.18215`` for ``--tpm-input training`` (their training
            forward fed the unscaled latent).
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        channels: int = 32,
        num_res_blocks: int = 6,
        mlp_hidden: int = 512,
        mlp_depth: int = 4,
        t_min: float = 10.0,
        t_max: float = 200.0,
        latent_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.noise_esti = nn.Sequential(
            ConvBlock(latent_channels, channels), *[ResidualBlockNoBN(channels) for _ in range(num_res_blocks)]
        )
        self.time_predict = TimePredictHead(2 * channels, mlp_hidden, mlp_depth)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        features = self.noise_esti(latent * self.config.latent_scale)  # (B, C, h, w)
        flat = features.flatten(2)
        stats = torch.cat((flat.mean(-1), flat.std(-1)), 1)  # (B, 2C)
        score = self.time_predict(stats).squeeze(1)  # (B,)
        return self.config.t_min + (self.config.t_max - self.config.t_min) * score
