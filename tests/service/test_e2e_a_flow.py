"""End to end through real processes: uvicorn + tiny-preset workers + Redis + local storage (the main flow
also on a Redis Cluster)."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import threading
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from model.thumbnail import Thumbnail, thumbnail_size
from tests.service.files import png_header_only

pytestmark = pytest.mark.slow


def _upload(client, path, wait=60, scale=16, **kw):
    return client.post("/v1/images", params={"scale": scale}, headers={"Prefer": f"wait={wait}"},
                       files={"file": (path.name, path.read_bytes())}, **kw)


def test_upload_thumbnail_reconstruction(any_stack, photos):
    with any_stack.client() as c:
        r = _upload(c, photos["small_png"])
        assert r.status_code == 201, r.text
        image = r.json()
        assert (image["width"], image["height"], image["scale"]) == (256, 192, 16)
        assert image["original_bytes"] == photos["small_png"].stat().st_size
        assert 0 < image["thumbnail_bytes"] < image["original_bytes"]
        assert image["saving"] == pytest.approx(1 - image["thumbnail_bytes"] / image["original_bytes"], abs=1e-5)
        info = c.get("/v1/info").json()
        assert image["model_id"] in [m["model_id"] for m in info["models"]]
        assert "RANDOM weights" in info["warning"]

        thumb = c.get(image["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
        assert thumb.headers["cache-control"] == "public, max-age=31536000, immutable"
        parsed = Thumbnail.from_png(thumb.content)
        assert parsed.image.size == (16, 12) and parsed.model_id == image["model_id"]
        assert c.get(image["thumbnail_url"], headers={"If-None-Match": thumb.headers["etag"]}).status_code == 304

        full = c.get(image["full_url"], headers={"Prefer": "wait=120"})
        assert full.status_code == 200, full.text
        assert Image.open(io.BytesIO(full.content)).size == (256, 192)
        assert full.headers["etag"].startswith('"')

        # The same thumbnail uploaded by a client is the same reconstruction, served from the cache.
        again = c.post("/v1/reconstructions", files={"file": ("t.png", thumb.content)})
        assert again.status_code == 200 and again.content == full.content

        # Another format: 202 + job, followed over Server-Sent Events to the end.
        pending = c.get(image["full_url"], params={"format": "webp"})
        assert pending.status_code == 202 and pending.headers["retry-after"]
        job = pending.json()
        assert pending.headers["location"] == f"/v1/jobs/{job['id']}"
        events = []
        with c.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    assert line == "event: job"
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        assert events[-1]["status"] == "succeeded" and events[-1]["progress"] == 1.0
        result = c.get(events[-1]["result_url"])
        assert result.status_code == 200 and result.headers["content-type"] == "image/webp"
        assert Image.open(io.BytesIO(result.content)).format == "WEBP"


def test_raw_body_uploads_listing_and_delete(stack, photos):
    with stack.client() as c:
        ids = []
        for name, ctype in (("small_jpeg", "image/jpeg"), ("small_webp", "image/webp")):
            r = c.post("/v1/images", content=photos[name].read_bytes(),
                       headers={"Content-Type": ctype, "Prefer": "wait=60"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        listed = [i["id"] for i in c.get("/v1/images", params={"limit": 2}).json()["items"]]
        assert listed == ids[::-1]  # newest first
        thumb_key = urlsplit(c.get(f"/v1/images/{ids[0]}").json()["thumbnail_url"]).path
        assert c.get(thumb_key).status_code == 200
        assert c.delete(f"/v1/images/{ids[0]}").status_code == 204
        assert c.get(f"/v1/images/{ids[0]}").json()["type"] == "urn:tadm:problem:not-found"
        assert c.get(thumb_key).status_code == 404
        assert c.get(f"/v1/images/{ids[1]}").status_code == 200  # the other image is untouched
        assert not list(stack.storage_dir.glob("originals/*"))  # originals go once thumbnails are stored


def test_duplicate_upload_is_one_image_and_one_job(stack, photos):
    data = photos["other_png"].read_bytes()
    replies = []

    def upload():
        with stack.client() as c:
            replies.append(c.post("/v1/images", headers={"Prefer": "wait=0"}, files={"file": ("a.png", data)}))

    threads = [threading.Thread(target=upload) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code in (201, 202) for r in replies), [r.text for r in replies]
    image_ids = {r.json()["image_id"] if r.status_code == 202 else r.json()["id"] for r in replies}
    assert len(image_ids) == 1
    with stack.client() as c:
        final = c.post("/v1/images", headers={"Prefer": "wait=60"}, files={"file": ("b.png", data)})
        assert final.status_code == 201 and final.json()["id"] in image_ids
    client = stack.redis()
    try:
        jobs = [json.loads(client.hget(k, "params")) for k in client.scan_iter(stack.keys.job("*"))]
    finally:
        client.close()
    assert sum(1 for p in jobs if p.get("image_id") in image_ids) == 1


def _raw_post_with_length(stack, length: int) -> tuple[int, bytes]:
    """POST headers declaring ``length`` bytes, then no body: the API must refuse from the header alone."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as s:
        s.sendall(f"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {length}"
                  "\r\n\r\n".encode())
        response = http.client.HTTPResponse(s)
        response.begin()
        return response.status, response.read()


