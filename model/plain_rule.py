"""The sender's plain rule: photos that bicubic already gives back nearly exactly get the plain thumbnail.

On a photo smooth enough that bicubic upsampling of its plain thumbnail is nearly exact (around 40 dB PSNR-Y and
up: a clear sky, a sunset, calm water, mist), the learned thumbnail cannot win: the autoencoder's own ceiling on flat areas is in
the high 30s, and the rescaler hides its detail there as colour shifts that the receiver cannot undo. Whether a
photo is such a one costs the sender one bicubic round trip and its PSNR-Y (0.18 s at 2048x2048, 0.35 s at
3840x2160 on one core of an AMD EPYC: ``scripts/bench_plain_rule.py``), against a whole reconstruction for verified
ingest, so a model may carry a threshold, chosen on its training photos, above which
:meth:`model.pipeline.TADMPipeline.downscale` returns the plain thumbnail (``"method": "plain"``, reconstructed
by bicubic upsampling) instead of its own.

The threshold is kept in ``plain_rule.json`` in the model directory, outside the config the model id hashes: the
learned thumbnails, and so every thumbnail stored before, are unchanged by it. A model without the file always
makes learned thumbnails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.evaluation.metrics import psnr, rgb_to_y
from model.thumbnail import plain_thumbnail, plain_upscale

RULE_NAME = "plain_rule.json"


def bicubic_psnr_y(original: np.ndarray, scale: int) -> float:
    """PSNR-Y of bicubic upsampling from a plain thumbnail of ``original`` (uint8 RGB) at ``scale``."""
    rebuilt = plain_upscale(plain_thumbnail(Image.fromarray(original), scale))
    return psnr(rgb_to_y(original), rgb_to_y(np.asarray(rebuilt)))


@dataclass(frozen=True)
class PlainRule:
    """Plain thumbnails for photos whose bicubic round trip reaches ``min_bicubic_psnr_y`` dB PSNR-Y.

    ``chosen``: how the threshold was chosen (kept with it, for the model card and whoever retrains)."""

    min_bicubic_psnr_y: float
    chosen: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.min_bicubic_psnr_y < 100:
            raise ValueError(f"min_bicubic_psnr_y must be a PSNR in dB, between 0 and 100, "
                             f"but is {self.min_bicubic_psnr_y}")

    def applies(self, image: Image.Image, scale: int, bicubic: float | None = None) -> bool:
        """Whether the RGB ``image`` gets the plain thumbnail at ``scale``; ``bicubic``: its
        :func:`bicubic_psnr_y` at that scale where the caller has measured it already."""
        if bicubic is None:
            bicubic = bicubic_psnr_y(np.asarray(image), scale)
        return bicubic >= self.min_bicubic_psnr_y

    def save(self, model_dir: Path) -> None:
        record = {"min_bicubic_psnr_y": self.min_bicubic_psnr_y, "chosen": self.chosen}
        (Path(model_dir) / RULE_NAME).write_text(json.dumps(record, indent=2) + "\n")


def load_plain_rule(model_dir: Path) -> PlainRule | None:
    """The rule saved in ``model_dir``, or None when the model has none."""
    path = Path(model_dir) / RULE_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return PlainRule(float(record["min_bicubic_psnr_y"]), str(record.get("chosen", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a plain rule ({exc.__class__.__name__}: {exc})") from exc
