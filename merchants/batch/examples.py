"""Realistic example merchants for the shipped sample batch, the benchmark and the tests.

Every row passes ``validate_record``: unified social credit codes and resident ID numbers carry correct check
characters (merchants.validation computes them), dates are still valid, settlement accounts follow the channels'
rules. Pictures are small generated PNGs, a different one per document, so their hashes differ.

Pure Python (samples/make_samples.py runs it without Django). Deterministic for a given ``seed``.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import struct
import zipfile
import zlib

from merchants.batch import cells
from merchants.validation import id_card_check_char, uscc_check_char

# (area code, city, district, telephone area code) — GB/T 2260 division codes of the stores' districts.
AREAS = (
    ("330106", "杭州", "西湖区", "0571"), ("330102", "杭州", "上城区", "0571"), ("310101", "上海", "黄浦区", "021"),
    ("310104", "上海", "徐汇区", "021"), ("320508", "苏州", "姑苏区", "0512"), ("320102", "南京", "玄武区", "025"),
    ("510104", "成都", "锦江区", "028"), ("440106", "广州", "天河区", "020"), ("440305", "深圳", "南山区", "0755"),
    ("110105", "北京", "朝阳区", "010"),
)
# (trade, MCC, industry, street)
TRADES = (
    ("茶馆", "5814", "餐饮", "龙井路"), ("面包坊", "5462", "食品", "南山路"), ("咖啡馆", "5814", "餐饮", "湖滨路"),
    ("书店", "5942", "文化", "文三路"), ("花店", "5992", "零售", "延安路"), ("水果店", "5411", "零售", "解放路"),
    ("面馆", "5812", "餐饮", "中山路"), ("便利店", "5499", "零售", "人民路"), ("药房", "5912", "医药", "建国路"),
    ("烘焙坊", "5462", "食品", "平江路"),
)
BRANDS = ("西湖", "知味", "清河", "南屏", "云栖", "望江", "湖畔", "梧桐", "青藤", "半山", "小满", "拾光", "禾木", "晴川")
SURNAMES = "张王李赵刘陈杨黄周吴徐孙朱马胡郭林何高罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "建华", "海燕", "志强", "晓东")
# (bank, branch suffix, CNAPS bank code)
BANKS = (("招商银行", "支行", "308"), ("中国工商银行", "支行", "102"), ("中国建设银行", "支行", "105"),
         ("中国银行", "支行", "104"), ("杭州银行", "支行", "313"), ("浦发银行", "支行", "310"))
PRODUCT_SETS = (("wechat.native", "alipay.qr", "unionpay.qr"),
                ("wechat.native", "wechat.barcode", "alipay.qr", "alipay.barcode", "unionpay.qr"),
                ("wechat.native", "alipay.qr"))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714 organisation code check digit


def _org_code(number: int) -> str:
    """A 9-character organisation code (8 digits + GB 11714 check character), the USCC's characters 9–17."""
    body = f"{number:08d}"
    check = 11 - sum(int(d) * w for d, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


def uscc(*, area: str, serial: int, individual: bool = False) -> str:
    """A unified social credit code: 9 (market regulator) + 1/2 (company/个体工商户) + area + org code + check."""
    first17 = ("92" if individual else "91") + area + _org_code(serial)
    return first17 + uscc_check_char(first17)


def resident_id(*, area: str, born: dt.date, serial: int) -> str:
    first17 = f"{area}{born:%Y%m%d}{serial % 1000:03d}"
    return first17 + id_card_check_char(first17)


def example_rows(count: int, *, seed: int = 2026, start: int = 1, today: dt.date | None = None) -> list[dict]:
    """``count`` sheet rows (column key → cell text): mostly enterprises, some 个体工商户, a 小微 every tenth."""
    rng = random.Random(seed)
    today = today or dt.date.today()
    rows = []
    for index in range(start, start + count):
        area, city, district, dial = AREAS[index % len(AREAS)]
        trade, mcc, industry, street = TRADES[index % len(TRADES)]
        brand = BRANDS[(index * 7 + seed) % len(BRANDS)]
        kind = "micro" if index % 10 == 0 else "individual_business" if index % 10 in (3, 7) else "enterprise"
        person = rng.choice(SURNAMES) + rng.choice(GIVEN)
        born = dt.date(rng.randint(1965, 1998), rng.randint(1, 12), rng.randint(1, 28))
        id_from = dt.date(rng.randint(2016, 2024), born.month, born.day)
        # Resident IDs: 10 years under 26, 20 years to 45, long-term (长期) from 46 (GB 11643 practice).
        age = id_from.year - born.year
        years = None if age >= 46 else 10 if age < 26 else 20
        id_until = id_from.replace(year=id_from.year + years) if years else None
        # Renewed last year if it would expire within 8 years: the shipped sample stays valid for years.
        if id_until is not None and id_until <= today.replace(year=today.year + 8):
            id_from = id_from.replace(year=today.year - 1)
            id_until = id_from.replace(year=id_from.year + years)
        short = f"{brand}{trade}" if kind != "micro" else f"{person}{trade}"
        store_name = f"{street}店"
        bank, suffix, bank_code = BANKS[index % len(BANKS)]
        if kind == "enterprise":
            legal_name = f"{city}{brand}{trade}有限公司"
            licence = uscc(area=area, serial=100000 + index * 37 + seed)
            account_type, holder = "corporate", legal_name
        elif kind == "individual_business":
            legal_name = f"{city}市{district}{brand}{trade}"
            licence = uscc(area=area, serial=500000 + index * 41 + seed, individual=True)
            account_type, holder = "personal", person
        else:
            legal_name = f"商户_{person}"
            licence = ""
            account_type, holder = "personal", person
        scenarios = [{"type": "store", "name": store_name}]
        if index % 10 == 5:
            scenarios.append({"type": "website", "name": "官网", "url": f"https://shop{index:04d}.example.com"})
        licence_from = dt.date(rng.randint(2015, 2023), rng.randint(1, 12), rng.randint(1, 28))
        licence_until = None if rng.random() < 0.6 else licence_from.replace(year=licence_from.year + 30)
        rows.append({
            "ref": f"R{index:03d}",
            "subject_type": kind,
            "legal_name": legal_name,
            "short_name": short[:64],
            "licence_no": licence,
            "licence_valid_from": cells.date_text(licence_from) if licence else "",
            "licence_valid_until": cells.date_text(licence_until, empty=cells.LONG_TERM) if licence else "",
            # WeChat takes it as the legal person's ID address too (A.13 id_card_address), 小微 included.
            "registered_address": f"{city}市{district}{street}{index}号",
            "legal_person_name": person,
            "legal_person_id_type": "id_card",
            "legal_person_id_number": resident_id(area=area, born=born, serial=index * 2 + 1),
            "legal_person_id_valid_from": cells.date_text(id_from),
            "legal_person_id_valid_until": cells.date_text(id_until, empty=cells.LONG_TERM),
            "contact_name": person,
            "contact_phone": f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(1000, 9999)}{index % 10000:04d}",
            "contact_email": f"shop{index:04d}@example.com",
            "service_phone": f"{dial}-{rng.randint(20000000, 89999999)}",
            "mcc": mcc,
            "industry": industry,
            "requested_products": cells.products_text(PRODUCT_SETS[index % len(PRODUCT_SETS)]),
            "scenarios": cells.scenarios_text(scenarios),
            "store_no": f"S{index:04d}",
            "store_name": store_name,
            "store_area_code": area,
            "store_address": f"{city}市{district}{street}{index}号",
            "settlement_account_type": account_type,
            "settlement_bank_name": bank,
            "settlement_bank_branch": f"{city}{district}{suffix}",
            "settlement_bank_branch_code": f"{bank_code}{area[:4]}{index % 100000:05d}",
            "settlement_account_number": f"6{rng.randint(10 ** 17, 10 ** 18 - 1)}",
            "settlement_account_holder": holder,
        })
    return rows