def test_bad_inputs_get_problems_and_lose_nothing(stack, photos, tmp_path):
    with stack.client() as c:
        good = _upload(c, photos["other2_png"]).json()
        thumb_before = c.get(good["thumbnail_url"]).content
        count_before = len(c.get("/v1/images", params={"limit": 100}).json()["items"])

        jpeg = photos["small_jpeg"].read_bytes()
        truncated = tmp_path / "truncated.jpg"
        truncated.write_bytes(jpeg[: len(jpeg) // 2])
        text = tmp_path / "notes.png"
        text.write_text("this is a text file with a .png name\n" * 20)
        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(png_header_only(100_000, 100_000))
        other_scale = tmp_path / "thumb32.png"
        parsed = Thumbnail.from_png(thumb_before)
        small = parsed.image.resize(thumbnail_size(parsed.original_size, 32))  # the original's 32x size
        other_scale.write_bytes(Thumbnail(small, 32, parsed.original_size, parsed.model_id).to_png())

        cases = [
            (_upload(c, truncated), 422, "corrupt-image"),
            (_upload(c, bomb), 422, "too-many-pixels"),
            (_upload(c, text), 415, "unsupported-media-type"),
            (_upload(c, photos["tiny_png"]), 422, "image-too-small"),
            (c.post("/v1/images", content=b"", headers={"Content-Type": "image/png"}), 422, "invalid-request"),
            (c.post("/v1/images", params={"scale": 8}, files={"file": ("a.png", b"x")}), 422, "invalid-request"),
            (c.post("/v1/reconstructions", files={"file": ("t.png", other_scale.read_bytes())}), 409,
             "thumbnail-mismatch"),
            (c.post("/v1/reconstructions", files={"file": ("t.jpg", jpeg)}), 415, "unsupported-media-type"),
            (c.get("/v1/images/0123456789abcdef0123"), 404, "not-found"),
        ]
        for response, status, slug in cases:
            assert response.status_code == status, (slug, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == f"urn:tadm:problem:{slug}"
        status, body = _raw_post_with_length(stack, 10**12)
        assert status == 413 and json.loads(body)["type"] == "urn:tadm:problem:payload-too-large"

        assert c.get("/readyz").status_code == 200
        assert c.get(good["thumbnail_url"]).content == thumb_before
        assert len(c.get("/v1/images", params={"limit": 100}).json()["items"]) == count_before
    assert not list(stack.storage_dir.glob("originals/*"))


def test_metrics_and_readiness(stack, tmp_path):
    # An image no earlier test stored: a downscale runs on a live worker whichever tests ran before (a worker an
    # earlier test restarted has counted nothing yet, and a duplicate upload runs no job).
    fresh = tmp_path / "fresh.png"
    Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3)).save(fresh)
    with stack.client() as c:
        assert _upload(c, fresh).status_code == 201
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and ready["workers"] >= 1 and "tiny" in ready["warning"]
        text = c.get("/metrics").text
        assert "tadm_api_requests_total" in text and "tadm_live_workers" in text
        assert c.get("/openapi.json").json()["info"]["title"] == "tadm"
    samples = ""
    for name in stack.live_worker_names():
        samples += httpx.get(f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics", timeout=10).text
    assert 'tadm_worker_jobs_total{kind="downscale",outcome="succeeded"}' in samples
    assert "tadm_worker_stage_seconds_bucket" in samples and "tadm_worker_tiles_total" in samples
