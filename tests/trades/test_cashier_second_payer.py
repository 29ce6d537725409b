"""A cashier link opened by someone other than the payer it is routed to (issue 5 "One-code-pay", merchant-api.md
"Payer-facing pages", channel-protocols.md §E). Once one payer has opened a cashier order in their wallet it is
theirs (order_cashier_pay): another WeChat user, an Alipay user or an ordinary browser holding the same link is told
the order is being paid by someone else — or that it was paid, closed or has expired — and never gets the payer's
hand-off (a prepay id or trade no tied to their openid / buyer id) or the order's details. The payer reopening it
still gets their own. Live HTTP against live_server and the simulators, through the wallets' simulated OAuth."""

from __future__ import annotations

from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests

from aggpay.errors import ApplicationError
from tests.trades.onecode_flow import UA_ALIPAY, UA_SAFARI, UA_WECHAT, bridge, enter_amount, phone
from trades.models import ChannelCall, Order
from trades.onecode import views_payer
from trades.services.cashier import CashierRefusal, cashier_token, order_cashier_pay, refusal_reason
from trades.services.orders import order_close

pytestmark = pytest.mark.usefixtures("payer_on_plain_http")

# Which person the wallet's OAuth says this is: the WeChat simulator reads ``payer`` (an openid per person and app),
# the Alipay one ``user_id``. Real wallets know who is logged in; these are the simulators' stand-ins.
ALICE = {"wechat": "alice", "alipay": "2088000000000001"}
BOB = {"wechat": "bob", "alipay": "2088000000000002"}
UAS = {"wechat": UA_WECHAT, "alipay": UA_ALIPAY}


def _cashier(shop, out_trade_no: str, amount: int = 2500) -> dict:
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": amount, "product": "cashier", "subject": "Tea set"})
    assert status == 201, created
    return created


def _open(session: requests.Session, url: str, person: dict | None = None) -> requests.Response:
    """GET ``url`` following redirects like the wallet's web view; the wallet's OAuth (the one hop off our server)
    is told which person is logged in."""
    ours = urlsplit(url).netloc
    response = session.get(url, allow_redirects=False, timeout=10)
    for _ in range(10):
        if not response.is_redirect:
            return response
        location = urljoin(response.url, response.headers["Location"])
        parts = urlsplit(location)
        if person and parts.netloc != ours:
            query = parts.query + "&" + urlencode({"payer": person["wechat"], "user_id": person["alipay"]})
            location = urlunsplit(parts._replace(query=query))
        response = session.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("too many redirects")


def _start_paying(shop, url: str, wallet: str, person: dict) -> tuple[requests.Session, dict]:
    """``person`` opens the link in ``wallet`` and presses Pay: the order is routed to them; their hand-off."""
    payer = phone(UAS[wallet])
    confirm = _open(payer, url, person)
    assert confirm.status_code == 200 and 'id="pay"' in confirm.text, confirm.text[:300]
    pay_page = enter_amount(payer, confirm, "")
    assert pay_page.status_code == 200 and 'id="bridge"' in pay_page.text, pay_page.text[:300]
    return payer, bridge(pay_page.text)


def _assert_nothing_of_the_payers(page: requests.Response, order: Order, handoff: dict) -> None:
    assert 'id="bridge"' not in page.text and 'id="standin"' not in page.text
    for secret in (handoff.get("prepay_id"), handoff.get("trade_no"), *(handoff.get("jsapi") or {}).values(),
                   order.out_trade_no, *order.payer.values()):
        if secret:
            assert secret not in page.text, secret


def _reason(page: requests.Response) -> str:
    return page.text.split('data-reason="', 1)[1].split('"', 1)[0] if 'data-reason="' in page.text else ""


