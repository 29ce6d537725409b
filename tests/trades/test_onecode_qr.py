"""Store-code QR images keep the quiet zone of ISO/IEC 18004 §7.3.8: 4 blank modules on every side, in the PNG for
screens and print shops and in both SVGs (the download and the printable sheet's)."""

from __future__ import annotations

import re
import struct
import zlib

import segno

from trades.onecode.qr import qr_png, qr_svg, qr_svg_inline

URL = "https://pay.example.com/c/S26112700001"


def _modules() -> int:
    return segno.make(URL, error="m", micro=False).symbol_size(scale=1, border=0)[0]


def _png_rows(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of a greyscale or palette PNG segno writes (1 byte per pixel or less)."""
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    data = b"".join(png[pos + 8:pos + 8 + length] for pos, length in _chunks(png, b"IDAT"))
    raw = zlib.decompress(data)
    stride = (width * depth + 7) // 8
    rows = [raw[i * (stride + 1) + 1:(i + 1) * (stride + 1)] for i in range(height)]
    return width, height, rows


def _chunks(png: bytes, kind: bytes):
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == kind:
            yield pos, length
        pos += 12 + length


def test_the_png_has_four_blank_modules_on_every_side():
    scale = 8
    png = qr_png(URL, scale=scale)
    width, height, rows = _png_rows(png)
    assert width == height == (_modules() + 2 * 4) * scale
    margin = 4 * scale
    first_dark_row = next(i for i, row in enumerate(rows) if len(set(row)) > 1)
    assert first_dark_row == margin  # rows above the symbol are all blank, and the symbol starts right after


def test_both_svgs_leave_four_modules_around_the_symbol():
    size = _modules() + 2 * 4
    assert re.search(rf'viewBox="0 0 {size} {size}"', qr_svg_inline(URL))
    scale = 4
    svg = qr_svg(URL, scale=scale)
    assert f'width="{size * scale}"' in svg and f'height="{size * scale}"' in svg
