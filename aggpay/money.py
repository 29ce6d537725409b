"""Money helpers: integer fen everywhere, Decimal rates, explicit half-up rounding (design §5 rule 1).

>>> fee_for(amount=10000, rate=Decimal("0.0038"))
38
>>> fee_for(amount=133, rate=Decimal("0.006"))  # 0.798 fen rounds half-up to 1
1
>>> format_yuan(123456)
'1,234.56'
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN_PER_YUAN = 100
RATE_QUANTUM = Decimal("0.000001")  # rates are kept to 1e-6 (0.0001%)


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
    """Parse a yuan string such as '12.30' (as channels write bills) into fen, exactly."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise MoneyError(f"{text!r} is not an amount in yuan") from exc
    fen = value * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise MoneyError(f"{text!r} has fractions of a fen")
    return int(fen)
