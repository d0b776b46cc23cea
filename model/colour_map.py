"""The sender's colour map: twelve numbers stored with a thumbnail that bring its reconstruction's colours to the
photo's.

Why: on smooth photos the receiver's thumbnail-consistency step (:mod:`model.consistency`) recovers the photo's
low frequencies to only 28-36 dB at 32x; given the photo's own bicubic thumbnail instead, every smooth stress photo
the 32x model lost comes back above bicubic (docs/evaluation/robustness.md, section 8). Much of that error is a
colour shift over the whole photo, which the rescaler's encoder makes from statistics of the whole image and which
a step that sees 13x13 thumbnail pixels cannot tell from the photo's own colours. A sender that reconstructs its
thumbnail anyway (verified ingest, ``tadm eval``) holds both sides: it fits the affine colour map (a 3x3 matrix
and an offset, in the [-1, 1] pixel space) that brings the reconstruction's low frequencies closest to the photo by
least squares over the photo's pixels, and stores it in the thumbnail's metadata (``"cmap"``, rounded to
:data:`DECIMALS`: about 100 bytes) when it makes the reconstruction better in PSNR-Y. The receiver applies it to the
step's low frequencies before they meet the decoder's detail:

    x̂ = up(M · low + b) + up(g) · (x - up(own))        (M, b: the map; low, own, g, x: model.consistency)

Thumbnails without a map, and receivers that do not know it, reconstruct as before; a model without a consistency
step ignores it (the map is fitted to that step's output). Where one map for the whole photo leaves a colour error
that drifts across it (wide skies), a lattice of colour maps follows it (:mod:`model.colour_lattice`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .colour_lattice import (
    LATTICE_POINTS,
    apply_colour_lattice,
    choose_colour_lattice,
    metadata_bytes,
    price,
)
from .consistency import ThumbnailConsistency, combine, up_cropped
from .evaluation.metrics import psnr, rgb_to_y
from .image_tensors import pil_to_tensor, round_to_8bit, tensor_to_uint8
from .plain_rule import bicubic_psnr_y
from .thumbnail import Thumbnail, ThumbnailError
from .tiling import ProgressFn, Tiling

# 4 decimals of a coefficient move a pixel by at most 0.0005 of the [-1, 1] range over all four terms (0.06 of an
# 8-bit level): nothing a reconstruction rounded to 8 bits shows.
DECIMALS = 4
# The fit's sums are gathered over bands of about this many pixels (float64 copies of a band only).
FIT_BAND_PIXELS = 1 << 20


def apply_colour_map(values: tuple[float, ...], low: torch.Tensor) -> torch.Tensor:
    """``M · low + b`` per pixel of (B,3,h,w) ``low``, for the map's 12 ``values`` (rows of [M | b])."""
    matrix = torch.tensor(values, dtype=torch.float64).reshape(3, 4).to(low.device)
    mapped = torch.einsum("ij,bjhw->bihw", matrix[:, :3].to(low.dtype), low)
    return mapped + matrix[:, 3].to(low.dtype).reshape(1, 3, 1, 1)


