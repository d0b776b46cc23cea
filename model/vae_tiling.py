"""The VAE over an image too large for one pass, computing what one pass computes.

diffusers' own tiling runs each tile as an image of its own, so each tile's GroupNorms see only that tile's
statistics: on a dark, flat or graded photograph neighbouring tiles normalise differently and the seams show
(blotches and brightness steps on the tile grid). Here the network runs layer by layer over the whole feature
map, in horizontal bands of full width:

* every GroupNorm uses statistics of the whole map: per-channel means and variances of each band, combined
  exactly (in float64) before any band is normalised;
* every convolution reads its band with the rows its kernel reaches beyond the band (one row for a 3x3 kernel),
  so a band's output rows are the whole-map convolution's (zero padding only at the image's own border);
* the mid-block (self-attention included) and everything at latent resolution run on the whole map at once:
  1/64 of the pixels (1/16 for a 4x VAE), so the attention is the one-pass attention, not a tile's.

A GroupNorm needs its whole input before it can normalise any of it, so one feature map per layer boundary must
exist in full: what this holds at once is the map entering a residual block and the one it is building, plus one
band's temporaries, where one pass holds several full maps per layer (normalised, activated, convolved, the LoRA
branch). Results agree with one pass up to float rounding (convolutions blocked differently), not bit for bit.
Works for diffusers' ``AutoencoderKL`` with ``DownEncoderBlock2D``/``UpDecoderBlock2D`` blocks (every preset),
with or without peft LoRA layers, merged or not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

# Rows (lo, hi) of a feature map -> those rows, (B, C, hi - lo, W).
ReadRows = Callable[[int, int], torch.Tensor]


@torch.no_grad()
def encode(vae: AutoencoderKL, x: torch.Tensor, band_pixels: int) -> torch.Tensor:
    """``vae``'s encoder and ``quant_conv`` on ``x`` (B,3,H,W): the moments ``vae.encode`` wraps in its
    posterior, in bands of about ``band_pixels`` pixels."""
    encoder = vae.encoder
    h = _conv_rows(_rows_of(x), x.shape[-2], encoder.conv_in, _band_rows(band_pixels, x))
    for block in encoder.down_blocks:
        for resnet in block.resnets:
            h = _resnet(resnet, h, band_pixels)
        for down in block.downsamplers or ():
            h = _conv_rows(_rows_of(h), h.shape[-2], _check_downsample(down), _band_rows(band_pixels, h))
    h = encoder.mid_block(h)  # at 1/8 (1/4) of the side: whole, so its attention and norms are one pass's
    h = encoder.conv_out(encoder.conv_act(encoder.conv_norm_out(h)))
    return vae.quant_conv(h) if vae.quant_conv is not None else h


@torch.no_grad()
def decode(vae: AutoencoderKL, z: torch.Tensor, band_pixels: int) -> torch.Tensor:
    """``post_quant_conv`` and ``vae``'s decoder on the (unscaled) latent ``z``: what ``vae.decode(z).sample``
    gives, in bands of about ``band_pixels`` pixels of the resolution each layer works at."""
    decoder = vae.decoder
    if not isinstance(decoder.conv_norm_out, nn.GroupNorm):
        raise NotImplementedError("the banded decoder handles a GroupNorm output norm only (not a spatial norm)")
    if vae.post_quant_conv is not None:
        z = vae.post_quant_conv(z)
    h = decoder.mid_block(decoder.conv_in(z), None)  # at latent resolution: whole
    for block in decoder.up_blocks:
        for resnet in block.resnets:
            h = _resnet(resnet, h, band_pixels)
        for up in block.upsamplers or ():
            h = _upsample(up, h, band_pixels)
    rows = _band_rows(band_pixels, h)
    norm = _norm_act(*_group_affine(h, decoder.conv_norm_out, rows), decoder.conv_act)
    return _conv_rows(_rows_of(h), h.shape[-2], decoder.conv_out, rows, pre=norm)


# -- layers --------------------------------------------------------------------------------------------------
def _resnet(block: nn.Module, x: torch.Tensor, band_pixels: int) -> torch.Tensor:
    """``ResnetBlock2D`` without a time embedding: x + conv2(act(norm2(conv1(act(norm1(x)))))), in bands. The
    output overwrites the block's hidden map, so only ``x`` and that map are alive at full size."""
    if not isinstance(block, ResnetBlock2D) or block.upsample is not None or block.downsample is not None \
            or block.time_emb_proj is not None:
        raise NotImplementedError(f"the banded VAE handles plain ResnetBlock2D blocks, not {type(block).__name__}")
    shortcut = block.conv_shortcut
    if shortcut is not None and _geometry(shortcut)[:2] != (1, 1):
        raise NotImplementedError("the banded VAE handles a 1x1 shortcut convolution only")
    rows = _band_rows(band_pixels, x)
    pre1 = _norm_act(*_group_affine(x, block.norm1, rows), block.nonlinearity)
    hidden = _conv_rows(_rows_of(x), x.shape[-2], block.conv1, rows, pre=pre1)
    norm2 = _norm_act(*_group_affine(hidden, block.norm2, rows), block.nonlinearity)

    def pre2(band: torch.Tensor) -> torch.Tensor:
        return block.dropout(norm2(band))

    def add_residual(y: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        residual = x[..., r0:r1, :]
        if shortcut is not None:
            residual = shortcut(residual)
        y = residual + y
        return y / block.output_scale_factor if block.output_scale_factor != 1 else y

    return _conv_rows(_rows_of(hidden), hidden.shape[-2], block.conv2, rows, pre=pre2, post=add_residual,
                      into=hidden)


def _upsample(up: nn.Module, x: torch.Tensor, band_pixels: int) -> torch.Tensor:
    """``Upsample2D``: nearest 2x then its convolution, each band upsampling only the source rows it reads."""
    if not isinstance(up, Upsample2D) or up.norm is not None or up.use_conv_transpose or not up.interpolate \
            or not up.use_conv or up.name != "conv":
        raise NotImplementedError(f"the banded VAE handles a nearest-2x Upsample2D with a conv, not {up!r}")

    def read(lo: int, hi: int) -> torch.Tensor:
        first = lo // 2
        source = x[..., first:(hi + 1) // 2, :]
        return F.interpolate(source, scale_factor=2.0, mode="nearest")[..., lo - 2 * first:hi - 2 * first, :]

    return _conv_rows(read, 2 * x.shape[-2], up.conv, _band_rows(band_pixels // 2, x))  # output twice as wide


def _check_downsample(down: nn.Module) -> nn.Module:
    if not isinstance(down, Downsample2D) or down.norm is not None or not down.use_conv:
        raise NotImplementedError(f"the banded VAE handles a strided-conv Downsample2D, not {down!r}")
    return down


# -- GroupNorm over the whole map ----------------------------------------------------------------------------
def _group_affine(x: torch.Tensor, norm: nn.Module, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``norm`` (a GroupNorm) as a per-channel ``x * scale + shift`` (each (B,C,1,1), float32), with its
    statistics taken over all of ``x``, band by band."""
    if not isinstance(norm, nn.GroupNorm):
        raise NotImplementedError(f"the banded VAE handles GroupNorm, not {type(norm).__name__}")
    b, c, height, width = x.shape
    count = torch.zeros((), dtype=torch.float64, device=x.device)
    mean = torch.zeros(b, c, dtype=torch.float64, device=x.device)
    m2 = torch.zeros_like(mean)
    for r0 in range(0, height, rows):
        band = x[..., r0:r0 + rows, :].float()
        mean_b = band.mean(dim=(-2, -1), keepdim=True)
        var_b = (band - mean_b).square_().mean(dim=(-2, -1))  # centred: no cancellation; var_mean is 2x slower
        mean_b = mean_b[..., 0, 0]
        n_b = band.shape[-2] * width
        # Chan et al.'s pairwise update: exact for any split, no cancellation of large sums of squares.
        delta = mean_b.double() - mean
        total = count + n_b
        mean = mean + delta * (n_b / total)
        m2 = m2 + var_b.double() * n_b + delta.square() * (count * n_b / total)
        count = total
    groups = norm.num_groups
    mean_g = mean.view(b, groups, -1)
    group_mean = mean_g.mean(dim=-1, keepdim=True)
    group_m2 = m2.view(b, groups, -1).sum(dim=-1, keepdim=True) + count * (mean_g - group_mean).square().sum(
        dim=-1, keepdim=True)
    group_var = group_m2 / (count * (c // groups))
    rstd = (group_var + norm.eps).rsqrt().expand(-1, -1, c // groups).reshape(b, c)
    mean_c = group_mean.expand(-1, -1, c // groups).reshape(b, c)
    weight = norm.weight.double() if norm.affine else torch.ones(c, dtype=torch.float64, device=x.device)
    bias = norm.bias.double() if norm.affine else torch.zeros(c, dtype=torch.float64, device=x.device)
    scale = rstd * weight
    shift = bias - mean_c * scale
    return scale.float()[..., None, None], shift.float()[..., None, None]


def _norm_act(scale: torch.Tensor, shift: torch.Tensor, act: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The normalisation (in float32, as GroupNorm computes) and activation applied to one band."""

    def apply(band: torch.Tensor) -> torch.Tensor:
        return act(torch.addcmul(shift, band.float(), scale).to(band.dtype))

    return apply


# -- convolutions in bands -----------------------------------------------------------------------------------
def _conv_rows(
    read: ReadRows,
    in_rows: int,
    conv: nn.Module,
    rows: int,
    *,
    pre: Callable[[torch.Tensor], torch.Tensor] | None = None,
    post: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
    into: torch.Tensor | None = None,
) -> torch.Tensor:
    """``post(conv(pre(input)))`` over an input of ``in_rows`` rows, ``rows`` output rows at a time.

    Each band reads the input rows its outputs' kernels cover (clipped to the image, whose border the module pads
    as in one pass) and keeps only the outputs whose window lies in real rows. ``into``: write the output over
    this map, which is also the input; a band is written only after the next band has read its halo rows.
    """
    kernel, stride, pad_top, pad_bottom = _geometry(conv)
    out_rows = (in_rows + pad_top + pad_bottom - kernel) // stride + 1
    out, pending = into, None
    for r0 in range(0, out_rows, rows):
        r1 = min(r0 + rows, out_rows)
        lo = max(r0 * stride - pad_top, 0) // stride * stride  # a multiple of the stride keeps outputs aligned
        hi = min((r1 - 1) * stride - pad_top + kernel, in_rows)
        band = read(lo, hi)
        y = conv(pre(band) if pre is not None else band)[..., r0 - lo // stride:r1 - lo // stride, :]
        if post is not None:
            y = post(y, r0, r1)
        if out is None:
            out = y.new_empty((*y.shape[:2], out_rows, y.shape[-1]))
        if pending is not None:
            out[..., pending[0]:pending[1], :] = pending[2]
        pending = (r0, r1, y)
    if pending is not None and out is not None:
        out[..., pending[0]:pending[1], :] = pending[2]
    assert out is not None
    return out


def _geometry(module: nn.Module) -> tuple[int, int, int, int]:
    """(kernel, stride, padding above, padding below) along the rows of a conv, a peft-wrapped conv, or a
    ``Downsample2D`` (which pads one zero row below itself when its conv has no padding)."""
    extra_bottom = 0
    if isinstance(module, Downsample2D):
        extra_bottom = 1 if module.padding == 0 else 0
        module = module.conv
    get_base_layer = getattr(module, "get_base_layer", None)  # peft's wrapper around the conv
    base = get_base_layer() if callable(get_base_layer) else module
    if not isinstance(base, nn.Conv2d) or isinstance(base.padding, str) or base.dilation[0] != 1:
        raise NotImplementedError(f"the banded VAE handles plain Conv2d layers, not {base!r}")
    kernel, stride, pad = base.kernel_size[0], base.stride[0], base.padding[0]
    return kernel, stride, pad, pad + extra_bottom


def _rows_of(x: torch.Tensor) -> ReadRows:
    return lambda lo, hi: x[..., lo:hi, :]


def _band_rows(band_pixels: int, x: torch.Tensor) -> int:
    """Output rows per band for a map as wide as ``x``: at least 4, so a band is never thinner than the halo
    the delayed in-place write relies on."""
    return max(4, band_pixels // max(1, x.shape[-1]))
