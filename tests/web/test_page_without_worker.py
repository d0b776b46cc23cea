"""The page against an API with no live worker (Playwright, Debian's Chromium): what it says matches what the
API does. An upload is refused (503 not-ready), so the banner must not promise that uploads wait in the queue,
and a refused upload leaves no full progress bar behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.dev.embedded_redis import EmbeddedRedis
from tests.service.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_only(tmp_path_factory) -> Iterator[str]:
    """uvicorn serving the API on its own Redis, and no worker at all."""
    redis = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    stack = Stack(redis.url, tmp_path_factory.mktemp("api-only"), redis_server=redis)
    try:
        stack.start_api()
        yield stack.url
    finally:
        stack.close()
        redis.stop()


def test_no_worker_banner_and_a_refused_upload_agree(browser, api_only, kodak_image):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(api_only + "/")
        page.wait_for_selector("#model-warning:not([hidden])")
        banner = page.inner_text("#model-warning")
        assert "No live worker" in banner and "new uploads are refused" in banner, banner
        assert "uploads wait" not in banner

        page.set_input_files("#file-input", str(kodak_image))
        page.wait_for_function("document.getElementById('upload-status').classList.contains('error')",
                               timeout=60_000)
        status = page.inner_text("#upload-status")
        assert status.startswith("Upload failed") and "[not-ready]" in status, status
        assert page.eval_on_selector("#upload-progress", "p => p.value") == 0
        assert not errors, errors
    finally:
        context.close()
