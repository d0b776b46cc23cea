"""Two evaluations of one set compared photo by photo: the figures the training log quotes for a change."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

from model.evaluation import per_photo

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
    before = json.loads(WHOLE.read_text())
    shortfall = {p["image"]: p["methods"]["tadm-nano"]["psnr_y"] - p["methods"]["bicubic"]["psnr_y"]
                 for p in before["photos"]}
    above = max(shortfall, key=shortfall.__getitem__)  # the photo furthest above bicubic...
    below = min(shortfall, key=shortfall.__getitem__)  # ...and the worst one
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
        assert f"plain thumbnails: {doc['verified_vs_bicubic']['fallbacks']}" in part


def test_evaluations_of_other_photos_or_scales_are_refused(tmp_path):
    whole = json.loads(WHOLE.read_text())
    fewer = per_photo.document(per_photo.rows_of({**whole, "photos": whole["photos"][1:]}), "part", 16)
    done = run(tmp_path, whole, fewer)
    assert done.returncode == 2 and "different photos: 1 in one only" in done.stderr
    done = run(tmp_path, whole, {**whole, "scale": 32})
    assert done.returncode == 2 and "different scales: 16x and 32x" in done.stderr
