"""Refunds under concurrency and the fee snapshot they give back (design §5 rules 1 and 6), staged with threads, each
on its own PostgreSQL connection:

- many refunds of one order succeeding at once (their callbacks and queries land together, some twice) count each
  refund once, and what they give back of the merchant fee, channel cost, ISV rebate and profit adds up exactly to
  the order's snapshot once it is fully refunded — no fen lost or created, whatever order they land in;
- a failed refund retried many times at once while new refunds compete for the same money: one retry, the others
  replays, and the refunds that are not failed never reserve more than was paid;
- the same refund asked many times at once is one refund.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
import requests
from django.db.models import Sum
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from aggpay.api.client import AggpayClient
from channels.adapters.base import RefundResult
from tests.race_condition import in_threads
from tests.trades.bank_flow import (
    bank_refunds,
    paid_at_the_bank,
    refund,
    refund_in_state,
    settle_now,
    unreachable_bank_account,
)
from trades.models import Order, Refund
from trades.services.fees import fee_snapshot_of, fees_for_payment, fees_for_refund
from trades.services.refunds import refund_apply_result, refund_fingerprint


def _post(live_server, shop, path: str, body: dict):
    """A signed POST on its own connection; a connection the test server's small backlog reset before reading the
    request is sent again, as a merchant would (safe: refunds are idempotent by out_refund_no)."""
    client = AggpayClient(live_server.url, shop.app.app_id, secret=shop.app.secret)
    for _ in range(20):
        try:
            return client.request("POST", path, json=body)
        except requests.ConnectionError:
            continue
    return client.request("POST", path, json=body)


def _given_back(order) -> tuple[int, int, int, int]:
    rows = Refund.objects.filter(order=order, state="succeeded")
    fee = sum(r.merchant_fee_refunded for r in rows)
    cost = sum(r.channel_cost_refunded for r in rows)
    rebate = sum(r.rebate_refunded for r in rows)
    return fee, cost, rebate, fee - cost + rebate


def _paid_order(app, account, *, amount: int, merchant_rate: str, cost_rate: str, rebate_rate: str) -> Order:
    fees = fees_for_payment(amount=amount, merchant_rate=Decimal(merchant_rate), cost_rate=Decimal(cost_rate),
                            rebate_rate=Decimal(rebate_rate))
    return Order.objects.create(
        merchant=app.merchant, app=app, out_trade_no="T-AUD-FEES", amount=amount, product="unionpay.qr",
        subject="tea", request_fingerprint="x" * 64, expires_at=timezone.now() + dt.timedelta(hours=2),
        channel_account=account, state="succeeded", paid_at=timezone.now(), merchant_rate=fees.merchant_rate,
        merchant_fee=fees.merchant_fee, cost_rate=fees.cost_rate, channel_cost=fees.channel_cost,
        rebate_rate=fees.rebate_rate, rebate=fees.rebate, profit=fees.profit)


def _pending_refunds(order: Order, amounts: list[int]) -> list[Refund]:
    """Refunds the channel has accepted and not yet answered: their amounts reserved on the order."""
    rows = [Refund.objects.create(order=order, merchant=order.merchant, out_refund_no=f"RA-F-{i:03d}", amount=amount,
                                  request_fingerprint=refund_fingerprint(out_refund_no=f"RA-F-{i:03d}", amount=amount,
                                                                         reason="", notify_url=""),
                                  requested_by="api:x")
            for i, amount in enumerate(amounts)]
    Order.objects.filter(pk=order.pk).update(refund_reserved=sum(amounts))
    return rows


def test_refunds_succeeding_at_once_give_back_exactly_the_whole_snapshot(transactional_db, tea_house_app):
    account = unreachable_bank_account("bank-audit-fees")
    # 0.38% of 9,999 is 37.9962 fen, 0.23% 22.9977, 0.05% 4.9995: every refund's share is a fraction of a fen.
    order = _paid_order(tea_house_app, account, amount=9_999, merchant_rate="0.0038", cost_rate="0.0023",
                        rebate_rate="0.0005")
    assert (order.merchant_fee, order.channel_cost, order.rebate, order.profit) == (38, 23, 5, 20)
    amounts = [1, 333, 1_111, 7, 2_500, 999, 3_333, 1_715]
    assert sum(amounts) == order.amount
    refunds = _pending_refunds(order, amounts)
    # Each success is applied twice (a callback and a query about the same refund crossing).
    work = [r for r in refunds for _ in range(2)]
    random.Random(5).shuffle(work)

    def succeed(i):
        r = work[i]
        return refund_apply_result(refund_id=r.pk, result=RefundResult(state="succeeded", out_refund_no=r.pk,
                                                                       amount=r.amount)).state

    assert set(in_threads(len(work), succeed)) == {"succeeded"}
    paid = Order.objects.get(pk=order.pk)
    assert (paid.refunded_amount, paid.refund_reserved, paid.refund_state) == (9_999, 9_999, "full")
    assert _given_back(order) == (38, 23, 5, 20)


@settings(max_examples=200, deadline=None)
@given(paid=st.integers(min_value=1, max_value=10**9),
       parts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=8),
       rates=st.tuples(*[st.decimals(min_value=Decimal("0"), max_value=Decimal("0.05"), places=6)] * 3),
       seed=st.integers(min_value=0, max_value=10**6))
def test_partial_refunds_in_any_order_give_back_fee_cost_rebate_and_profit_exactly(paid, parts, rates, seed):
    snap = fees_for_payment(amount=paid, merchant_rate=rates[0], cost_rate=rates[1], rebate_rate=rates[2])
    total = sum(parts)
    refunds = [paid * p // total for p in parts]
    refunds[-1] += paid - sum(refunds)
    refunds = [r for r in refunds if r > 0]
    random.Random(seed).shuffle(refunds)
    done, back = 0, [0, 0, 0, 0]
    for amount in refunds:
        part = fees_for_refund(snapshot=snap, paid=paid, refund=amount, already_refunded=done)
        assert min(part.merchant_fee, part.channel_cost, part.rebate) >= 0
        done += amount
        for i, value in enumerate((part.merchant_fee, part.channel_cost, part.rebate, part.profit)):
            back[i] += value
        # Never more given back than the share refunded so far, rounded half-up.
        assert back[0] <= snap.merchant_fee and back[1] <= snap.channel_cost and back[2] <= snap.rebate
    assert back == [snap.merchant_fee, snap.channel_cost, snap.rebate, snap.profit]


def test_a_single_full_refund_gives_back_exactly_the_snapshot(transactional_db, tea_house_app):
    account = unreachable_bank_account("bank-audit-full")
    order = _paid_order(tea_house_app, account, amount=133, merchant_rate="0.006", cost_rate="0.0038",
                        rebate_rate="0.0012")
    (whole,) = _pending_refunds(order, [133])
    refund_apply_result(refund_id=whole.pk, result=RefundResult(state="succeeded", out_refund_no=whole.pk,
                                                                amount=133))
    snapshot = fee_snapshot_of(Order.objects.get(pk=order.pk))
    assert _given_back(order) == (snapshot.merchant_fee, snapshot.channel_cost, snapshot.rebate, snapshot.profit)


# --- over the merchant API, against the bank simulator ---------------------------------------------------------------

@pytest.mark.usefixtures("quiet_channels")
def test_retries_of_a_failed_refund_racing_new_refunds_never_reserve_more_than_was_paid(shop, simulator_server,
                                                                                          live_server):
    order = paid_at_the_bank(shop, "T-AUD-RACE1", amount=1000)
    bank_refunds(shop, refund_outcome="FAIL", refund_seconds=600)
    status, failed = refund(shop, order, "RA-RACE-RETRY", 600)
    assert status == 201, failed
    settle_now(shop, simulator_server, failed["id"])
    refund_in_state(shop, failed["id"], "failed")
    bank_refunds(shop, refund_outcome="SUCCESS", refund_seconds=600)

    def ask(i):
        number = "RA-RACE-RETRY" if i % 2 == 0 else f"RA-RACE-{i:04d}"
        return number, _post(live_server, shop, f"/api/v1/orders/{order.out_trade_no}/refunds",
                             {"out_refund_no": number, "amount": 600})

    answers = in_threads(12, ask)
    assert all(status < 500 for _, (status, _, _) in answers), answers
    made = [number for number, (status, _, _) in answers if status == 201]
    assert len(made) == 1, answers  # 2 × 600 > 1000: one refund of 600 only, a retry or a new one
    refused = [body for _, (status, _, body) in answers if status == 422]
    assert {b["error"]["code"] for b in refused} <= {"refund_amount_exceeded"}
    paid = Order.objects.get(pk=order.pk)
    live = Refund.objects.filter(order=order).exclude(state__in=("failed", "closed"))
    assert live.aggregate(total=Sum("amount"))["total"] == paid.refund_reserved == 600
    retried = Refund.objects.get(pk=failed["id"])
    assert retried.channel_attempt == (1 if made == ["RA-RACE-RETRY"] else 0)


@pytest.mark.usefixtures("quiet_channels")
def test_the_same_refund_asked_at_once_many_times_is_one_refund(shop, live_server):
    order = paid_at_the_bank(shop, "T-AUD-RACE2", amount=1000)

    def ask(_):
        return _post(live_server, shop, f"/api/v1/orders/{order.out_trade_no}/refunds",
                     {"out_refund_no": "RA-RACE-SAME", "amount": 700})

    answers = in_threads(10, ask)
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] * 9 + [201], [(s, b) for s, _, b in answers]
    assert len({body["id"] for _, _, body in answers}) == 1
    assert all(h.get("Idempotent-Replayed") == "true" for s, h, _ in answers if s == 200)
    assert Order.objects.get(pk=order.pk).refund_reserved == 700
