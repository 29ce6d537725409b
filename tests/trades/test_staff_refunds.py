"""Refunds from the staff pages (issue 5 "Staff pages"): permission-checked in the view and the service, a reason
required, the amount in yuan validated with the field named, audited, and sent to the channel like any refund —
on an order paid through the WeChat Pay simulator over signed HTTP."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from aggpay.errors import Forbidden, InvalidRequest, InvalidState
from aggpay.models import AuditLog
from trades.models import Order, Refund
from trades.services.staff import order_refund_by_staff


def _paid(shop, out_trade_no: str, amount: int = 1234) -> Order:
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "wechat.native", "subject": "Longjing tea"})
    assert status == 201, order
    shop.sim("wechatpay", "/_payer/pay", code_url=order["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    return shop.wait_for(lambda: Order.objects.filter(pk=order["id"], state="succeeded").first(), message="paid")


@pytest.fixture
def agent(staff_member):
    return staff_member("support_agent", username="chen.support")


def test_a_support_agent_refunds_part_of_a_paid_order_and_it_is_audited(shop, agent):
    order = _paid(shop, "STAFF-1")
    refund = order_refund_by_staff(order_id=order.pk, actor=agent, amount=234, reason="one cup short")
    assert refund.amount == 234 and refund.requested_by == "chen.support" and refund.reason == "one cup short"
    assert refund.out_refund_no.startswith("staff-") and refund.state in ("pending", "succeeded")
    assert refund.channel_calls.filter(verb="refund").exists()  # it went to the channel
    order.refresh_from_db()
    assert order.refund_reserved == 234 and order.refundable_amount == 1000
    row = AuditLog.objects.get(action="trades.refund.staff_created", target_id=refund.pk)
    assert row.actor == agent and row.reason == "one cup short" and row.data["amount"] == 234


def test_the_audit_row_is_written_with_the_refund_before_the_channel_is_asked(shop, agent, monkeypatch):
    """Staged: the process dies once the refund is committed, before the channel call. The refund and its audit
    row were committed together, so neither exists without the other."""
    order = _paid(shop, "STAFF-CRASH")

    def dies(*, refund_id):
        assert AuditLog.objects.filter(action="trades.refund.staff_created", target_id=refund_id).exists()
        raise SystemExit("the worker was killed")

    monkeypatch.setattr("trades.services.refunds.refund_send", dies)
    with pytest.raises(SystemExit):
        order_refund_by_staff(order_id=order.pk, actor=agent, amount=100, reason="one cup short")
    refund = Refund.objects.get(order=order)
    row = AuditLog.objects.get(action="trades.refund.staff_created", target_id=refund.pk)
    assert row.actor == agent and row.reason == "one cup short"
    assert row.data == {"order": order.pk, "amount": 100, "out_refund_no": refund.out_refund_no}


def test_a_refund_needs_the_refund_permission(shop, staff_member):
    order = _paid(shop, "STAFF-2")
    for role in ("finance", "onboarding_clerk"):
        with pytest.raises(Forbidden):
            order_refund_by_staff(order_id=order.pk, actor=staff_member(role), amount=100, reason="complaint")
    assert not Refund.objects.exists() and not AuditLog.objects.filter(action="trades.refund.staff_created").exists()


def test_a_refund_needs_a_reason(shop, agent):
    order = _paid(shop, "STAFF-3")
    for reason in ("", "   "):
        with pytest.raises(InvalidRequest) as caught:
            order_refund_by_staff(order_id=order.pk, actor=agent, amount=100, reason=reason)
        assert caught.value.param == "reason"
    assert not Refund.objects.exists()


@pytest.mark.parametrize("amount", [0, -5, 1235, "100", 1.5, True])
def test_a_bad_amount_is_refused_naming_the_amount(shop, agent, amount):
    order = _paid(shop, f"STAFF-4-{abs(hash(repr(amount))) % 10000}")
    with pytest.raises(InvalidRequest) as caught:
        order_refund_by_staff(order_id=order.pk, actor=agent, amount=amount, reason="complaint")
    assert caught.value.param == "amount"
    assert not Refund.objects.exists()


def test_an_unpaid_order_cannot_be_refunded(shop, agent):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "STAFF-5", "amount": 500, "product": "wechat.native", "subject": "tea"})
    with pytest.raises(InvalidState):
        order_refund_by_staff(order_id=created["id"], actor=agent, amount=100, reason="complaint")


def test_the_refund_page_takes_yuan_and_names_the_bad_field(shop, client, agent):
    order = _paid(shop, "STAFF-6")
    client.force_login(agent)
    url = reverse("trades:refund", args=[order.pk])
    for amount, message in (("abc", "Enter an amount in yuan"), ("1.234", "Enter an amount in yuan"),
                            ("0", "at least 0.01"), ("12.35", "At most 12.34 yuan")):
        response = client.post(url, {"amount": amount, "reason": "complaint"})
        html = response.content.decode()
        assert response.status_code == 400 and 'data-field="amount"' in html and message in html, amount
    response = client.post(url, {"amount": "2.34", "reason": ""})
    assert response.status_code == 400 and 'data-field="reason"' in response.content.decode()
    assert not Refund.objects.exists()

    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    form_no = re.search(r'name="form_no" value="([^"]+)"', page).group(1)  # minted when the form is rendered
    response = client.post(url, {"amount": "2.34", "reason": "one cup short", "form_no": form_no})
    refund = Refund.objects.get(order=order)
    assert response.status_code == 302 and response.url.endswith(f"#refund-{refund.pk}")
    assert refund.amount == 234  # 2.34 yuan, exactly
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert f'id="refund-{refund.pk}"' in page and "2.34 yuan" in page and "trades.refund.staff_created" in page
