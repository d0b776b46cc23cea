"""What a JPEG XL file says about itself before it is decoded: its boxes, its size, and whether its one frame
uses the lossless coding path.

JPEG XL has no lossless flag. libjxl's lossless mode writes a codestream whose image metadata is not XYB-encoded
(``xyb_encoded == false``) and one full-size frame in Modular mode with no colour transform other than RGB, no
upsampling, no noise, splines or patches and no restoration filters (Gaborish, EPF): :func:`lossless_header`
refuses anything else, so every lossy file libjxl makes by default (XYB, VarDCT) is refused undecoded. The rule is
necessary, not sufficient: Modular mode with the original colour space can still quantise inside its
entropy-coded tree, which no header shows. Callers that must be sure compare the file with their own lossless
encoding of its pixels.

Field layouts follow ISO/IEC 18181-1 (codestream headers) and 18181-2 (boxes). Fields this reader does not need
to skip over (ICC profiles, previews, animation, extra channels, extensions) make it refuse the file rather than
guess.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CODESTREAM_SIGNATURE = b"\xff\x0a"
CONTAINER_SIGNATURE = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_SIZE_DIST = ((9, 1), (13, 1), (18, 1), (30, 1))  # U32 distributions of an image dimension
_ENUM_DIST = (0, 1, (4, 2), (6, 18))
_XY_DIST = ((19, 0), (19, 524288), (20, 1048576), (21, 2097152))
_NAME_DIST = (0, (4, 0), (5, 16), (10, 48))
_COLOUR_SPACE_GREY, _COLOUR_SPACE_XYB = 1, 2
_CUSTOM = 2  # the white point and primaries enums' "custom" value
_DC_FRAME = 1
_SKIP_ADAPTIVE_DC_SMOOTHING = 128  # the one frame flag that changes nothing in Modular mode


class JxlHeaderError(ValueError):
    """A JPEG XL file this reader refuses: malformed, lossy, or using a feature no thumbnail needs."""


class LossyJxlError(JxlHeaderError):
    """A JPEG XL file coded lossily (XYB colour, VarDCT, upsampling, noise, restoration filters)."""


@dataclass(frozen=True)
class JxlFile:
    codestream: bytes
    exif: bytes | None  # the TIFF structure of the first ``Exif`` box


def is_jxl(data: bytes) -> bool:
    return data.startswith(CODESTREAM_SIGNATURE) or data.startswith(CONTAINER_SIGNATURE)


def split_container(data: bytes) -> JxlFile:
    """The codestream (whole, or the ``jxlp`` parts joined) and the EXIF block of a JPEG XL file."""
    if data.startswith(CODESTREAM_SIGNATURE):
        return JxlFile(data, None)
    if not data.startswith(CONTAINER_SIGNATURE):
        raise JxlHeaderError("not a JPEG XL file")
    whole, parts, exif = None, [], None
    for box_type, payload in _boxes(data):
        if box_type == b"jxlc":
            whole = payload
        elif box_type == b"jxlp":
            parts.append(payload[4:])  # each part starts with its index
        elif box_type == b"Exif" and exif is None:
            exif = _tiff_of_exif_box(payload)
    codestream = whole if whole is not None else b"".join(parts)
    if not codestream.startswith(CODESTREAM_SIGNATURE):
        raise JxlHeaderError("the JPEG XL container holds no codestream")
    return JxlFile(codestream, exif)


def _tiff_of_exif_box(payload: bytes) -> bytes:
    """An Exif box holds the offset of its TIFF header, then the block; some writers leave the offset out."""
    if payload[:4] in (b"II*\0", b"MM\0*"):
        return payload
    if len(payload) < 4:
        raise JxlHeaderError("truncated Exif box")
    return payload[4 + struct.unpack_from(">I", payload)[0]:]


def _boxes(data: bytes):
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise JxlHeaderError("truncated JPEG XL box")
        size, box_type = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if len(data) - pos < 16:
                raise JxlHeaderError("truncated JPEG XL box")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # the last box runs to the end
            size = len(data) - pos
        if size < header or pos + size > len(data):
            raise JxlHeaderError("a JPEG XL box runs past the end of the file")
        yield box_type, data[pos + header:pos + size]
        pos += size


class _Bits:
    """The codestream's bit reader: least significant bit of each byte first."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def u(self, n: int) -> int:
        if self.pos + n > 8 * len(self.data):
            raise JxlHeaderError("the JPEG XL headers are truncated")
        value = 0
        for i in range(n):
            value |= ((self.data[self.pos >> 3] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def flag(self) -> bool:
        return bool(self.u(1))

    def u32(self, *dists) -> int:
        dist = dists[self.u(2)]
        return dist if isinstance(dist, int) else self.u(dist[0]) + dist[1]

    def u64(self) -> int:
        selector = self.u(2)
        if selector == 0:
            return 0
        if selector == 1:
            return 1 + self.u(4)
        if selector == 2:
            return 17 + self.u(8)
        value, shift = self.u(12), 12
        while self.flag():
            if shift == 60:
                return value | self.u(4) << 60
            value |= self.u(8) << shift
            shift += 8
        return value

    def skip(self, n: int) -> None:
        if self.pos + n > 8 * len(self.data):
            raise JxlHeaderError("the JPEG XL headers are truncated")
        self.pos += n

    def to_byte(self) -> None:
        self.pos = (self.pos + 7) // 8 * 8


def _size(bits: _Bits) -> tuple[int, int]:
    small = bits.flag()
    height = (bits.u(5) + 1) * 8 if small else bits.u32(*_SIZE_DIST)
    ratio = bits.u(3)
    if ratio:
        num, den = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))[ratio - 1]
        return height * num // den, height
    return ((bits.u(5) + 1) * 8 if small else bits.u32(*_SIZE_DIST)), height


