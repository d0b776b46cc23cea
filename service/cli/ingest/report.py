"""What `tadm ingest` reports: one row per file, the totals, as JSON, CSV and a summary table."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.client import Image

# ingested: uploaded by this run; skipped: stored already (by an earlier run, or the same bytes under another
# name in this one); failed: not stored, see `error`; planned: a dry run would upload it.
STATUSES = ("ingested", "skipped", "failed", "planned")


@dataclass(frozen=True)
class Row:
    """One file. ``original_bytes`` is the file's size as read; the image fields are the stored image's (for a
    dry run's ``planned`` row, ``thumbnail_bytes`` and ``saving`` are the estimate)."""

    source: str
    status: str
    id: str | None = None
    error: str | None = None
    original_bytes: int | None = None
    thumbnail_bytes: int | None = None
    saving: float | None = None
    method: str | None = None
    psnr_y: float | None = None
    ms_ssim_y: float | None = None
    ssimulacra2: float | None = None
    bicubic_psnr_y: float | None = None
    thumbnail_pulled_in: bool | None = None  # the model's thumbnail was pulled in to the deviation bound

    @classmethod
    def stored(cls, source: str, status: str, image: Image, original_bytes: int) -> Row:
        quality = image.quality
        return cls(source, status, id=image.id, original_bytes=original_bytes,
                   thumbnail_bytes=image.thumbnail_bytes, saving=image.saving, method=image.method,
                   psnr_y=None if quality is None else quality.psnr_y,
                   ms_ssim_y=None if quality is None else quality.ms_ssim_y,
                   ssimulacra2=None if quality is None else quality.ssimulacra2,
                   bicubic_psnr_y=None if quality is None else quality.bicubic_psnr_y,
                   thumbnail_pulled_in=None if quality is None else quality.thumbnail_pulled_in)

    @classmethod
    def failed(cls, source: str, error: str, original_bytes: int | None = None) -> Row:
        return cls(source, "failed", error=error, original_bytes=original_bytes)

    @classmethod
    def planned(cls, source: str, original_bytes: int, estimated_bytes: int) -> Row:
        return cls(source, "planned", original_bytes=original_bytes, thumbnail_bytes=estimated_bytes,
                   saving=round(1 - estimated_bytes / original_bytes, 6))


FIELDS = [field.name for field in fields(Row)]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile, interpolated linearly between the closest ranks (as numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 4)


def totals(rows: list[Row], files: int) -> dict[str, Any]:
    """Counts by status; bytes and quality over what is (or, planned, would be) stored.

    ``original_bytes`` adds the sizes of the stored files; ``stored_bytes`` adds each stored image's thumbnail
    once, so two copies of a photo count twice in what the store held and once in what it holds now.
    """
    kept = [row for row in rows if row.status != "failed"]
    images = list({row.id: row for row in kept if row.id}.values())
    planned = [row for row in kept if row.status == "planned"]
    original = sum(row.original_bytes or 0 for row in kept)
    stored = sum(row.thumbnail_bytes or 0 for row in images + planned)
    measured = [row for row in images if row.psnr_y is not None]
    psnr = [row.psnr_y for row in measured if row.psnr_y is not None]
    ssimulacra2 = [row.ssimulacra2 for row in measured if row.ssimulacra2 is not None]
    counts = {status: sum(row.status == status for row in rows) for status in STATUSES}
    result: dict[str, Any] = {
        "files": files,
        **{status: count for status, count in counts.items() if status != "planned" or count},
        "not_done": files - len(rows),
        "original_bytes": original,
        "stored_bytes": stored,
        "saving": round(1 - stored / original, 6) if original else 0.0,
        "fallbacks": sum(row.method == "plain" for row in images),
        "pulled_in": sum(row.thumbnail_pulled_in is True for row in images),
        "quality": {
            "images": len(measured),
            "psnr_y": {"median": percentile(psnr, 50), "p5": percentile(psnr, 5)},
            "ssimulacra2": {"median": percentile(ssimulacra2, 50), "p5": percentile(ssimulacra2, 5)},
        },
    }
    return result


def write_json(path: Path, rows: list[Row], summary: dict[str, Any], **about: Any) -> None:
    document = {**about, "totals": summary, "images": [asdict(row) for row in rows]}
    _write_atomically(path, json.dumps(document, indent=2) + "\n")


def write_csv(path: Path, rows: list[Row]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    _write_atomically(path, buffer.getvalue())


def _write_atomically(path: Path, text: str) -> None:
    """Write beside the file and rename: a run stopped while writing leaves the previous report whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def summary_table(summary: dict[str, Any], rows: list[Row], *, dry_run: bool, estimate_note: str = "",
                  max_failures: int = 20) -> str:
    """The table printed at the end of a run, and the failed files (the first ``max_failures``)."""
    lines = [("files", str(summary["files"]))]
    if dry_run:
        lines.append(("to ingest", f"{summary.get('planned', 0)}"))
    else:
        lines.append(("ingested", str(summary["ingested"])))
    lines += [("skipped", f"{summary['skipped']} (stored already)"), ("failed", str(summary["failed"]))]
    if summary["not_done"]:
        lines.append(("not done", f"{summary['not_done']} (the run stopped early: run it again to go on)"))
    stored_label = "expected stored" if dry_run else "stored"
    lines += [
        ("original", f"{_size(summary['original_bytes'])} ({summary['original_bytes']:,} bytes)"),
        (stored_label, f"{_size(summary['stored_bytes'])} ({summary['stored_bytes']:,} bytes){estimate_note}"),
        ("saving", f"{summary['saving']:.2%}"),
    ]
    quality = summary["quality"]
    if quality["images"]:
        psnr, s2 = quality["psnr_y"], quality["ssimulacra2"]
        lines += [
            ("fallbacks", f"{summary['fallbacks']} (plain thumbnail: the model's was worse than bicubic)"),
            *([("pulled in", f"{summary['pulled_in']} (the model's thumbnail held within the deviation bound)")]
              if summary.get("pulled_in") else []),
            ("PSNR-Y", f"median {psnr['median']:.2f} dB, 5th percentile {psnr['p5']:.2f} dB "
                       f"(over {quality['images']} image{'s' if quality['images'] != 1 else ''})"),
            ("SSIMULACRA2", f"median {s2['median']:.2f}, 5th percentile {s2['p5']:.2f}"),
        ]
    width = max(len(label) for label, _ in lines)
    text = [f"  {label:<{width}}  {value}" for label, value in lines]
    failures = [row for row in rows if row.status == "failed"]
    if failures:
        text.append("failed:")
        text += [f"  {row.source}: {row.error}" for row in failures[:max_failures]]
        if len(failures) > max_failures:
            text.append(f"  ... and {len(failures) - max_failures} more (see the report)")
    return "\n".join(text) + "\n"
