"""Field checks a clerk understands (issue 4): licence and ID formats with their check digits, phones, accounts.

Each returns the normalised value or raises ``InvalidRequest`` naming the field, in words a clerk can act on.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from aggpay.errors import InvalidRequest

# GB 32100-2015 unified social credit code: 18 chars from this alphabet, last is a mod-31 check character.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# GB 11643-1999 resident ID: 17 digits + mod-11 check character.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# GB 11643 §5.2: the number starts with the holder's address code (GB/T 2260), whose first two digits are a province:
# 11–15 north, 21–23 north-east, 31–37 east, 41–46 central-south, 50–54 south-west, 61–65 north-west, 71 Taiwan,
# 81 Hong Kong, 82 Macao. 00 or 99 is no place (an invented number).
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split())
# Who signs a merchant's contract as legal person or, for a 小微 merchant, owns it: an adult (民法典 art. 17-18, full
# civil capacity at 18). Checked from the birth date an ID card number carries.
ADULT_AGE = 18
# GB 11714-1997 organisation code (the USCC's characters 9–17, GB 32100 §4.4): 8 body characters (digits, letters
# worth 10–35) and a mod-11 check character (10 → X, 11 → 0).
_ORG_VALUES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# A person's name as on the ID document: CJK ideographs (basic block, extensions A–G, compatibility, 〇), parts of a
# minority or transliterated name joined by a middle dot U+00B7 (阿卜杜·热合曼); or, for a foreigner, a name in Latin
# letters with spaces, '.', '-' and "'" between them. Digits, other symbols and a mix of both scripts are never a
# name on a document the channels accept (channel-protocols.md A.13 id_card_name).
_CJK = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_NAME = re.compile(f"[{_CJK}]+(?:\u00b7[{_CJK}]+)*")
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f"
_LATIN_NAME = re.compile(f"[{_LATIN}]+(?:[ .'-]+[{_LATIN}]+)*\\.?")
CJK_NAME_LENGTH = (2, 30)
LATIN_NAME_LENGTH = (2, 64)
# re.ASCII: Python's \d also matches full-width and other scripts' digits (０-９, ٠-٩); a number written with them
# would pass, be stored as typed and be refused by the channel — or, for an ID number, escape the duplicate check.
_MOBILE = re.compile(r"^1[3-9]\d{9}$", re.ASCII)
_LANDLINE = re.compile(r"^(0\d{2,3}-?)?\d{7,8}$|^400-?\d{3}-?\d{4}$|^95\d{3,6}$", re.ASCII)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _halfwidth(value: str | None) -> str:
    """The value with full-width forms made plain (NFKC: ９１３３ → 9133, ＡＢ → AB, － → -): a Chinese input method
    or a copy from a scanned licence types them, and a clerk cannot see the difference. Other scripts' digits stay as
    they are and are refused by the ASCII-only patterns below."""
    return unicodedata.normalize("NFKC", value or "")


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_ALPHABET.index(ch) * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def validate_licence_no(value: str, *, field: str = "licence_no") -> str:
    code = _halfwidth(value).strip().upper()
    if len(code) != 18:
        raise InvalidRequest(f"{field}: a unified social credit code has 18 characters, got {len(code)}", param=field)
    bad = sorted({ch for ch in code if ch not in _USCC_ALPHABET})
    if bad:
        raise InvalidRequest(f"{field}: characters {''.join(bad)!r} cannot appear in a unified social credit code "
                             "(I, O, S, V, Z are never used)", param=field)
    if not code[2:8].isdigit():
        raise InvalidRequest(f"{field}: characters 3–8 of a unified social credit code are the registering area's "
                             "6-digit code", param=field)
    if org_code_check_char(code[8:16]) != code[16]:
        # GB 32100 §4.4: characters 9–17 are the organisation code, with its own GB 11714 check character (the
        # 17th); a code whose 18th character fits but whose organisation code does not was made up, not mistyped.
        raise InvalidRequest(f"{field}: characters 9–17 are not a valid organisation code (GB 11714 check character "
                             "does not match)", param=field)
    if uscc_check_char(code[:17]) != code[17]:
        raise InvalidRequest(f"{field}: the check character does not match — a character was mistyped", param=field)
    return code


def org_code_check_char(body8: str) -> str:
    """The GB 11714 check character of an organisation code's 8 body characters."""
    check = 11 - sum(_ORG_VALUES.index(ch) * w for ch, w in zip(body8, _ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def id_card_check_char(first17: str) -> str:
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def validate_id_number(value: str, *, id_type: str = "id_card", field: str = "legal_person_id_number",
                       today: dt.date | None = None, adult: bool = True) -> str:
    """A document number of ``id_type``; a resident ID number (``id_card``) also by what its body says (GB 11643
    §5): an address code in a province, a real birth date not after ``today`` (default: today) and, with ``adult``,
    a holder aged 18 or more on ``today`` — a number with a good check digit but an impossible body was invented."""
    number = _halfwidth(value).strip().upper()
    if id_type != "id_card":
        if not re.fullmatch(r"[A-Z0-9()-]{5,20}", number):
            raise InvalidRequest(f"{field}: 5–20 letters or digits expected for this document type", param=field)
        return number
    if not re.fullmatch(r"\d{17}[\dX]", number, re.ASCII):
        raise InvalidRequest(f"{field}: a resident ID number has 17 digits and a final digit or X", param=field)
    if id_card_check_char(number[:17]) != number[17]:
        raise InvalidRequest(f"{field}: the check digit does not match — a digit was mistyped", param=field)
    if number[:2] not in _PROVINCES:
        raise InvalidRequest(f"{field}: the first 6 digits are the holder's area code, and {number[:2]} is not a "
                             "province's (11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71, 81, 82)", param=field)
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidRequest(f"{field}: digits 7–14 are the birth date, and {number[6:10]}-{number[10:12]}-"
                             f"{number[12:14]} is not a date", param=field) from None
    today = today or dt.date.today()
    if born > today:
        raise InvalidRequest(f"{field}: digits 7–14 are the birth date, and {born:%Y-%m-%d} is in the future",
                             param=field)
    if adult and age_on(born, today) < ADULT_AGE:
        raise InvalidRequest(f"{field}: the holder, born {born:%Y-%m-%d}, is under {ADULT_AGE}; a legal person or "
                             "owner must be an adult", param=field)
    return number


def age_on(born: dt.date, day: dt.date) -> int:
    """Full years from ``born`` to ``day`` (someone born on 29 February comes of age on 1 March)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def validate_person_name(value: str, *, field: str = "legal_person_name") -> str:
    """A person's name as on their ID document: 2–30 CJK ideographs, with ``·`` between the parts of a minority
    name (阿卜杜·热合曼), or a name in Latin letters (spaces, ``.``, ``-``, ``'`` between them) for a foreigner."""
    name = (value or "").strip()
    if _CJK_NAME.fullmatch(name):
        low, high = CJK_NAME_LENGTH
    elif _LATIN_NAME.fullmatch(name):
        low, high = LATIN_NAME_LENGTH
    else:
        raise InvalidRequest(f"{field}: a person's name is written in Chinese characters (parts of a minority name "
                             "joined by ·) or, for a foreigner, in Latin letters — no digits or other signs",
                             param=field)
    if not low <= len(name) <= high:
        raise InvalidRequest(f"{field}: a person's name has {low} to {high} characters, got {len(name)}",
                             param=field)
    return name


def validate_mobile(value: str, *, field: str = "contact_phone") -> str:
    phone = re.sub(r"[\s-]", "", _halfwidth(value))
    if phone.startswith("+86"):
        phone = phone[3:]
    if not _MOBILE.match(phone):
        raise InvalidRequest(f"{field}: a mainland mobile number has 11 digits starting with 13–19", param=field)
    return phone


def validate_service_phone(value: str, *, field: str = "service_phone") -> str:
    phone = _halfwidth(value).strip()
    if not (_MOBILE.match(phone.replace("-", "")) or _LANDLINE.match(phone)):
        raise InvalidRequest(f"{field}: give a mobile, a landline with area code, or a 400/95 number", param=field)
    return phone


def validate_email(value: str, *, field: str = "contact_email") -> str:
    email = (value or "").strip()
    if not _EMAIL.match(email):
        raise InvalidRequest(f"{field}: not an e-mail address", param=field)
    return email


def validate_account_number(value: str, *, field: str = "account_number") -> str:
    number = re.sub(r"\s", "", _halfwidth(value))
    if not re.fullmatch(r"\d{8,30}", number, re.ASCII):
        raise InvalidRequest(f"{field}: a bank account number has 8 to 30 digits", param=field)
    return number


def validate_branch_code(value: str, *, field: str = "bank_branch_code") -> str:
    """A bank branch's CNAPS code (联行号, 大额支付系统行号): 12 digits — what WeChat's ``bank_branch_id`` (A.13)
    and the bank's ``bank_branch_no`` (bank.md §9.3) take. Empty when the record gives none (it is optional)."""
    code = re.sub(r"\s", "", _halfwidth(value or ""))
    if code and not re.fullmatch(r"\d{12}", code, re.ASCII):
        raise InvalidRequest(f"{field}: a branch code (CNAPS, 联行号) has 12 digits", param=field)
    return code


def validate_mcc(value: str, *, field: str = "mcc") -> str:
    code = _halfwidth(value).strip()
    if not re.fullmatch(r"\d{4}", code, re.ASCII):
        raise InvalidRequest(f"{field}: an MCC has 4 digits", param=field)
    if code == "0000":
        # ISO 18245 assigns no category 0000 (the project keeps no MCC list to check against).
        raise InvalidRequest(f"{field}: 0000 is not a merchant category code", param=field)
    return code


def validate_area_code(value: str, *, field: str = "area_code") -> str:
    code = _halfwidth(value).strip()
    if not re.fullmatch(r"[1-8]\d{5}", code, re.ASCII):
        raise InvalidRequest(f"{field}: an administrative division code has 6 digits", param=field)
    return code


def required_reason(reason, *, verb: str, field: str = "reason") -> str:
    """A staff action's reason, trimmed; refused naming ``field`` when missing or only spaces. The forms strip it,
    but services are called by admin actions and APIs too (design §5 rules 9 and 12: an audit row says why)."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        where = f" ({field})" if field != "reason" else ""  # the pages show the message after "Not <verb>ed: "
        raise InvalidRequest(f"a reason is required to {verb}{where}", param=field)
    return text
