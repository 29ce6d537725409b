"""Issue 5 "Callbacks": a callback that fails verification or the cross-check "is refused and recorded as a security
event visible to risk". End to end: the channels' notices — signed with the simulators' own keys, one tampered with,
one naming the wrong amount, one naming an order we never had — are posted over HTTP to the accounts' callback URLs
on the live server; then a risk officer finds them in the queue of refused callbacks with the right reason and
trade, filters it, reads one, marks them reviewed (audited), and the home tile's count drops."""

from __future__ import annotations

import datetime as dt
import html
import json
import secrets

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from aggpay.models import AuditLog
from channels.callbacks import callback_url
from channels.models import CallbackOutcome, ChannelCallback
from channels.simulators import alipay_trades
from channels.simulators import wechatpay_crypto as wechat_sim_crypto
from merchants import workbench as merchant_workbench
from tests.trades.conftest import shop  # noqa: F401 - the shop persona paying through the simulators (a fixture)

pytestmark = pytest.mark.usefixtures("quiet_channels")

QUEUE = "/staff/channels/security/callbacks/"
PAYER_OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
ALIPAY_BUYER = "2088102177846880"


def _order(shop, out_trade_no: str, product: str) -> dict:  # noqa: F811 - the fixture's value
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": product, "subject": "tea"})
    assert status == 201, order
    return order


def _wechat_success(shop, simulator_server, out_trade_no: str, *, amount: int) -> requests.Response:  # noqa: F811
    """WeChat Pay's TRANSACTION.SUCCESS for ``out_trade_no``, signed and encrypted with the simulator's keys."""
    sim = simulator_server.app.apps["wechatpay"]
    account = sim.account(shop.accounts["wechatpay"].config["sp_mchid"])
    resource = {"sp_mchid": account["sp_mchid"], "sub_mchid": "1900000109", "out_trade_no": out_trade_no,
                "transaction_id": "42" + secrets.token_hex(13), "trade_type": "NATIVE", "trade_state": "SUCCESS",
                "trade_state_desc": "支付成功", "success_time": "2026-11-26T10:00:00+08:00",
                "payer": {"sp_openid": PAYER_OPENID},
                "amount": {"total": amount, "currency": "CNY", "payer_total": amount, "payer_currency": "CNY"}}
    body = json.dumps({
        "id": "EV-" + secrets.token_hex(12).upper(), "create_time": "2026-11-26T10:00:00+08:00",
        "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
        "resource": {"original_type": "transaction", **wechat_sim_crypto.aes_encrypt(
            account["apiv3_key"], json.dumps(resource, separators=(",", ":")).encode(), "transaction")},
    }, separators=(",", ":")).encode()
    headers = {**sim.signature_headers(account, body), "Content-Type": "application/json"}
    return requests.post(callback_url(shop.accounts["wechatpay"]), data=body, headers=headers, timeout=10)


def _alipay_tampered(shop, simulator_server, order: dict) -> requests.Response:  # noqa: F811
    """Alipay's TRADE_SUCCESS for ``order`` whose signature does not cover what was sent."""
    sim = simulator_server.app.apps["alipay"]
    app = sim.store.get(sim.APPS, shop.accounts["alipay"].config["app_id"])
    params = {"notify_time": alipay_trades.fmt(alipay_trades.now_bj()), "notify_type": "trade_status_sync",
              "notify_id": secrets.token_hex(16), "app_id": app["app_id"], "charset": "utf-8", "version": "1.0",
              "sign_type": "RSA2", "trade_no": "2026" + secrets.token_hex(10), "out_trade_no": order["id"],
              "buyer_id": ALIPAY_BUYER, "trade_status": "TRADE_SUCCESS", "total_amount": "15.00",
              "gmt_payment": "2026-11-26 10:00:00"}
    body = alipay_trades.form_body(alipay_trades.signed_params(app, params, tamper=True))
    return requests.post(callback_url(shop.accounts["alipay"]), data=body, timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})


