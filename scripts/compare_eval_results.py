"""Two evaluations of one photo set, before and after a change to the model, photo by photo.

    python scripts/compare_eval_results.py docs/evaluation/stress-set/results-16x.json NEW/results-16x.json

For each: the model's mean PSNR-Y, MS-SSIM-Y and SSIMULACRA2, its mean and worst photo against bicubic, how many
photos fall more than the margin below bicubic, the same as verified ingest stores them and with the quality margin
alone (thumbnails as made, no bound), and by category (a photo's name up to its first "-", as the stress set names
them: `fog-deer-meadow` is fog), the mean and worst against bicubic. Then what the change
did to each photo: how many gain and lose, the largest changes, and the photos that crossed the margin either way.
A mean hides the photo a user loses; this is what the training log and the cards quote beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: the model package is the repository's

from model.evaluation import per_photo  # noqa: E402
from model.evaluation.evaluate import Row  # noqa: E402
from model.quality import BOUNDED  # noqa: E402

UNCHANGED_DB = 0.005  # a change that rounds to +0.00 dB (run-to-run noise of threads) counts as none


def summary(rows: list[Row], method: str) -> list[str]:
    """The lines that describe one evaluation."""
    mine = [r for r in rows if r.method == method]
    means = {m: sum(r.scores[m] for r in mine) / len(mine) for m in ("psnr_y", "ms_ssim_y", "ssimulacra2")
             if all(m in r.scores for r in mine)}
    lines = ["  " + ", ".join(f"{m} {v:.4f}" for m, v in means.items())]
    as_made = [r for r in rows if r.method != method + BOUNDED]
    for label, result in (("against bicubic", per_photo.against_reference(rows, method)),
                          ("as verified ingest stores it", per_photo.verified(rows, method)),
                          ("with the quality margin alone", per_photo.verified(as_made, method,
                                                                               max_deviation=math.inf))):
        if result is None:
            continue
        worst = result["worst"]
        line = (f"  {label}: {result['mean_delta_psnr_y']:+.3f} dB, worst {worst['image']} "
                f"{worst['delta_psnr_y']:+.2f} dB, more than {per_photo.MARGIN_DB} dB below: "
                f"{result[f'below_by_more_than_{per_photo.MARGIN_DB}']}")
        if "fallbacks" in result:  # stored plain: by verified ingest, and by the model's plain rule
            line += f", plain thumbnails: {result['fallbacks'] + len(result['plain_by_rule'])}"
        elif result["plain_by_rule"]:
            line += f", plain by the model's rule: {len(result['plain_by_rule'])}"
        lines.append(line)
    categories = by_category(rows, method)
    if categories:
        lines.append("  by category, mean (worst) against bicubic: " + ", ".join(
            f"{name} {mean:+.2f} ({worst:+.2f})" for name, (mean, worst) in categories.items()))
    return lines


def by_category(rows: list[Row], method: str) -> dict[str, tuple[float, float]]:
    """category -> the mean and the worst of ``method``'s PSNR-Y minus bicubic's, best category first."""
    deltas: dict[str, list[float]] = defaultdict(list)
    for name, (delta, _) in per_photo.psnr_deltas(rows, method).items():
        deltas[name.split("-", 1)[0]].append(delta)
    means = {name: (sum(d) / len(d), min(d)) for name, d in deltas.items()}
    return dict(sorted(means.items(), key=lambda item: -item[1][0]))


def changes(old: list[Row], new: list[Row], method: str, top: int) -> list[str]:
    """What the change did to each photo's PSNR-Y, and which photos crossed the margin below bicubic."""
    before, after = per_photo.by_photo(old), per_photo.by_photo(new)
    delta = {name: after[name][method].scores["psnr_y"] - before[name][method].scores["psnr_y"] for name in after}
    ranked = sorted(delta, key=delta.__getitem__)
    gained = [n for n in ranked if delta[n] >= UNCHANGED_DB]
    lost = [n for n in ranked if delta[n] <= -UNCHANGED_DB]
    lines = [f"per photo: {len(gained)} gain, {len(lost)} lose, {len(delta) - len(gained) - len(lost)} within "
             f"{UNCHANGED_DB} dB",
             "  lost most: " + (", ".join(f"{n} {delta[n]:+.2f}" for n in lost[:top]) or "none"),
             "  gained most: " + (", ".join(f"{n} {delta[n]:+.2f}" for n in reversed(gained[-top:])) or "none")]

    def shortfall(photos: dict[str, dict[str, Row]], name: str) -> float:
        return photos[name][method].scores["psnr_y"] - photos[name][per_photo.REFERENCE].scores["psnr_y"]

    for label, now_below in (("now more than", True), ("no longer more than", False)):
        crossed = [n for n in ranked if (shortfall(after, n) < -per_photo.MARGIN_DB) == now_below
                   and (shortfall(before, n) < -per_photo.MARGIN_DB) != now_below]
        lines.append(f"  {label} {per_photo.MARGIN_DB} dB below bicubic: " + (", ".join(
            f"{n} {shortfall(before, n):+.2f} -> {shortfall(after, n):+.2f}" for n in crossed) or "none"))
    return lines


def compare(old_doc: dict, new_doc: dict, top: int = 5) -> list[str]:
    """The report; raises ValueError where the two are not evaluations of one set at one scale by one model."""
    if old_doc["scale"] != new_doc["scale"]:
        raise ValueError(f"the evaluations are of different scales: {old_doc['scale']}x and {new_doc['scale']}x")
    old, new = per_photo.rows_of(old_doc), per_photo.rows_of(new_doc)
    old_names, new_names = set(per_photo.by_photo(old)), set(per_photo.by_photo(new))
    if old_names != new_names:
        odd = sorted(old_names ^ new_names)
        raise ValueError(f"the evaluations are of different photos: {len(odd)} in one only, e.g. {odd[0]}")
    method = per_photo.model_method(new)
    if method is None or method != per_photo.model_method(old):
        raise ValueError("both evaluations must score the same model method (e.g. tadm-nano)")
    return (["before:", *summary(old, method), "after:", *summary(new, method), *changes(old, new, method, top)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path, help="results-<scale>x.json before the change")
    p.add_argument("after", type=Path, help="results-<scale>x.json after it, of the same photos")
    p.add_argument("--top", type=int, default=5, help="how many of the largest changes to name each way")
    args = p.parse_args(argv)
    try:
        lines = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()), args.top)
    except (OSError, ValueError, KeyError) as exc:
        print(f"compare_eval_results: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
