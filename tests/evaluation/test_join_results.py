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


def _beyond(doc: dict) -> list[dict]:
    """The photos whose model thumbnail strays beyond the bound."""
    return [p for p in doc["photos"] if p["methods"]["tadm-nano"]["thumbnail_worst"] > per_photo.MAX_DEVIATION]


def _as_made(doc: dict) -> dict:
    """An evaluation as `tadm eval` wrote it before it scored the thumbnail held within the bound."""
    photos = [{**p, "methods": {m: r for m, r in p["methods"].items() if not m.endswith("-bounded")}}
              for p in doc["photos"]]
    return per_photo.document(per_photo.rows_of({**doc, "photos": photos}), doc["title"], doc["scale"])


def test_an_update_replaces_the_photos_evaluated_again_and_keeps_the_rest_with_their_bounded_result(tmp_path):
    whole = _as_made(json.loads(WHOLE.read_text()))
    again = []
    for photo in _beyond(whole):  # as `tadm eval` now writes them: with the thumbnail pulled in, scored again
        model = photo["methods"]["tadm-nano"]
        bounded = {**model, "thumbnail_worst": 47.0, "psnr_y": model["psnr_y"] - 1.0}
        again.append({**photo, "methods": {"tadm-nano": model, "tadm-nano-bounded": bounded,
                                           "bicubic": photo["methods"]["bicubic"]}})
    assert 0 < len(again) < len(whole["photos"])
    (tmp_path / "again.json").write_text(json.dumps(part(whole, again)))
    (tmp_path / "whole.json").write_text(json.dumps(whole))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "join_eval_results.py"),
                           str(tmp_path / "again.json"), "--base", str(tmp_path / "whole.json"),
                           "--title", "images", "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    updated = json.loads((tmp_path / "out" / "results-16x.json").read_text())
    assert [p["image"] for p in updated["photos"]] == [p["image"] for p in whole["photos"]]
    replaced = {p["image"] for p in again}
    for photo in updated["photos"]:
        methods = photo["methods"]
        assert list(methods) == ["tadm-nano", "tadm-nano-bounded", "bicubic"]
        model, bounded = methods["tadm-nano"], methods["tadm-nano-bounded"]
        if photo["image"] in replaced:
            assert bounded["psnr_y"] == pytest.approx(model["psnr_y"] - 1.0, abs=1e-6)
        else:  # within the bound: stored as made, the model's own result
            assert {k: v for k, v in bounded.items() if k != "detail"} == {k: v for k, v in model.items()
                                                                           if k != "detail"}
            assert bounded["detail"].endswith("within 48 levels as made")
    # as the service stores them: no photo falls back for its deviation any more, only for its reconstruction
    kept = updated["verified_vs_bicubic"]
    assert kept["fallbacks"] < whole["verified_vs_bicubic"]["fallbacks"]
    assert updated["model_vs_bicubic"] == whole["model_vs_bicubic"]  # the model as made is unchanged


def test_an_update_that_keeps_a_photo_beyond_the_bound_is_refused():
    whole = _as_made(json.loads(WHOLE.read_text()))
    beyond = _beyond(whole)
    with pytest.raises(ValueError, match=f"{beyond[0]['image']}: its thumbnail is beyond 48 levels"):
        per_photo.updated(whole, [part(whole, beyond[1:])])
    with pytest.raises(ValueError, match="cannot update a 16x evaluation with 32x"):
        per_photo.updated(whole, [{**part(whole, beyond), "scale": 32}])
