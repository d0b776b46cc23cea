"""What a model measured, and whether it is still a preview, read from its ``training.json``.

A model is a *preview* until it reaches the quality target on Kodak-24: PSNR-Y at least bicubic + 1.5 dB at 16x
(+ 1.0 dB at 32x) and MS-SSIM-Y above bicubic's. The figures are the latest evaluation recorded for exactly these
weights (the same model id, recorded by ``scripts/ship.py``); a model without one has no measured quality, and
nothing is claimed for it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

RELEASE_MARGIN_DB = {16: 1.5, 32: 1.0}
HISTORY_NAME = "training.json"
# An evaluation's model rows: ``tadm-<preset>``, and its variants named by these suffixes (G_d's latent decoded
# without the diffusion step; the thumbnail held within the deviation bound, as the service stores it).
DIRECT, BOUNDED = "-direct", "-bounded"


def is_model_method(method: str) -> bool:
    """A TADM method (``tadm-<preset>``) of an evaluation, not one of its variants."""
    return method.startswith("tadm-") and not method.endswith((DIRECT, BOUNDED))


@dataclass(frozen=True)
class MeasuredQuality:
    """The model's and bicubic's scores on one evaluation set, and whether the model is a preview."""

    evaluation_set: str
    images: int
    psnr_y: float
    bicubic_psnr_y: float
    ms_ssim_y: float | None
    bicubic_ms_ssim_y: float | None
    release_psnr_y: float  # the PSNR-Y the quality target asks for
    preview: bool

    def summary(self) -> str:
        label = "preview model" if self.preview else "model"
        return (f"{label}: {self.psnr_y:.2f} dB PSNR-Y on {self.evaluation_set} ({self.images} photos) against bicubic's "
                f"{self.bicubic_psnr_y:.2f} dB; the quality target is {self.release_psnr_y:.2f} dB")

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary()}


def measured_quality(model_dir: str | Path, model_id: str, scale: int) -> MeasuredQuality | None:
    """The latest recorded evaluation of these weights against bicubic, or None when there is none."""
    path = Path(model_dir) / HISTORY_NAME
    if not path.is_file():
        return None
    history = json.loads(path.read_text())
    evaluations = history.get("evaluations", []) if isinstance(history, dict) else []
    for record in reversed(evaluations):
        methods = record.get("methods", {})
        ours = next((v for k, v in methods.items() if is_model_method(k)), None)
        bicubic = methods.get("bicubic")
        if record.get("model_id") != model_id or ours is None or bicubic is None:
            continue
        release = bicubic["psnr_y"] + RELEASE_MARGIN_DB.get(scale, 1.5)
        ms_ssim, bicubic_ms_ssim = ours.get("ms_ssim_y"), bicubic.get("ms_ssim_y")
        structure_ok = ms_ssim is not None and bicubic_ms_ssim is not None and ms_ssim > bicubic_ms_ssim
        return MeasuredQuality(
            evaluation_set=str(record.get("set", "?")), images=int(ours.get("images", 0)), psnr_y=ours["psnr_y"],
            bicubic_psnr_y=bicubic["psnr_y"], ms_ssim_y=ms_ssim, bicubic_ms_ssim_y=bicubic_ms_ssim,
            release_psnr_y=round(release, 2), preview=not (ours["psnr_y"] >= release and structure_ok),
        )
    return None