# --- while the first payer is paying -------------------------------------------------------------------------------
@pytest.mark.parametrize("wallet", ["wechat", "alipay"])
def test_another_user_of_the_same_wallet_is_told_someone_else_is_paying(shop, live_server, wallet):
    created = _cashier(shop, f"CASH2P{wallet[:2]}")
    url = created["pay_params"]["cashier_url"]
    _, handoff = _start_paying(shop, url, wallet, ALICE)
    order = Order.objects.get(pk=created["id"])

    bob = phone(UAS[wallet])
    page = _open(bob, url, BOB)
    assert page.status_code == 409 and _reason(page) == "other_payer"
    assert "此订单已由他人发起付款" in page.text and "being paid by someone else" in page.text
    _assert_nothing_of_the_payers(page, order, handoff)
    # The pay page shares the cashier link's token: it does not hand over the payer's parameters either.
    direct = _open(bob, f"{live_server.url}/pay/{cashier_token(order.pk)}", BOB)
    assert direct.status_code == 409 and _reason(direct) == "other_payer"
    _assert_nothing_of_the_payers(direct, order, handoff)
    assert Order.objects.get(pk=order.pk).payer == order.payer  # still Alice's, one trade at the channel
    assert ChannelCall.objects.filter(order=order, verb="create").count() == 1


@pytest.mark.parametrize("user_agent", [UA_ALIPAY, UA_SAFARI], ids=["alipay", "browser"])
def test_another_wallet_or_a_browser_is_told_the_order_is_being_paid_elsewhere(shop, live_server, user_agent):
    created = _cashier(shop, "CASH2PW" + ("A" if user_agent == UA_ALIPAY else "B"))
    url = created["pay_params"]["cashier_url"]
    _, handoff = _start_paying(shop, url, "wechat", ALICE)
    order = Order.objects.get(pk=created["id"])
    for page in (_open(phone(user_agent), url, BOB),
                 _open(phone(user_agent), f"{live_server.url}/pay/{cashier_token(order.pk)}", BOB)):
        assert page.status_code == 409 and _reason(page) == "other_wallet"
        assert "此订单已在其他钱包中发起付款" in page.text and "already being paid from another wallet" in page.text
        _assert_nothing_of_the_payers(page, order, handoff)


def test_two_people_on_the_confirm_page_the_second_to_press_pay_is_refused(shop, live_server):
    created = _cashier(shop, "CASH2PBOTH")
    url = created["pay_params"]["cashier_url"]
    alice, bob = phone(UA_WECHAT), phone(UA_WECHAT)
    alice_confirm, bob_confirm = _open(alice, url, ALICE), _open(bob, url, BOB)
    assert 'id="pay"' in alice_confirm.text and 'id="pay"' in bob_confirm.text  # neither has paid yet
    handoff = bridge(enter_amount(alice, alice_confirm, "").text)
    refused = enter_amount(bob, bob_confirm, "")
    assert refused.status_code == 409 and _reason(refused) == "other_payer"
    _assert_nothing_of_the_payers(refused, Order.objects.get(pk=created["id"]), handoff)


def test_the_payer_reopening_the_link_gets_their_own_hand_off_again(shop, live_server):
    created = _cashier(shop, "CASH2PSELF")
    url = created["pay_params"]["cashier_url"]
    alice, handoff = _start_paying(shop, url, "wechat", ALICE)
    again = _open(alice, url)  # the same web view
    assert "/pay/" in again.url and bridge(again.text)["prepay_id"] == handoff["prepay_id"]
    # Another session (cookies cleared, another tab): the wallet's OAuth says it is Alice.
    fresh = _open(phone(UA_WECHAT), url, ALICE)
    assert "/pay/" in fresh.url and bridge(fresh.text)["prepay_id"] == handoff["prepay_id"]
    assert ChannelCall.objects.filter(order_id=created["id"], verb="create").count() == 1


# --- after the first payer has paid, after expiry, after the close -------------------------------------------------
def test_after_the_payer_has_paid_someone_else_reads_it_was_paid_not_that_they_paid(shop, live_server):
    created = _cashier(shop, "CASH2PPAID")
    url = created["pay_params"]["cashier_url"]
    alice, handoff = _start_paying(shop, url, "wechat", ALICE)
    shop.sim("wechatpay", "/_payer/pay", prepay_id=handoff["prepay_id"], jsapi=handoff["jsapi"])
    shop.sim("wechatpay", "/_control/flush")
    shop.wait_for(lambda: Order.objects.filter(pk=created["id"], state="succeeded").exists(), message="paid")
    order = Order.objects.get(pk=created["id"])

    for person, user_agent in ((BOB, UA_WECHAT), (BOB, UA_ALIPAY), (None, UA_SAFARI)):
        page = _open(phone(user_agent), url, person)
        assert page.status_code == 200 and 'data-state="succeeded"' in page.text
        assert "此订单已付款" in page.text and "This order has already been paid" in page.text
        assert "支付成功" not in page.text
        _assert_nothing_of_the_payers(page, order, handoff)
    mine = _open(alice, url)
    assert "支付成功" in mine.text and order.out_trade_no in mine.text


