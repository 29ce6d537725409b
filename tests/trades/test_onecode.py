"""One-code-pay (一码付) and the cashier product — issue 5 "One-code-pay", merchant-api.md "Payer-facing pages",
channel-protocols.md §E. Live HTTP against live_server and the simulators; real OAuth, real signatures."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from aggpay.errors import InvalidRequest
from aggpay.models import AuditLog
from tests.trades.onecode_flow import (
    UA_ALIPAY,
    UA_SAFARI,
    UA_UNIONPAY,
    UA_WECHAT,
    UA_WECOM,
    attempt,
    bridge,
    csrf_token,
    enter_amount,
    phone,
    scan_and_authorise,
    store_code_for,
)
from trades.models import ChannelCall, Order
from trades.models.store_codes import StoreCode
from trades.onecode import services
from trades.onecode.services import attempt_token, onecode_pay, parse_amount
from trades.onecode.wallets import detect_wallet
from trades.services.orders import order_close

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")


# --- wallet detection (§E) ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("user_agent", "wallet"), [
    (UA_WECHAT, "wechat"), (UA_ALIPAY, "alipay"), (UA_UNIONPAY, "unionpay"), (UA_WECOM, "wecom"),
    (UA_SAFARI, None), ("", None),
    ("Mozilla/5.0 (Linux; Android 12) UnionPay/1.0 ICBCeBank", "unionpay"),  # a bank app with 银联 JS pay
    ("Mozilla/5.0 MicroMessenger/8.0.1 miniProgram", "wechat"),
    ("Mozilla/5.0 micromessenger/8.0", None),  # tokens are case-sensitive (§E)
])
def test_it_detects_the_wallet_from_the_user_agent(user_agent, wallet):
    assert detect_wallet(user_agent) == wallet


# --- amounts --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "fen"), [("12", 1200), ("12.3", 1230), ("12.30", 1230), ("0.01", 1),
                                           (" 8.88 ", 888), ("1000000", 100_000_000)])
def test_it_reads_yuan_into_fen_exactly(text, fen):
    assert parse_amount(text) == fen


@pytest.mark.parametrize("text", ["", "abc", "0", "0.00", "1.234", "-5", "1e3", "1,000", "1000000.01", "¥5"])
def test_it_rejects_amounts_that_are_not_yuan_with_at_most_two_decimals(text):
    with pytest.raises(InvalidRequest) as caught:
        parse_amount(text)
    assert caught.value.param == "amount"


# --- payer pages --------------------------------------------------------------------------------------------------
def test_a_wechat_payer_scans_pays_and_the_order_succeeds(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    # Our page → the simulator's snsapi_base OAuth → back with ?code= → the amount page (§E).
    assert amount_page.url.split("#")[0] == f"{live_server.url}/c/{code.code}/pay" and 'name="amount"' in amount_page.text
    assert any("/wechatpay/_oauth/authorize" in r.url for r in amount_page.history)

    pay_page = enter_amount(payer, amount_page, "12.34")
    assert pay_page.status_code == 200 and "/pay/" in pay_page.url
    order = Order.objects.get(merchant=shop.merchant, product="wechat.jsapi")
    assert order.amount == 1234 and order.store_id == "S001" and order.metadata == {"store_code": code.code}
    assert order.payer["openid"].startswith("o") and order.channel_account == shop.accounts["wechatpay"]
    assert order.merchant_fee == 5 and order.channel_cost == 2 and order.routing["chosen"]  # pipeline ran

    params = bridge(pay_page.text)
    assert params["wallet"] == "wechat" and params["standin_url"].endswith("/wechatpay/_payer/pay")
    # WeixinJSBridge checks paySign: a tampered one is refused by the wallet, the real one pays.
    forged = {**params["jsapi"], "paySign": params["jsapi"]["paySign"][::-1]}
    refused = requests.post(params["standin_url"], json={"prepay_id": params["prepay_id"], "jsapi": forged},
                            timeout=10)
    assert refused.status_code >= 400 and "SIGN_ERROR" in refused.text
    shop.sim("wechatpay", "/_payer/pay", prepay_id=params["prepay_id"], jsapi=params["jsapi"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists(), message="paid")

    status = payer.get(live_server.url + params["status_url"], timeout=10).json()
    assert status == {"state": "succeeded", "amount": 1234, "ready": False}  # nothing left to hand to the wallet
    result = payer.get(pay_page.url, timeout=10)
    assert 'data-state="succeeded"' in result.text and "12.34" in result.text


def test_an_alipay_payer_scans_pays_and_the_order_succeeds(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_ALIPAY)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    assert any("/alipay/" in r.url and "publicAppAuthorize" in r.url or "/_oauth/" in r.url
               for r in amount_page.history)
    pay_page = enter_amount(payer, amount_page, "8.8")
    order = Order.objects.get(merchant=shop.merchant, product="alipay.jsapi")
    assert order.amount == 880 and order.payer["buyer_id"] and order.channel_trade_no
    params = bridge(pay_page.text)
    assert params["wallet"] == "alipay" and params["trade_no"] == order.channel_trade_no

    shop.sim("alipay", "/_payer/pay", trade_no=params["trade_no"])
    shop.sim("alipay", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists(), message="paid")
    assert payer.get(live_server.url + params["status_url"], timeout=10).json()["state"] == "succeeded"


def test_a_unionpay_payer_is_sent_to_the_banks_js_payment(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_UNIONPAY)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    assert any("/bank/_oauth/userAuth" in r.url for r in amount_page.history)
    pay_page = enter_amount(payer, amount_page, "3")
    order = Order.objects.get(merchant=shop.merchant, channel_product="unionpay.qr")
    assert order.payer["user_id"] and order.amount == 300
    redirect_url = bridge(pay_page.text)["redirect_url"]
    assert redirect_url.startswith(shop.root + "/bank/_payer/")
    code_param = requests.utils.urlparse(redirect_url).query.split("code=")[1]
    shop.sim("bank", "/_payer/pay", code=code_param)
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists() or
                  payer.get(live_server.url + bridge(pay_page.text)["status_url"], timeout=10).json()["state"]
                  == "succeeded", message="paid")


def test_the_same_browser_is_not_sent_through_oauth_twice(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    first = scan_and_authorise(payer, live_server.url, code.code)
    again = payer.get(f"{live_server.url}/c/{code.code}", timeout=10)
    assert first.history and again.url.split("#")[0].endswith("/pay") and not any("_oauth" in r.url for r in again.history)


@pytest.mark.parametrize(("user_agent", "text"), [(UA_SAFARI, "请用以下App扫码付款"), (UA_WECOM, "企业微信不支持付款")])
def test_other_browsers_and_wecom_are_told_which_apps_to_scan_with(shop, live_server, user_agent, text):
    code = store_code_for(shop)
    page = phone(user_agent).get(f"{live_server.url}/c/{code.code}", timeout=10, allow_redirects=False)
    assert page.status_code == 200 and text in page.text and "支付宝" in page.text
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_unknown_and_retired_codes_are_not_found(shop, live_server):
    code = store_code_for(shop)
    StoreCode.objects.filter(pk=code.pk).update(active=False)
    for value in (code.code, "NoSuchCode123456"):
        page = phone(UA_WECHAT).get(f"{live_server.url}/c/{value}", timeout=10, allow_redirects=False)
        assert page.status_code == 404


def test_a_forged_or_foreign_oauth_state_is_refused(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    start = payer.get(f"{live_server.url}/c/{code.code}", timeout=10, allow_redirects=False)
    assert start.status_code == 302 and "_oauth/authorize" in start.headers["Location"]
    forged = payer.get(f"{live_server.url}/c/{code.code}/oauth", params={"code": "x", "state": "forged"},
                       timeout=10)
    assert forged.status_code == 400 and "Authorisation failed" in forged.text
    # A genuine state issued to another browser's session does not log this one in.
    stranger = phone(UA_WECHAT)
    back = stranger.get(start.headers["Location"].split("#")[0], timeout=10, allow_redirects=False)
    hijack = payer.get(back.headers["Location"], timeout=10, allow_redirects=False)
    assert hijack.status_code == 302  # our page accepted it for payer's own session...
    other = phone(UA_WECHAT).get(back.headers["Location"], timeout=10, allow_redirects=False)
    assert other.status_code == 400  # ...but a browser without that session's nonce is refused


def test_amounts_are_validated_before_any_order_is_made(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_ALIPAY)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    for bad in ("abc", "0", "1.999", "-1"):
        answer = enter_amount(payer, amount_page, bad)
        assert answer.status_code == 422 and 'role="alert"' in answer.text
    too_big = enter_amount(payer, amount_page, "60000")  # above the contract's 5,000,000 fen limit
    assert too_big.status_code == 422 and "¥0.01 to ¥50,000.00 per payment" in too_big.text  # the account's limits
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_the_payer_pages_are_never_served_from_a_cache(shop, live_server):
    """Each load of the amount page carries a new attempt token: a Back button must not show a cached one."""
    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, store_code_for(shop).code)
    assert "no-store" in amount_page.headers["Cache-Control"]
    paying = enter_amount(payer, amount_page, "3.00")
    assert paying.status_code == 200 and "no-store" in paying.headers["Cache-Control"]


# --- one order per amount form (double submit) --------------------------------------------------------------------
def test_the_same_form_submitted_twice_makes_one_order_and_both_go_to_its_payment(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    first = enter_amount(payer, amount_page, "12.34", allow_redirects=False)
    second = enter_amount(payer, amount_page, "12.34", allow_redirects=False)  # double tap, or back and resubmit
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    order = Order.objects.get(merchant=shop.merchant)
    assert order.amount == 1234 and order.out_trade_no == "qr" + attempt(amount_page.text).split(":")[0]
    assert order.channel_calls.filter(verb="create").count() == 1  # the repeat did not ask the channel again
    pay_page = payer.get(live_server.url + second.headers["Location"], timeout=10)
    assert bridge(pay_page.text)["prepay_id"] == order.pay_params["prepay_id"]


def test_a_repeat_over_another_network_still_finds_the_first_order(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "1")
    first = Order.objects.get(merchant=shop.merchant)
    openid = first.payer["openid"]
    token = attempt_token(store_code=code, nonce="session-nonce")
    ask = dict(store_code=code, attempt=token, nonce="session-nonce", wallet="wechat", payer_id=openid, amount=500,
               account_id=first.channel_account_id)
    on_wifi = onecode_pay(**ask, client_ip="192.0.2.10")
    on_mobile = onecode_pay(**ask, client_ip="198.51.100.7")  # another client IP: another fingerprint, same payment
    assert on_mobile.pk == on_wifi.pk and Order.objects.filter(merchant=shop.merchant).count() == 2


def test_a_changed_amount_on_a_used_form_is_explained_and_a_fresh_form_pays_it(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_ALIPAY)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    paid = enter_amount(payer, amount_page, "12.34", allow_redirects=False)
    changed = enter_amount(payer, amount_page, "15")  # back, change the amount, submit the same form
    assert changed.status_code == 422 and 'role="alert"' in changed.text
    assert "already submitted for ¥12.34" in changed.text and "¥15.00 as a new payment" in changed.text
    assert "此表单已提交过 ¥12.34 的付款" in changed.text  # bilingual, like the rest of the page
    assert f'href="{paid.headers["Location"]}"' in changed.text  # the way back to the earlier payment
    assert 'value="15"' in changed.text and attempt(changed.text) not in ("", attempt(amount_page.text))
    assert Order.objects.filter(merchant=shop.merchant).count() == 1
    again = enter_amount(payer, changed, "15", allow_redirects=False)
    assert again.status_code == 302 and again.headers["Location"] != paid.headers["Location"]
    assert sorted(Order.objects.filter(merchant=shop.merchant).values_list("amount", flat=True)) == [1234, 1500]


def test_forged_garbled_foreign_or_expired_attempts_are_refused_and_write_nothing(shop, live_server, monkeypatch):
    code, other_code = store_code_for(shop), store_code_for(shop, store_no="S002", name="Other branch")
    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    token = attempt(amount_page.text)
    other_store = attempt(scan_and_authorise(payer, live_server.url, other_code.code).text)
    other_phone = phone(UA_WECHAT)
    other_session = attempt(scan_and_authorise(other_phone, live_server.url, code.code).text)
    attempt_id, stamp, signature = token.split(":")
    for bad in ("", "garbage", f"{attempt_id}:{stamp}:{signature[::-1]}", f"{'0' * 22}:{stamp}:{signature}",
                attempt_id, other_store, other_session):
        answer = payer.post(amount_page.url, data={"amount": "5", "attempt": bad,
                                                   "csrfmiddlewaretoken": csrf_token(amount_page.text)},
                            headers={"Referer": amount_page.url}, timeout=10)
        assert answer.status_code == 422, bad
        assert "This payment form is not valid here" in answer.text and 'value="5"' in answer.text
        assert "此付款表单在此无效" in answer.text
        assert attempt(answer.text) not in ("", bad)  # a fresh, valid form to press Pay on
    monkeypatch.setattr(services, "ATTEMPT_MAX_AGE", -1)  # the page was left open too long
    expired = enter_amount(payer, amount_page, "5")
    assert expired.status_code == 422 and "This payment page has expired" in expired.text
    assert "付款页面已过期" in expired.text
    assert not Order.objects.filter(merchant=shop.merchant).exists() and not ChannelCall.objects.exists()


def test_two_page_loads_are_two_purchases(shop, live_server):
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    first = enter_amount(payer, scan_and_authorise(payer, live_server.url, code.code), "8", allow_redirects=False)
    second_page = payer.get(f"{live_server.url}/c/{code.code}/pay", timeout=10)  # the next customer round
    second = enter_amount(payer, second_page, "8", allow_redirects=False)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] != second.headers["Location"]
    orders = Order.objects.filter(merchant=shop.merchant)
    assert orders.count() == 2 and len({o.out_trade_no for o in orders}) == 2 and {o.amount for o in orders} == {800}


def test_two_submits_of_one_form_at_once_make_one_order(shop, live_server, monkeypatch):
    """Staged: both submits pass the look-up for an earlier order before either inserts, so the unique
    (merchant, out_trade_no) constraint is what decides (design §5 rule 5)."""
    code = store_code_for(shop)
    payer = phone(UA_WECHAT)
    amount_page = scan_and_authorise(payer, live_server.url, code.code)
    twin = phone(UA_WECHAT)  # the same browser's second connection (a double tap)
    twin.cookies.update(payer.cookies)
    gate, lock, looked = threading.Barrier(2), threading.Lock(), []
    lookup = services._attempt_order

    def staged_lookup(store_code, out_trade_no):
        found = lookup(store_code, out_trade_no)
        with lock:
            looked.append(found)
            wait = len(looked) <= 2
        if wait:
            gate.wait(timeout=20)
        return found

    monkeypatch.setattr(services, "_attempt_order", staged_lookup)
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda session: enter_amount(session, amount_page, "9.99", allow_redirects=False),
                                (payer, twin)))
    assert looked[:2] == [None, None]  # neither saw the other's order before inserting
    assert [a.status_code for a in answers] == [302, 302], [a.text[:300] for a in answers]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    order = Order.objects.get(merchant=shop.merchant)
    assert order.amount == 999 and order.channel_calls.filter(verb="create").count() == 1


# --- cashier ----------------------------------------------------------------------------------------------------
def test_a_cashier_order_is_created_without_a_channel_and_paid_on_its_page(shop, live_server):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASH0001", "amount": 2500, "product": "cashier", "subject": "Tea set"})
    assert status == 201, created
    assert created["product"] == "cashier" and created["state"] == "pending"
    url = created["pay_params"]["cashier_url"]
    assert url.startswith(live_server.url + "/cashier/")
    order = Order.objects.get(pk=created["id"])
    assert order.channel_account is None and order.channel_product == "" and not order.channel_calls.exists()

    payer = phone(UA_ALIPAY)
    confirm = payer.get(url, timeout=10)
    assert confirm.url.split("#")[0] == url and any("_oauth" in r.url or "publicAppAuthorize" in r.url for r in confirm.history)
    assert "25.00" in confirm.text and 'name="amount"' not in confirm.text  # the amount is fixed
    pay_page = enter_amount(payer, confirm, "")
    order.refresh_from_db()
    assert order.channel_product == "alipay.jsapi" and order.channel_account == shop.accounts["alipay"]
    assert order.merchant_fee == 10 and order.pay_params["cashier_url"] == url and order.pay_params["trade_no"]

    shop.sim("alipay", "/_payer/pay", trade_no=bridge(pay_page.text)["trade_no"])
    shop.sim("alipay", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=order.pk, state="succeeded").exists(), message="paid")
    status, _, queried = shop.client.request("GET", "/api/v1/orders/CASH0001")
    assert queried["state"] == "succeeded" and queried["product"] == "cashier"
    # Reopening the page after payment shows the result, from any wallet.
    assert 'data-state="succeeded"' in phone(UA_WECHAT).get(url, timeout=10).text


def test_a_cashier_order_routed_to_one_wallet_cannot_be_paid_from_another(shop, live_server):
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASH0002", "amount": 100, "product": "cashier", "subject": "Tea"})
    url = created["pay_params"]["cashier_url"]
    wechat = phone(UA_WECHAT)
    enter_amount(wechat, wechat.get(url, timeout=10), "")
    assert Order.objects.get(pk=created["id"]).channel_product == "wechat.jsapi"
    alipay_page = phone(UA_ALIPAY).get(url, timeout=10)
    # Refused, saying why — not a new trade, and never the WeChat payer's hand-off (its signed jsapi parameters).
    assert alipay_page.status_code == 409 and 'data-reason="other_wallet"' in alipay_page.text
    assert 'id="standin"' not in alipay_page.text
    assert Order.objects.get(pk=created["id"]).channel_product == "wechat.jsapi"


def test_forged_cashier_tokens_find_nothing(shop, live_server):
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASH0003", "amount": 100, "product": "cashier", "subject": "Tea"})
    for token in (created["id"], created["pay_params"]["cashier_url"].rsplit("/", 1)[1] + "x"):
        assert phone(UA_WECHAT).get(f"{live_server.url}/cashier/{token}", timeout=10).status_code == 404
        assert phone(UA_WECHAT).get(f"{live_server.url}/pay/{token}/status", timeout=10).status_code == 404


def test_an_unopened_cashier_order_closes_without_asking_any_channel(shop, live_server):
    _, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASH0004", "amount": 100, "product": "cashier", "subject": "Tea"})
    closed = order_close(order_id=created["id"])
    assert closed.state == "closed" and not closed.channel_calls.exists()


def test_cashier_orders_refuse_a_payer_given_by_the_merchant(shop):
    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "CASH0005", "amount": 100, "product": "cashier", "subject": "Tea",
        "payer": {"openid": "o123"}})
    assert status == 400 and answer["error"]["param"] == "payer"


# --- staff: generating and printing codes ------------------------------------------------------------------------
def test_a_clerk_generates_codes_for_stores_and_prints_them(shop, client, staff_member):
    from merchants.models import Store

    stores = [Store.objects.create(merchant=shop.merchant, store_no=f"S00{i}", name=f"Branch {i}") for i in (1, 2)]
    clerk = staff_member("onboarding_clerk")
    client.force_login(clerk)
    page = client.get(f"/staff/store-codes/merchants/{shop.merchant.pk}/")
    assert page.status_code == 200 and "Branch 2" in page.content.decode()
    answer = client.post(f"/staff/store-codes/merchants/{shop.merchant.pk}/",
                         {"stores": [s.pk for s in stores], "per_store": "3"})
    codes = list(StoreCode.objects.filter(merchant=shop.merchant))
    assert answer.status_code == 302 and len(codes) == 6 and len({c.code for c in codes}) == 6
    assert {c.batch for c in codes} == {codes[0].batch} and all(c.created_by == clerk for c in codes)
    audit = AuditLog.objects.get(action="storecode.generate")
    assert audit.data["count"] == 6 and audit.data["stores"] == ["S001", "S002"]

    sheet = client.get(answer["Location"]).content.decode()
    assert sheet.count('class="card"') == 6 and sheet.count("<svg") == 6 and "@page { size: A4" in sheet
    png = client.get(f"/staff/store-codes/{codes[0].pk}.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    svg = client.get(f"/staff/store-codes/{codes[0].pk}.svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content

    retired = client.post(f"/staff/store-codes/{codes[0].pk}/active", {"active": "0", "reason": "sticker stolen"})
    assert retired.status_code == 302 and not StoreCode.objects.get(pk=codes[0].pk).active
    assert AuditLog.objects.filter(action="storecode.deactivate", reason="sticker stolen").exists()


def test_codes_are_only_for_the_merchants_own_stores_and_staff_with_permission(shop, client, staff_member):
    from merchants.models import Store
    from tests.factories import MerchantFactory

    foreign = Store.objects.create(merchant=MerchantFactory(), store_no="X1", name="Elsewhere")
    client.force_login(staff_member("operations"))
    answer = client.post(f"/staff/store-codes/merchants/{shop.merchant.pk}/",
                         {"stores": [foreign.pk], "per_store": "1"})
    assert answer.status_code == 200 and not StoreCode.objects.exists()
    client.force_login(staff_member("finance"))
    assert client.get(f"/staff/store-codes/merchants/{shop.merchant.pk}/").status_code == 403
    client.logout()
    assert client.get("/staff/store-codes/").status_code == 302


def test_an_account_whose_staff_status_is_taken_away_loses_the_store_code_pages(shop, client, staff_member):
    from aggpay.staff.services import staff_user_update

    clerk = staff_member("operations")
    client.force_login(clerk)
    assert client.get("/staff/store-codes/").status_code == 200

    staff_user_update(actor=staff_member("admin"), user_id=clerk.pk, changes={"is_staff": False})

    # The roles and the session remain; the back office does not (aggpay.roles._check).
    assert client.get("/staff/store-codes/").status_code == 403
    assert client.post(f"/staff/store-codes/merchants/{shop.merchant.pk}/",
                       {"stores": [], "per_store": "1"}).status_code == 403
