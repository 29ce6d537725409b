"""Issue 5 "Callbacks" for the answers to our own queries: a channel's signed answer to a query of an order that
fails the cross-check is refused like such a callback and recorded (``security.query.mismatch``, an audit row on the
order) — and, being the same security event, is in risk's queue too: the second tab of the refused callbacks page,
with its counts and filters, the trade, what did not match, the channel's answer masked, and marking reviewed (one,
or selected ones in bulk) with a note, audited.

The mismatches are real ones, produced as tests/trades/test_order_followups.py does: the payer pays, the callback is
held back, the WeChat Pay simulator's record of the trade then states another amount (or currency), and the
merchant's GET of the order asks the channel over signed HTTP."""

from __future__ import annotations

import datetime as dt
import html
import re
import threading

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from aggpay.audit import audit_log
from aggpay.errors import Forbidden, InvalidRequest, NotFound
from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from channels.services.callback_reviews import answer_review_mark
from channels.simulators import wechatpay as wechat_sim
from tests.channels.test_refused_callbacks import _wechat_success
from tests.trades.conftest import shop  # noqa: F401 - the shop persona paying through the simulators (a fixture)
from tests.trades.test_order_followups import _create, _paid_for_another_amount
from trades.models import Order
from trades.services.staff import order_sync_by_staff

pytestmark = pytest.mark.usefixtures("quiet_channels")

ANSWERS = "/staff/channels/security/answers/"
CALLBACKS = "/staff/channels/security/callbacks/"


def _paid_in_another_currency(shop, simulator_server, order):  # noqa: F811 - the fixture's value
    """As _paid_for_another_amount, but the channel's record then states another currency."""
    _paid_for_another_amount(shop, simulator_server, order)
    sim = simulator_server.app.apps["wechatpay"]
    sim.store.update(wechat_sim.NS_TRADES, f"{shop.accounts['wechatpay'].config['sp_mchid']}:{order['id']}",
                     total=order["amount"], currency="USD")


def _query(shop, out_trade_no):  # noqa: F811
    status, _, answer = shop.client.request("GET", f"/api/v1/orders/{out_trade_no}")
    assert status == 200 and answer["state"] == "pending", (status, answer)


@pytest.fixture
def mismatches(shop, simulator_server):  # noqa: F811
    """Two refused query answers — one of another amount, one of another currency — and, around them, a refused
    callback and the other audit rows a trade gathers, which are not refused answers."""
    amount_order = _create(shop, "RQ000001")
    _paid_for_another_amount(shop, simulator_server, amount_order)
    _query(shop, "RQ000001")
    currency_order = _create(shop, "RQ000002")
    _paid_in_another_currency(shop, simulator_server, currency_order)
    _query(shop, "RQ000002")
    # A callback the cross-check refused (its own tab), for a third order.
    callback_order = _create(shop, "RQ000003")
    assert _wechat_success(shop, simulator_server, callback_order["id"], amount=1).status_code == 400
    rows = {r.target_id: r for r in AuditLog.objects.filter(action="security.query.mismatch")}
    assert set(rows) == {amount_order["id"], currency_order["id"]}, rows
    return {"amount": rows[amount_order["id"]], "currency": rows[currency_order["id"]],
            "amount_order": amount_order, "currency_order": currency_order, "callback_order": callback_order,
            "callback": ChannelCallback.objects.get(outcome=CallbackOutcome.REJECTED),
            "account": shop.accounts["wechatpay"]}


def _rows(response) -> list[str]:
    return re.findall(r'<tr data-answer="(\d+)"', response.content.decode())


def _row(response, mismatch: AuditLog) -> str:
    page = response.content.decode()
    start = page.index(f'<tr data-answer="{mismatch.pk}"')
    return page[start:page.index("</tr>", start)]


