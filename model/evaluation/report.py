"""Evaluation outputs: per-image CSV, a Markdown table of means, a rate-distortion plot, side-by-side crops."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from .evaluate import FULL_REFERENCE_METRICS, PERCEPTUAL_METRICS, THUMBNAIL_METRICS, Row

METRIC_LABELS = {
    "psnr_y": "PSNR-Y (dB) ↑",
    "ssim_y": "SSIM-Y ↑",
    "ms_ssim_y": "MS-SSIM-Y ↑",
    "ssimulacra2": "SSIMULACRA2 ↑",
    "lpips": "LPIPS ↓",
    "dists": "DISTS ↓",
    "musiq": "MUSIQ ↑",
    "clipiqa": "CLIPIQA ↑",
    "thumbnail_psnr": "thumbnail PSNR vs bicubic's (dB) ↑",
    "thumbnail_worst": "thumbnail's worst 4x4 deviation from bicubic's (levels) ↓",
}
RECONSTRUCTION_METRICS = FULL_REFERENCE_METRICS + PERCEPTUAL_METRICS
ALL_METRICS = RECONSTRUCTION_METRICS + THUMBNAIL_METRICS


def write_csv(rows: list[Row], path: Path) -> None:
    """One line per (image, method) with bytes, bpp, every metric (empty = absent) and the method's detail."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "method", "scale", "bytes", "bpp", *ALL_METRICS, "detail"])
        for r in rows:
            values = [_csv_value(r.scores.get(m, math.nan)) for m in ALL_METRICS]
            writer.writerow([r.image, r.method, r.scale, r.stored_bytes, f"{r.bpp:.5f}", *values, r.detail])


def _csv_value(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"


def summarise(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Mean bpp and mean of every metric per method, in the order methods first appear. The mean thumbnail PSNR
    is over the thumbnails that differ from bicubic's (the plain ones are bicubic's)."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r.method].append(r)
    summary = {}
    for method, group in groups.items():
        means = {"images": float(len(group)), "bpp": sum(r.bpp for r in group) / len(group)}
        means["within_budget"] = float(sum("over budget" not in r.detail for r in group))
        for m in ALL_METRICS:
            values = [r.scores.get(m, math.nan) for r in group]
            if m == "thumbnail_psnr":  # a plain thumbnail is bicubic's own (infinite PSNR): nothing to average
                values = [v for v in values if not math.isinf(v)] or values
            means[m] = math.nan if any(math.isnan(v) for v in values) else sum(values) / len(values)
        summary[method] = means
    return summary


def markdown_table(rows: list[Row], title: str) -> str:
    """Means per method; absent metrics are written as "absent", codecs over budget are flagged."""
    summary = summarise(rows)
    header = ["method", "images", "bpp", *(METRIC_LABELS[m] for m in ALL_METRICS), "at or under budget"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, means in summary.items():
        cells = [method, f"{int(means['images'])}", f"{means['bpp']:.4f}"]
        for m in ALL_METRICS:
            v = means[m]
            if math.isnan(v):
                cells.append("–" if m in THUMBNAIL_METRICS else "absent")  # bicubic is the reference; codecs keep none
            else:
                cells.append(f"{v:.2f}" if m in ("psnr_y", "thumbnail_psnr", "ssimulacra2", "thumbnail_worst") else f"{v:.4f}")
        cells.append(f"{int(means['within_budget'])}/{int(means['images'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rd_plot(rows: list[Row], path: Path, title: str) -> None:
    """bpp against each available reconstruction metric, one marker per method (the supplement's Fig. 1 layout)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    summary = summarise(rows)
    metrics = [m for m in RECONSTRUCTION_METRICS if any(not math.isnan(s[m]) for s in summary.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for method, means in summary.items():
            if not math.isnan(means[metric]):
                ax.scatter(means["bpp"], means[metric], label=method, s=40)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def side_by_side(original: Image.Image, outputs: list[tuple[str, Image.Image]], crop: int = 192) -> Image.Image:
    """A centre crop of the original and of each output, in a row, each labelled."""
    w, h = original.size
    size = min(crop, w, h)
    box = ((w - size) // 2, (h - size) // 2, (w - size) // 2 + size, (h - size) // 2 + size)
    panels = [("original", original)] + outputs
    label_h = 14
    sheet = Image.new("RGB", (size * len(panels), size + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, img) in enumerate(panels):
        sheet.paste(img.crop(box), (i * size, label_h))
        draw.text((i * size + 3, 1), name, fill="black")
    return sheet
