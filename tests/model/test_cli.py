"""The `tadm` model commands, run as a user runs them (a subprocess of the installed entry point)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import Thumbnail


def tadm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("tadm", path=str(Path(sys.executable).parent)) or "tadm"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_downscale_then_upscale(tmp_path, kodak_image):
    down = tadm("downscale", str(kodak_image), "-o", "t.png", "--preset", "tiny", "--device", "cpu", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "bpp" in down.stdout
    thumb = Thumbnail.from_png((tmp_path / "t.png").read_bytes())
    assert thumb.image.size == (48, 32)
    # --tile-batch: the first spelling of --tile-batch-size, still accepted
    up = tadm("upscale", "t.png", "-o", "out.png", "--preset", "tiny", "--device", "cpu", "--tile-batch", "2",
              cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (768, 512)
        exact = np.asarray(out)
    # --attention-pool serves the model with its finest self-attention pooled (model.attention): another result
    pooled = tadm("upscale", "t.png", "-o", "pooled.png", "--preset", "tiny", "--device", "cpu", "--attention-pool",
                  "2", cwd=tmp_path)
    assert pooled.returncode == 0, pooled.stderr
    with Image.open(tmp_path / "pooled.png") as out:
        assert out.size == (768, 512) and not np.array_equal(np.asarray(out), exact)
    # a stride alone is checked against the model's own tile size (tiny: the paper's 96) once it is loaded
    gaps = tadm("upscale", "t.png", "-o", "x.png", "--preset", "tiny", "--device", "cpu", "--tile-stride", "200",
                cwd=tmp_path)
    assert gaps.returncode == 1 and "`tile_stride` (200) larger than `tile_size` (96)" in gaps.stderr
    # the wrong scale is refused with a message naming both
    wrong = tadm("upscale", "t.png", "-o", "x.png", "--model", str(tmp_path / "none"), cwd=tmp_path)
    assert wrong.returncode == 1 and "not a TADM model directory" in wrong.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["downscale", "missing.jpg", "-o", "t.png", "--preset", "tiny"], "no such image"),
        (["downscale", "notes.png", "-o", "t.png", "--preset", "tiny"], "not a readable image"),
        (["upscale", "notes.png", "-o", "o.png", "--preset", "tiny"], "must be a PNG"),
        (["downscale", "notes.png", "-o", "t.png", "--model", "nowhere"], "not a TADM model directory"),
        (["upscale", "notes.png", "-o", "o.png", "--tile-size", "64", "--tile-stride", "200"],
         "`tile_stride` (200) larger than `tile_size` (64)"),  # refused before the thumbnail is read
    ],
)
def test_clear_messages(tmp_path, args, message):
    (tmp_path / "notes.png").write_text("this is a text file named .png")
    result = tadm(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_downscale_says_when_the_models_plain_rule_made_the_thumbnail_plain(tmp_path, kodak_image):
    nano16 = Path(__file__).resolve().parents[2] / "model" / "weights" / "nano-16x"
    with Image.open(kodak_image) as photo:  # out of focus: bicubic from a 16x thumbnail gives it back nearly exactly
        photo.convert("RGB").resize((24, 16), Image.Resampling.BOX).resize((768, 512), Image.Resampling.BICUBIC).save(
            tmp_path / "soft.png")
    plain = tadm("downscale", "soft.png", "-o", "p.png", "--model", str(nano16), "--device", "cpu", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "plain: bicubic already gives it back at" in plain.stdout and "the model's plain rule" in plain.stdout
    assert Thumbnail.from_png((tmp_path / "p.png").read_bytes()).plain
    learned = tadm("downscale", "soft.png", "-o", "l.png", "--model", str(nano16), "--device", "cpu", "--learned",
                   cwd=tmp_path)
    assert learned.returncode == 0, learned.stderr
    thumb = Thumbnail.from_png((tmp_path / "l.png").read_bytes())
    assert not thumb.plain and thumb.model_id is not None and f"model {thumb.model_id}" in learned.stdout


def test_downscale_can_store_the_colour_map_verified_ingest_stores(tmp_path, kodak_dir):
    nano16 = Path(__file__).resolve().parents[2] / "model" / "weights" / "nano-16x"
    with Image.open(kodak_dir / "kodak__kodim07.png") as photo:  # textured: the model's thumbnail, with a map
        photo.convert("RGB").crop((256, 128, 512, 384)).save(tmp_path / "crop.png")
    mapped = tadm("downscale", "crop.png", "-o", "m.png", "--model", str(nano16), "--device", "cpu", "--colour-map",
                  cwd=tmp_path)
    assert mapped.returncode == 0, mapped.stderr
    assert "with a colour map" in mapped.stdout
    with_map = Thumbnail.from_png((tmp_path / "m.png").read_bytes())
    assert with_map.colour_map is not None
    plain = tadm("downscale", "crop.png", "-o", "p.png", "--model", str(nano16), "--device", "cpu", cwd=tmp_path)
    assert plain.returncode == 0 and Thumbnail.from_png((tmp_path / "p.png").read_bytes()).colour_map is None
    # a model without a consistency step has nothing to fit a map to: said so, nothing written
    tiny = tadm("downscale", "crop.png", "-o", "t.png", "--preset", "tiny", "--device", "cpu", "--colour-map",
                cwd=tmp_path)
    assert tiny.returncode == 1 and "no consistency step" in tiny.stderr and not (tmp_path / "t.png").exists()
