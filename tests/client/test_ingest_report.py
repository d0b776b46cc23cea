"""The ingest report counts the thumbnails held within the deviation bound, as the API's quality says."""

from service.cli.ingest.report import Row, summary_table, totals
from service.client.resources import Image


def _image(image_id: str, method: str, pulled_in: bool | None) -> Image:
    quality = {"method": method, "psnr_y": 30.0, "ms_ssim_y": 0.9, "ssimulacra2": 10.0, "bicubic_psnr_y": 29.0,
               "thumbnail_deviation": 47.5 if pulled_in else 12.0}
    if pulled_in is not None:  # images stored before the field existed have none
        quality["thumbnail_pulled_in"] = pulled_in
    return Image.from_json({"id": image_id, "width": 64, "height": 64, "scale": 16, "model_id": "m",
                            "thumbnail_url": "/t", "full_url": "/f", "original_bytes": 1000,
                            "thumbnail_bytes": 40, "saving": 0.96, "created_at": 0.0, "method": method,
                            "quality": quality})


def test_thumbnails_pulled_in_are_counted_and_shown_only_when_there_are_some():
    rows = [Row.stored("a.png", "ingested", _image("a", "tadm", True), 1000),
            Row.stored("b.png", "ingested", _image("b", "tadm", False), 1000),
            Row.stored("c.png", "skipped", _image("c", "tadm", None), 1000),
            Row.stored("d.png", "ingested", _image("d", "plain", False), 1000)]
    assert [row.thumbnail_pulled_in for row in rows] == [True, False, False, False]
    summary = totals(rows, files=4)
    assert (summary["pulled_in"], summary["fallbacks"]) == (1, 1)
    assert "pulled in    1 (the model's thumbnail held within the deviation bound)" in summary_table(
        summary, rows, dry_run=False)
    none = totals(rows[1:], files=3)
    assert none["pulled_in"] == 0 and "pulled in" not in summary_table(none, rows[1:], dry_run=False)