def test_it_shows_risk_each_refused_query_answer_with_its_account_trade_and_what_did_not_match(
        client, risk_zhao, mismatches):
    client.force_login(risk_zhao)

    response = client.get(ANSWERS)

    assert response.status_code == 200
    amount, currency = mismatches["amount"], mismatches["currency"]
    assert _rows(response) == [str(currency.pk), str(amount.pk)]  # newest first
    amount_row, currency_row = _row(response, amount), _row(response, currency)
    code = mismatches["account"].code
    assert 'data-field="amount"' in amount_row and "amount 1 differs from the order&#x27;s 1500" in amount_row
    assert 'data-field="currency"' in currency_row and "currency USD differs from CNY" in currency_row
    assert code in amount_row and "WeChat" in amount_row and ">query<" in amount_row
    assert f'data-trade="{mismatches["amount_order"]["id"]}"' in amount_row
    assert f'data-trade="{mismatches["currency_order"]["id"]}"' in currency_row
    assert "Tea House" in amount_row
    # Risk may not open support's trade pages: the number, not a link to a 403.
    assert "/staff/trades/" not in response.content.decode()
    counts = response.context["counts"]
    assert (counts["unreviewed"], counts["last_day"]) == (2, 2)
    assert counts["review"] == {"unreviewed": 2, "reviewed": 0, "all": 2}
    assert {t.key: (t.total, t.unreviewed) for t in counts["fields"]} == {
        "amount": (1, 1), "currency": (1, 1), "sub_merchant": (0, 0), "trade_no": (0, 0)}
    assert [(t.key, t.total, t.unreviewed) for t in counts["accounts"]] == [(code, 2, 2)]
    page = response.content.decode()
    assert re.search(r'id="count-unreviewed">2<', page)
    # The two tabs, each with what is left to review: the refused callback is counted on its own tab.
    assert re.search(r'data-source="callbacks">Refused callbacks\s*<span class="n bad" data-count="1">', page)
    assert re.search(r'data-source="answers">Refused query answers\s*<span class="n bad" data-count="2">', page)
    callbacks_page = client.get(CALLBACKS).content.decode()
    assert re.search(r'data-source="answers">Refused query answers\s*<span class="n bad" data-count="2">',
                     callbacks_page)


def test_it_links_the_trade_page_at_the_mismatch_for_someone_who_may_open_it(client, django_user_model,
                                                                            mismatches):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x" * 20))

    response = client.get(ANSWERS)

    order_id, pk = mismatches["amount_order"]["id"], mismatches["amount"].pk
    assert f'href="/staff/trades/{order_id}/#audit-{pk}"' in _row(response, mismatches["amount"])
    # … and that page does show it there.
    assert f'id="audit-{pk}"' in client.get(f"/staff/trades/{order_id}/").content.decode()


def test_its_filters_narrow_the_queue(local_midday, client, risk_zhao, mismatches, shop):  # noqa: F811
    client.force_login(risk_zhao)
    amount, currency = str(mismatches["amount"].pk), str(mismatches["currency"].pk)
    today = timezone.localdate()

    def ids(**params):
        response = client.get(ANSWERS, params)
        assert response.status_code == 200
        return set(_rows(response))

    assert ids(field="amount") == {amount}
    assert ids(field="currency") == {currency}
    assert ids(field="sub_merchant") == set()
    assert ids(account=mismatches["account"].code) == {amount, currency}
    assert ids(account=shop.accounts["alipay"].code) == set()
    assert ids(verb="query") == {amount, currency}
    assert ids(verb="create") == set()
    assert ids(date_from=today.isoformat(), date_to=today.isoformat()) == {amount, currency}
    assert ids(date_from=(today + dt.timedelta(days=1)).isoformat()) == set()
    assert ids(date_to=(today - dt.timedelta(days=1)).isoformat()) == set()
    assert ids(review="reviewed") == set()
    assert ids(review="all") == {amount, currency}