def lossless_header(codestream: bytes) -> tuple[int, int]:
    """(width, height) of a codestream whose headers show libjxl's lossless coding of one 8-bit RGB or grey
    frame; raises :class:`LossyJxlError` for a lossy one and :class:`JxlHeaderError` for anything unreadable."""
    bits = _Bits(codestream, 16)
    size = _size(bits)
    _image_metadata(bits)
    bits.to_byte()
    _frame_header(bits)
    return size


def _image_metadata(bits: _Bits) -> None:
    """Reads the image metadata, up to the first frame."""
    if bits.flag():  # all defaults: XYB
        raise LossyJxlError("its image is XYB-encoded (lossy)")
    extra_fields = bits.flag()
    if extra_fields:
        if bits.u(3) != 0:
            raise JxlHeaderError("it carries an orientation: the decoder would turn its pixels")
        if bits.flag():
            _size(bits)  # intrinsic size: a display hint
        if bits.flag() or bits.flag():
            raise JxlHeaderError("it has a preview or an animation; a thumbnail is one still image")
    if bits.flag() or bits.u32(8, 10, 12, (6, 1)) != 8:
        raise JxlHeaderError("its samples are not 8-bit integers")
    bits.flag()  # modular_16_bit_buffer_sufficient
    if bits.u32(0, 1, (4, 2), (12, 1)) != 0:
        raise JxlHeaderError("it has extra channels (alpha, depth, …); a thumbnail is RGB")
    if bits.flag():
        raise LossyJxlError("its image is XYB-encoded (lossy)")
    _colour_encoding(bits)
    if extra_fields and not bits.flag():  # tone mapping, when not all defaults
        bits.skip(16 + 16 + 1 + 16)
    if bits.u64():
        raise JxlHeaderError("its image metadata has extensions this reader does not know")
    if not bits.flag():  # custom transform data: the upsampling weights only, without XYB
        mask = bits.u(3)
        bits.skip(16 * sum(n for bit, n in ((1, 15), (2, 55), (4, 210)) if mask & bit))


def _colour_encoding(bits: _Bits) -> None:
    if bits.flag():  # all defaults: sRGB
        return
    if bits.flag():
        raise JxlHeaderError("it embeds an ICC profile; a thumbnail has none")
    space = bits.u32(*_ENUM_DIST)
    if space == _COLOUR_SPACE_XYB:
        raise LossyJxlError("its image is XYB-encoded (lossy)")
    if bits.u32(*_ENUM_DIST) == _CUSTOM:  # white point
        bits.u32(*_XY_DIST), bits.u32(*_XY_DIST)
    if space != _COLOUR_SPACE_GREY and bits.u32(*_ENUM_DIST) == _CUSTOM:  # primaries
        for _ in range(6):
            bits.u32(*_XY_DIST)
    if bits.flag():  # a gamma, else a transfer function
        bits.u(24)
    else:
        bits.u32(*_ENUM_DIST)
    bits.u32(*_ENUM_DIST)  # rendering intent


def _frame_header(bits: _Bits) -> None:
    if bits.flag():  # all defaults: a VarDCT frame
        raise LossyJxlError("its frame is VarDCT-coded (lossy)")
    frame_type = bits.u32(0, 1, 2, 3)
    if frame_type == _DC_FRAME:  # only VarDCT frames keep their DC apart
        raise LossyJxlError("its image is VarDCT-coded with a separate DC frame (lossy)")
    if frame_type != 0:
        raise JxlHeaderError("its first frame is a layer, not the image; a thumbnail is one still image")
    if not bits.flag():
        raise LossyJxlError("its frame is VarDCT-coded (lossy)")
    if bits.u64() & ~_SKIP_ADAPTIVE_DC_SMOOTHING:
        raise LossyJxlError("its frame adds noise, splines or patches")
    if bits.flag():
        raise LossyJxlError("its frame is coded in YCbCr")
    if bits.u32(1, 2, 4, 8) != 1:
        raise LossyJxlError("its frame is coded at a lower resolution and upsampled")
    bits.u(2)  # group size
    passes = bits.u32(1, 2, 3, (3, 4))
    if passes != 1:
        downsampled = bits.u32(0, 1, 2, (1, 3))
        bits.skip(2 * (passes - 1))
        for _ in range(downsampled):
            bits.u32(1, 2, 4, 8)
        for _ in range(downsampled):
            bits.u32(0, 1, 2, (3, 0))
    if bits.flag():
        raise JxlHeaderError("its frame has a custom size or origin")
    if bits.u32(0, 1, 2, (2, 3)) != 0:
        raise JxlHeaderError("its frame is blended onto another")
    if not bits.flag():
        raise JxlHeaderError("it has more than one frame; a thumbnail is one still image")
    bits.skip(8 * bits.u32(*_NAME_DIST))
    if bits.flag():  # loop filter all defaults: Gaborish and EPF on
        raise LossyJxlError("its frame is smoothed by restoration filters (lossy)")
    if bits.flag() or bits.u(2):
        raise LossyJxlError("its frame is smoothed by restoration filters (lossy)")
