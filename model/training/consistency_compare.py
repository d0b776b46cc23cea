"""Compare consistency steps on collected photos: each step's PSNR gain over the reconstruction without a step,
over all photos and over those where bicubic upsampling of the photo's own thumbnail beats the reconstruction
(smooth photos, where the step matters most and which a few held-out photos rarely include).

    python -m model.training.consistency compare --cache ~/.cache/tadm/consistency-32x/photos --scale 32 \\
        old=model/weights/nano-32x/consistency new=RUN/consistency

The photos include those the steps were trained on: this measures fit as much as generalisation, and goes beside
the held-out figures ``train`` reports, not in place of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from model.consistency import ThumbnailConsistency, down, pad_to_scale, up_cropped
from model.evaluation.per_photo import MARGIN_DB
from model.image_tensors import from_levels, round_to_8bit
from model.training.consistency_examples import Example, evaluate, psnr


@dataclass
class PhotoScores:
    name: str
    bicubic: float  # PSNR of bicubic upsampling of the photo's 8-bit bicubic thumbnail
    reconstruction: float  # without a step
    steps: dict[str, float]  # with each step


def bicubic_psnr(original: torch.Tensor, scale: int) -> float:
    """PSNR of the photo given back by bicubic from its own 8-bit bicubic thumbnail, on the step's grid."""
    padded = pad_to_scale(original, scale)
    thumbnail = round_to_8bit(down(padded, scale))
    (padded_h, padded_w), (h, w) = padded.shape[-2:], original.shape[-2:]
    return psnr(round_to_8bit(up_cropped(thumbnail, (padded_h, padded_w), (h, w))), original)


def score(examples: Sequence[Example], steps: Mapping[str, ThumbnailConsistency], scale: int) -> list[PhotoScores]:
    per_step = {label: evaluate(step, examples) for label, step in steps.items()}  # (name, before, after) rows
    rows = []
    for i, ex in enumerate(examples):
        before = next(iter(per_step.values()))[i][1]
        rows.append(PhotoScores(ex.name, bicubic_psnr(from_levels(ex.original), scale), before,
                                {label: results[i][2] for label, results in per_step.items()}))
    return rows


def report(rows: Sequence[PhotoScores]) -> list[str]:
    """Per group of photos, each step's mean PSNR gain over the reconstruction without a step, its worst photo, and
    how many photos end more than ``MARGIN_DB`` below bicubic (where verified ingest stores a plain thumbnail)."""
    groups = {"all": list(rows), "where bicubic wins": [r for r in rows if r.bicubic > r.reconstruction]}
    lines = []
    for group, members in groups.items():
        if not members:
            lines.append(f"{group}: no photos")
            continue
        labels = list(members[0].steps)
        gains = ", ".join(f"{label} {sum(r.steps[label] - r.reconstruction for r in members) / len(members):+.3f}"
                          for label in labels)
        lines.append(f"{group} ({len(members)} photos): mean gain over no step {gains} dB PSNR")
        worst = {label: min(members, key=lambda r: r.steps[label] - r.reconstruction) for label in labels}
        lines.append(f"{group}: worst photo " + ", ".join(
            f"{label} {worst[label].steps[label] - worst[label].reconstruction:+.3f} dB ({worst[label].name})"
            for label in labels))
        below = [sum(r.reconstruction < r.bicubic - MARGIN_DB for r in members)]
        below += [sum(r.steps[label] < r.bicubic - MARGIN_DB for r in members) for label in labels]
        lines.append(f"{group}: more than {MARGIN_DB} dB below bicubic: no step {below[0]}, " + ", ".join(
            f"{label} {count}" for label, count in zip(labels, below[1:], strict=True)))
    return lines