def test_one_refused_answer_shows_the_channels_answer_with_the_payer_masked(client, risk_zhao, mismatches,
                                                                             simulator_server):
    client.force_login(risk_zhao)
    order_id = mismatches["amount_order"]["id"]
    sim = simulator_server.app.apps["wechatpay"]
    payer = sim.store.get(wechat_sim.NS_TRADES, f"{mismatches['account'].config['sp_mchid']}:{order_id}")["payer_openid"]

    response = client.get(reverse("channels:refused_answer", args=[mismatches["amount"].pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(r'id="field">Amount<', page)
    assert "amount 1 differs from the order&#x27;s 1500" in page
    assert re.search(r'id="amount-stated">¥0\.01<', page)  # what the channel stated, in yuan
    assert response.context["answer"].format == "json"
    body = response.context["answer"].body
    assert order_id in body and '"total": 1' in body and body in html.unescape(page)
    assert payer and payer not in page  # who paid: redacted when recorded, masked again here
    assert 'id="review-form"' in page
    stored = Order.objects.get(pk=order_id)
    assert stored.state == "pending" and stored.paid_at is None  # nothing was changed by it


def test_nothing_of_another_kind_is_listed(client, risk_zhao, staff_member, mismatches):
    """The refused callback stays on its own tab, and none of the other audit rows (a trade's staff sync, the
    refused callback's own security row, a review) is taken for a refused answer."""
    client.force_login(risk_zhao)
    order_sync_by_staff(order_id=mismatches["callback_order"]["id"], actor=staff_member("support_agent"))
    answer_review_mark(answer_ids=[mismatches["amount"].pk], actor=risk_zhao, note="sandbox replay")
    order_ids = [mismatches[k]["id"] for k in ("amount_order", "currency_order", "callback_order")]
    assert AuditLog.objects.filter(action="security.callback.mismatch").exists()
    assert AuditLog.objects.exclude(action="security.query.mismatch").filter(target_id__in=order_ids).exists()

    listed = set(_rows(client.get(ANSWERS, {"review": "all"})))

    assert listed == {str(mismatches["amount"].pk), str(mismatches["currency"].pk)}
    callbacks = client.get(CALLBACKS, {"review": "all"})
    assert re.findall(r'<tr data-callback="(\d+)"', callbacks.content.decode()) == [str(mismatches["callback"].pk)]
    assert "data-answer=" not in callbacks.content.decode()


@pytest.mark.parametrize("role", ["support_agent", "operations", "finance", "onboarding_clerk", "admin"])
def test_staff_without_the_permission_get_403_and_mark_nothing(client, staff_member, mismatches, role):
    user = staff_member(role)
    client.force_login(user)
    pk = mismatches["amount"].pk

    assert client.get(ANSWERS).status_code == 403
    assert client.get(reverse("channels:refused_answer", args=[pk])).status_code == 403
    response = client.post(reverse("channels:refused_answers_review"), {"answer": [pk], "note": "looked"})
    assert response.status_code == 403
    with pytest.raises(Forbidden):
        answer_review_mark(answer_ids=[pk], actor=user, note="looked")
    assert not AuditLog.objects.filter(action="security.query.reviewed").exists()


def test_risk_marks_one_reviewed_from_its_page_audited_and_it_leaves_the_open_list(client, risk_zhao, mismatches):
    client.force_login(risk_zhao)
    amount, currency = mismatches["amount"], mismatches["currency"]
    detail = reverse("channels:refused_answer", args=[amount.pk])

    response = client.post(reverse("channels:refused_answers_review"),
                           {"answer": [amount.pk], "note": "WeChat confirmed a test trade", "next": detail},
                           follow=True)

    assert response.redirect_chain[-1][0] == detail
    page = response.content.decode()
    assert "Marked 1 refused answer reviewed." in page
    assert 'id="review-note">WeChat confirmed a test trade<' in page and 'id="review-form"' not in page
    review = AuditLog.objects.get(action="security.query.reviewed")
    assert (review.actor, review.reason) == (risk_zhao, "WeChat confirmed a test trade")
    assert (review.target_type, review.target_id) == ("aggpay.auditlog", str(amount.pk))
    assert review.data == {"order": mismatches["amount_order"]["id"], "account": mismatches["account"].code,
                           "mismatch": "amount 1 differs from the order's 1500"}
    assert AuditLog.objects.get(pk=amount.pk).data == amount.data  # the mismatch row itself is left as it was
    queue = client.get(ANSWERS)
    assert _rows(queue) == [str(currency.pk)]  # the queue opens on the unreviewed
    assert (queue.context["counts"]["unreviewed"], queue.context["counts"]["review"]["reviewed"]) == (1, 1)
    reviewed = client.get(ANSWERS, {"review": "reviewed"})
    assert _rows(reviewed) == [str(amount.pk)]
    assert "data-reviewed" in _row(reviewed, amount) and "zhao.risk" in _row(reviewed, amount)


def test_risk_marks_selected_ones_reviewed_in_bulk(client, risk_zhao, mismatches):
    client.force_login(risk_zhao)
    chosen = [mismatches["amount"], mismatches["currency"]]
    assert 'id="select-all"' in client.get(ANSWERS).content.decode()

    response = client.post(reverse("channels:refused_answers_review"), {
        "answer": [m.pk for m in chosen], "note": "channel confirmed: their record was wrong",
        "next": ANSWERS + "?review=all"})

    assert response.status_code == 302 and response["Location"] == ANSWERS + "?review=all"
    reviews = AuditLog.objects.filter(action="security.query.reviewed")
    assert sorted(r.target_id for r in reviews) == sorted(str(m.pk) for m in chosen)
    assert {(r.actor, r.reason) for r in reviews} == {(risk_zhao, "channel confirmed: their record was wrong")}
    queue = client.get(ANSWERS)
    assert _rows(queue) == [] and queue.context["counts"]["unreviewed"] == 0
    assert re.search(r'data-source="answers">Refused query answers\s*<span class="n" data-count="0">',
                     queue.content.decode())
    # The refused callback is still to review: marking answers did not touch it.
    mismatches["callback"].refresh_from_db()
    assert mismatches["callback"].reviewed_at is None


def test_it_marks_each_once_and_keeps_the_first_note(client, risk_zhao, staff_member, mismatches):
    amount, currency = mismatches["amount"], mismatches["currency"]
    answer_review_mark(answer_ids=[amount.pk], actor=risk_zhao, note="first look")
    other = staff_member("risk_officer", username="qian.risk")
    client.force_login(other)

    response = client.post(reverse("channels:refused_answers_review"),
                           {"answer": [amount.pk, currency.pk], "note": "seen"}, follow=True)

    page = response.content.decode()
    assert "Marked 1 refused answer reviewed." in page
    assert f"Already reviewed, left as they were: #{amount.pk} by zhao.risk." in page
    reviews = {r.target_id: r for r in AuditLog.objects.filter(action="security.query.reviewed")}
    assert len(reviews) == 2
    assert (reviews[str(amount.pk)].actor, reviews[str(amount.pk)].reason) == (risk_zhao, "first look")
    assert (reviews[str(currency.pk)].actor, reviews[str(currency.pk)].reason) == (other, "seen")


def test_it_marks_nothing_when_one_id_is_not_a_refused_answer(risk_zhao, mismatches):
    callback_row = AuditLog.objects.get(action="security.callback.mismatch")

    for ids in ([mismatches["amount"].pk, callback_row.pk], [mismatches["amount"].pk, 987654321]):
        with pytest.raises(NotFound):
            answer_review_mark(answer_ids=ids, actor=risk_zhao, note="looked")

    assert not AuditLog.objects.filter(action="security.query.reviewed").exists()


@pytest.mark.parametrize(("ids", "note"), [([], "looked"), (None, "looked"), (["x"], "looked"), ("first", "  ")])
def test_it_needs_ids_and_a_note(risk_zhao, mismatches, ids, note):
    with pytest.raises(InvalidRequest):
        answer_review_mark(answer_ids=[mismatches["amount"].pk] if ids == "first" else ids, actor=risk_zhao,
                           note=note)
    assert not AuditLog.objects.filter(action="security.query.reviewed").exists()


def test_a_note_is_required_from_the_page_too(client, risk_zhao, mismatches):
    client.force_login(risk_zhao)

    response = client.post(reverse("channels:refused_answers_review"),
                           {"answer": [mismatches["amount"].pk], "note": ""}, follow=True)

    assert "a note is required" in response.content.decode()
    assert not AuditLog.objects.filter(action="security.query.reviewed").exists()


def test_two_officers_marking_the_same_answer_at_once_leave_one_review(staff_member, mismatches):
    pk = mismatches["amount"].pk
    officers = [staff_member("risk_officer", username=f"risk-{i}") for i in range(2)]
    barrier, results = threading.Barrier(2), {}

    def mark(officer):
        try:
            barrier.wait()
            results[officer.username] = answer_review_mark(answer_ids=[pk], actor=officer,
                                                           note=f"by {officer.username}")
        finally:
            connection.close()  # this thread's own connection (close_old_connections keeps a healthy one open)

    threads = [threading.Thread(target=mark, args=(officer,)) for officer in officers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(r.reviewed) for r in results.values()) == [0, 1]
    (review,) = AuditLog.objects.filter(action="security.query.reviewed")
    assert review.reason == f"by {review.actor_label}"


def test_a_payment_codes_create_answer_refused_by_the_cross_check_is_listed_too(client, risk_zhao, mismatches):
    """trades.services.orders._answer_refused records a payment code's create answer that fails the cross-check
    the same way (``security.create.mismatch``); staged here as it writes it, since no simulator fault makes a
    create answer lie."""
    order = Order.objects.get(pk=mismatches["callback_order"]["id"])
    code = mismatches["account"].code
    with transaction.atomic():
        created = audit_log(actor=f"channel:{code}", action="security.create.mismatch", target=order,
                            data={"reason": f"sub-merchant 1900000999 is not {order.sub_mchid}",
                                  "channel_trade_no": "4200000001", "amount": order.amount,
                                  "sub_mchid": "1900000999"})
    client.force_login(risk_zhao)

    response = client.get(ANSWERS, {"verb": "create"})

    assert _rows(response) == [str(created.pk)]
    row = _row(response, created)
    assert 'data-field="sub_merchant"' in row and "payment-code create" in row
    assert response.context["counts"]["unreviewed"] == 3
    answer_review_mark(answer_ids=[created.pk], actor=risk_zhao, note="looked")
    assert AuditLog.objects.get(action="security.create.reviewed").target_id == str(created.pk)


def test_risks_home_tile_counts_the_unreviewed_answers_and_opens_them(client, risk_zhao, mismatches):
    from merchants.workbench import risk_home_queues

    def tile():
        return next(q for q in risk_home_queues() if q.label.startswith("Refused channel answers"))

    client.force_login(risk_zhao)
    assert (tile().count, tile().tone) == (2, "bad")
    assert sorted(_rows(client.get(tile().url))) == sorted(str(m.pk) for m in (mismatches["amount"],
                                                                                mismatches["currency"]))
    answer_review_mark(answer_ids=[mismatches["amount"].pk], actor=risk_zhao, note="looked")
    assert tile().count == 1