@pytest.fixture
def refused(shop, simulator_server):  # noqa: F811
    """Three refused notices: a tampered Alipay one about an Alipay order (unverified), a WeChat Pay one naming
    another amount for a WeChat order (cross-check), a WeChat Pay one about an order we never had (unknown)."""
    wx_order = _order(shop, "RISK-WX-1", "wechat.native")
    ali_order = _order(shop, "RISK-ALI-1", "alipay.qr")
    assert _alipay_tampered(shop, simulator_server, ali_order).content == b"fail"
    assert _wechat_success(shop, simulator_server, wx_order["id"], amount=1).status_code == 400
    stranger = "ord_" + secrets.token_hex(11)
    assert _wechat_success(shop, simulator_server, stranger, amount=1500).status_code == 400
    rows = {c.account.kind + ("-unknown" if stranger in c.message else ""): c
            for c in ChannelCallback.objects.filter(outcome=CallbackOutcome.REJECTED).select_related("account")}
    assert set(rows) == {"alipay", "wechatpay", "wechatpay-unknown"}, rows
    return {"unverified": rows["alipay"], "mismatch": rows["wechatpay"], "unknown": rows["wechatpay-unknown"],
            "wx_order": wx_order, "ali_order": ali_order, "stranger": stranger}


def _rows(response) -> list[str]:
    """The callback ids of the queue's rows, in page order."""
    import re

    return re.findall(r'<tr data-callback="(\d+)"', response.content.decode())


def _row(response, callback: ChannelCallback) -> str:
    html = response.content.decode()
    start = html.index(f'<tr data-callback="{callback.pk}"')
    return html[start:html.index("</tr>", start)]


def test_it_shows_risk_every_refused_callback_newest_first_with_its_reason_and_trade(client, risk_zhao, refused):
    client.force_login(risk_zhao)

    response = client.get(QUEUE)

    assert response.status_code == 200
    newest_first = sorted((refused[k] for k in ("unverified", "mismatch", "unknown")),
                          key=lambda c: (c.received_at, c.pk), reverse=True)
    assert _rows(response) == [str(c.pk) for c in newest_first]
    unverified, mismatch, unknown = (_row(response, refused[k]) for k in ("unverified", "mismatch", "unknown"))
    assert 'data-reason="unverified"' in unverified and "signature" in unverified
    assert 'data-reason="mismatch"' in mismatch and "differs from the order&#x27;s 1500" in mismatch
    assert 'data-reason="unknown"' in unknown and refused["stranger"] in unknown
    # The trade each is about (the same matching as the trade's timeline): by the refusal's words for the
    # mismatch, inside the stored notice for the tampered one; none for an order we never had.
    assert f'data-trade="{refused["ali_order"]["id"]}"' in unverified
    assert f'data-trade="{refused["wx_order"]["id"]}"' in mismatch
    assert "data-trade=" not in unknown
    # Risk may not open support's trade pages: the number, not a link to a 403.
    assert "/staff/trades/" not in response.content.decode()
    counts = response.context["counts"]
    assert (counts["unreviewed"], counts["last_day"]) == (3, 3)
    assert {t.key: (t.total, t.unreviewed) for t in counts["kinds"]} == {
        "unverified": (1, 1), "mismatch": (1, 1), "unknown": (1, 1)}
    assert {t.key: t.total for t in counts["accounts"]} == {refused["unverified"].account.code: 1,
                                                           refused["mismatch"].account.code: 2}


def test_it_links_the_trade_page_for_someone_who_may_open_it(client, django_user_model, refused):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x" * 20))

    response = client.get(QUEUE)

    order_id, pk = refused["wx_order"]["id"], refused["mismatch"].pk
    assert f'href="/staff/trades/{order_id}/#callback-{pk}"' in _row(response, refused["mismatch"])
    # … and that page does show it.
    assert f'id="callback-{pk}"' in client.get(f"/staff/trades/{order_id}/").content.decode()


