"""Choosing a model's plain rule (:mod:`model.plain_rule`) on its training photos.

    python -m model.training.plain_rule_choice --cache CACHE --model DIR [--write]

``CACHE`` is what ``python -m model.training.consistency collect`` left for the model: per photo the original
and the reconstruction without the consistency step. Each reconstruction is corrected by the model's step, as
the pipeline serves it, and scored against bicubic from a plain thumbnail, both in PSNR-Y as ``tadm eval``
measures them. Hard-scene variants are left out: the rule is for real photos.

The threshold chosen is the one that maximises the mean of the model's PSNR-Y over bicubic's on those photos when
every photo whose bicubic figure reaches it counts as bicubic's (0 dB): the photos sorted by their bicubic
figure, from the top, the cut where the running sum of the model's gains is lowest, placed midway between the
last photo made plain and the next. No cut is chosen where no run from the top loses on the whole: then the model
gets no rule (``--write`` then removes one it had). Photos the cache lacks (a collection may keep only those bicubic already gives back well) count as
kept; a threshold is never placed below the lowest one collected.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.consistency import load_consistency
from model.evaluation.metrics import psnr, rgb_to_y
from model.image_tensors import from_levels, tensor_to_uint8
from model.plain_rule import RULE_NAME, PlainRule, bicubic_psnr_y
from model.training.consistency import VARIANT_MARK, portable, say
from model.training.consistency_examples import Example, load_examples


@dataclass(frozen=True)
class Scored:
    name: str
    bicubic: float  # PSNR-Y of bicubic from the photo's plain thumbnail
    model: float  # PSNR-Y of the model's reconstruction, with its step where it has one

    @property
    def gain(self) -> float:
        return self.model - self.bicubic


@dataclass(frozen=True)
class Choice:
    threshold: float | None  # None: no cut pays
    plain: list[Scored]  # the photos the rule makes plain, highest bicubic figure first
    kept: list[Scored]

    def mean_gain(self, rule: bool) -> float:
        photos = self.plain + self.kept
        return sum(p.gain for p in (self.kept if rule else photos)) / len(photos)


def score(example: Example, scale: int, step) -> Scored:
    original = example.original[0].permute(1, 2, 0).numpy()
    reconstruction = from_levels(example.reconstruction)
    if step is not None:
        with torch.no_grad():
            reconstruction = step.correct(example.thumbnail, reconstruction)
    rebuilt = tensor_to_uint8(reconstruction)
    return Scored(example.name, bicubic_psnr_y(original, scale),
                  psnr(rgb_to_y(original), rgb_to_y(np.asarray(rebuilt))))


def choose(photos: Sequence[Scored]) -> Choice:
    """The cut that maximises the mean gain over bicubic (module docstring)."""
    ranked = sorted(photos, key=lambda p: p.bicubic, reverse=True)
    running, best, best_at = 0.0, 0.0, 0
    for i, photo in enumerate(ranked, 1):
        running += photo.gain
        if running < best:
            best, best_at = running, i
    if best_at == 0:
        return Choice(None, [], ranked)
    last = ranked[best_at - 1].bicubic
    below = ranked[best_at].bicubic if best_at < len(ranked) else last
    return Choice((last + below) / 2, ranked[:best_at], ranked[best_at:])


def describe(choice: Choice) -> str:
    """How the threshold was chosen, for the rule's record and the model card."""
    photos = choice.plain + choice.kept
    worst = min(choice.kept, key=lambda p: p.gain) if choice.kept else None
    text = (f"maximises the mean PSNR-Y over bicubic on {len(photos)} collected training photos (bicubic gives "
            f"them back at {min(p.bicubic for p in photos):.2f} to {max(p.bicubic for p in photos):.2f} dB): "
            f"{len(choice.plain)} made plain, mean {choice.mean_gain(False):+.3f} -> {choice.mean_gain(True):+.3f} dB")
    if worst is not None:
        text += f", worst photo kept {worst.gain:+.2f} dB ({worst.name})"
    return f"{text}; {datetime.date.today().isoformat()}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.training.plain_rule_choice", description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="the photos collected through the model")
    p.add_argument("--model", type=Path, required=True, help="the model directory (its scale and step)")
    p.add_argument("--write", action="store_true", help="save the chosen rule in the model directory")
    args = p.parse_args(argv)
    from model import checkpoints

    scale = int(checkpoints.read_config(args.model)["scale"])
    step = load_consistency(args.model, scale)
    examples = [ex for ex in load_examples(args.cache) if VARIANT_MARK not in ex.name]
    if not examples:
        sys.exit(f"error: no collected photos in {args.cache}")
    photos = [score(ex, scale, step) for ex in examples]
    choice = choose(photos)
    say(f"{len(photos)} photos from {portable(args.cache)}, {scale}x, model {portable(args.model)}"
        f"{'' if step is not None else ' (no consistency step)'}")
    say("| photo | bicubic | model | model - bicubic | plain |")
    say("|---|---|---|---|---|")
    plain = {p.name for p in choice.plain}
    for photo in choice.plain + choice.kept:
        say(f"| {photo.name} | {photo.bicubic:.2f} | {photo.model:.2f} | {photo.gain:+.2f} | "
            f"{'yes' if photo.name in plain else ''} |")
    if choice.threshold is None:
        say("no threshold pays on these photos: the model gets no plain rule")
        if args.write:
            (args.model / RULE_NAME).unlink(missing_ok=True)
        return 0
    record = describe(choice)
    say(f"threshold {choice.threshold:.2f} dB: {record}")
    if args.write:
        PlainRule(choice.threshold, record).save(args.model)
        say(f"written to {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
