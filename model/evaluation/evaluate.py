"""Run methods (a TADM model, the baselines) over a folder of images and score every reconstruction."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..colour_map import upscale_choosing_colour_map
from ..quality import BOUNDED, DIRECT
from ..thumbnail import Thumbnail
from ..thumbnail_bound import bounded_thumbnail
from ..tiling import Tiling
from . import baselines
from .metrics import psnr, worst_local_deviation, y_metrics
from .ssimulacra2 import ssimulacra2

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FULL_REFERENCE_METRICS = ("psnr_y", "ssim_y", "ms_ssim_y", "ssimulacra2")
PERCEPTUAL_METRICS = ("lpips", "dists", "musiq", "clipiqa")
# A learned thumbnail is shown to viewers as it is, so how far it strays from the bicubic one of the same size is
# scored too: PSNR over the three RGB channels, since its known failure is a colour shift (the supplement, Fig. 9).
# The worst local deviation (4x4 thumbnail pixels, in 8-bit levels) is scored too: a blotch is local.
THUMBNAIL_METRICS = ("thumbnail_psnr", "thumbnail_worst")
# How a model result whose thumbnail its plain rule made plain begins its detail.
PLAIN_BY_RULE = "plain by the model's rule"
# How a model result whose thumbnail carries the sender's colour map ends its detail (followed by COLOUR_LATTICE
# where it carries a lattice of colour maps too).
COLOUR_MAPPED = ", with a colour map"
COLOUR_LATTICE = ", with a colour lattice of {rows}x{cols}"


@dataclass
class Row:
    """One image under one method: its storage cost and its scores (NaN = absent)."""

    image: str
    method: str
    scale: int
    stored_bytes: int
    pixels: int
    scores: dict[str, float] = field(default_factory=dict)
    detail: str = ""
    size: tuple[int, int] = (0, 0)  # the image's width and height

    @property
    def bpp(self) -> float:
        return 8 * self.stored_bytes / self.pixels


def list_images(folder: Path, max_images: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by path; at most ``max_images``.

    Every file's header is read first, so that a corrupt file stops the run before any work, not midway.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    paths = paths[:max_images] if max_images else paths
    check_readable(paths)
    return paths


def shard_by_pixels(paths: list[Path], index: int, count: int) -> list[Path]:
    """The ``index``-th (from 0) of ``count`` parts of ``paths``, the parts as even in pixels as a greedy split makes
    them, each sorted by path.

    An evaluation's time follows the pixel count, not the number of photos, so processes side by side finish near
    one another; the split depends only on the files, so every process computes the same parts.
    """
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: the index runs from 0 to {count - 1}")
    sizes = {}
    for path in paths:
        with Image.open(path) as img:
            sizes[path] = img.size[0] * img.size[1]
    parts: list[list[Path]] = [[] for _ in range(count)]
    loads = [0] * count
    for path in sorted(paths, key=lambda p: (-sizes[p], str(p))):  # largest first: the greedy split's best order
        lightest = loads.index(min(loads))
        parts[lightest].append(path)
        loads[lightest] += sizes[path]
    return sorted(parts[index])


def check_readable(paths: list[Path]) -> None:
    """Raise ValueError naming the first file whose image header Pillow cannot read."""
    for path in paths:
        try:
            with Image.open(path) as img:
                img.size  # noqa: B018 - the header is parsed lazily; touching the size is the check
        except Exception as exc:  # Pillow raises several types for corrupt files
            raise ValueError(f"{path} is not a readable image ({exc.__class__.__name__}: {exc})") from exc


def model_reconstruction(
    pipe, image: Image.Image, *, direct: bool = False, tiling: Tiling | None = None, colour_map: bool = False
) -> baselines.Reconstruction:
    """TADM: the stored file is the thumbnail PNG (with its metadata chunk), the output its upscale.

    ``direct`` decodes G_d's latent without the diffusion step (what a stage-1 model gives on its own).
    ``tiling`` is the receiver's (default: the model's); its tile size and stride are named in the detail, since
    they change the result and a model's default may change between versions. ``colour_map``: the sender fits the
    thumbnail's colour map as verified ingest does (:mod:`model.colour_map`; its bytes count).
    """
    thumb = pipe.downscale(image)
    name, detail = f"tadm-{pipe.config['preset']}", f"model {pipe.model_id}"
    if thumb.plain:  # the model's plain rule chose classical resampling: no model runs for it
        method = name + (DIRECT if direct else "")
        detail = f"{PLAIN_BY_RULE} (bicubic at {pipe.plain_rule.min_bicubic_psnr_y:.2f} dB or more), {detail}"
        return baselines.Reconstruction(method, pipe.upscale(thumb), len(thumb.to_png()), detail, thumb.image)
    if direct:
        return baselines.Reconstruction(f"{name}{DIRECT}", pipe.upscale_direct(thumb), len(thumb.to_png()),
                                        f"{detail}, no diffusion step", thumb.image)
    tiling = tiling or pipe.default_tiling
    detail += f", latent tiles {tiling.tile_size}/{tiling.tile_stride}"
    if pipe.attention_pool > 1:  # model.attention: changes the result, as the tiles do
        detail += f", attention pooled by {pipe.attention_pool}"
    thumb, rebuilt = reconstruct(pipe, thumb, image, tiling, colour_map)
    return baselines.Reconstruction(name, rebuilt, len(thumb.to_png()), detail + mapped(thumb), thumb.image)


def reconstruct(pipe, thumb: Thumbnail, image: Image.Image, tiling: Tiling,
                colour_map: bool) -> tuple[Thumbnail, Image.Image]:
    """The thumbnail as stored (with its colour map where ``colour_map`` and one helps) and its reconstruction."""
    if colour_map:
        return upscale_choosing_colour_map(pipe, thumb, image, tiling=tiling)
    return thumb, pipe.upscale(thumb, tiling=tiling)


def mapped(thumb: Thumbnail) -> str:
    """What a result's detail says of a thumbnail's colour map and lattice."""
    said = COLOUR_MAPPED if thumb.colour_map is not None else ""
    if thumb.colour_lattice is not None:
        said += COLOUR_LATTICE.format(rows=thumb.colour_lattice[0], cols=thumb.colour_lattice[1])
    return said


def without_colour_notes(detail: str) -> str:
    """A result's detail without what :func:`mapped` added."""
    return detail.split(", with a colour ")[0]


