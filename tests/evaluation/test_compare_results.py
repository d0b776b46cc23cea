"""Two evaluations of one set compared photo by photo: the figures the training log quotes for a change."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

from model.evaluation import per_photo
from model.evaluation.evaluate import made_plain

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "compare_eval_results.py"
WHOLE = REPO / "docs" / "evaluation" / "stress-set" / "results-16x.json"


def run(tmp_path: Path, before: dict, after: dict) -> subprocess.CompletedProcess:
    (tmp_path / "before.json").write_text(json.dumps(before))
    (tmp_path / "after.json").write_text(json.dumps(after))
    return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "before.json"), str(tmp_path / "after.json")],
                          capture_output=True, text=True)


def shifted(doc: dict, changes: dict[str, float]) -> dict:
    """``doc`` with the model's PSNR-Y of the named photos moved by the given dB, its summaries made again."""
    moved = copy.deepcopy(doc)
    for photo in moved["photos"]:
        if photo["image"] in changes:
            photo["methods"]["tadm-nano"]["psnr_y"] += changes[photo["image"]]
    return per_photo.document(per_photo.rows_of(moved), moved["title"], moved["scale"])


def test_a_change_is_reported_per_photo_with_the_photos_that_cross_the_margin(tmp_path):
    whole = json.loads(WHOLE.read_text())
    shortfall = {p["image"]: p["methods"]["tadm-nano"]["psnr_y"] - p["methods"]["bicubic"]["psnr_y"]
                 for p in whole["photos"]}
    above = max(shortfall, key=shortfall.__getitem__)  # the photo furthest above bicubic...
    below = min(shortfall, key=shortfall.__getitem__)  # ...and the worst one, first put 2 dB below bicubic
    before = shifted(whole, {below: -shortfall[below] - 2.0})
    shortfall[below] = -2.0
    tiny = next(name for name in sorted(shortfall) if name not in {above, below})
    after = shifted(before, {above: -(shortfall[above] + 1.0), below: -shortfall[below] + 0.1,
                             tiny: 0.004})  # a change too small to count
    done = run(tmp_path, before, after)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "per photo: 1 gain, 1 lose, 51 within 0.005 dB" in out
    assert re.search(rf"lost most: {re.escape(above)} -{shortfall[above] + 1.0:.2f}\n", out), out
    assert f"now more than 0.5 dB below bicubic: {above} {shortfall[above]:+.2f} -> -1.00" in out
    assert f"no longer more than 0.5 dB below bicubic: {below} {shortfall[below]:+.2f} -> +0.10" in out
    # each evaluation's own summary, as the JSON states it
    for label, doc in (("before:", before), ("after:", after)):
        part = out.split(label, 1)[1]
        model = doc["model_vs_bicubic"]
        assert f"against bicubic: {model['mean_delta_psnr_y']:+.3f} dB, worst {model['worst']['image']}" in part
        verified = doc["verified_vs_bicubic"]
        assert f"plain thumbnails: {verified['fallbacks'] + len(verified['plain_by_rule'])}" in part


def test_evaluations_of_other_photos_or_scales_are_refused(tmp_path):
    whole = json.loads(WHOLE.read_text())
    fewer = per_photo.document(per_photo.rows_of({**whole, "photos": whole["photos"][1:]}), "part", 16)
    done = run(tmp_path, whole, fewer)
    assert done.returncode == 2 and "different photos: 1 in one only" in done.stderr
    done = run(tmp_path, whole, {**whole, "scale": 32})
    assert done.returncode == 2 and "different scales: 16x and 32x" in done.stderr


def test_each_evaluation_is_summed_up_by_category_and_with_the_quality_margin_alone(tmp_path):
    whole = json.loads(WHOLE.read_text())
    # move the sunset photo furthest below bicubic well above it, to see the category follow
    sunsets = {p["image"]: p["methods"]["tadm-nano"]["psnr_y"] - p["methods"]["bicubic"]["psnr_y"]
               for p in whole["photos"] if p["image"].startswith("sunset-")}
    worst = min(sunsets, key=sunsets.__getitem__)
    after = shifted(whole, {worst: -sunsets[worst] + 3.0})
    done = run(tmp_path, whole, after)
    assert done.returncode == 0, done.stderr
    before_part, after_part = done.stdout.split("after:", 1)
    mean_before = sum(sunsets.values()) / len(sunsets)
    moved = {**sunsets, worst: 3.0}
    mean_after = sum(moved.values()) / len(moved)
    assert f"sunset {mean_before:+.2f} ({min(sunsets.values()):+.2f})" in before_part
    assert f"sunset {mean_after:+.2f} ({min(moved.values()):+.2f})" in after_part
    # the quality margin alone: a thumbnail beyond the bound is stored as made, so only quality makes one plain
    rows = per_photo.rows_of(whole)
    deltas = {name: m["tadm-nano"].scores["psnr_y"] - m["bicubic"].scores["psnr_y"]
              for name, m in per_photo.by_photo(rows).items()}
    by_rule = [n for n, m in per_photo.by_photo(rows).items() if made_plain(m["tadm-nano"].detail)]
    plain = sum(d < -per_photo.MARGIN_DB for d in deltas.values()) + len(by_rule)
    kept = sum(0.0 if d < -per_photo.MARGIN_DB else d for d in deltas.values()) / len(deltas)
    line = next(x for x in before_part.splitlines() if "quality margin alone" in x)
    assert line.startswith(f"  with the quality margin alone: {kept:+.3f} dB") and line.endswith(f"thumbnails: {plain}")
