"""Money helpers: integer fen everywhere, Decimal rates, explicit half-up rounding (design §5 rule 1).

>>> fee_for(amount=10000, rate=Decimal("0.0038"))
38
>>> fee_for(amount=133, rate=Decimal("0.006"))  # 0.798 fen rounds half-up to 1
1
>>> format_yuan(123456)
'1,234.56'
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN_PER_YUAN = 100
RATE_QUANTUM = Decimal("0.000001")  # rates are kept to 1e-6 (0.0001%)
MAX_FEN = 2**63 - 1  # what a BigIntegerField of fen holds (design §5 rule 1)
MAX_YUAN_DIGITS = len(str(MAX_FEN // FEN_PER_YUAN))  # a yuan amount of more integer digits than this never fits
# What a person types as yuan on a staff page: ASCII digits, then at most two decimals. Decimal() alone also reads
# "1e1" (10 yuan), "Infinity", "NaN", "1_0" and full-width "１０" (any Unicode digit): none of them is an amount a
# person meant to type, and "1e1" refunded ¥10.00 from the trade page.
PLAIN_YUAN = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")


class MoneyError(ValueError):
    """An amount or rate is not a valid money value."""


def to_fen(value: int) -> int:
    """Accept only real integers (not bool, not float) as fen."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MoneyError(f"amount must be an integer number of fen, got {type(value).__name__}")
    return value


def parse_rate(value: str | Decimal | int) -> Decimal:
    """A rate such as ``"0.0038"`` (0.38%) as a Decimal in [0, 1). Floats are refused: they are not exact."""
    if isinstance(value, float):
        raise MoneyError("rates must be given as strings or Decimals, never floats")
    try:
        rate = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"{value!r} is not a decimal rate") from exc
    if not rate.is_finite() or rate < 0 or rate >= 1:
        raise MoneyError(f"rate {value!r} must be at least 0 and below 1")
    if rate != rate.quantize(RATE_QUANTUM):
        raise MoneyError(f"rate {value!r} has more than 6 decimal places")
    return rate


def fee_for(*, amount: int, rate: Decimal) -> int:
    """Fee in fen for ``amount`` fen at ``rate``, rounded half-up to the fen."""
    to_fen(amount)
    if not isinstance(rate, Decimal):
        raise MoneyError("rate must be a Decimal")
    return int((Decimal(amount) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prorate(*, part: int, whole: int, value: int) -> int:
    """``value × part / whole`` in fen, half-up — e.g. the fee returned by a partial refund."""
    if whole <= 0:
        raise MoneyError("whole must be positive")
    return int((Decimal(value) * Decimal(part) / Decimal(whole)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_yuan(fen: int) -> str:
    """Display fen as yuan with thousands separators: 123456 → '1,234.56'."""
    to_fen(fen)
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{yuan:,}.{cents:02d}"


def yuan_to_fen(text: str) -> int:
    """Parse a yuan string such as '12.30' (as channels write bills, as staff type amounts) into fen, exactly.

    Only a finite number that is a whole number of fen and fits a ``BigIntegerField`` is money. Decimal also reads
    "Infinity", "sNaN" and "1e999999999": refused here as MoneyError, before any arithmetic, not escaping as
    another exception (a 500 on the staff refund form) or building a million-digit integer. The fen are counted
    from the digits, never through Decimal arithmetic, which rounds at 28 significant digits and would take
    "1.0000000000000000000000000001" for 100 fen (design §5 rule 1: no rounding but the explicit one)."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise MoneyError(f"{text!r} is not an amount in yuan") from exc
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not an amount in yuan")
    if not value:
        return 0  # "0e999999999" too: no power of ten to build
    if value.adjusted() >= MAX_YUAN_DIGITS:
        raise MoneyError(f"{text!r} is too large an amount")
    sign, digits, exponent = value.as_tuple()
    shift = exponent + 2  # the power of ten of the last digit, counted in fen
    if shift < 0:
        if any(digits[shift:]):
            raise MoneyError(f"{text!r} has fractions of a fen")
        digits, shift = digits[:shift] or (0,), 0
    fen = int("".join(map(str, digits))) * 10**shift
    if fen > MAX_FEN:
        raise MoneyError(f"{text!r} is too large an amount")
    return -fen if sign else fen


def plain_yuan_to_fen(text: str) -> int:
    """An amount a person typed in yuan ("12", "12.3", "12.30") into fen: plain ASCII digits with at most two decimals,
    spaces around it aside — anything else (an exponent, a sign, "Infinity", "NaN", full-width digits, spaces inside)
    is refused as MoneyError, as is an amount too large for a BigIntegerField (``yuan_to_fen``)."""
    if not isinstance(text, str) or not PLAIN_YUAN.fullmatch(text.strip()):
        raise MoneyError(f"{text!r} is not an amount in yuan: plain digits with at most two decimals")
    return yuan_to_fen(text.strip())


# "<n> fen" in a stored label: an order's or refund's ``str`` ("ord_… T100 50 fen (pending)"), kept as the audit
# row's ``target_repr`` when the row was written. ASCII digits only, a whole word, no sign or decimals before it.
FEN_IN_TEXT = re.compile(r"(?<![\w.,+-])(-?[0-9]+) fen\b")


def fen_text_as_yuan(text: str) -> str:
    """A stored label with each "<n> fen" written as yuan, as staff pages show money: "50 fen" → "0.50 yuan"."""
    return FEN_IN_TEXT.sub(lambda match: f"{format_yuan(int(match.group(1)))} yuan", text or "")
