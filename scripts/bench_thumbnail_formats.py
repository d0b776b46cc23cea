#!/usr/bin/env python
"""How large, how fast and how exact each thumbnail format is on the thumbnails of real photos: PNG, lossless WebP
and lossless JPEG XL, as the service stores them (``Thumbnail.to_bytes``, metadata included).

    scripts/bench_thumbnail_formats.py ~/.cache/tadm/stress/images --limit 14 --cache thumbnail-cache
    scripts/bench_thumbnail_formats.py --bicubic          # the Kodak photos, bicubic thumbnails (seconds)

Thumbnails come from the shipped models (``--models``, one per scale) or, with ``--bicubic``, from bicubic
resampling to the same size: quicker, but they compress far better than the learned thumbnails the service
stores, so they overstate the savings. ``--cache`` keeps the learned ones as PNG files, so a second run skips
the models. Per scale it prints each format's total bytes and its change against PNG, the median encode (one
thread) and decode times, and whether every round trip gave back the same pixels and metadata and every encoding
the same bytes. ``--sweep`` adds the codecs' effort settings, to show why the service uses the ones it does.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

from bench_common import KODAK_DIR, median_seconds
from model.thumbnail import Thumbnail, plain_thumbnail
from model.thumbnail_formats import FORMATS, jxl_available

REPO = Path(__file__).resolve().parents[1]
PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def thumbnails(args: argparse.Namespace) -> dict[int, list[Thumbnail]]:
    """scale -> the thumbnails of the first ``--limit`` photos of the folder, spread over its sorted names."""
    photos = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if args.limit and len(photos) > args.limit:
        photos = photos[::len(photos) // args.limit][:args.limit]
    made: dict[int, list[Thumbnail]] = {}
    for model_dir in args.models:
        pipe = None if args.bicubic else _pipeline(model_dir, args.device)
        scale = 32 if "32x" in model_dir.name else 16
        for photo in photos:
            made.setdefault(scale, []).append(_thumbnail(photo, scale, pipe, args.cache))
    return made


def _pipeline(model_dir: Path, device: str):
    from model import TADMPipeline

    return TADMPipeline.from_pretrained(model_dir, device=device)


def _thumbnail(photo: Path, scale: int, pipe, cache: Path | None) -> Thumbnail:
    if pipe is None:
        with Image.open(photo) as img:
            return plain_thumbnail(img.convert("RGB"), scale)
    cached = cache / f"{photo.stem}-{scale}x.png" if cache else None
    if cached is not None and cached.is_file():
        thumb = Thumbnail.from_bytes(cached.read_bytes())
        if thumb.model_id == pipe.model_id:
            return thumb
    with Image.open(photo) as img:
        started = time.perf_counter()
        thumb = pipe.downscale(img.convert("RGB"), learned=True)
    print(f"  {photo.name} at {scale}x: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(thumb.to_png())
    return thumb


def measure(thumbs: list[Thumbnail], fmt: str, repeats: int) -> dict:
    sizes, encode, decode, exact = [], [], [], True
    for thumb in thumbs:
        data = thumb.to_bytes(fmt)
        back = Thumbnail.from_bytes(data)
        exact &= (back.image.tobytes() == thumb.image.tobytes() and back.metadata == thumb.metadata
                  and thumb.to_bytes(fmt) == data)  # the same thumbnail always gives the same bytes
        sizes.append(len(data))
        encode.append(median_seconds(lambda t=thumb: t.to_bytes(fmt), repeats))
        decode.append(median_seconds(lambda d=data: Thumbnail.from_bytes(d), repeats))
    return {"bytes": sum(sizes), "encode_ms": 1000 * statistics.median(encode),
            "decode_ms": 1000 * statistics.median(decode), "exact": exact}


def sweep(thumbs: list[Thumbnail]) -> list[tuple[str, int, float]]:
    """(setting, total bytes, median encode ms) of the codecs' effort settings, metadata left out."""
    settings = [("png optimize", "PNG", {"optimize": True})]
    settings += [(f"webp quality {q} method {m}", "WEBP", {"lossless": True, "quality": q, "method": m, "exact": True})
                 for q, m in ((100, 6), (100, 5), (100, 4), (75, 4), (100, 3))]
    if jxl_available():
        settings += [(f"jxl effort {e}", "JXL", {"lossless": True, "effort": e, "num_threads": 1}) for e in (7, 8, 9, 10)]
    rows = []
    for name, fmt, options in settings:
        sizes, times = [], []
        for thumb in thumbs:
            buf = io.BytesIO()
            started = time.perf_counter()
            thumb.image.save(buf, format=fmt, **options)
            times.append(time.perf_counter() - started)
            sizes.append(buf.tell())
        rows.append((name, sum(sizes), 1000 * statistics.median(times)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=KODAK_DIR, help="photos (default: the Kodak set)")
    parser.add_argument("--models", nargs="+", type=Path,
                        default=[REPO / "model/weights/nano-16x", REPO / "model/weights/nano-32x"])
    parser.add_argument("--bicubic", action="store_true", help="bicubic thumbnails instead of the models'")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos, spread over the folder")
    parser.add_argument("--cache", type=Path, help="keep (and reuse) the models' thumbnails here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timings per thumbnail (median)")
    parser.add_argument("--sweep", action="store_true", help="also compare the codecs' effort settings")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder of photos")
    formats = [f for f in FORMATS if f != "jxl" or jxl_available()]
    source = "bicubic" if args.bicubic else "learned"
    for scale, thumbs in sorted(thumbnails(args).items()):
        pixels = sum(t.image.width * t.image.height for t in thumbs)
        print(f"\n{len(thumbs)} {source} thumbnails at {scale}x of {args.folder.name} "
              f"({pixels / len(thumbs):.0f} pixels each on average)")
        print(f"{'format':8} {'bytes':>9} {'vs png':>8} {'encode ms':>10} {'decode ms':>10}  bit-exact")
        png_bytes = None
        for fmt in formats:
            row = measure(thumbs, fmt, args.repeats)
            png_bytes = png_bytes or row["bytes"]
            print(f"{fmt:8} {row['bytes']:9d} {100 * (row['bytes'] / png_bytes - 1):+7.1f}% {row['encode_ms']:10.1f} "
                  f"{row['decode_ms']:10.1f}  {'yes' if row['exact'] else 'NO'}")
        if args.sweep:
            print(f"{'setting':28} {'bytes':>9} {'encode ms':>10}   (pixels only)")
            for name, size, ms in sweep(thumbs):
                print(f"{name:28} {size:9d} {ms:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
