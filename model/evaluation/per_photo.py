"""Per-photo results: how each photo fares under each method, and the model against bicubic photo by photo.

A mean over a set hides the photo a user loses: a model can beat bicubic on average and still give a foggy photo
back 20 dB worse. So beside the means, the evaluation reports every photo, the worst one (the largest shortfall
against bicubic from a thumbnail of the same size), and how many photos fall below bicubic at all and by more than
a margin. ``results-<scale>x.json`` carries all of it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from ..quality import BOUNDED, is_model_method
from ..thumbnail_bound import DEFAULT_MAX_DEVIATION
from .evaluate import Row, made_plain, within_as_made
from .report import ALL_METRICS, summarise

REFERENCE = "bicubic"
MARGIN_DB = 0.5  # the service's default TADM_VERIFY_MARGIN_DB: below bicubic by more is a fallback there
MAX_DEVIATION = DEFAULT_MAX_DEVIATION  # the service's TADM_VERIFY_THUMBNAIL_MAX_DEVIATION (levels, worst 4x4 block)


def by_photo(rows: list[Row]) -> dict[str, dict[str, Row]]:
    """image name -> method -> its row, photos in the order they were evaluated."""
    photos: dict[str, dict[str, Row]] = defaultdict(dict)
    for row in rows:
        photos[row.image][row.method] = row
    return photos


def psnr_deltas(rows: list[Row], method: str, reference: str = REFERENCE) -> dict[str, tuple[float, Row]]:
    """image name -> (``method``'s PSNR-Y minus ``reference``'s, ``method``'s row), for photos scored by both."""
    return {name: (float(methods[method].scores["psnr_y"] - methods[reference].scores["psnr_y"]), methods[method])
            for name, methods in by_photo(rows).items() if method in methods and reference in methods}


def _delta_summary(deltas: dict[str, float]) -> dict:
    """The mean, the worst photo and how many are below by more than the margin."""
    worst = min(deltas, key=deltas.__getitem__)
    return {"photos": len(deltas), "mean_delta_psnr_y": sum(deltas.values()) / len(deltas),
            "worst": {"image": worst, "delta_psnr_y": deltas[worst]},
            f"below_by_more_than_{MARGIN_DB}": sum(d < -MARGIN_DB for d in deltas.values())}


def against_reference(rows: list[Row], method: str, reference: str = REFERENCE) -> dict | None:
    """``method``'s PSNR-Y minus ``reference``'s, per photo: the mean, the worst photo, how many fall below.
    None when either method is missing."""
    measured = psnr_deltas(rows, method, reference)
    deltas = {name: delta for name, (delta, _) in measured.items()}
    if not deltas:
        return None
    return {"method": method, "reference": reference, **_delta_summary(deltas),
            "below": sum(d < 0 for d in deltas.values()),
            "plain_by_rule": [name for name, (_, row) in measured.items() if made_plain(row.detail)]}


def verified(rows: list[Row], method: str, margin_db: float = MARGIN_DB,
             max_deviation: float = MAX_DEVIATION) -> dict | None:
    """What the service stores with verified ingest, photo by photo: the model's thumbnail held within the bound
    (``<method>-bounded``, where the evaluation scored it; else the thumbnail as made), or the plain one
    (reconstructed by bicubic) when that reconstruction is below bicubic by more than ``margin_db`` or its
    thumbnail strays beyond ``max_deviation``. The result against bicubic, as :func:`against_reference` gives it."""
    measured = psnr_deltas(rows, method) | psnr_deltas(rows, method + BOUNDED)
    if not measured:
        return None
    fallbacks = [name for name, (delta, row) in measured.items()
                 if delta < -margin_db or row.scores.get("thumbnail_worst", 0.0) > max_deviation]
    deltas = {name: 0.0 if name in fallbacks else delta for name, (delta, _) in measured.items()}
    by_rule = [name for name, (_, row) in measured.items() if made_plain(row.detail)]
    return {"method": f"{method} verified", "reference": REFERENCE, "margin_db": margin_db,
            "max_deviation": max_deviation, "fallbacks": len(fallbacks), "fallback_photos": fallbacks,
            "plain_by_rule": by_rule, **_delta_summary(deltas)}


def model_method(rows: list[Row]) -> str | None:
    """The TADM method of the rows, if any."""
    return next((r.method for r in rows if is_model_method(r.method)), None)


def document(rows: list[Row], title: str, scale: int) -> dict:
    """The JSON of an evaluation: means per method, the model against bicubic, and every photo."""
    model = model_method(rows)
    photos = []
    for name, methods in by_photo(rows).items():
        first = next(iter(methods.values()))
        photos.append({"image": name, "width": first.size[0], "height": first.size[1], "methods": {
            method: {"bytes": row.stored_bytes, "bpp": round(row.bpp, 6), "detail": row.detail,
                     **{m: _number(row.scores[m]) for m in ALL_METRICS if m in row.scores}}
            for method, row in methods.items()}})
    return {"title": title, "scale": scale, "images": len(photos),
            "means": {method: {k: _number(v) for k, v in means.items()} for method, means in summarise(rows).items()},
            "model_vs_bicubic": against_reference(rows, model) if model else None,
            "verified_vs_bicubic": verified(rows, model) if model else None, "photos": photos}


def markdown(rows: list[Row]) -> str:
    """One line per photo: PSNR-Y and SSIMULACRA2 of each method, and the model minus bicubic."""
    model = model_method(rows)
    methods = list(dict.fromkeys(r.method for r in rows))
    header = ["photo", "size", *(f"{m} PSNR-Y" for m in methods), *(f"{m} SSIMULACRA2" for m in methods)]
    if model:
        header.append(f"{model} − bicubic (dB)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, by_method in by_photo(rows).items():
        first = next(iter(by_method.values()))
        cells = [name, f"{first.size[0]}x{first.size[1]}"]
        cells += [_cell(by_method.get(m), "psnr_y") for m in methods]
        cells += [_cell(by_method.get(m), "ssimulacra2") for m in methods]
        if model and model in by_method and REFERENCE in by_method:
            cells.append(f"{by_method[model].scores['psnr_y'] - by_method[REFERENCE].scores['psnr_y']:+.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    summary = against_reference(rows, model) if model else None
    if summary:
        lines += ["", f"{model} against bicubic on {summary['photos']} photos: mean "
                  f"{summary['mean_delta_psnr_y']:+.2f} dB PSNR-Y; worst {summary['worst']['image']} "
                  f"{summary['worst']['delta_psnr_y']:+.2f} dB; {summary['below']} below bicubic, "
                  f"{summary[f'below_by_more_than_{MARGIN_DB}']} by more than {MARGIN_DB} dB"
                  + (f"; {len(summary['plain_by_rule'])} given the plain thumbnail by the model's plain rule."
                     if summary["plain_by_rule"] else ".")]
        kept = verified(rows, summary["method"])
        if kept:
            lines.append(f"Verified as the service stores it (the thumbnail held within {MAX_DEVIATION:g} levels, "
                         f"plain where then below bicubic - {MARGIN_DB} dB): mean {kept['mean_delta_psnr_y']:+.2f} dB; worst "
                         f"{kept['worst']['image']} {kept['worst']['delta_psnr_y']:+.2f} dB; {kept['fallbacks']} "
                         "plain" + (f" and {len(kept['plain_by_rule'])} plain by the rule." if kept["plain_by_rule"] else "."))
    return "\n".join(lines) + "\n"


def model_bytes(results: Path, scale: int, images: list[str]) -> dict[str, int]:
    """image name -> the model's stored bytes, from an earlier ``results-<scale>x.json`` holding every one of
    ``images`` at ``scale``. Raises ValueError naming what does not match."""
    try:
        doc = json.loads(results.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{results}: not a readable results JSON ({exc})") from exc
    if doc.get("scale") != scale:
        raise ValueError(f"{results} is a {doc.get('scale')}x evaluation, not {scale}x")
    found = {}
    for photo in doc.get("photos", []):
        model = next((m for m in photo["methods"] if is_model_method(m)), None)
        if model is not None:
            found[photo["image"]] = int(photo["methods"][model]["bytes"])
    missing = [name for name in images if name not in found]
    if missing:
        raise ValueError(f"{results} has no model result for {len(missing)} of the photos, e.g. {missing[0]}")
    return {name: found[name] for name in images}


def rows_of(doc: dict) -> list[Row]:
    """The rows a :func:`document` was made from (a score written as null is NaN again): what lets evaluations of parts of a
    set, run side by side, be joined into one."""
    rows = []
    for photo in doc["photos"]:
        w, h = int(photo["width"]), int(photo["height"])
        for method, result in photo["methods"].items():
            scores = {m: math.nan if result[m] is None else float(result[m]) for m in ALL_METRICS if m in result}
            rows.append(Row(photo["image"], method, int(doc["scale"]), int(result["bytes"]), w * h, scores,
                            result["detail"], (w, h)))
    return rows


def joined(docs: list[dict]) -> list[Row]:
    """The rows of several evaluations of one scale, each photo once, in name order. Raises ValueError for mixed
    scales or a photo in two of them."""
    scales = {doc["scale"] for doc in docs}
    if len(scales) != 1:
        raise ValueError(f"cannot join evaluations of different scales: {sorted(scales)}")
    seen: set[str] = set()
    rows: list[Row] = []
    for doc in docs:
        names = {photo["image"] for photo in doc["photos"]}
        if names & seen:
            raise ValueError(f"{sorted(names & seen)[0]} is in more than one of the evaluations")
        seen |= names
        rows += rows_of(doc)
    return sorted(rows, key=lambda r: r.image)


def updated(base: dict, docs: list[dict], max_deviation: float = MAX_DEVIATION) -> list[Row]:
    """The rows of ``base`` (an earlier evaluation of a whole set) with the photos of ``docs`` (evaluated again)
    in their place, in name order. A photo kept from ``base`` without a ``-bounded`` row gains one where its
    thumbnail is within ``max_deviation``: the model's own row, since such a thumbnail is stored as made and
    reconstructs the same. Raises ValueError for another scale, or for a kept photo beyond the bound (it must be
    evaluated again)."""
    fresh = joined(docs)
    if fresh and fresh[0].scale != base["scale"]:
        raise ValueError(f"cannot update a {base['scale']}x evaluation with {fresh[0].scale}x results")
    again = {row.image for row in fresh}
    kept: list[Row] = []
    for name, methods in by_photo(rows_of(base)).items():
        if name in again:
            continue
        for method, row in methods.items():
            kept.append(row)
            if is_model_method(method) and method + BOUNDED not in methods:
                if not row.scores.get("thumbnail_worst", 0.0) <= max_deviation:
                    raise ValueError(f"{name}: its thumbnail is beyond {max_deviation:g} levels and it has no "
                                     f"{method + BOUNDED} result; evaluate it again")
                kept.append(replace(row, method=method + BOUNDED, detail=within_as_made(row.detail, max_deviation)))
    return sorted(fresh + kept, key=lambda r: r.image)


def write(rows: list[Row], title: str, scale: int, output: Path) -> None:
    """``results-<scale>x.json`` and ``photos-<scale>x.md`` in ``output``."""
    (output / f"results-{scale}x.json").write_text(json.dumps(document(rows, title, scale), indent=1) + "\n")
    (output / f"photos-{scale}x.md").write_text(markdown(rows))


def _cell(row: Row | None, metric: str) -> str:
    if row is None or math.isnan(row.scores.get(metric, math.nan)):
        return "–"
    return f"{row.scores[metric]:.2f}"


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)
