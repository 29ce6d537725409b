"""Field checks a clerk understands (issue 4): licence and ID formats with their check digits, phones, accounts.

Each returns the normalised value or raises ``InvalidRequest`` naming the field, in words a clerk can act on.
"""

from __future__ import annotations

import re
import unicodedata

from aggpay.errors import InvalidRequest

# GB 32100-2015 unified social credit code: 18 chars from this alphabet, last is a mod-31 check character.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# GB 11643-1999 resident ID: 17 digits + mod-11 check character.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
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
    if uscc_check_char(code[:17]) != code[17]:
        raise InvalidRequest(f"{field}: the check character does not match — a character was mistyped", param=field)
    return code


def id_card_check_char(first17: str) -> str:
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def validate_id_number(value: str, *, id_type: str = "id_card", field: str = "legal_person_id_number") -> str:
    number = _halfwidth(value).strip().upper()
    if id_type != "id_card":
        if not re.fullmatch(r"[A-Z0-9()-]{5,20}", number):
            raise InvalidRequest(f"{field}: 5–20 letters or digits expected for this document type", param=field)
        return number
    if not re.fullmatch(r"\d{17}[\dX]", number, re.ASCII):
        raise InvalidRequest(f"{field}: a resident ID number has 17 digits and a final digit or X", param=field)
    if id_card_check_char(number[:17]) != number[17]:
        raise InvalidRequest(f"{field}: the check digit does not match — a digit was mistyped", param=field)
    return number


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