def bounded_reconstruction(pipe, image: Image.Image, learned: baselines.Reconstruction, max_deviation: float,
                           tiling: Tiling | None = None, colour_map: bool = False) -> baselines.Reconstruction:
    """TADM as verified ingest stores it (``tadm-<preset>-bounded``): the model's thumbnail held within
    ``max_deviation`` levels of the bicubic one (:mod:`model.thumbnail_bound`), reconstructed. Where the thumbnail
    already is within, this is ``learned`` itself under the new name (the same pixels, nothing run again)."""
    assert learned.thumbnail is not None
    if made_plain(learned.detail):  # a plain thumbnail is the bicubic one: nothing to pull in
        return replace(learned, method=learned.method + BOUNDED)
    thumb = Thumbnail(learned.thumbnail, pipe.scale, image.size, pipe.model_id)
    within = bounded_thumbnail(thumb, image, max_deviation)
    name = learned.method + BOUNDED
    if within is thumb:
        return replace(learned, method=name, detail=within_as_made(learned.detail, max_deviation))
    tiling = tiling or pipe.default_tiling
    within, rebuilt = reconstruct(pipe, within, image, tiling, colour_map)
    detail = without_colour_notes(learned.detail)
    return baselines.Reconstruction(name, rebuilt, len(within.to_png()),
                                    f"{detail}, pulled in to {max_deviation:g} levels{mapped(within)}", within.image)


def made_plain(detail: str) -> bool:
    """Whether a model's result is a plain thumbnail its plain rule chose (:mod:`model.plain_rule`)."""
    return detail.startswith(PLAIN_BY_RULE)


def within_as_made(detail: str, max_deviation: float) -> str:
    """The detail of a bounded result that is the model's own: its thumbnail needed no pulling in."""
    return f"{detail}, within {max_deviation:g} levels as made"


def thumbnail_scores(bicubic_thumbnail: np.ndarray, thumbnail: Image.Image | None) -> dict[str, float]:
    """``thumbnail_psnr`` and ``thumbnail_worst``: the method's thumbnail against Pillow's bicubic one of the same
    image (an RGB array), over the image and at its worst 4x4 block; NaN for a method without one."""
    if thumbnail is None:
        return {"thumbnail_psnr": math.nan, "thumbnail_worst": math.nan}
    pixels = np.asarray(thumbnail.convert("RGB"))
    return {"thumbnail_psnr": psnr(bicubic_thumbnail, pixels),
            "thumbnail_worst": worst_local_deviation(bicubic_thumbnail, pixels)}


class PerceptualScorer:
    """The perceptual metrics that are available here, loaded once; the others are reported absent."""

    def __init__(self, names: tuple[str, ...] = PERCEPTUAL_METRICS, device: str = "cpu") -> None:
        from . import perceptual

        self.device = device
        self.loaded: dict[str, Callable] = {}
        self.absent: dict[str, str] = {}
        for name in names:
            reason = perceptual.unavailable_reason(name)
            if reason is None:
                self.loaded[name] = perceptual.load(name, device)
            else:
                self.absent[name] = reason
                logger.info("%s absent: %s", name, reason)

    def __call__(self, reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
        scores = {name: math.nan for name in self.absent}
        if self.loaded:
            import torch

            def to_tensor(a: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(a).permute(2, 0, 1)[None].float().to(self.device) / 127.5 - 1

            with torch.no_grad():
                ref, out = to_tensor(reference), to_tensor(test)
                scores.update({name: float(fn(ref, out)[0]) for name, fn in self.loaded.items()})
        return scores


Method = Callable[[Path, Image.Image], list[baselines.Reconstruction]]


def evaluate(
    paths: list[Path],
    scale: int,
    methods: Method,
    perceptual: PerceptualScorer | None = None,
    on_result: Callable[[Path, Image.Image, list[baselines.Reconstruction]], None] | None = None,
) -> Iterator[list[Row]]:
    """Yield the rows of each image in turn: ``methods(path, image)`` gives every reconstruction of it."""
    for path in paths:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        reference = np.asarray(image)
        recs = methods(path, image)
        # Once per image, and only when some method keeps a thumbnail of its own to score against it.
        bicubic_thumbnail = (np.asarray(baselines.bicubic_thumbnail(image, scale))
                             if any(rec.thumbnail is not None for rec in recs) else None)
        rows = []
        for rec in recs:
            test = np.asarray(rec.image.convert("RGB"))
            scores = y_metrics(reference, test) | {"ssimulacra2": ssimulacra2(reference, test)}
            if bicubic_thumbnail is not None:
                scores |= thumbnail_scores(bicubic_thumbnail, rec.thumbnail)
            if perceptual is not None:
                scores.update(perceptual(reference, test))
            rows.append(Row(path.name, rec.method, scale, rec.stored_bytes, image.width * image.height,
                            scores, rec.detail, image.size))
        if on_result is not None:
            on_result(path, image, recs)
        yield rows
