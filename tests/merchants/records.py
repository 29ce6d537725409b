"""Sample onboarding records and documents used across merchants tests."""

from __future__ import annotations

import copy
import struct
import zlib

from django.core.files.uploadedfile import SimpleUploadedFile

from merchants.documents import one_colour_png
from merchants.validation import id_card_check_char, org_code_check_char, uscc_check_char

# A valid unified social credit code (check char computed) and resident ID (the GB 11643 sample).
LICENCE_NO = "91330106MA2B00000U"
ID_NUMBER = "11010519491231002X"

TEA_HOUSE_RECORD = {
    "subject_type": "enterprise",
    "legal_name": "杭州西湖茶馆有限公司",
    "short_name": "西湖茶馆",
    "licence_no": LICENCE_NO,
    "licence_valid_from": "2020-01-01",
    "licence_valid_until": None,
    "registered_address": "浙江省杭州市西湖区龙井路1号",
    "legal_person_name": "张三",
    "legal_person_id_type": "id_card",
    "legal_person_id_number": ID_NUMBER,
    "legal_person_id_valid_from": "2015-05-01",
    "legal_person_id_valid_until": "2035-05-01",
    "contact_name": "李四",
    "contact_phone": "13800138000",
    "contact_email": "li.si@example.com",
    "service_phone": "0571-88888888",
    "mcc": "5814",
    "industry": "餐饮",
    "requested_products": ["wechat.native", "alipay.qr", "unionpay.qr"],
    "scenarios": [{"type": "store", "name": "龙井路店"}],
    "stores": [{"store_no": "S001", "name": "龙井路店", "area_code": "330106", "address": "龙井路1号"}],
    "settlement_account": {
        "account_type": "corporate",
        "bank_name": "招商银行",
        "bank_branch": "杭州西湖支行",
        "bank_branch_code": "308331012345",
        "account_number": "571234567890123",
        "account_holder": "杭州西湖茶馆有限公司",
    },
}



def licence_no(serial: int) -> str:
    """Another valid unified social credit code, i.e. another business (``licence_no(0)`` is LICENCE_NO): a second
    merchant with the Tea House's licence would be refused as already onboarded. Characters 9–17 are an
    organisation code with its own GB 11714 check character, as in a real code."""
    body = f"MA2B{serial:04d}"
    first17 = "91330106" + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def id_number(serial: int) -> str:
    """Another valid resident ID number, i.e. another person (``id_number(2)`` is ID_NUMBER)."""
    first17 = f"11010519491231{serial:03d}"
    return first17 + id_card_check_char(first17)


# --- documents: real (tiny) files, since document_add checks that a file is whole, not only how it starts --------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(tag: str = "", *, size: int = 0) -> bytes:
    """A valid 4 × 3 PNG whose bytes depend on ``tag`` (a tEXt chunk carries it), so different documents have
    different hashes; ``size`` pads it to about that many bytes with a private ancillary chunk (a big photo)."""
    picture = one_colour_png(zlib.crc32(tag.encode()), width=4, height=3)
    extra = _png_chunk(b"tEXt", b"Comment\x00" + tag.encode()) if tag else b""
    if size > len(picture) + len(extra):
        extra += _png_chunk(b"paDd", b"\x00" * (size - len(picture) - len(extra) - 12))
    return picture[:-12] + extra + picture[-12:]  # the last 12 bytes are the IEND chunk


def jpeg_bytes(tag: str = "") -> bytes:
    """A valid baseline JPEG of one grey 8 × 8 block (ITU T.81): the smallest tables that code it, and ``tag`` in a
    comment segment for distinct bytes."""
    def segment(marker: int, data: bytes) -> bytes:
        return bytes((0xFF, marker)) + struct.pack(">H", len(data) + 2) + data

    one_code = bytes((1,)) + bytes(15)  # Huffman table: one code of length 1 …
    return (b"\xff\xd8"
            + segment(0xFE, tag.encode() or b"aggpay")                              # COM
            + segment(0xDB, b"\x00" + bytes([1] * 64))                             # DQT 0: all ones
            + segment(0xC0, b"\x08" + struct.pack(">HH", 8, 8) + b"\x01\x01\x11\x00")  # SOF0: 8 × 8, grey
            + segment(0xC4, b"\x00" + one_code + b"\x00")                          # … DC 0: category 0
            + segment(0xC4, b"\x10" + one_code + b"\x00")                          # … AC 0: end of block
            + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")                             # SOS
            + b"\x3f"  # DC difference 0 ("0"), end of block ("0"), padded with ones
            + b"\xff\xd9")


def pdf_bytes(tag: str = "") -> bytes:
    """A valid one-page PDF (ISO 32000-1 7.5: header, objects, cross-reference table, trailer, ``%%EOF``) whose
    bytes depend on ``tag`` (its title)."""
    title = tag.replace("\\", "").replace("(", "").replace(")", "") or "aggpay"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>", f"<< /Title ({title}) >>".encode()]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


PNG_BYTES = png_bytes()


def record(**changes) -> dict:
    data = copy.deepcopy(TEA_HOUSE_RECORD)
    data.update(changes)
    return data


def micro_record(**changes) -> dict:
    """A 小微 merchant: Zhang San's own tea stall — no licence, so his ID number identifies it; paid to his personal
    account."""
    data = record(subject_type="micro", legal_name="张三", short_name="张三茶摊", licence_no="",
                  licence_valid_from=None)
    data["settlement_account"] = {**data["settlement_account"], "account_type": "personal", "account_holder": "张三"}
    data.update(changes)
    return data


def png(name: str = "doc.png") -> SimpleUploadedFile:
    """A small PNG whose bytes depend on ``name``: different documents have different hashes."""
    return SimpleUploadedFile(name, png_bytes(name), content_type="image/png")
