"""`tadm ingest` against a live `tadm serve --dev` (and a real S3-compatible server for s3:// sources): folders
read recursively, images told from other files by their content, a bad file reported without stopping the run,
a re-run that uploads nothing twice, a dry run that uploads nothing, and a report whose numbers are the server's.

The command runs in this process (`service.cli.main`); stopping it with SIGKILL or Ctrl-C is in
test_ingest_resume.py.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import uuid
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from service.cli import main
from service.client import Client, Stats
from tests.client.devserver import free_port

pytestmark = pytest.mark.slow

# Photos cut small (the dev worker measures every upload) from the Kodak set, each with a marker of its own so
# that no two tests, and no other test module sharing the server, upload the same bytes.
CROP = (256, 192)


def write_photo(kodak_dir: Path, path: Path, index: int, fmt: str = "PNG") -> Path:
    name = f"kodak__kodim{index % 24 + 1:02d}.png"
    left = (index // 24) * 64
    with PILImage.open(kodak_dir / name) as photo:
        crop = photo.convert("RGB").crop((left, 0, left + CROP[0], CROP[1]))
    marker = uuid.uuid4().hex
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "PNG":
        info = PngInfo()
        info.add_text("test-marker", marker)
        crop.save(path, format="PNG", pnginfo=info)
    else:
        crop.save(path, format="JPEG", quality=90, comment=marker.encode())
    return path


def ingest(*args: str | Path) -> int:
    return main(["ingest", *map(str, args)])


def rows_by_source(report: Path) -> dict[str, dict]:
    return {row["source"]: row for row in json.loads(report.read_text())["images"]}


def stats_delta(after: Stats, before: Stats) -> dict[str, int]:
    return {name: getattr(after, name) - getattr(before, name)
            for name in ("images", "original_bytes", "stored_bytes", "fallbacks")}


def assert_rows_are_the_servers(client: Client, rows: list[dict]) -> None:
    for row in rows:
        image = client.image(row["id"])
        assert row["original_bytes"] == image.original_bytes == Path(row["source"]).stat().st_size
        assert (row["thumbnail_bytes"], row["saving"], row["method"]) == (image.thumbnail_bytes, image.saving,
                                                                          image.method)
        assert image.quality is not None  # the dev server verifies every upload
        assert (row["psnr_y"], row["ms_ssim_y"], row["ssimulacra2"], row["bicubic_psnr_y"]) == (
            image.quality.psnr_y, image.quality.ms_ssim_y, image.quality.ssimulacra2, image.quality.bicubic_psnr_y)


@pytest.fixture
def client(server_url: str):
    with Client(server_url) as tadm:
        yield tadm


def test_a_nested_folder_is_ingested_and_bad_files_are_reported(kodak_dir, tmp_path, server_url, client, capsys):
    store = tmp_path / "store"
    photos = [
        write_photo(kodak_dir, store / "2019" / "beach.png", 0),
        write_photo(kodak_dir, store / "2019" / "summer" / "deep" / "boat.dat", 1, fmt="JPEG"),  # by content
        write_photo(kodak_dir, store / "portrait.jpeg", 2, fmt="JPEG"),
    ]
    corrupt = store / "2020" / "cut-short.png"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(write_photo(kodak_dir, tmp_path / "whole.png", 3).read_bytes()[:4000])
    (store / "notes.txt").write_text("the 2019 trip")
    (store / "fake.png").write_text("not a picture")
    write_photo(kodak_dir, store / ".thumbnails" / "cache.png", 4)  # a tool's hidden folder: not read
    before = client.stats()

    report, table = tmp_path / "report.json", tmp_path / "report.csv"
    assert ingest(store, "--api", server_url, "--report", report, "--csv", table, "--concurrency", "2") == 1

    rows = rows_by_source(report)
    assert set(rows) == {str(p) for p in [*photos, corrupt, store / "notes.txt", store / "fake.png"]}
    assert {str(p) for p in photos} == {s for s, row in rows.items() if row["status"] == "ingested"}
    assert rows[str(corrupt)]["status"] == "failed" and rows[str(corrupt)]["error"].startswith("corrupt-image: ")
    for name in ("notes.txt", "fake.png"):
        assert rows[str(store / name)]["status"] == "failed"
        assert rows[str(store / name)]["error"].startswith("not-an-image: ")
    stored = [rows[str(p)] for p in photos]
    assert_rows_are_the_servers(client, stored)

    # The totals are the server's: what the store gained is what the report says it holds.
    totals = json.loads(report.read_text())["totals"]
    assert {k: totals[k] for k in ("files", "ingested", "skipped", "failed", "not_done")} == {
        "files": 6, "ingested": 3, "skipped": 0, "failed": 3, "not_done": 0}
    assert stats_delta(client.stats(), before) == {
        "images": 3, "original_bytes": totals["original_bytes"], "stored_bytes": totals["stored_bytes"],
        "fallbacks": totals["fallbacks"]}
    assert totals["original_bytes"] == sum(p.stat().st_size for p in photos)
    assert totals["saving"] == pytest.approx(1 - totals["stored_bytes"] / totals["original_bytes"], abs=1e-6)
    assert totals["fallbacks"] == sum(row["method"] == "plain" for row in stored)
    psnr = [row["psnr_y"] for row in stored]
    assert totals["quality"]["images"] == 3
    assert totals["quality"]["psnr_y"]["median"] == pytest.approx(statistics.median(psnr), abs=1e-4)
    assert min(psnr) <= totals["quality"]["psnr_y"]["p5"] <= statistics.median(psnr)

    # The CSV holds the same rows; the summary table says the same.
    with table.open() as f:
        assert {row["source"]: row["status"] for row in csv.DictReader(f)} == {
            s: row["status"] for s, row in rows.items()}
    out = capsys.readouterr().out
    assert "ingested     3" in out and f"{totals['stored_bytes']:,} bytes" in out and "cut-short.png" in out

    # A re-run sends nothing: every stored photo is found by its SHA-256.
    before = client.stats()
    assert ingest(store, "--api", server_url, "--report", report) == 1
    again = rows_by_source(report)
    assert {s for s, row in again.items() if row["status"] == "skipped"} == {str(p) for p in photos}
    assert all(again[str(p)]["id"] == rows[str(p)]["id"] for p in photos)
    assert_rows_are_the_servers(client, [again[str(p)] for p in photos])
    assert client.stats() == before


def test_the_same_photo_twice_in_one_run_is_stored_once(kodak_dir, tmp_path, server_url, client):
    original = write_photo(kodak_dir, tmp_path / "a" / "photo.png", 5)
    copy = tmp_path / "b" / "copy-of-photo.png"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    before = client.stats()
    report = tmp_path / "report.json"
    assert ingest(tmp_path / "a", tmp_path / "b", "--api", server_url, "--report", report) == 0
    rows = rows_by_source(report)
    assert sorted(row["status"] for row in rows.values()) == ["ingested", "skipped"]
    assert rows[str(original)]["id"] == rows[str(copy)]["id"]
    totals = json.loads(report.read_text())["totals"]
    assert stats_delta(client.stats(), before)["images"] == 1
    assert totals["stored_bytes"] == rows[str(original)]["thumbnail_bytes"]  # one thumbnail holds both


def test_a_dry_run_uploads_nothing(kodak_dir, tmp_path, server_url, client, capsys):
    store = tmp_path / "store"
    stored = write_photo(kodak_dir, store / "stored.png", 6)
    client.upload(stored)
    new = [write_photo(kodak_dir, store / "new" / f"{i}.jpg", 7 + i, fmt="JPEG") for i in range(2)]
    before = client.stats()

    report = tmp_path / "plan.json"
    assert ingest(store, "--dry-run", "--api", server_url, "--report", report) == 0
    assert client.stats() == before
    document = json.loads(report.read_text())
    assert document["dry_run"] is True and document["estimate"].startswith("a plain bicubic thumbnail PNG")
    rows = rows_by_source(report)
    assert rows[str(stored)]["status"] == "skipped" and rows[str(stored)]["id"]
    for path in new:
        row = rows[str(path)]
        assert row["status"] == "planned" and row["id"] is None
        assert 0 < row["thumbnail_bytes"] < row["original_bytes"] == path.stat().st_size
    assert document["totals"]["planned"] == 2
    out = capsys.readouterr().out
    assert "nothing uploaded" in out and "expected stored" in out and "estimate" in out

    # Without a server the dry run still lists and estimates.
    offline = f"http://127.0.0.1:{free_port()}"
    assert ingest(store, "--dry-run", "--api", offline, "--report", report) == 0
    assert {row["status"] for row in rows_by_source(report).values()} == {"planned"}
    assert "cannot reach the API" in capsys.readouterr().err
    assert client.stats() == before


def test_usage_errors_exit_2_with_one_line(tmp_path, server_url, capsys):
    (tmp_path / "photo.txt").write_text("x")
    cases = [
        ([tmp_path / "missing", "--api", server_url], "no such folder"),
        ([tmp_path, "--api", f"http://127.0.0.1:{free_port()}"], "cannot reach the API"),
        ([tmp_path, "--api", server_url, "--min-psnr-y", "30"], "go with --scale auto"),
        (["s3://", "--api", server_url], "no bucket"),
    ]
    for args, message in cases:
        assert ingest(*args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tadm ingest: error: ") and message in err[0]


@pytest.fixture
def s3_bucket(moto_server, monkeypatch):
    import boto3

    # The variables an S3-compatible store is reached by; moto accepts any credentials.
    for var, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                       ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", moto_server)):
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    bucket = f"photos-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    return s3, bucket


def test_an_s3_prefix_is_ingested(kodak_dir, tmp_path, server_url, client, s3_bucket):
    s3, bucket = s3_bucket
    local = {
        "archive/2019/a.png": write_photo(kodak_dir, tmp_path / "a.png", 9),
        "archive/2020/trip/b.jpg": write_photo(kodak_dir, tmp_path / "b.jpg", 10, fmt="JPEG"),
        "archive2/outside-the-prefix.png": write_photo(kodak_dir, tmp_path / "c.png", 11),
        "archive/.hidden/d.png": write_photo(kodak_dir, tmp_path / "d.png", 12),
    }
    for key, path in local.items():
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="archive/readme.txt", Body=b"scanned in 2021")
    before = client.stats()

    report = tmp_path / "report.json"
    assert ingest(f"s3://{bucket}/archive", "--api", server_url, "--report", report) == 1
    rows = rows_by_source(report)
    inside = [f"s3://{bucket}/archive/2019/a.png", f"s3://{bucket}/archive/2020/trip/b.jpg"]
    assert set(rows) == {*inside, f"s3://{bucket}/archive/readme.txt"}
    assert [rows[name]["status"] for name in inside] == ["ingested", "ingested"]
    assert rows[f"s3://{bucket}/archive/readme.txt"]["error"].startswith("not-an-image: ")
    for name in inside:
        image = client.image(rows[name]["id"])
        key = name.removeprefix(f"s3://{bucket}/")
        assert rows[name]["original_bytes"] == image.original_bytes == local[key].stat().st_size
        assert rows[name]["thumbnail_bytes"] == image.thumbnail_bytes
    totals = json.loads(report.read_text())["totals"]
    assert stats_delta(client.stats(), before)["stored_bytes"] == totals["stored_bytes"]

    assert ingest(f"s3://{bucket}-missing/archive", "--api", server_url) == 2


def test_the_report_percentiles_interpolate_between_ranks():
    from service.cli.ingest.report import percentile

    assert percentile([], 50) is None
    assert percentile([3.0], 5) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(v) for v in range(101)], 5) == 5.0


def test_a_png_named_anything_is_an_image_and_a_text_named_png_is_not(tmp_path):
    from service.cli.ingest.sources import list_sources
    from service.media import sniff_format

    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32)).save(buffer, format="WEBP")
    (tmp_path / "holiday").write_bytes(buffer.getvalue())
    (tmp_path / "holiday.png").write_text("text")
    files = {Path(f.name).name: sniff_format(f.read()) for f in list_sources([str(tmp_path)])}
    assert files == {"holiday": "webp", "holiday.png": None}
