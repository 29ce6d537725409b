"""Words, not codes, on support's trade pages (a support lead's trial of the demo):

- an audit row on the trade timeline says what happened ("Synced by staff…"), its action's code kept small beside it
  (as the audit log lists and filters it), not the code alone (``trades.order.staff_synced``);
- the search list's Sync column says "Known" as the trade page does, not ``ok``;
- a staff refund posted on an order that is not paid says so, not "this refund form was not issued… At most 0.00
  yuan can still be refunded".
"""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.urls import reverse

from aggpay.audit import audit_log
from tests.trades.test_staff_workbench import _order
from trades.models import Refund

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action, data, words", [
    ("trades.order.staff_synced", {"from": "pending", "to": "pending", "sync_state": "unknown"},
     "Synced by staff: the channel was asked at once"),
    ("trades.refund.abnormal_resolved", {"state": "succeeded", "requeried": False},
     "Abnormal refund marked handled by staff"),
    ("trades.refund.abnormal_resolved", {"state": "pending", "requeried": True},
     "Abnormal refund marked handled by staff: keep asking the channel"),
    ("trades.order.some_new_thing", {}, "Order: some new thing"),
])
def test_an_audit_row_on_the_timeline_says_what_happened_in_words(tea_house, client, agent, action, data, words):
    order = _order(tea_house, "WORDS-1", state="succeeded")
    with transaction.atomic():
        audit_log(actor=agent, action=action, target=order, data=data)
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    entry = re.search(r'<li class="[^"]*" id="audit-\d+" data-kind="audit">(.*?)</li>', page, re.S).group(1)
    assert f'<span class="what">{words}</span>' in entry, entry
    assert f'data-action="{action}">{action}</span>' in entry  # the code, small, beside the words


def test_the_search_list_says_known_not_ok(tea_house, client, agent):
    _order(tea_house, "WORDS-2", state="succeeded")
    _order(tea_house, "WORDS-3", sync_state="unknown")
    html = client.get(reverse("trades:search"), {"q": tea_house.merchant_no}).content.decode()
    assert '<span class="muted" data-sync="ok">Known</span>' in html
    assert "Unknown — being queried" in html
    assert '<span class="muted">ok</span>' not in html


@pytest.mark.parametrize("state", ["closed", "pending"])
def test_a_staff_refund_of_an_unpaid_order_says_the_order_is_not_paid(tea_house, client, agent, state):
    order = _order(tea_house, f"WORDS-{state}", state=state)
    response = client.post(reverse("trades:refund", args=[order.pk]),
                           {"amount": "1.00", "reason": "complaint", "form_no": "forged-or-stale"})
    assert response.status_code == 400
    said = [str(m) for m in response.context["messages"]]
    assert said == [f"No refund was made: the order is {state}; only paid orders can be refunded."], said
    html = response.content.decode()
    assert "was not issued" not in html and "At most 0.00" not in html
    assert not Refund.objects.exists()
