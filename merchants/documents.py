"""What an onboarding document's file must be: a whole JPEG, PNG or PDF up to 5 MB, recognised by its content.

The first bytes say which type a file claims to be; a file cut short (a mobile upload, a partner's buggy client) or
garbage after them still starts right. Such a file used to be stored and failed only later, when a channel's media
upload verified the picture (channel-protocols.md A.13, ``/v3/merchant/media/upload``) or a reviewer could not open
it. So the structure is checked too — cheaply, without an imaging library: where each format says the file ends.
One check for every way in: the merchant page, the partner API and the batch import's documents ZIP.

What we store is not all that every channel takes: WeChat Pay's media upload takes JPEG, PNG or BMP up to 2 MB and
Alipay's image upload no PDF (each adapter's ``accepted_documents``). ``channel_refusal`` says, in a clerk's words,
why the channels that will receive a document cannot take it; onboarding asks it at submission
(merchants.services.onboarding.unusable_documents), before risk review rather than from a refused contract. It is
asked again for the channels that rejected a contract: when a corrected document is uploaded for them
(``document_add``) and when the contract is resubmitted (``contract_resubmit``), since what the clerk uploads then
goes only to the channel, unchecked by any submission.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

from aggpay.errors import InvalidRequest

# Ours, for every channel; a channel may take less (WeChat's media upload: 2 MB), see ``channel_refusal``.
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
DOCUMENT_CONTENT_TYPES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n", "application/pdf": b"%PDF-"}
FORMAT_NAMES = {"image/jpeg": "JPEG", "image/png": "PNG", "application/pdf": "PDF"}

_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk with its CRC: the last 12 bytes of every PNG
# What a picture the channels and a reviewer's browser can open may measure; also JPEG's own limit (16-bit sizes).
_MAX_SIDE = 65_535
# JPEG markers without a length: the restart markers RST0–7 and TEM (ITU T.81 B.1.1.3, table B.1).
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Start-of-frame markers (SOF0–3, 5–7, 9–11, 13–15; T.81 table B.1): the picture's header, needed before a scan.
_FRAMES = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_PDF_TAIL = 1024  # %%EOF must be in the last 1 KiB (ISO 32000-1 7.5.5; readers look for it there)

_AGAIN = "upload the whole file again"


def document_content_type(content: bytes, *, field: str = "file") -> str:
    """The content type of a document's ``content`` — checked to be a whole JPEG, PNG or PDF within the size limit.
    Raises ``InvalidRequest`` naming ``field``, in words a clerk can act on, when it is not."""
    if not content:
        raise InvalidRequest("the file is empty", param=field)
    if len(content) > MAX_DOCUMENT_BYTES:
        raise InvalidRequest(f"the file is {len(content)} bytes; the limit is {MAX_DOCUMENT_BYTES} (5 MB)", param=field)
    content_type = next((ct for ct, magic in DOCUMENT_CONTENT_TYPES.items() if content.startswith(magic)), None)
    if content_type is None:
        raise InvalidRequest("the content is not a JPEG, PNG or PDF file", param=field)
    problem = _PROBLEMS[content_type](content)
    if problem is not None:
        raise InvalidRequest(problem, param=field)
    return content_type


def _png_problem(content: bytes) -> str | None:
    # PNG spec 5.2–5.3 and 11.2.2: the signature, then IHDR (13 bytes of data) first, and IEND last.
    header = content[8:33]
    if len(header) < 25 or header[:8] != b"\x00\x00\x00\x0dIHDR":
        return "the content is a damaged PNG: it does not start with its IHDR header"
    if struct.unpack(">I", header[21:25])[0] != zlib.crc32(header[4:21]):
        return "the content is a damaged PNG: its IHDR header does not match its checksum"
    width, height = struct.unpack(">II", header[8:16])
    if not (1 <= width <= _MAX_SIDE and 1 <= height <= _MAX_SIDE):
        return f"the content is a damaged PNG: its header says {width} × {height} pixels"
    if not content.endswith(_PNG_IEND):
        return f"the content is a PNG cut short: it does not end with its IEND chunk; {_AGAIN}"
    return None


def _jpeg_problem(content: bytes) -> str | None:
    """Walk the markers (T.81 annex B) from SOI to the first EOI: segments by their lengths, scans up to the next
    marker. A file cut short runs out before the EOI; garbage breaks the walk where a marker belongs.

    What follows the EOI is left alone: phones put data there — Samsung's trailer, the video of a motion photo, the
    second picture of an MPO, zero padding — and the picture before it is whole. So "EOI at the very end" would
    refuse ordinary phone photos; "an EOI after the picture's scans" does not, and still catches every truncation
    (a file cut inside the data after the EOI has lost none of its picture)."""
    cut = f"the content is a JPEG cut short: it ends before its end-of-image marker; {_AGAIN}"
    end, pos, framed, scanned = len(content), 2, False, False
    while True:
        if pos >= end:
            return cut
        if content[pos] != 0xFF:
            return f"the content is a damaged JPEG: byte {pos} is not a marker"
        while pos < end and content[pos] == 0xFF:  # a marker may be preceded by fill bytes 0xFF (B.1.1.2)
            pos += 1
        if pos >= end:
            return cut
        marker, pos = content[pos], pos + 1
        if marker == 0xD9:  # EOI
            return None if scanned else "the content is a damaged JPEG: it ends before any picture data"
        if marker in _STANDALONE:
            continue
        if marker < 0xC0 or marker == 0xD8:  # 0x00 and the reserved codes are no marker here, nor a second SOI
            return f"the content is a damaged JPEG: byte {pos - 1} is not a marker"
        if pos + 2 > end:
            return cut
        length = int.from_bytes(content[pos:pos + 2], "big")
        if length < 2:
            return f"the content is a damaged JPEG: the segment at byte {pos - 2} has no length"
        pos += length
        if pos > end:
            return cut
        framed = framed or marker in _FRAMES
        if marker == 0xDA:  # SOS: entropy-coded data up to the next marker that is not a stuffed 0x00 or a restart
            if not framed:
                return "the content is a damaged JPEG: picture data comes before the picture's header"
            scanned = True
            while True:
                pos = content.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= end:
                    return cut
                following = content[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    pos += 2
                elif following == 0xFF:  # fill before a marker
                    pos += 1
                else:
                    break


def _pdf_problem(content: bytes) -> str | None:
    if b"%%EOF" not in content[-_PDF_TAIL:]:
        return f"the content is a PDF cut short: it does not end with %%EOF; {_AGAIN}"
    return None


_PROBLEMS = {"image/jpeg": _jpeg_problem, "image/png": _png_problem, "application/pdf": _pdf_problem}


def channel_refusal(*, doc_type: str, content_type: str, size: int,
                    channels: Mapping[str, Mapping[str, int]]) -> str | None:
    """Why channels would refuse this document, naming it and them, or None when all of them take it.

    ``channels``: channel account name → its adapter's ``accepted_documents`` (content type → largest file in bytes).
    A format a channel does not take is said first (a smaller file of it would not help); else a size over a
    channel's limit. Channels with the same rule are named together: "WeChat Pay ISV and Alipay ISV take only JPEG
    or PNG pictures"."""
    by_formats: dict[tuple[str, ...], list[str]] = {}
    by_limit: dict[int, list[str]] = {}
    for name, accepted in channels.items():
        if content_type not in accepted:
            ours = tuple(FORMAT_NAMES[kind] for kind in DOCUMENT_CONTENT_TYPES if kind in accepted)
            by_formats.setdefault(ours, []).append(name)
        elif size > accepted[content_type]:
            by_limit.setdefault(accepted[content_type], []).append(name)
    kind = FORMAT_NAMES.get(content_type, content_type)
    if by_formats:
        rules = [f"{joined_names(names)} {_verb(names)} only {' or '.join(formats)} pictures" if formats else
                 f"{joined_names(names)} {_verb(names)} no document we can store"
                 for formats, names in by_formats.items()]
        advice = ("upload a photo or an image of the scan" if content_type == "application/pdf" else
                  "upload it in one of those formats")
        return f"{doc_type} is a {kind}: {'; '.join(rules)}; {advice}"
    if by_limit:
        rules = [f"{joined_names(names)} {_verb(names)} pictures up to {most // (1024 * 1024)} MB ({most} bytes)"
                 for most, names in sorted(by_limit.items())]
        return (f"{doc_type} is {size} bytes: {'; '.join(rules)}; upload a smaller {kind}, e.g. a photo at a lower "
                "resolution")
    return None


def latest_documents(merchant) -> dict:
    """doc_type → the ``merchant``'s latest document of that type: what a channel is sent, on a first submission and a
    resubmission alike (merchants.services.channel_application ``upload_documents``), so what is checked against the
    channels' ``accepted_documents`` (``channel_refusal``)."""
    latest = {}
    for document in merchant.documents.order_by("created_at", "id"):
        latest[document.doc_type] = document
    return latest


def joined_names(names: list[str]) -> str:
    """"A", "A and B", "A, B and C": channels named in a sentence."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _verb(names: list[str]) -> str:
    return "takes" if len(names) == 1 else "take"


def one_colour_png(seed: int, *, width: int = 160, height: int = 100) -> bytes:
    """A small, valid PNG of one colour, made without an imaging library, for the demo seed and tests, which upload
    real files (``document_content_type`` reads their structure). The colour depends on ``seed``, so each document
    has its own bytes and digest."""
    red, green, blue = (seed * 53) % 200 + 40, (seed * 97) % 200 + 40, (seed * 151) % 200 + 40
    row = b"\x00" + bytes((red, green, blue)) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))
