"""Refund follow-ups (issue 5 "Staff pages", merchant-api.md "Refunds", design §5 rules 5 and 6).

- The staff refund form carries the number of the one refund it may make, minted when it is rendered and signed: a
  double click, a browser resubmit or two tabs submitting the same form make ONE refund, and the second submit shows
  it; another refund needs a freshly rendered form.
- ``GET /api/v1/refunds/{no}`` asks the channel about a pending refund at most once every few seconds per refund,
  the allowance claimed before the channel is asked (as orders do): N polls at once give one channel query.
- A failed refund retried under its out_refund_no no longer shows the failed attempt's channel refund number as its
  own while the new attempt has not answered; the old number stays on the timeline (the ``retried`` audit row).

Races are staged with the house pattern (tests/trades/test_races.py): threads released together, the channel slowed
by the simulator's latency fault so every request is in flight before the first answer is recorded."""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from aggpay.models import AuditLog
from tests.race_condition import in_threads, retrying_resets
from tests.trades.bank_flow import bank_refunds, paid_at_the_bank, refund, refund_in_state
from tests.trades.test_races import _client
from tests.trades.test_staff_refunds import _paid
from trades.models import ChannelCall, Order, Refund
from trades.services.refunds import RETRIED

pytestmark = pytest.mark.usefixtures("quiet_channels")


@pytest.fixture
def agent(staff_member):
    return staff_member("support_agent", username="chen.support")


def _form_no(client, order: Order) -> str:
    """The number of the refund form as the trade page renders it ("" if the form has none)."""
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    form = page[page.index('id="refund-form"'):]
    found = re.search(r'name="form_no" value="([^"]+)"', form[:form.index("</form>")])
    return found.group(1) if found else ""


def _slow_wechat_refunds(shop, times: int) -> None:
    """Every WeChat refund request takes a second and a half (A.10 create refund)."""
    shop.sim("wechatpay", "/_control/faults", fault="latency", seconds=1.5, times=times,
             match={"path": "refund/domestic/refunds$", "method": "POST"})


# --- 1. the staff refund form, submitted twice ------------------------------------------------------------------------


def test_it_makes_one_refund_when_the_same_staff_refund_form_is_submitted_twice(shop, client, agent):
    order = _paid(shop, "FU-STAFF-1")
    client.force_login(agent)
    url, data = reverse("trades:refund", args=[order.pk]), {"amount": "2.34", "reason": "one cup short",
                                                           "form_no": _form_no(client, order)}

    first = client.post(url, data)
    second = client.post(url, data)  # the double click / the browser's "resubmit the form?"

    refund = Refund.objects.get(order=order)
    assert first.status_code == second.status_code == 302
    assert first.url == second.url and first.url.endswith(f"#refund-{refund.pk}")
    assert refund.amount == 234 and Order.objects.get(pk=order.pk).refund_reserved == 234
    assert AuditLog.objects.filter(action="trades.refund.staff_created").count() == 1
    page = client.get(second.url).content.decode()
    assert f"This refund form was already submitted: refund {refund.pk} of 2.34 yuan" in page


def test_it_shows_the_refund_when_the_form_that_refunded_everything_is_submitted_again(shop, client, agent):
    order = _paid(shop, "FU-STAFF-2")
    client.force_login(agent)
    url, form_no = reverse("trades:refund", args=[order.pk]), _form_no(client, order)
    assert client.post(url, {"amount": "12.34", "reason": "wrong tea", "form_no": form_no}).status_code == 302

    # Edited and sent again (the first answer was slow): a replay, not "nothing left" and not a second refund.
    again = client.post(url, {"amount": "1.00", "reason": "wrong tea, again", "form_no": form_no})

    (made,) = Refund.objects.filter(order=order)
    assert again.status_code == 302 and again.url.endswith(f"#refund-{made.pk}") and made.amount == 1234


def test_a_freshly_rendered_form_makes_a_new_refund(shop, client, agent):
    order = _paid(shop, "FU-STAFF-3")
    client.force_login(agent)
    url = reverse("trades:refund", args=[order.pk])
    for _ in range(2):
        response = client.post(url, {"amount": "1.00", "reason": "complaint", "form_no": _form_no(client, order)})
        assert response.status_code == 302
    assert Refund.objects.filter(order=order).count() == 2
    assert Order.objects.get(pk=order.pk).refund_reserved == 200


def test_a_form_not_rendered_for_this_order_makes_nothing_and_is_shown_again_with_a_new_number(shop, client,
                                                                                               agent):
    order, other = _paid(shop, "FU-STAFF-4"), _paid(shop, "FU-STAFF-4B")
    client.force_login(agent)
    url = reverse("trades:refund", args=[order.pk])
    made_up = signing.dumps({"order": order.pk, "out_refund_no": "R-MERCHANT-1"}, salt="not-ours")
    for form_no in ("", "staff-20260101000000-abcd", made_up, _form_no(client, other)):
        response = client.post(url, {"amount": "1.00", "reason": "complaint", "form_no": form_no})
        html = response.content.decode()
        assert response.status_code == 400 and "not issued for this order" in html, form_no
        fresh = re.search(r'name="form_no" value="([^"]+)"', html).group(1)
        assert fresh != form_no
    assert not Refund.objects.exists()
    # The form shown again is this order's: submitted, it refunds.
    assert client.post(url, {"amount": "1.00", "reason": "complaint", "form_no": fresh}).status_code == 302
    assert Refund.objects.get().order_id == order.pk


