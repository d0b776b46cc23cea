"""The HTTP rules a CDN in front of the origin relies on, as pure functions of request headers (RFC 9110):
entity-tag comparison for ``If-None-Match`` and ``If-Range``, single byte ranges, and the reconstruction and
thumbnail formats chosen from ``Accept``."""

from __future__ import annotations

from dataclasses import dataclass

# Formats a reconstruction can be served in, in the order preferred when Accept rates several equally: lossless
# PNG first (the default without Accept), then WebP, then JPEG.
FORMAT_PREFERENCE = (("png", "image/png"), ("webp", "image/webp"), ("jpeg", "image/jpeg"))


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """``If-None-Match`` matches: ``*``, or a listed tag equal to ``etag`` by weak comparison (a CDN that
    compressed a response marks its ETag weak, ``W/"…"``, and revalidates with it)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return _opaque(etag) in {_opaque(tag) for tag in header.split(",")}


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """A well-formed single range that lies outside the representation (416)."""


def requested_range(range_header: str | None, if_range: str | None, etag: str, size: int) -> ByteRange | None:
    """The one byte range to serve, or None for the whole body. Several ranges, a malformed header, or an
    ``If-Range`` that does not name this ``etag`` (strong comparison) are answered whole, as RFC 9110 allows;
    raises :class:`Unsatisfiable` for a range that starts past the end."""
    if not range_header or (if_range is not None and if_range.strip() != etag):
        return None
    unit, _, spec = range_header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":  # the last N bytes
            suffix = int(last)
            if suffix <= 0 or size == 0:
                raise Unsatisfiable
            return ByteRange(max(0, size - suffix), size - 1)
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if start < 0 or (end is not None and end < start):
        return None
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, size - 1 if end is None else min(end, size - 1))


def _accept_q(accept: str) -> dict[str, float]:
    """media range -> q of an Accept header."""
    ranges: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges[media.lower()] = q
    return ranges


def negotiated_format(accept: str | None) -> str:
    """The reconstruction format ``Accept`` rates highest. Each type's q comes from its most specific media range;
    at equal q a type the header names beats one only a wildcard admits (browsers name ``image/webp`` beside
    ``image/*``), then PNG, WebP, JPEG in that order. No header, or one that accepts none of them, gives PNG (the
    origin then disregards it, which RFC 9110 allows, rather than answering 406)."""
    if not accept:
        return "png"
    ranges = _accept_q(accept)
    best, best_score = "png", (0.0, False)
    for fmt, media in FORMAT_PREFERENCE:
        kind = media.split("/")[0]
        matched = next((r for r in (media, f"{kind}/*", "*/*") if r in ranges), None)
        if matched is None:
            continue
        score = (ranges[matched], matched == media)
        if score[0] > 0 and score > best_score:
            best, best_score = fmt, score
    return best


# Thumbnails are lossless in every format they are served in, so at equal q the smaller file wins.
THUMBNAIL_COMPACTNESS = {"png": 0, "webp": 1, "jxl": 2}


def negotiated_thumbnail_format(accept: str | None, *, jxl: bool = True) -> str:
    """The thumbnail format for ``Accept``: WebP or JPEG XL only when the header names it (``image/webp``,
    ``image/jxl``: a client that sends ``*/*`` was always given PNG and may read nothing else), else PNG; among
    the acceptable ones the highest q, then the most compact. JPEG XL only where this process can write it
    (``jxl``)."""
    if not accept:
        return "png"
    ranges = _accept_q(accept)
    q = {"png": next((ranges[r] for r in ("image/png", "image/*", "*/*") if r in ranges), 0.0),
         "webp": ranges.get("image/webp", 0.0)}
    if jxl:
        q["jxl"] = ranges.get("image/jxl", 0.0)
    best = max(q, key=lambda fmt: (q[fmt], THUMBNAIL_COMPACTNESS[fmt]))
    return best if q[best] > 0 else "png"
