"""Yuan as a person types it and as a stored label gives it (design §5 rule 1): ``plain_yuan_to_fen`` takes plain
ASCII digits with at most two decimals, nothing Decimal alone would also read; ``fen_text_as_yuan`` rewrites a label's
"<n> fen" in yuan, as staff pages show money."""

from __future__ import annotations

import pytest

from aggpay.money import MoneyError, fen_text_as_yuan, plain_yuan_to_fen


@pytest.mark.parametrize("text", ["1e1", "1E-2", "Infinity", "-Infinity", "NaN", "sNaN", " 1 0", "１０", "1_0",
                                  "+1", "-1", "0x10", "10.", ".5", "1.234", "1,000", "", "  ", "12\n3", "٣"])
def test_anything_but_plain_digits_with_at_most_two_decimals_is_not_an_amount(text):
    with pytest.raises(MoneyError):
        plain_yuan_to_fen(text)


@pytest.mark.parametrize(("text", "fen"), [("0", 0), ("10", 1000), ("10.5", 1050), ("10.05", 1005),
                                           (" 12.30 ", 1230), ("92233720368547758.07", 2**63 - 1)])
def test_plain_yuan_is_counted_in_fen_exactly(text, fen):
    assert plain_yuan_to_fen(text) == fen


def test_an_amount_too_large_for_the_fen_column_is_refused():
    with pytest.raises(MoneyError, match="too large"):
        plain_yuan_to_fen("92233720368547758.08")


@pytest.mark.parametrize(("label", "shown"), [
    ("ord_1 T100 50 fen (pending)", "ord_1 T100 0.50 yuan (pending)"),
    ("ref_1 staff-20261128 123456 fen (succeeded)", "ref_1 staff-20261128 1,234.56 yuan (succeeded)"),
    ("T-50 fen", "T-50 fen"),  # part of a number, not an amount
    ("1.5 fen", "1.5 fen"),
    ("50 fenced", "50 fenced"),
    ("", ""),
])
def test_a_labels_fen_are_shown_in_yuan(label, shown):
    assert fen_text_as_yuan(label) == shown