def test_a_refused_refunds_form_is_not_retried_by_a_resubmit(shop, client, agent):
    order = _paid(shop, "FU-STAFF-5")
    client.force_login(agent)
    url, form_no = reverse("trades:refund", args=[order.pk]), _form_no(client, order)
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="NOT_ENOUGH",
             message="insufficient balance", status=403, times=1,
             match={"path": "refund/domestic/refunds$", "method": "POST"})
    refused = client.post(url, {"amount": "1.00", "reason": "complaint", "form_no": form_no})
    assert refused.status_code == 400
    failed = Refund.objects.get(order=order)
    assert failed.state == "failed"
    # The page shown after the refusal carries a new number: pressing Refund there is a deliberate new refund.
    fresh = re.search(r'name="form_no" value="([^"]+)"', refused.content.decode()).group(1)
    assert fresh != form_no

    replay = client.post(url, {"amount": "1.00", "reason": "complaint", "form_no": form_no})  # F5 on the 400 page
    assert replay.status_code == 302 and replay.url.endswith(f"#refund-{failed.pk}")
    failed.refresh_from_db()
    assert failed.state == "failed" and failed.channel_attempt == 0  # not retried
    assert client.post(url, {"amount": "1.00", "reason": "complaint", "form_no": fresh}).status_code == 302
    assert Refund.objects.filter(order=order).count() == 2


def test_two_submits_of_one_form_at_once_make_one_refund(shop, agent):
    order = _paid(shop, "FU-STAFF-RACE")
    browser = Client()
    browser.force_login(agent)
    url = reverse("trades:refund", args=[order.pk])
    data = {"amount": "3.00", "reason": "double click", "form_no": _form_no(browser, order)}
    _slow_wechat_refunds(shop, times=2)

    def submit(_):
        tab = Client()
        tab.force_login(agent)
        return tab.post(url, data)

    answers = in_threads(2, submit)

    refund = Refund.objects.get(order=order)
    assert [a.status_code for a in answers] == [302, 302]
    assert {a.url for a in answers} == {reverse("trades:detail", args=[order.pk]) + f"#refund-{refund.pk}"}
    assert Order.objects.get(pk=order.pk).refund_reserved == 300
    assert ChannelCall.objects.filter(refund=refund, verb="refund").count() == 1


# --- 2. the merchant's refund query, rate-limited per refund ----------------------------------------------------------

POLLS = 8


def test_parallel_merchant_queries_of_one_pending_refund_ask_the_channel_once(shop, live_server):
    order = paid_at_the_bank(shop, "FU-POLL-1")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    status, created = refund(shop, order, "R-FU-POLL-1", 500)
    assert status == 201 and created["state"] == "pending", created
    shop.sim("bank", "/_control/faults", fault="latency", seconds=1.5, times=POLLS,
             match={"path": "/api/refund/query", "contains": created["id"]})

    answers = in_threads(POLLS, lambda i: retrying_resets(lambda: _client(shop, live_server).request(
        "GET", "/api/v1/refunds/R-FU-POLL-1")))

    assert [status for status, _, _ in answers] == [200] * POLLS, answers
    assert {body["state"] for _, _, body in answers} == {"pending"}
    assert ChannelCall.objects.filter(refund_id=created["id"], verb="query_refund").count() == 1


# --- 3. the retry of a failed refund and the channel's number ---------------------------------------------------------


def test_a_retried_refund_does_not_show_the_failed_attempts_channel_number_as_its_own(shop, simulator_server):
    order = paid_at_the_bank(shop, "FU-RETRY-1")
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=0)
    refund(shop, order, "R-FU-RETRY-1", 500)
    shop.sim("bank", "/_control/flush")
    failed = refund_in_state(shop, Refund.objects.get(out_refund_no="R-FU-RETRY-1").pk, "failed")
    assert failed.channel_refund_no  # the bank's number of the refund it failed

    # The merchant retries; the bank does not answer this time (503: unknown), so the retry is pending unanswered.
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)
    shop.sim("bank", "/_control/faults", fault="http_503", times=1, match={"path": "/api/refund/apply"})
    status, retried = refund(shop, order, "R-FU-RETRY-1", 500)

    assert status == 201 and retried["state"] == "pending" and retried["failure"] is None, retried
    assert retried["channel_refund_no"] is None, retried
    status, _, queried = shop.client.request("GET", "/api/v1/refunds/R-FU-RETRY-1")
    assert status == 200 and queried["channel_refund_no"] in (None, ""), queried
    row = AuditLog.objects.get(action=RETRIED, target_id=failed.pk)
    assert row.data["failed_channel_refund_no"] == failed.channel_refund_no  # kept on the timeline