def test_its_filters_narrow_the_queue(local_midday, client, risk_zhao, refused):
    client.force_login(risk_zhao)
    wx, ali = refused["mismatch"].account.code, refused["unverified"].account.code
    today = timezone.localdate()

    def ids(**params):
        return set(_rows(client.get(QUEUE, params)))

    pk = {k: str(refused[k].pk) for k in ("unverified", "mismatch", "unknown")}
    assert ids(kind="unverified") == {pk["unverified"]}
    assert ids(kind="mismatch") == {pk["mismatch"]}
    assert ids(kind="unknown") == {pk["unknown"]}
    assert ids(account=wx) == {pk["mismatch"], pk["unknown"]}
    assert ids(account=ali, kind="unverified") == {pk["unverified"]}
    assert ids(remote_addr="127.0.0.1") == set(pk.values())
    assert ids(remote_addr="127.0.") == set(pk.values())
    assert ids(remote_addr="10.8.") == set()
    assert ids(date_from=today.isoformat(), date_to=today.isoformat()) == set(pk.values())
    assert ids(date_from=(today + dt.timedelta(days=1)).isoformat()) == set()
    assert ids(date_to=(today - dt.timedelta(days=1)).isoformat()) == set()
    assert ids(review="reviewed") == set()
    assert ids(review="all") == set(pk.values())


def test_one_refused_callback_shows_its_notice_decrypted_with_secrets_and_payer_masked(client, risk_zhao, refused):
    client.force_login(risk_zhao)

    wechat = client.get(reverse("channels:refused_callback", args=[refused["mismatch"].pk]))
    alipay = client.get(reverse("channels:refused_callback", args=[refused["unverified"].pk]))

    assert wechat.status_code == alipay.status_code == 200
    wechat_page, alipay_page = wechat.content.decode(), alipay.content.decode()
    assert wechat.context["notice"].decrypted  # the resource, read with the account's APIv3 key
    body = wechat.context["notice"].body
    assert refused["wx_order"]["id"] in body and '"total": 1,' in body and body in html.unescape(wechat_page)
    assert PAYER_OPENID not in wechat_page and "oUp" + "*" * 21 + "eS6o" in wechat_page
    stored_signature = refused["mismatch"].headers
    assert any(v == "***" for k, v in stored_signature.items() if "signature" in k.lower())
    assert ALIPAY_BUYER not in alipay_page and "208" + "*" * 9 + "6880" in alipay_page
    assert "sign = ***" in alipay_page
    assert refused["ali_order"]["id"] in alipay_page


def test_risk_marks_refused_callbacks_reviewed_in_bulk_and_the_home_tile_drops(client, risk_zhao, refused):
    client.force_login(risk_zhao)
    tile = next(q for q in merchant_workbench.risk_home_queues() if q.label.startswith("Refused channel callbacks"))
    assert (tile.count, tile.tone) == (3, "bad")
    assert client.get(tile.url).context["page"].paginator.count == 3  # the tile opens what it counts
    chosen = [refused["unverified"], refused["mismatch"]]

    response = client.post(reverse("channels:refused_callbacks_review"), {
        "callback": [c.pk for c in chosen], "note": "channel confirmed: test traffic from their sandbox",
        "next": QUEUE + "?review=all"})

    assert response.status_code == 302 and response["Location"] == QUEUE + "?review=all"
    for callback in chosen:
        callback.refresh_from_db()
        assert callback.reviewed_by == risk_zhao and callback.reviewed_at is not None
        assert callback.review_note == "channel confirmed: test traffic from their sandbox"
        row = AuditLog.objects.get(action="security.callback.reviewed", target_id=str(callback.pk))
        assert (row.actor, row.reason) == (risk_zhao, "channel confirmed: test traffic from their sandbox")
    tile = next(q for q in merchant_workbench.risk_home_queues() if q.label.startswith("Refused channel callbacks"))
    assert tile.count == 1
    assert set(_rows(client.get(QUEUE))) == {str(refused["unknown"].pk)}  # the queue opens on the unreviewed
    assert set(_rows(client.get(QUEUE, {"review": "reviewed"}))) == {str(c.pk) for c in chosen}
    assert 'class="count bad">1<' in client.get("/staff/").content.decode()
