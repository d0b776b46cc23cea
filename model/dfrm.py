"""DFRM: the decoupled feature rescaling module (the paper, Wang et al., ICCV 2025).

Two chains share the thumbnail:

* feature rescaling: ``G_e(x, z) -> z_lr`` (pixel branch + latent branch + fusion) and ``G_d(z_lr) -> ẑ``;
* pixel mapping: an invertible network ``F`` maps ``z_lr`` to the 8-bit LR image and back, exactly.

Sender: ``y = Q(F(G_e(x, z)))``. Receiver: ``ẑ = G_d(F⁻¹(y))``. Latents are the *scaled* SD latents
(``E(x).mode() * 0.18215``) everywhere in this project; ``latent_scale`` lets an imported checkpoint of the
authors' code, which was trained on unscaled latents, see exactly the tensors it was trained on.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .blocks import ConvBlock, Downsample, Resblock, zero_init
from .thumbnail import SUPPORTED_SCALES


def decoder_sizes(
    hidden_channels: int,
    num_res_blocks: int,
    shuffle_channels: int | None = None,
    decoder_channels: int | None = None,
    decoder_res_blocks: int | None = None,
) -> tuple[int, int, int]:
    """G_d's (channels, Resblocks, width between shuffles) from the DFRM's arguments; the defaults are the
    authors' layout (``hidden_channels``, ``num_res_blocks``, a quarter of the channels)."""
    channels = decoder_channels or hidden_channels
    res_blocks = num_res_blocks if decoder_res_blocks is None else decoder_res_blocks
    return channels, res_blocks, shuffle_channels or channels // 4


class DenseBlock(nn.Module):
    """Five 3x3 convs, each fed the input and all earlier outputs; zero-initialised last conv (identity start)."""

    def __init__(self, in_channels: int, out_channels: int, growth: int = 32) -> None:
        super().__init__()
        c, g = in_channels, growth
        self.conv1 = nn.Conv2d(c, g, 3, padding=1)
        self.conv2 = nn.Conv2d(c + g, g, 3, padding=1)
        self.conv3 = nn.Conv2d(c + 2 * g, g, 3, padding=1)
        self.conv4 = nn.Conv2d(c + 3 * g, g, 3, padding=1)
        self.conv5 = nn.Conv2d(c + 4 * g, out_channels, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            nn.init.xavier_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # created with bias=True
        zero_init(self.conv5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1))


class InvBlockExp(nn.Module):
    """Affine coupling block (IRN): channels split ``split1 | rest``; invertible to float precision."""

    def __init__(self, channels: int = 3, split1: int = 1, clamp: float = 1.0, growth: int = 32) -> None:
        super().__init__()
        self.split1, self.split2, self.clamp = split1, channels - split1, clamp
        self.F = DenseBlock(self.split2, self.split1, growth)
        self.G = DenseBlock(self.split1, self.split2, growth)
        self.H = DenseBlock(self.split1, self.split2, growth)

    def _log_scale(self, y1: torch.Tensor) -> torch.Tensor:
        return self.clamp * (torch.sigmoid(self.H(y1)) * 2 - 1)

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        x1, x2 = x.split((self.split1, self.split2), dim=1)
        if not reverse:
            y1 = x1 + self.F(x2)
            y2 = x2 * torch.exp(self._log_scale(y1)) + self.G(y1)
        else:
            y2 = (x2 - self.G(x1)) * torch.exp(-self._log_scale(x1))
            y1 = x1 - self.F(y2)
        return torch.cat((y1, y2), 1)


