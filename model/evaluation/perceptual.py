"""Metrics and losses that need pretrained backbone weights: LPIPS-VGG, DISTS, MUSIQ, CLIPIQA.

They come from maintained packages (``lpips``, ``DISTS_pytorch``, ``pyiqa``), all of which import torchvision
and load ImageNet/CLIP weights from a download cache. Nothing here downloads: a metric is *available* only
when its package imports and every weight file it would fetch is already in the cache. Otherwise it is
reported as absent with the reason, never computed from random weights and never guessed.

Install the packages beside the pinned torch (``pip install lpips DISTS_pytorch pyiqa`` pulls a torchvision
that matches torch) and put the weight files in ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/...``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# torchvision's ImageNet VGG-16, which both LPIPS-VGG and DISTS build on.
VGG16_FILE = "vgg16-397923af.pth"


@dataclass(frozen=True)
class PerceptualSpec:
    name: str
    package: str  # the import name
    weight_files: tuple[str, ...]  # relative to the torch hub directory
    lower_is_better: bool
    full_reference: bool


SPECS = {
    "lpips": PerceptualSpec("lpips", "lpips", (f"checkpoints/{VGG16_FILE}",), True, True),
    "dists": PerceptualSpec("dists", "DISTS_pytorch", (f"checkpoints/{VGG16_FILE}",), True, True),
    "musiq": PerceptualSpec("musiq", "pyiqa", ("pyiqa/musiq_koniq_ckpt-e95806b9.pth",), False, False),
    "clipiqa": PerceptualSpec("clipiqa", "pyiqa", ("pyiqa/RN50.pt",), False, False),
}


class PerceptualUnavailableError(RuntimeError):
    """A perceptual metric whose package or pretrained weights are not on this machine."""


def hub_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir())


def unavailable_reason(name: str) -> str | None:
    """Why metric ``name`` cannot be computed here, or ``None`` when it can."""
    spec = SPECS[name]
    if importlib.util.find_spec(spec.package) is None:
        return f"package `{spec.package}` is not installed"
    missing = [f for f in spec.weight_files if not (hub_dir() / f).is_file()]
    if missing:
        return f"pretrained weights not in the cache ({hub_dir() / missing[0]}); downloads are not attempted"
    return None


# A loaded metric: (reference, test) in [-1, 1], (B, 3, H, W) -> (B,) scores; differentiable for LPIPS/DISTS.
MetricFn = Callable[[Any, Any], Any]


def load(name: str, device: str = "cpu") -> MetricFn:
    """The metric as a torch callable; raises :class:`PerceptualUnavailableError` with the reason."""
    if name not in SPECS:
        raise ValueError(f"unknown perceptual metric {name!r}; choose one of {sorted(SPECS)}")
    reason = unavailable_reason(name)
    if reason is not None:
        raise PerceptualUnavailableError(f"{name}: {reason}")
    if name == "lpips":
        import lpips

        net = lpips.LPIPS(net="vgg", verbose=False).to(device).eval().requires_grad_(False)
        return lambda ref, test: net(test, ref).flatten()  # LPIPS takes inputs in [-1, 1]
    if name == "dists":
        from DISTS_pytorch import DISTS

        net = DISTS().to(device).eval().requires_grad_(False)
        return lambda ref, test: net((ref + 1) / 2, (test + 1) / 2, batch_average=False)  # DISTS wants [0, 1]
    import pyiqa

    metric = pyiqa.create_metric(name, device=device, as_loss=False)
    return lambda ref, test: metric((test + 1) / 2).flatten()  # no-reference: the test image only
