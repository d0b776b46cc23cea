"""The page says when the stored thumbnail was pulled in to the deviation bound (Playwright, Debian's Chromium,
a live `tadm serve --dev` with the nano model).

The bound is set from the photo itself, at the 90th percentile of its thumbnail's 4x4-block deviations, so that
a tenth of the blocks go beyond it and the rest of the thumbnail still gives the photo back: the upload is stored
as the model's thumbnail, pulled in, and the page must say so with the deviation the image record holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from model.evaluation.metrics import block_deviations
from model.pipeline import TADMPipeline
from model.thumbnail import plain_thumbnail_image

pytestmark = pytest.mark.slow

UPLOAD_TIMEOUT_MS = 120_000
# The dev server's model: the embedded default.
NANO_16X = Path(__file__).resolve().parents[2] / "model" / "weights" / "nano-16x"


@pytest.fixture(scope="module")
def tight_server(kodak_image: Path) -> Iterator[str]:
    from tests.client.devserver import DevServer

    pipeline = TADMPipeline.from_pretrained(NANO_16X, device="cpu")
    with Image.open(kodak_image) as opened:
        photo = opened.convert("RGB")
    learned = np.asarray(pipeline.downscale(photo).image)
    reference = np.asarray(plain_thumbnail_image(photo, pipeline.scale))
    bound = float(np.percentile(block_deviations(reference, learned), 90))
    server = DevServer({"TADM_VERIFY_THUMBNAIL_MAX_DEVIATION": f"{bound:.3f}"})
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_a_pulled_in_thumbnail_is_labelled_with_its_deviation(browser, tight_server: str, kodak_image: Path):
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(tight_server + "/")
        page.set_input_files("#file-input", str(kodak_image))
        page.wait_for_function("document.getElementById('upload-status').textContent.startsWith('Stored as')",
                               timeout=UPLOAD_TIMEOUT_MS)
        image_id = page.inner_text("#upload-status").removeprefix("Stored as ").rstrip(".")
        quality = httpx.get(f"{tight_server}/v1/images/{image_id}").json()["quality"]
        assert quality["method"] == "tadm" and quality["thumbnail_pulled_in"] is True, quality
        facts = page.inner_text("#image-facts")
        assert "pulled in" in facts and f"within {quality['thumbnail_deviation']:.1f} levels" in facts, facts
        assert "plain thumbnail (" not in facts
        assert not errors, errors
    finally:
        context.close()