def test_after_expiry_someone_else_is_told_it_expired_and_after_the_close_that_it_is_closed(shop, live_server):
    created = _cashier(shop, "CASH2PEXP")
    url = created["pay_params"]["cashier_url"]
    _, handoff = _start_paying(shop, url, "wechat", ALICE)
    Order.objects.filter(pk=created["id"]).update(expires_at=Order.objects.get(pk=created["id"]).created_at)
    order = Order.objects.get(pk=created["id"])
    for person, user_agent in ((BOB, UA_WECHAT), (BOB, UA_ALIPAY)):
        page = _open(phone(user_agent), url, person)
        assert page.status_code == 410 and _reason(page) == "expired" and "订单已过期" in page.text
        _assert_nothing_of_the_payers(page, order, handoff)

    order_close(order_id=order.pk)  # what the expiry sweep does
    for person, user_agent in ((BOB, UA_WECHAT), (BOB, UA_ALIPAY)):
        page = _open(phone(user_agent), url, person)
        assert 'data-state="closed"' in page.text and "此订单已关闭" in page.text and "is closed" in page.text
        _assert_nothing_of_the_payers(page, order, handoff)


# --- the refusals' reasons -----------------------------------------------------------------------------------------
def test_each_refusal_of_order_cashier_pay_has_a_reason_the_page_words_and_the_api_error_is_unchanged(shop,
                                                                                                    live_server):
    wechat, alipay = shop.accounts["wechatpay"].pk, shop.accounts["alipay"].pk
    routed = _cashier(shop, "CASH2PWHY1")
    order_cashier_pay(order_id=routed["id"], wallet="wechat", payer_id="o_alice", account_id=wechat)
    paid = _cashier(shop, "CASH2PWHY2")
    Order.objects.filter(pk=paid["id"]).update(state="succeeded")
    closed = _cashier(shop, "CASH2PWHY3")
    order_close(order_id=closed["id"])
    expired = _cashier(shop, "CASH2PWHY4")
    Order.objects.filter(pk=expired["id"]).update(expires_at=Order.objects.get(pk=expired["id"]).created_at)
    cases = [
        (routed, "wechat", "o_bob", wechat, CashierRefusal.OTHER_PAYER, "此订单已由他人发起付款"),
        (routed, "alipay", "2088000000000002", alipay, CashierRefusal.OTHER_WALLET, "此订单已在其他钱包中发起付款"),
        (paid, "wechat", "o_bob", wechat, CashierRefusal.PAID, "此订单已付款"),
        (closed, "wechat", "o_bob", wechat, CashierRefusal.CLOSED, "此订单已关闭"),
        (expired, "wechat", "o_bob", wechat, CashierRefusal.EXPIRED, "订单已过期"),
    ]
    for created, wallet, payer_id, account, reason, words in cases:
        with pytest.raises(ApplicationError) as caught:
            order_cashier_pay(order_id=created["id"], wallet=wallet, payer_id=payer_id, account_id=account)
        refused = caught.value
        assert refusal_reason(refused) == reason, created["out_trade_no"]
        assert words in views_payer.cashier_refusal(refused)
        # What the API's envelope is made of (aggpay/api/errors.py): the same as before the reasons.
        assert (refused.code, refused.status, refused.param, refused.extra) == ("invalid_state", 409, None, {})
        assert refused.message in ("this order is already being paid from another wallet", "the order has expired",
                                   "the order has succeeded", "the order is closed")

    unroutable = _cashier(shop, "CASH2PWHY5")
    shop.accounts["wechatpay"].enabled = False
    shop.accounts["wechatpay"].save()
    with pytest.raises(ApplicationError) as caught:
        order_cashier_pay(order_id=unroutable["id"], wallet="wechat", payer_id="o_bob", account_id=wechat)
    refused = caught.value
    assert refusal_reason(refused) == CashierRefusal.WALLET_UNAVAILABLE
    assert (refused.code, refused.status, refused.param) == ("product_not_available", 422, "wallet")
    assert refused.message == "this order cannot be paid from this wallet right now; try another wallet"
    assert "此订单暂不能用此钱包付款" in views_payer.cashier_refusal(refused)
