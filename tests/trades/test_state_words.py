"""Messages name a state after their subject in words that read: "the order has succeeded", not "the order is
succeeded" — to merchants (the API's error messages) as to staff (trades.services.representation.state_words)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from aggpay.errors import InvalidState
from trades.models import Order
from trades.services.refunds import refund_create
from trades.services.representation import state_words


@pytest.mark.parametrize(("state", "words"), [("succeeded", "has succeeded"), ("failed", "has failed"),
                                              ("pending", "is pending"), ("closed", "is closed"),
                                              ("reversed", "is reversed")])
def test_a_state_reads_after_its_subject(state, words):
    assert state_words(state) == words


@pytest.mark.django_db
def test_a_refund_of_a_failed_order_is_refused_in_words_that_read(tea_house_app):
    order = Order.objects.create(merchant=tea_house_app.merchant, app=tea_house_app, out_trade_no="T-WORDS-1",
                                 amount=1000, product="wechat.native", subject="tea", request_fingerprint="x" * 64,
                                 expires_at=timezone.now() + dt.timedelta(hours=2), state="failed")

    with pytest.raises(InvalidState) as refused:
        refund_create(order=order, out_refund_no="R1", amount=100, actor_label="api:test")

    assert refused.value.message == "the order has failed; only paid orders can be refunded"
