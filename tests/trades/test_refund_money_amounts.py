"""Amounts typed in yuan, as a support agent types a refund (issue 5 "Staff pages"; design §5 rules 1 and 12).

``aggpay.money.yuan_to_fen`` turns the text into integer fen for the staff refund form (trades.views), the ops
product limits (channels.forms.YuanField) and the channels' bills. Whatever is typed, the answer is a whole number
of fen exactly as written, or MoneyError — which the form shows on the amount field. Decimal reads more than a
number of yuan ("Infinity", "sNaN", "1e999999999", thirty significant digits), and each of those used to escape as
another exception (a 500 on the refund page), burn seconds of CPU building a million-digit integer, or round a
fraction of a fen away at Decimal's 28 digits.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from aggpay.money import MoneyError, yuan_to_fen
from tests.trades.ledger import paid_order
from trades.models import Refund

# Not a number of yuan, or not one a BigIntegerField of fen can hold: each is refused as bad money.
NOT_AN_AMOUNT = ["Infinity", "-inf", "NaN", "sNaN", "1e999999999", "1e999997", "1e400", "99999999999999999999",
                 "1.0000000000000000000000000001", "12.30000000000000000000000000001"]


@pytest.mark.parametrize("text", NOT_AN_AMOUNT)
def test_yuan_text_that_is_not_a_storable_whole_number_of_fen_is_refused_as_bad_money(text):
    started = time.perf_counter()
    with pytest.raises(MoneyError):
        yuan_to_fen(text)
    assert time.perf_counter() - started < 0.5  # no million-digit integer is built first


@pytest.mark.parametrize(("text", "fen"), [("12.300", 1230), ("1E+2", 10_000), ("-0.00", 0), ("0e999999999", 0),
                                           ("92233720368547758.07", 2**63 - 1), ("0.010000000000000000000000000000", 1)])
def test_any_spelling_of_a_whole_number_of_fen_is_read_exactly(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("typed", ["Infinity", "sNaN", "1e999999999"])
def test_the_staff_refund_page_refuses_an_amount_that_is_not_money_naming_the_field(client, agent, tea_house, typed):
    order = paid_order(tea_house, f"T-YUAN-{typed[:5]}", amount=1234, paid_at=timezone.now() - dt.timedelta(hours=1))
    response = client.post(reverse("trades:refund", args=[order.pk]), {"amount": typed, "reason": "complaint"})
    html = response.content.decode()
    assert response.status_code == 400 and 'data-field="amount"' in html and "Enter an amount in yuan" in html
    assert not Refund.objects.exists()
