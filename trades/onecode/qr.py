"""QR images of store codes (segno): PNG for screens and print shops, SVG for vector print."""

from __future__ import annotations

import io

import segno

# ISO/IEC 18004 §7.3.8: the quiet zone — the blank margin a scanner finds the symbol by — is 4 modules wide on every
# side. A store code is printed, stuck beside a till and photographed at an angle; with 2 modules (as before) a
# sticker's edge, a frame or the counter's own pattern next to it lowered the scan rate.
QUIET_ZONE = 4


def _qr(url: str):
    # Error correction "M" survives a worn or partly covered sticker at the till while staying scannable small.
    return segno.make(url, error="m", micro=False)


def qr_png(url: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    _qr(url).save(buffer, kind="png", scale=scale, border=QUIET_ZONE)
    return buffer.getvalue()


def qr_svg(url: str, *, scale: int = 4) -> str:
    buffer = io.BytesIO()
    _qr(url).save(buffer, kind="svg", scale=scale, border=QUIET_ZONE, xmldecl=False, svgns=True)
    return buffer.getvalue().decode("utf-8")


def qr_svg_inline(url: str) -> str:
    """An SVG fragment to embed in the printable sheet (no XML declaration, scales with CSS)."""
    buffer = io.BytesIO()
    _qr(url).save(buffer, kind="svg", scale=1, border=QUIET_ZONE, xmldecl=False, svgns=True, omitsize=True)
    return buffer.getvalue().decode("utf-8")
