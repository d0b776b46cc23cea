"""`tadm ingest` stopped and run again, as a real process against a live `tadm serve --dev`: killed outright
(SIGKILL: no chance to write anything) or stopped with Ctrl-C (SIGINT: it finishes the file in progress and writes
its report). The re-run skips what is stored and uploads the rest; nothing is ever stored twice."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.client import Client
from tests.client.test_ingest import assert_rows_are_the_servers, ingest, rows_by_source, write_photo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PHOTOS = 8


def photo_folder(kodak_dir: Path, root: Path, first: int) -> list[Path]:
    return [write_photo(kodak_dir, root / f"roll-{i % 3}" / f"{i}.png", first + i) for i in range(PHOTOS)]


def start_ingest(folder: Path, server_url: str, report: Path) -> subprocess.Popen[str]:
    # One file at a time, so that the run is still going when the first photo is stored.
    command = [sys.executable, "-m", "service.cli", "ingest", str(folder), "--api", server_url, "--concurrency", "1",
               "--report", str(report)]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_first_upload(client: Client, images_before: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while client.stats().images == images_before:
        assert process.poll() is None, f"the run ended before any upload:\n{process.communicate()}"
        assert time.monotonic() < deadline, "no upload within 120 s"
        time.sleep(0.05)


def stored_ids(client: Client, photos: list[Path]) -> dict[str, str]:
    found = {str(p): client.find(hashlib.sha256(p.read_bytes()).hexdigest()) for p in photos}
    return {path: images[0].id for path, images in found.items() if images}


@pytest.fixture
def client(server_url: str):
    with Client(server_url) as tadm:
        yield tadm


def test_a_killed_run_resumes_without_uploading_twice(kodak_dir, tmp_path, server_url, client):
    photos = photo_folder(kodak_dir, tmp_path / "store", first=16)
    before = client.stats()
    process = start_ingest(tmp_path / "store", server_url, tmp_path / "first.json")
    wait_for_first_upload(client, before.images, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)

    stored_when_killed = stored_ids(client, photos)
    assert 1 <= len(stored_when_killed) < PHOTOS

    report = tmp_path / "second.json"
    assert ingest(tmp_path / "store", "--api", server_url, "--report", report) == 0
    rows = rows_by_source(report)
    assert set(rows) == {str(p) for p in photos}
    skipped = {source for source, row in rows.items() if row["status"] == "skipped"}
    ingested = {source for source, row in rows.items() if row["status"] == "ingested"}
    # A photo whose upload was under way when the process died may have been stored since: skipped too.
    assert set(stored_when_killed) <= skipped and ingested and skipped | ingested == set(rows)
    assert all(rows[source]["id"] == image_id for source, image_id in stored_when_killed.items())
    assert_rows_are_the_servers(client, list(rows.values()))
    after = client.stats()
    assert after.images - before.images == PHOTOS == len({row["id"] for row in rows.values()})
    assert after.original_bytes - before.original_bytes == sum(p.stat().st_size for p in photos)


def test_ctrl_c_finishes_the_file_in_progress_and_writes_the_report(kodak_dir, tmp_path, server_url, client):
    photos = photo_folder(kodak_dir, tmp_path / "store", first=24)
    before = client.stats()
    report = tmp_path / "report.json"
    process = start_ingest(tmp_path / "store", server_url, report)
    wait_for_first_upload(client, before.images, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 130, err
    assert "Traceback" not in err and "stopping: finishing the 1 file(s) in progress" in err
    document = json.loads(report.read_text())
    totals = document["totals"]
    assert document["interrupted"] is True
    assert totals["ingested"] >= 1 and totals["not_done"] >= 1
    assert totals["ingested"] + totals["not_done"] == PHOTOS
    assert "not done" in out
    # The file in progress was finished, not abandoned: the server holds exactly what the report lists.
    assert client.stats().images - before.images == totals["ingested"]
    assert_rows_are_the_servers(client, document["images"])

    assert ingest(tmp_path / "store", "--api", server_url, "--report", report) == 0
    again = json.loads(report.read_text())
    assert {row["source"] for row in again["images"]} == {str(p) for p in photos}
    totals = again["totals"]
    assert (totals["skipped"], totals["ingested"] + totals["skipped"]) == (len(document["images"]), PHOTOS)
    assert client.stats().images - before.images == PHOTOS
