"""End to end in a browser: Playwright drives Debian's Chromium against a live `tadm serve --dev`.

A Kodak photo goes through the page the way a person would use it: choose the file, watch the upload, see the
thumbnail, reconstruct, compare. The test fails if the thumbnail or the reconstruction does not appear.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# The dev server's nano model on 2 shared CPU cores; the reconstruction of 768x512 is the slow step.
RECONSTRUCTION_TIMEOUT_MS = 180_000
UPLOAD_TIMEOUT_MS = 120_000


@pytest.fixture
def page(browser, server_url: str):
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_url + "/")
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def upload_via_page(page, path: Path) -> str:
    """Choose a file in the page, wait for the upload to end; the stored image's id."""
    page.set_input_files("#file-input", str(path))
    page.wait_for_function("(() => { const s = document.getElementById('upload-status');"
                           " return s.textContent.startsWith('Stored as') || s.classList.contains('error'); })()",
                           timeout=UPLOAD_TIMEOUT_MS)
    status = page.inner_text("#upload-status")
    assert status.startswith("Stored as"), status
    return status.removeprefix("Stored as ").rstrip(".")


def loaded_width(page, selector: str) -> int:
    return page.eval_on_selector(selector, "img => img.complete ? img.naturalWidth : 0")


def test_upload_thumbnail_reconstruct_compare(page, server_url: str, kodak_image: Path, tmp_path: Path) -> None:
    # Honest labels: the model from /v1/info and what it measured (for a preview, in the notice).
    import httpx

    page.wait_for_function("document.getElementById('model-label').textContent.includes('preset nano')")
    assert "16×" in page.inner_text("#model-label")
    (model,) = httpx.get(server_url + "/v1/info").json()["models"]
    if model["quality"] and model["quality"]["preview"]:
        assert "· preview" in page.inner_text("#model-label")
        assert page.is_visible("#model-warning") and "preview model:" in page.inner_text("#model-warning")
        assert not page.is_visible("#model-quality")
    else:
        assert not page.is_visible("#model-warning")
        if model["quality"]:  # a released model: its measured figures under the label
            assert page.is_visible("#model-quality")
            quality = page.inner_text("#model-quality")
            assert f"{model['quality']['psnr_y']:.2f} dB PSNR-Y" in quality, quality
            assert f"bicubic's {model['quality']['bicubic_psnr_y']:.2f} dB" in quality, quality

    image_id = upload_via_page(page, kodak_image)
    # The thumbnail at its real size: 768x512 / 16 = 48x32 pixels, shown as such.
    page.wait_for_function("(() => { const t = document.getElementById('thumbnail');"
                           " return t.complete && t.naturalWidth === 48 && t.width === 48; })()")
    assert page.eval_on_selector("#thumbnail", "t => [t.naturalHeight, t.clientWidth]") == [32, 48]
    assert page.eval_on_selector("#upload-progress", "p => p.value") == 1
    facts = page.inner_text("#image-facts")
    assert "768×512" in facts and "Storage saved" in facts
    # What verification measured before the original was deleted, as the image record says.
    quality = httpx.get(f"{server_url}/v1/images/{image_id}").json()["quality"]
    assert f"{quality['psnr_y']:.2f} dB PSNR-Y" in facts and f"{quality['bicubic_psnr_y']:.2f} dB PSNR-Y" in facts
    assert ("plain thumbnail" in facts) == (quality["method"] == "plain")
    if quality["method"] == "tadm":  # the sender's colour corrections, as the record says
        assert ("a colour map" in facts) == quality["colour_map"], facts
        lattice = quality["colour_lattice"]
        assert (f"a {lattice} lattice of colour maps" in facts) if lattice else ("lattice" not in facts), facts
        assert ("Colour correction\nnone" in facts) == (not quality["colour_map"] and not lattice), facts
    page.wait_for_selector(f"#recent-list li[data-id='{image_id}']")

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.click("#reconstruct-button")
    page.wait_for_function("(() => { const r = document.getElementById('reconstruction');"
                           " return r.complete && r.naturalWidth === 768; })()", timeout=RECONSTRUCTION_TIMEOUT_MS)
    assert page.is_visible("#compare")
    assert loaded_width(page, "#original") == 768  # the uploaded file, kept in the tab for the comparison
    assert page.eval_on_selector("#reconstruct-progress", "p => p.value") == 1
    assert page.inner_text("#left-label") == "Original (your file)"
    # The verifying reconstruction is the first cached /full: no job to follow.
    assert not any(url.endswith("/events") for url in requests), requests

    # The slider moves the divider; zoom scales the stage.
    page.fill("#split-slider", "30")
    assert page.eval_on_selector("#stage", "s => s.style.getPropertyValue('--split')") == "30%"
    stage_width = page.eval_on_selector("#stage", "s => s.getBoundingClientRect().width")
    page.locator("#stage").click(position={"x": stage_width * 0.75, "y": 10})  # drag on the image works too
    assert page.eval_on_selector("#stage", "s => s.style.getPropertyValue('--split')") == "75%"
    page.select_option("#zoom-select", "2")
    assert page.eval_on_selector("#stage", "s => s.getBoundingClientRect().width") == 1536
    # Side by side at 100 %: two 768-pixel panes, the reconstruction in the right one.
    page.select_option("#zoom-select", "1")
    page.select_option("#layout-select", "side")
    assert page.eval_on_selector("#stage", "s => s.getBoundingClientRect().width") == 1536
    assert page.eval_on_selector("#reconstruction", "r => [r.offsetLeft, r.offsetWidth]") == [768, 768]
    page.select_option("#layout-select", "overlay")
    page.select_option("#zoom-select", "fit")

    page.screenshot(path=str(tmp_path / "web.png"), full_page=True)
    assert (tmp_path / "web.png").stat().st_size > 10_000


def test_a_bad_file_shows_its_problem_type(page, tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is text with a .png name")
    page.set_input_files("#file-input", str(not_an_image))
    page.wait_for_function("document.getElementById('upload-status').classList.contains('error')")
    assert "unsupported-media-type" in page.inner_text("#upload-status")
    assert page.is_hidden("#image-section")


def test_recent_image_reopens_without_its_original_and_deletes(page, kodak_image: Path) -> None:
    image_id = upload_via_page(page, kodak_image)  # the same photo as above: the service has its record

    page.reload()  # a new tab has no original file: the comparison must say what it shows instead
    item = page.locator(f"#recent-list li[data-id='{image_id}']")
    item.get_by_role("button", name="Open").click()
    assert page.is_visible("#image-section")
    page.click("#reconstruct-button")
    page.wait_for_function("(() => { const r = document.getElementById('reconstruction');"
                           " return r.complete && r.naturalWidth === 768; })()", timeout=RECONSTRUCTION_TIMEOUT_MS)
    assert page.inner_text("#left-label").startswith("Thumbnail, browser-upscaled")

    item.get_by_role("button", name="Delete").click()
    item.wait_for(state="detached")
    assert page.is_hidden("#image-section")