class DFRM(ModelMixin, ConfigMixin):
    r"""Decoupled feature rescaling module for 16x or 32x.

    Args:
        scale: 16 or 32, the thumbnail's reduction per side.
        latent_channels: channels of the VAE latent (4 for Stable Diffusion).
        pixel_channels: width of the pixel branch's first and last ConvBlock (16 in the paper).
        hidden_channels: width of the latent branch and of G_d (128 in the paper).
        num_res_blocks: Resblocks in the latent branch, the fusion and G_d (8 in the paper).
        num_inv_blocks: coupling blocks of the invertible converter F (12 in the paper).
        inv_growth: growth rate of F's dense blocks (32 in the paper).
        latent_scale: multiplies the incoming (scaled) latent and divides ẑ; 1.0 for this project's models,
            ``1 / 0.18215`` for checkpoints imported from the authors' code.
        latent_factor: the VAE's downsampling per side (8 for Stable Diffusion; 4 for the nano backbone). The
            latent branch reduces the latent by ``scale / latent_factor`` per side and G_d enlarges it back.
        shuffle_channels: G_d's width between two of its PixelShuffles (default ``decoder_channels // 4``, the
            authors' layout). With a narrow ``decoder_channels`` and two or more shuffles the default leaves
            ``decoder_channels / 16`` channels to predict the whole latent from; the nano preset widens it.
        decoder_channels: G_d's width before its PixelShuffles (default ``hidden_channels``, the authors' layout).
        decoder_res_blocks: G_d's Resblocks (default ``num_res_blocks``). G_d works at the thumbnail's
            resolution, so widening and deepening it costs little; :func:`model.training.widen.widen_decoder`
            does so to a trained DFRM without changing its outputs.
    """

    @register_to_config
    def __init__(
        self,
        scale: int = 16,
        latent_channels: int = 4,
        pixel_channels: int = 16,
        hidden_channels: int = 128,
        num_res_blocks: int = 8,
        num_inv_blocks: int = 12,
        inv_growth: int = 32,
        latent_scale: float = 1.0,
        latent_factor: int = 8,
        shuffle_channels: int | None = None,
        decoder_channels: int | None = None,
        decoder_res_blocks: int | None = None,
    ) -> None:
        super().__init__()
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"`scale` must be one of {SUPPORTED_SCALES} but is {scale}")
        if latent_factor not in (2, 4, 8):
            raise ValueError(f"`latent_factor` must be 2, 4 or 8 but is {latent_factor}")
        stages = int(math.log2(scale))  # pixel branch: one Downsample per halving
        latent_unshuffles = stages - int(math.log2(latent_factor))  # the VAE latent is already H/latent_factor

        # G_e, pixel branch: (B,3,H,W) -> (B,pc,H/s,W/s)
        pixel: list[nn.Module] = [ConvBlock(3, pixel_channels)]
        c = pixel_channels
        for _ in range(stages):
            pixel += [Downsample(c), Resblock(2 * c)]
            c *= 2
        pixel.append(ConvBlock(c, pixel_channels))
        self.down_module = nn.Sequential(*pixel)

        # G_e, latent branch: (B,C,H/f,W/f) -> (B,hc,H/s,W/s)
        hc = hidden_channels
        latent: list[nn.Module] = [ConvBlock(latent_channels, hc)]
        latent += [Resblock(hc) for _ in range(num_res_blocks)]
        for _ in range(latent_unshuffles):
            latent += [nn.PixelUnshuffle(2), ConvBlock(4 * hc, hc)]
        self.latent_module = nn.Sequential(*latent)

        # G_e, fusion: concat(pixel, latent) -> z_lr (B,3,H/s,W/s)
        fc = pixel_channels + hc
        self.fusing_module = nn.Sequential(*[Resblock(fc) for _ in range(num_res_blocks)], ConvBlock(fc, 3))

        # G_d: z_lr (B,3,H/s,W/s) -> ẑ (B,C,H/f,W/f)
        dc, decoder_blocks, between = decoder_sizes(hc, num_res_blocks, shuffle_channels, decoder_channels,
                                                    decoder_res_blocks)
        final: list[nn.Module] = [ConvBlock(3, dc)]
        final += [Resblock(dc) for _ in range(decoder_blocks)]
        # Each PixelShuffle quarters the width; a ConvBlock between two shuffles sets it to `between`. With the
        # defaults this is the authors' 16x and 32x layout (their checkpoints load by index).
        c = dc
        for i in range(latent_unshuffles):
            final.append(nn.PixelShuffle(2))
            c //= 4
            last = i == latent_unshuffles - 1
            final.append(ConvBlock(c, latent_channels if last else between))
            c = between
        self.final_module = nn.Sequential(*final)

        # F: z_lr <-> LR image, same resolution
        self.inv_module = nn.ModuleList(InvBlockExp(3, 1, 1.0, inv_growth) for _ in range(num_inv_blocks))

    @property
    def decoder_shape(self) -> tuple[int, int, int]:
        """G_d's (channels, Resblocks, width between shuffles) as built."""
        c = self.config
        return decoder_sizes(c.hidden_channels, c.num_res_blocks, c.shuffle_channels, c.decoder_channels,
                             c.decoder_res_blocks)

    @property
    def encoder_shape(self) -> tuple[int, int]:
        """G_e's latent branch (channels, Resblocks); the fusion has the same Resblocks, ``pixel_channels`` wider."""
        return self.config.hidden_channels, self.config.num_res_blocks

    # -- the two chains -------------------------------------------------------------------------------
    def encode_features(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """G_e: HR pixels in [-1,1] (B,3,H,W) and scaled latent (B,C,H/f,W/f) -> z_lr (B,3,H/s,W/s)."""
        pixel = self.down_module(x)
        latent = self.latent_module(z * self.config.latent_scale)
        return self.fusing_module(torch.cat((pixel, latent), 1))

    def decode_features(self, z_lr: torch.Tensor) -> torch.Tensor:
        """G_d: z_lr (B,3,H/s,W/s) -> ẑ, a scaled latent (B,C,H/f,W/f)."""
        return self.final_module(z_lr) / self.config.latent_scale

    def to_image(self, z_lr: torch.Tensor) -> torch.Tensor:
        """F: features -> LR image (unquantised, nominally in [-1,1])."""
        for block in self.inv_module:
            z_lr = block(z_lr)
        return z_lr

    def from_image(self, lr: torch.Tensor) -> torch.Tensor:
        """F⁻¹: LR image -> features; the exact inverse of :meth:`to_image`."""
        for block in reversed(self.inv_module):
            lr = block(lr, reverse=True)
        return lr

    @staticmethod
    def quantize(lr: torch.Tensor, noise: bool) -> torch.Tensor:
        """8-bit quantisation of an image in [-1,1]: uniform noise in training, rounding at inference."""
        levels = (lr + 1) * 127.5  # [-1,1] -> [0,255]
        if noise:
            levels = (levels + torch.empty_like(levels).uniform_(-0.5, 0.5)).clamp(0, 255)
        else:
            levels = levels.round().clamp(0, 255)
        return levels / 127.5 - 1

    # -- public directions ----------------------------------------------------------------------------
    def downscale(self, x: torch.Tensor, z: torch.Tensor, noise: bool | None = None) -> torch.Tensor:
        """HR pixels and latent -> quantised LR image in [-1,1] (B,3,H/s,W/s). ``noise`` defaults to training mode."""
        noise = self.training if noise is None else noise
        return self.quantize(self.to_image(self.encode_features(x, z)), noise)

    def upscale(self, y: torch.Tensor) -> torch.Tensor:
        """LR image in [-1,1] (B,3,H/s,W/s) -> ẑ (B,C,H/f,W/f)."""
        return self.decode_features(self.from_image(y))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward: every tensor the stage-1 and stage-3 losses need."""
        z_lr = self.encode_features(x, z)
        y = self.quantize(self.to_image(z_lr), noise=self.training)
        return {"z_lr": z_lr, "y": y, "z_direct": self.decode_features(z_lr), "z_hat": self.upscale(y)}
