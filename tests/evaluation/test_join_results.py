"""Evaluations of parts of a set, joined, are what one evaluation of the whole set writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from model.evaluation import per_photo

REPO = Path(__file__).resolve().parents[2]
WHOLE = REPO / "docs" / "evaluation" / "stress-set" / "results-16x.json"


def close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, abs=1e-4)
    return a == b


def part(doc: dict, photos: list[dict]) -> dict:
    return per_photo.document(per_photo.rows_of({**doc, "photos": photos}), "part", doc["scale"])


def test_two_halves_join_into_the_whole_evaluation(tmp_path):
    whole = json.loads(WHOLE.read_text())
    odd, even = whole["photos"][1::2], whole["photos"][::2]
    for name, photos in (("a", odd), ("b", even)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results-16x.json").write_text(json.dumps(part(whole, photos)))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "join_eval_results.py"),
                           str(tmp_path / "a" / "results-16x.json"), str(tmp_path / "b" / "results-16x.json"),
                           "--title", "images", "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    joined = json.loads((tmp_path / "out" / "results-16x.json").read_text())
    assert joined["title"] == whole["title"] and joined["images"] == 53
    assert joined["photos"] == whole["photos"]
    # the means are recomputed from the per-photo scores as stored (six decimals)
    for key in ("means", "model_vs_bicubic", "verified_vs_bicubic"):
        assert close(joined[key], whole[key]), key
    assert "against bicubic on 53 photos" in (tmp_path / "out" / "photos-16x.md").read_text()


def test_a_photo_in_two_parts_or_two_scales_is_refused():
    whole = json.loads(WHOLE.read_text())
    with pytest.raises(ValueError, match="more than one"):
        per_photo.joined([part(whole, whole["photos"][:3]), part(whole, whole["photos"][2:5])])
    with pytest.raises(ValueError, match="different scales"):
        per_photo.joined([whole, {**part(whole, whole["photos"][:1]), "scale": 32}])
