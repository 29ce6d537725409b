"""aggpay.money: integer fen, Decimal rates, half-up rounding, floats refused (design §5 rule 1)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggpay.money import MoneyError, fee_for, format_yuan, parse_rate, prorate, to_fen, yuan_to_fen

# Rates as the back office stores them: 0 ≤ rate < 1, at most 6 decimal places.
rates = st.integers(min_value=0, max_value=999_999).map(lambda micro: Decimal(micro) / Decimal(1_000_000))
amounts = st.integers(min_value=0, max_value=10**12)


@pytest.mark.parametrize(
    ("amount", "rate", "fee"),
    [
        (10000, "0.0038", 38),  # exact
        (133, "0.006", 1),  # 0.798 → 1
        (50, "0.01", 1),  # exactly half a fen: half-up gives 1 where banker's rounding gives 0
        (250, "0.01", 3),  # 2.5 → 3 (banker's: 2)
        (149, "0.01", 1),  # 1.49 → 1
        (0, "0.006", 0),
    ],
)
def test_it_rounds_the_fee_half_up_to_the_fen(amount, rate, fee):
    assert fee_for(amount=amount, rate=Decimal(rate)) == fee


def test_it_refuses_a_float_amount():
    with pytest.raises(MoneyError, match="integer number of fen"):
        fee_for(amount=100.0, rate=Decimal("0.006"))


def test_it_refuses_a_float_rate():
    with pytest.raises(MoneyError, match="Decimal"):
        fee_for(amount=100, rate=0.006)
    with pytest.raises(MoneyError, match="never floats"):
        parse_rate(0.006)


def test_it_refuses_a_boolean_as_an_amount():
    # bool is an int subclass: True would silently be 1 fen.
    with pytest.raises(MoneyError):
        to_fen(True)


def test_it_parses_a_rate_given_as_text():
    assert parse_rate("0.0038") == Decimal("0.0038")
    assert parse_rate(0) == Decimal(0)


@pytest.mark.parametrize("bad", ["1", "1.5", "-0.001", "0.0000001", "NaN", "Infinity", "abc", ""])
def test_it_rejects_a_rate_outside_the_unit_interval_or_too_precise(bad):
    with pytest.raises(MoneyError):
        parse_rate(bad)


@given(amount=amounts, rate=rates)
def test_the_fee_is_within_half_a_fen_of_the_exact_product(amount, rate):
    fee = fee_for(amount=amount, rate=rate)
    exact = Fraction(amount) * Fraction(rate)
    assert isinstance(fee, int)
    assert abs(Fraction(fee) - exact) <= Fraction(1, 2)
    if exact - int(exact) == Fraction(1, 2):
        # A tie goes up, never to even.
        assert fee == int(exact) + 1


@given(amount=amounts, rate=rates)
def test_a_fee_never_exceeds_the_amount(amount, rate):
    assert 0 <= fee_for(amount=amount, rate=rate) <= amount


def test_it_prorates_half_up():
    assert prorate(part=1, whole=3, value=100) == 33
    assert prorate(part=1, whole=2, value=3) == 2  # 1.5 → 2
    assert prorate(part=5, whole=5, value=38) == 38


def test_it_refuses_to_prorate_over_an_empty_whole():
    with pytest.raises(MoneyError, match="whole must be positive"):
        prorate(part=1, whole=0, value=10)


@pytest.mark.parametrize(
    ("fen", "text"), [(123456, "1,234.56"), (5, "0.05"), (-5, "-0.05"), (0, "0.00"), (100000000, "1,000,000.00")]
)
def test_it_displays_fen_as_yuan(fen, text):
    assert format_yuan(fen) == text


def test_it_refuses_to_display_a_float():
    with pytest.raises(MoneyError):
        format_yuan(12.3)


@pytest.mark.parametrize(("text", "fen"), [("12.30", 1230), (" 7 ", 700), ("0.01", 1), ("-3.5", -350)])
def test_it_parses_yuan_from_a_bill_exactly(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("bad", ["0.001", "abc", "", "1,000.00"])
def test_it_rejects_yuan_text_that_is_not_a_whole_number_of_fen(bad):
    with pytest.raises(MoneyError):
        yuan_to_fen(bad)


@given(fen=st.integers(min_value=-(10**13), max_value=10**13))
def test_displayed_yuan_parses_back_to_the_same_fen(fen):
    assert yuan_to_fen(format_yuan(fen).replace(",", "")) == fen
