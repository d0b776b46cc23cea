"""Convolutional building blocks shared by the DFRM, the TPM and the refiner.

Attribute names follow the authors' released state dicts, so that their checkpoints load
without renaming: a ConvBlock's conv is ``conv_in``, a Resblock's convs are ``res_block.0`` / ``res_block.2``,
a Downsample's conv is ``downsample.1``.
"""

from __future__ import annotations

import torch
from torch import nn


def zero_init(conv: nn.Conv2d) -> None:
    """Zero a conv's weight and bias: the layer starts as a constant 0 (identity for residual branches)."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ConvBlock(nn.Module):
    """Conv3x3 followed by LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, out_channels: int, slope: float = 0.1) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.acti = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.acti(self.conv_in(x))


class Resblock(nn.Module):
    """x + Conv3x3(LeakyReLU(Conv3x3(x))), no normalisation."""

    def __init__(self, channels: int, slope: float = 0.1) -> None:
        super().__init__()
        self.res_block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(slope),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_block(x)


class Downsample(nn.Module):
    """PixelUnshuffle(2) then Conv1x1(4c -> 2c): halves the resolution, doubles the channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.downsample = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * channels, 2 * channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x)


class ResidualBlockNoBN(nn.Module):
    """conv3x3 - ReLU - conv3x3 + identity; Kaiming init scaled by 0.1 so that the block starts near identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))