def fit_colour_map(low_up: torch.Tensor, target: torch.Tensor) -> tuple[float, ...]:
    """The 12 numbers of the affine colour map that brings ``low_up`` (1,3,H,W) closest to ``target`` (1,3,H,W)
    in squared error over all pixels and channels, rounded to :data:`DECIMALS`. Solved by the normal equations,
    their sums gathered in float64 a band of rows at a time: a 40-megapixel photo costs a pass over its pixels and
    no float64 copy of it."""
    gram = torch.zeros(4, 4, dtype=torch.float64)
    cross = torch.zeros(4, 3, dtype=torch.float64)
    rows = max(1, FIT_BAND_PIXELS // low_up.shape[-1])
    for top in range(0, low_up.shape[-2], rows):
        band = low_up[0, :, top:top + rows].reshape(3, -1).double().cpu()
        features = torch.cat((band, torch.ones_like(band[:1])))  # (4, n)
        gram += features @ features.T
        cross += features @ target[0, :, top:top + rows].reshape(3, -1).double().cpu().T
    # A flat photo makes the gram matrix singular (every pixel the same colour): the least-norm solution keeps
    # the map as close to zero as the data allow, so lstsq on the small system, not a plain solve.
    solution = torch.linalg.lstsq(gram, cross, driver="gelsd").solution  # (4, 3): [M^T ; b]
    return tuple(round(float(v), DECIMALS) for v in solution.T.reshape(-1))


def step_parts(step: ThumbnailConsistency, thumbnail: torch.Tensor,
               image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the step makes of the decoder's output ``image`` (1,3,H,W) for ``thumbnail``: the image in 8-bit
    levels, its own bicubic thumbnail, the step's low frequencies and its gate (model.consistency)."""
    image = round_to_8bit(image)
    own = step.own_thumbnail(image)
    r, g = step(thumbnail.to(own.dtype), own)
    return image, own, own + r, g


def corrected_with_map(step: ThumbnailConsistency, thumbnail: torch.Tensor, image: torch.Tensor,
                       colour_map: tuple[float, ...] | None,
                       colour_lattice: tuple[int, ...] | None = None) -> torch.Tensor:
    """What the receiver serves: the step's correction of ``image`` (the decoder's output, (1,3,H,W) in
    [-1, 1]) with the thumbnail's colour map and then its lattice of colour maps (:mod:`model.colour_lattice`)
    applied to its low frequencies (neither: the step alone)."""
    image, own, low, g = step_parts(step, thumbnail, image)
    if colour_map is not None:
        low = apply_colour_map(colour_map, low)
    if colour_lattice is not None:
        low = apply_colour_lattice(colour_lattice, low)
    return combine(image, low, own, g, step.config.scale)


def choose_colour_map(step: ThumbnailConsistency, thumbnail: Thumbnail, decoded: torch.Tensor,
                      original: Image.Image, lattice_points: tuple[int, ...] = LATTICE_POINTS,
                      bicubic: float | None = None) -> tuple[Thumbnail, Image.Image]:
    """The sender's half: ``thumbnail`` with the colour map fitted to ``original`` when the map makes the
    reconstruction better in PSNR-Y, then with the lattice of colour maps (of ``lattice_points`` along the
    longer side: :func:`~model.colour_lattice.choose_colour_lattice`, told whether the reconstruction is below
    bicubic so far) when it gains more than its bytes cost, and that reconstruction. ``decoded``: the decoder's
    output for ``thumbnail``, cropped to the original size, (1,3,H,W) in [-1, 1]; ``bicubic``: the photo's
    :func:`~model.plain_rule.bicubic_psnr_y` at this scale where the caller has measured it already."""
    thumbnail = thumbnail.with_colour_map(None)
    image, own, low, g = step_parts(step, pil_to_tensor(thumbnail.image).to(decoded.device), decoded)
    scale = step.config.scale
    photo = pil_to_tensor(original).to(image.device)
    reference = rgb_to_y(np.asarray(original))

    def served_with(low_: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, float]:
        served = combine(image, low_, own, g, scale)
        pixels = tensor_to_uint8(served)
        return served, pixels, psnr(reference, rgb_to_y(pixels))

    served, pixels, best = served_with(low)  # up(low) + up(g) * (x - up(own)): the step alone
    h, w = image.shape[-2:]
    low_up = up_cropped(low, (own.shape[-2] * scale, own.shape[-1] * scale), (h, w))
    # the map moves up(low) only, so it is fitted to what the photo leaves once the gated detail is taken off
    values = fit_colour_map(low_up, photo - served + low_up)
    del low_up
    try:
        mapped = thumbnail.with_colour_map(values)
    except ThumbnailError:  # a degenerate fit (a coefficient out of bounds): no map
        mapped = None
    if mapped is not None:
        mapped_low = apply_colour_map(values, low)
        candidate = served_with(mapped_low)
        if candidate[2] > best:
            thumbnail, low, (served, pixels, best) = mapped, mapped_low, candidate
    if not lattice_points:
        return thumbnail, Image.fromarray(pixels)
    file_bytes = len(thumbnail.to_png())
    if bicubic is None:  # bicubic from a plain thumbnail of the same size: 0.2 s at 2048x2048
        bicubic = bicubic_psnr_y(np.asarray(original), scale)
    below_bicubic = best < bicubic
    lattice = choose_colour_lattice(low, photo.sub_(served), scale, file_bytes, lattice_points,
                                    below_bicubic=below_bicubic)
    if lattice is not None:
        _, lattice_pixels, with_lattice = served_with(apply_colour_lattice(lattice, low))
        if with_lattice - best > price(metadata_bytes(lattice), file_bytes):
            thumbnail, pixels = thumbnail.with_colour_map(thumbnail.colour_map, lattice), lattice_pixels
    return thumbnail, Image.fromarray(pixels)


@torch.inference_mode()
def upscale_choosing_colour_map(pipe, thumbnail: Thumbnail, original: Image.Image, *, tiling: Tiling | None = None,
                                progress: ProgressFn | None = None) -> tuple[Thumbnail, Image.Image]:
    """The sender's reconstruction of its own learned ``thumbnail`` of ``original`` (an RGB image of the
    thumbnail's original size): the thumbnail as it should be stored (with a colour map where one helps) and what
    the receiver's :meth:`~model.pipeline.TADMPipeline.upscale` gives for it, at the cost of one reconstruction.
    A plain thumbnail, or a model without a consistency step, gets no map."""
    if thumbnail.plain:
        return thumbnail, pipe.upscale(thumbnail)
    (result,) = pipe.denoise([pipe.thumbnail_to_latent(thumbnail)], tiling, progress)
    return finish_choosing_colour_map(pipe, thumbnail, result.latent, original)


@torch.inference_mode()
def finish_choosing_colour_map(pipe, thumbnail: Thumbnail, latent: torch.Tensor, original: Image.Image,
                               bicubic: float | None = None) -> tuple[Thumbnail, Image.Image]:
    """:func:`upscale_choosing_colour_map` from the denoised ``latent`` on (callers that run the tiles
    themselves: the worker, with its progress and cancellation, and the ``bicubic`` figure verified ingest has
    measured, as :func:`choose_colour_map` takes it)."""
    w, h = thumbnail.original_size
    if original.size != (w, h):
        raise ValueError(f"the original is {original.size[0]}x{original.size[1]} but the thumbnail is of {w}x{h}")
    if pipe.consistency is None:  # the map is fitted to the step's low frequencies: without a step, none
        thumbnail = thumbnail.with_colour_map(None)
        return thumbnail, pipe.latent_to_image(latent, thumbnail.original_size, thumbnail)
    decoded = pipe.decode_latent(latent).float()[..., :h, :w]
    return choose_colour_map(pipe.consistency, thumbnail, decoded, original.convert("RGB"), bicubic=bicubic)