def needed_documents(row: dict) -> list[str]:
    """The documents a row needs before it can be submitted (mirrors merchants.services.record.required_documents)."""
    needed = ["id_front", "id_back", "bank_card"]
    if row["subject_type"] != "micro":
        needed.append("licence")
    kinds = {item["type"] for item in cells.scenarios(row["scenarios"]) or []}
    if "store" in kinds or row["subject_type"] == "micro":
        needed += ["store_front", "store_inside"]
    if kinds - {"store"}:
        needed.append("site_screenshot")
    return sorted(needed)


def png(width: int, height: int, *, colour: tuple[int, int, int], stripe: int) -> bytes:
    """A small RGB PNG: a coloured card with a white border and a darker stripe (``stripe`` makes each unique)."""
    red, green, blue = colour
    dark = bytes((red // 2, green // 2, blue // 2))
    lines = []
    for y in range(height):
        line = bytearray(b"\x00")  # filter type 0
        for x in range(width):
            if x < 2 or y < 2 or x >= width - 2 or y >= height - 2:
                line += b"\xff\xff\xff"
            elif (stripe % (height - 8)) + 4 <= y < (stripe % (height - 8)) + 8 or x == 6 + stripe % (width - 12):
                line += dark
            else:
                line += bytes(colour)
        lines.append(bytes(line))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(lines), 9))
            + chunk(b"IEND", b""))


_DOC_COLOURS = {"licence": (200, 60, 50), "id_front": (70, 120, 200), "id_back": (90, 150, 110),
                "bank_card": (210, 160, 40), "store_front": (140, 90, 170), "store_inside": (60, 160, 170),
                "site_screenshot": (120, 120, 120), "other": (180, 180, 180)}
_FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def documents_zip(rows: list[dict], *, skip: dict[str, set] | None = None) -> bytes:
    """The documents ZIP for ``rows``: ``<ref>/<doc_type>.png``, every needed document unless listed in ``skip``."""
    skip = skip or {}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, row in enumerate(rows):
            for doc_type in needed_documents(row):
                if doc_type in skip.get(row["ref"], set()):
                    continue
                content = png(96, 60, colour=_DOC_COLOURS[doc_type], stripe=number * 11 + len(doc_type))
                info = zipfile.ZipInfo(f"{row['ref']}/{doc_type}.png", date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, content)
    return out.getvalue()


def sheet_bytes(rows: list[dict], fmt: str = "xlsx") -> bytes:
    """``rows`` written into the batch template, as an .xlsx workbook or a UTF-8 .csv."""
    from merchants.batch.template import template_csv, template_xlsx

    return template_xlsx(rows) if fmt == "xlsx" else template_csv(rows)
