"""Training data: random crops of the images in one or more folders.

Every sample is a pure function of ``(seed, index)``: which image, where the crop lies, whether it is flipped.
The sampler hands out indices by optimiser step, so a run resumed at step N draws exactly the batches an
uninterrupted run would have drawn from step N on, on any number of processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, Sampler

from model.evaluation.evaluate import check_readable

from .scenes import hard_scene

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def find_images(folders: list[Path]) -> list[Path]:
    """Image files under each folder, recursively, sorted (the order fixes which index is which image)."""
    paths: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"no such data folder: {folder}")
        paths += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no training images ({', '.join(IMAGE_SUFFIXES)}) under {', '.join(map(str, folders))}")
    check_readable(paths)  # a corrupt file stops the run now, not hours in
    return paths


class RandomCrops(Dataset):
    """``crop``x``crop`` RGB crops in [-1, 1] with random horizontal flips.

    An image smaller than the crop is first enlarged (bicubic) so that its shorter side equals the crop.
    With ``grid`` set, crop origins snap to multiples of ``grid`` pixels: the set of distinct crops becomes
    finite, which is what makes a latent cache useful.

    Decoded photos are kept in memory (in each loader process) up to ``cache_bytes`` (default 2 GiB; 0 turns it
    off): decoding a 1600-px PNG for every crop kept a whole core busy beside a one-thread training run. A photo
    that does not fit is decoded again each time; the samples are the same either way.

    ``hard_scenes`` is the fraction of crops turned into a night, fog, high-key or out-of-focus scene
    (:mod:`model.training.scenes`); 0 draws exactly the crops of a run without it.
    """

    def __init__(self, paths: list[Path], crop: int, seed: int = 0, flip: bool = True, grid: int | None = None,
                 cache_bytes: int = 2 << 30, hard_scenes: float = 0.0):
        if not 0.0 <= hard_scenes <= 1.0:
            raise ValueError(f"`hard_scenes` must be a fraction in [0, 1] but is {hard_scenes}")
        if crop < 8 or crop % 8:
            raise ValueError(f"`crop` must be a positive multiple of 8 but is {crop}")
        self.paths, self.crop, self.seed, self.flip, self.grid = paths, crop, seed, flip, grid
        self.cache_bytes, self.hard_scenes = cache_bytes, hard_scenes
        self._decoded: dict[Path, Image.Image] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:  # samples are drawn by index from an unbounded stream
        return 2**62

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        path = self.paths[int(rng.integers(len(self.paths)))]
        image = self._photo(path)
        w, h = image.size
        left, top = int(rng.integers(w - self.crop + 1)), int(rng.integers(h - self.crop + 1))
        if self.grid:
            left, top = left // self.grid * self.grid, top // self.grid * self.grid
        flipped = bool(self.flip and rng.random() < 0.5)
        image = image.crop((left, top, left + self.crop, top + self.crop))
        if flipped:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        scene = ""
        if self.hard_scenes and rng.random() < self.hard_scenes:  # drawn after the crop: crops stay the same
            image, name = hard_scene(image, rng)
            scene = f"|{name}:{self.seed}:{index}"  # its parameters are random: the cache key names the draw
        x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1  # (3, c, c)
        key = hashlib.sha1(f"{path}|{w}x{h}|{left},{top},{self.crop}|{flipped}{scene}".encode()).hexdigest()
        return {"pixels": x, "key": key}

    def _photo(self, path: Path) -> Image.Image:
        """The photo upright, in RGB, its shorter side at least the crop; from memory when it was decoded before."""
        if path in self._decoded:
            return self._decoded[path]
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        w, h = image.size
        if min(w, h) < self.crop:
            factor = self.crop / min(w, h)
            image = image.resize((max(self.crop, round(w * factor)), max(self.crop, round(h * factor))),
                                 Image.Resampling.BICUBIC)
        size = image.width * image.height * 3
        if self._cached_bytes + size <= self.cache_bytes:
            self._decoded[path] = image
            self._cached_bytes += size
        return image


class StepSampler(Sampler[list[int]]):
    """Batches of indices for optimiser steps ``start_step, start_step+1, ...``.

    Micro-batch ``m`` of step ``s`` on process ``r`` of ``world`` gets indices
    ``((s·accum + m)·world + r)·batch + [0, batch)``: disjoint across processes, the same on resume.
    """

    def __init__(self, batch_size: int, start_step: int = 0, accumulation: int = 1, rank: int = 0, world: int = 1):
        self.batch_size, self.start_step, self.accumulation = batch_size, start_step, accumulation
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[list[int]]:
        micro = self.start_step * self.accumulation
        while True:
            first = ((micro * self.world) + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            micro += 1

    def __len__(self) -> int:
        return 2**62


class LatentCache:
    """VAE latents of training crops on disk, keyed by the crop (the VAE encoder is frozen in every stage)."""

    def __init__(self, directory: Path, tag: str) -> None:
        self.directory = Path(directory) / tag  # one subfolder per backbone, so models never share latents
        self.directory.mkdir(parents=True, exist_ok=True)

    def get_or_encode(self, keys: list[str], pixels: torch.Tensor, encode) -> torch.Tensor:
        from safetensors.torch import load_file, save_file

        paths = [self.directory / f"{k}.safetensors" for k in keys]
        if all(p.is_file() for p in paths):
            return torch.stack([load_file(str(p))["z"] for p in paths]).to(pixels.device)
        with torch.no_grad():
            z = encode(pixels)
        for p, latent in zip(paths, z, strict=True):
            save_file({"z": latent.detach().cpu().contiguous()}, str(p))
        return z
