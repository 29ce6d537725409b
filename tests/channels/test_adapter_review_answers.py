"""How the adapters read answers that are not a plain success (design §5 rule 2: a timeout, connection error, 5xx or
an answer we cannot read is *unknown*; only an explicit channel answer is a refusal).

Where a simulator can produce the answer (its fault rules, core.py), the simulator does; answers no channel peer
sends on purpose — a redirect from a proxy, an HTML error page, a signed answer without its code — come from a raw
loopback server (``RawChannel``) that signs them with keys made for the test, as the channel would.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from channels.adapters import wechatpay as wechatpay_module
from channels.adapters.alipay import AlipayAdapter, AlipayConfig
from channels.adapters.alipay_sign import load_private_key, rsa2_sign
from channels.adapters.bank import BankAdapter, BankConfig
from channels.adapters.bank_wire import sign as bank_sign
from channels.adapters.base import (
    OnboardingState,
    PaymentRequest,
    RefundRequest,
    RefundState,
    SubMerchant,
    TradeRef,
    TradeState,
)
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.wechatpay import WechatPayAdapter, WechatPayConfig
from channels.simulators import wechatpay_crypto as sim_crypto
from channels.simulators.keys import new_key_pair
from tests.channels.test_bank_helpers import fault, new_bank, open_merchant, out_no
from tests.channels.test_bank_helpers import payment as bank_payment
from tests.channels.test_bank_helpers import ref as bank_ref


# --- a raw channel on loopback ------------------------------------------------------------------------------
class RawChannel:
    """A loopback HTTP server answering each request with the next scripted answer: (status, headers, body), or a
    callable taking (method, path, body) and returning one; or, when ``route`` is set, with what that callable
    returns for every request. Records what it was asked."""

    def __init__(self):
        self.answers: list = []
        self.route = None
        self.requests: list[tuple[str, str, bytes]] = []
        raw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                raw.requests.append((self.command, self.path, body))
                if raw.route is not None:
                    answer = raw.route
                else:
                    answer = raw.answers.pop(0) if raw.answers else (500, {}, b"no answer scripted")
                if callable(answer):
                    answer = answer(self.command, self.path, body)
                status, headers, payload = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer  # noqa: N815 - stdlib naming

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def raw_channel():
    channel = RawChannel()
    yield channel
    channel.stop()


def expires() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)


HTML_404 = (404, {"Content-Type": "text/html"}, b"<html><body><h1>404 Not Found</h1>nginx</body></html>")
REDIRECT = (302, {"Location": "https://maintenance.example.com/", "Content-Type": "text/html"},
            b"<html><body>Moved</body></html>")


# --- WeChat Pay (channel-protocols.md A.3, A.6) --------------------------------------------------------------
@pytest.fixture(scope="module")
def wechat_keys():
    platform = sim_crypto.new_key_pem()
    return {"merchant": sim_crypto.new_key_pem(), "platform": platform}


def wechat_adapter(raw: RawChannel, keys: dict) -> WechatPayAdapter:
    config = WechatPayConfig(
        sp_mchid="1900000100", sp_appid="wx8888888888888888", private_key_pem=keys["merchant"],
        serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1", apiv3_key="0123456789abcdef0123456789ABCDEF",
        wechatpay_public_key_pem=sim_crypto.public_pem(keys["platform"]),
        wechatpay_public_key_id="PUB_KEY_ID_0119000000002026",
    )
    return WechatPayAdapter(config, base_url=raw.base_url, read_timeout=3)


def wechat_signed(keys: dict, status: int, document, *, serial: str = "PUB_KEY_ID_0119000000002026"):
    body = json.dumps(document).encode() if document is not None else b""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16).upper()
    return status, {
        "Content-Type": "application/json", "Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Wechatpay-Signature": sim_crypto.sign(keys["platform"], f"{timestamp}\n{nonce}\n".encode() + body + b"\n"),
    }, body


WECHAT_SUB = SubMerchant(sub_mchid="1900000109")


def wechat_native() -> PaymentRequest:
    return PaymentRequest(product="wechat.native", sub_merchant=WECHAT_SUB, out_trade_no=out_no("T"), amount=1230,
                          subject="龙井", notify_url="https://aggpay.example.com/cb", expires_at=expires())


def wechat_refund() -> RefundRequest:
    return RefundRequest(trade=TradeRef(sub_merchant=WECHAT_SUB, out_trade_no=out_no("T")), out_refund_no=out_no("R"),
                         amount=100, total_amount=1230)


def test_a_redirect_in_front_of_wechat_pay_leaves_the_order_unknown_not_refused(raw_channel, wechat_keys):
    # A.6: WeChat Pay refuses with a 4xx and its {"code", "message"} object. A 302 is a proxy or load balancer
    # talking (channel_request follows no redirect): the request may or may not have reached the gateway.
    raw_channel.answers.append(REDIRECT)
    with pytest.raises(ChannelUnknown):
        wechat_adapter(raw_channel, wechat_keys).create_payment(wechat_native())


@pytest.mark.parametrize("answer", [
    HTML_404,
    (400, {"Content-Type": "application/json"}, b""),
    (400, {"Content-Type": "application/json"}, b'{"message": "bad gateway config"}'),
    (413, {"Content-Type": "text/html"}, b"<html>Request Entity Too Large</html>"),
], ids=["html-404", "empty-400", "no-code-400", "html-413"])
def test_a_wechat_4xx_without_wechats_error_code_is_no_answer_and_fails_no_refund(raw_channel, wechat_keys, answer):
    raw_channel.answers.append(answer)
    with pytest.raises(ChannelUnknown):
        wechat_adapter(raw_channel, wechat_keys).refund(wechat_refund())


def test_a_wechat_4xx_with_an_unknown_error_code_is_still_a_definite_refusal(raw_channel, wechat_keys):
    # A.6: a code we do not list is still WeChat saying no (unsigned error bodies are what SDKs accept too).
    raw_channel.answers.append((403, {"Content-Type": "application/json"},
                                b'{"code": "SOMETHING_NEW", "message": "\xe6\x8b\x92\xe7\xbb\x9d"}'))
    with pytest.raises(ChannelError) as refused:
        wechat_adapter(raw_channel, wechat_keys).create_payment(wechat_native())
    assert not isinstance(refused.value, ChannelUnknown)
    assert (refused.value.code, refused.value.channel_code) == ("channel_error", "SOMETHING_NEW")


def test_a_wechat_5xx_with_a_definite_looking_code_is_still_unknown(raw_channel, wechat_keys):
    raw_channel.answers.append(wechat_signed(wechat_keys, 500, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}))
    with pytest.raises(ChannelUnknown):
        wechat_adapter(raw_channel, wechat_keys).query_payment(TradeRef(sub_merchant=WECHAT_SUB, out_trade_no="T1"))


@pytest.mark.parametrize("document", [
    {"status": "DONE", "out_refund_no": "R1", "amount": {"refund": 100}},
    {"out_refund_no": "R1", "amount": {"refund": 100}},
    {"status": "SUCCESS", "out_refund_no": "R1", "amount": {"refund": "100"}},
], ids=["unknown-status", "no-status", "amount-as-string"])
def test_a_signed_refund_answer_we_cannot_read_is_unknown(raw_channel, wechat_keys, document):
    raw_channel.answers.append(wechat_signed(wechat_keys, 200, document))
    with pytest.raises(ChannelUnknown):
        wechat_adapter(raw_channel, wechat_keys).refund(wechat_refund())


@pytest.mark.parametrize(("status", "state"), [
    ("PROCESSING", RefundState.PROCESSING), ("SUCCESS", RefundState.SUCCEEDED),
    ("ABNORMAL", RefundState.ABNORMAL), ("CLOSED", RefundState.CLOSED),
])
def test_each_wechat_refund_status_reads_as_its_meaning(raw_channel, wechat_keys, status, state):
    raw_channel.answers.append(wechat_signed(wechat_keys, 200, {
        "status": status, "out_refund_no": "R1", "refund_id": "50300", "amount": {"refund": 100, "total": 1230}}))
    assert wechat_adapter(raw_channel, wechat_keys).refund(wechat_refund()).state == state


def test_a_rotated_platform_certificate_is_fetched_once_and_the_answer_then_verifies(raw_channel, monkeypatch):
    """A.3 mode 1: an answer naming a serial we do not hold makes the adapter fetch /v3/certificates again (at most
    once per CERTIFICATE_REFETCH_SECONDS), then verify with the new certificate."""
    old_key, new_key = sim_crypto.new_key_pem(), sim_crypto.new_key_pem()
    old_pem, old_serial = sim_crypto.self_signed_certificate(old_key, "old")
    new_pem, new_serial = sim_crypto.self_signed_certificate(new_key, "new")
    apiv3 = "0123456789abcdef0123456789ABCDEF"
    keys = {"merchant": sim_crypto.new_key_pem()}
    config = WechatPayConfig(sp_mchid="19" + secrets.token_hex(4), sp_appid="wx8888888888888888",
                             private_key_pem=keys["merchant"], serial_no="5157F09E", apiv3_key=apiv3)
    adapter = WechatPayAdapter(config, base_url=raw_channel.base_url, read_timeout=3)

    def certificates(signer: str, signer_serial: str, *pairs):
        document = {"data": [{"serial_no": serial, "encrypt_certificate": sim_crypto.aes_encrypt(
            apiv3, pem.encode(), "certificate")} for pem, serial in pairs]}
        return wechat_signed({"platform": signer}, 200, document, serial=signer_serial)

    transaction = {"trade_state": "NOTPAY", "out_trade_no": "T1", "sub_mchid": "1900000109", "amount": {"total": 1}}
    # Before the rotation: the list holds the old certificate, and answers are signed with it.
    platform = {"key": old_key, "serial": old_serial, "list": [(old_pem, old_serial)]}

    def wechat(method, path, body):
        if path.startswith("/v3/certificates"):
            return certificates(platform["key"], platform["serial"], *platform["list"])
        return wechat_signed({"platform": platform["key"]}, 200, transaction, serial=platform["serial"])

    raw_channel.route = wechat
    assert adapter.query_payment(TradeRef(sub_merchant=WECHAT_SUB, out_trade_no="T1")).state == TradeState.PENDING

    # WeChat rotates: answers are now signed with the new certificate, which the list now carries too.
    monkeypatch.setattr(wechatpay_module, "CERTIFICATE_REFETCH_SECONDS", 0.0)
    platform.update(key=new_key, serial=new_serial, list=[(old_pem, old_serial), (new_pem, new_serial)])
    asked = len(raw_channel.requests)
    assert adapter.query_payment(TradeRef(sub_merchant=WECHAT_SUB, out_trade_no="T1")).state == TradeState.PENDING
    paths = [path.split("?")[0] for _, path, _ in raw_channel.requests[asked:]]
    assert paths == ["/v3/pay/partner/transactions/out-trade-no/T1", "/v3/certificates"]


# --- the bank gateway (docs/channels/bank.md §2, §3.4, §14) -------------------------------------------------
@pytest.fixture(scope="module")
def bank(simulator_server):
    return new_bank(simulator_server)


@pytest.mark.parametrize("status", [302, 403, 404, 413])
def test_a_bank_answer_that_is_not_http_200_leaves_the_order_unknown(bank, status):
    # §3.4: "An answer is usable only if all hold [HTTP 200 and a JSON object, signed…]; otherwise it is no answer
    # (treat like a timeout: unknown, query later)". The simulator's business_error with another status is an
    # unsigned FAIL, as a WAF or a wrong base URL would answer.
    merchant = open_merchant(bank)
    fault(bank, "business_error", scope=merchant.sub_mchid, code="PARAM_ERROR", status=status)
    with pytest.raises(ChannelUnknown) as unknown:
        bank.create_payment(bank_payment(merchant))
    assert unknown.value.http_status == status


def test_a_bank_refund_answered_by_a_front_end_404_is_not_failed(bank, raw_channel):
    raw_channel.answers.append(HTML_404)
    adapter = type(bank)(bank.config, base_url=raw_channel.base_url, read_timeout=3)
    request = RefundRequest(trade=bank_ref(SubMerchant(sub_mchid="826581000000001"), out_no()),
                            out_refund_no=out_no("R"), amount=100, total_amount=1200)
    with pytest.raises(ChannelUnknown):
        adapter.refund(request)


def test_a_bank_429_is_still_a_retryable_rate_limit(bank):
    merchant = open_merchant(bank)
    fault(bank, "business_error", scope=merchant.sub_mchid, code="RATE_LIMITED", status=429)
    with pytest.raises(ChannelError) as limited:
        bank.query_payment(bank_ref(merchant, out_no()))
    assert (limited.value.code, limited.value.permanent) == ("rate_limited", False)


# --- Alipay (channel-protocols.md B.3, B.5) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def alipay_keys():
    app_private, _app_public = new_key_pair()
    alipay_private, alipay_public = new_key_pair()
    return {"app": app_private, "alipay": alipay_private, "alipay_public": alipay_public}


def alipay_adapter(raw: RawChannel, keys: dict) -> AlipayAdapter:
    config = AlipayConfig(app_id="2021000000000001", app_private_key=keys["app"],
                          alipay_public_key=keys["alipay_public"])
    return AlipayAdapter(config, base_url=raw.base_url, read_timeout=3)


def alipay_signed(keys: dict, method: str, inner: dict):
    raw_inner = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
    sign = rsa2_sign(load_private_key(keys["alipay"]), raw_inner)
    body = '{"' + method.replace(".", "_") + '_response":' + raw_inner + ',"sign":"' + sign + '"}'
    return 200, {"Content-Type": "text/html;charset=utf-8"}, body.encode("utf-8")


ALIPAY_SUB = SubMerchant(sub_mchid="2088000000000001", app_auth_token="202601BB" + "0" * 24)


def test_a_signed_alipay_pay_answer_without_a_code_is_not_read_as_paid(raw_channel, alipay_keys):
    # B.3: "Success test is code == 10000" — an answer that does not say 10000 does not say the payer paid.
    out_trade_no = out_no("A")
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.pay", {
        "msg": "Success", "out_trade_no": out_trade_no, "trade_no": "2026112722001", "total_amount": "12.30"}))
    request = PaymentRequest(product="alipay.barcode", sub_merchant=ALIPAY_SUB, out_trade_no=out_trade_no,
                             amount=1230, subject="tea", notify_url="", expires_at=expires(),
                             auth_code="281234567890123450")
    with pytest.raises(ChannelUnknown):
        alipay_adapter(raw_channel, alipay_keys).create_payment(request)


def test_a_signed_alipay_refund_answer_without_a_code_is_not_read_as_refunded(raw_channel, alipay_keys):
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.refund", {
        "msg": "Success", "fund_change": "Y", "refund_fee": "1.00"}))
    request = RefundRequest(trade=TradeRef(sub_merchant=ALIPAY_SUB, out_trade_no=out_no("A")),
                            out_refund_no=out_no("R"), amount=100, total_amount=1230)
    with pytest.raises(ChannelUnknown):
        alipay_adapter(raw_channel, alipay_keys).refund(request)


@pytest.mark.parametrize("code", ["20002", "50000", ""])
def test_an_alipay_code_outside_its_documented_classes_is_unknown(raw_channel, alipay_keys, code):
    # B.3 lists the gateway codes 10000, 20000, 20001, 40001, 40002, 40004, 40006 (and 10003 for trade.pay). A code
    # we do not know, with a sub_code we do not know, says nothing definite: the order is not failed on it.
    inner = {"code": code, "msg": "?", "sub_code": "ACQ.NEW_THING", "sub_msg": "?"}
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.precreate", inner))
    request = PaymentRequest(product="alipay.qr", sub_merchant=ALIPAY_SUB, out_trade_no=out_no("A"), amount=1230,
                             subject="tea", notify_url="https://aggpay.example.com/cb", expires_at=expires())
    with pytest.raises(ChannelUnknown):
        alipay_adapter(raw_channel, alipay_keys).create_payment(request)


def test_an_alipay_40004_with_an_unknown_sub_code_is_still_a_definite_refusal(raw_channel, alipay_keys):
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.precreate", {
        "code": "40004", "msg": "Business Failed", "sub_code": "ACQ.NEW_THING", "sub_msg": "新的拒绝"}))
    request = PaymentRequest(product="alipay.qr", sub_merchant=ALIPAY_SUB, out_trade_no=out_no("A"), amount=1230,
                             subject="tea", notify_url="https://aggpay.example.com/cb", expires_at=expires())
    with pytest.raises(ChannelError) as refused:
        alipay_adapter(raw_channel, alipay_keys).create_payment(request)
    assert not isinstance(refused.value, ChannelUnknown)
    assert refused.value.channel_code == "ACQ.NEW_THING"


def test_the_alipay_oauth_token_answer_still_needs_no_code(raw_channel, alipay_keys):
    # §E: alipay.system.oauth.token answers success without any code.
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.system.oauth.token", {
        "user_id": "2088102150477652", "access_token": "x", "expires_in": 1296000}))
    assert alipay_adapter(raw_channel, alipay_keys).oauth_payer_id(code="c") == "2088102150477652"


# --- answers that already read right (checked in this review; kept so they stay right) ------------------------
@pytest.mark.parametrize("spoil", ["no-signature", "stale", "unknown-serial", "signtest", "truncated"])
def test_a_wechat_success_whose_signature_does_not_hold_is_unknown(raw_channel, wechat_keys, spoil):
    # A.3: verify before use; |now - Wechatpay-Timestamp| >= 5 min is refused; SIGNTEST probes must fail.
    status, headers, body = wechat_signed(wechat_keys, 200, {
        "trade_state": "SUCCESS", "out_trade_no": "T1", "sub_mchid": "1900000109", "transaction_id": "4200",
        "amount": {"total": 1230, "currency": "CNY"}})
    if spoil == "no-signature":
        del headers["Wechatpay-Signature"]
    elif spoil == "stale":
        headers["Wechatpay-Timestamp"] = str(int(time.time()) - 600)
    elif spoil == "unknown-serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_0119000000009999"
    elif spoil == "signtest":
        headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + secrets.token_urlsafe(32)
    else:
        body = body[:-10]
    raw_channel.answers.append((status, headers, body))
    with pytest.raises(ChannelUnknown):
        wechat_adapter(raw_channel, wechat_keys).query_payment(TradeRef(sub_merchant=WECHAT_SUB, out_trade_no="T1"))


def test_a_wechat_answer_in_another_currency_carries_it_for_the_cross_check(raw_channel, wechat_keys):
    # Design §5 rule 4: trades refuses a success whose currency is not the order's; the adapter must pass it on.
    raw_channel.answers.append(wechat_signed(wechat_keys, 200, {
        "trade_state": "SUCCESS", "out_trade_no": "T1", "sub_mchid": "1900000109", "transaction_id": "4200",
        "amount": {"total": 1230, "currency": "USD"}}))
    result = wechat_adapter(raw_channel, wechat_keys).query_payment(TradeRef(sub_merchant=WECHAT_SUB,
                                                                              out_trade_no="T1"))
    assert (result.state, result.amount, result.currency) == (TradeState.SUCCEEDED, 1230, "USD")


@pytest.mark.parametrize(("total_amount", "fen"), [("12.30", 1230), ("12.3", 1230), ("0.01", 1), ("12", 1200)])
def test_alipay_yuan_strings_read_as_fen(raw_channel, alipay_keys, total_amount, fen):
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.query", {
        "code": "10000", "msg": "Success", "out_trade_no": "A1", "trade_no": "2026", "trade_status": "TRADE_SUCCESS",
        "total_amount": total_amount, "send_pay_date": "2026-11-27 10:00:00"}))
    result = alipay_adapter(raw_channel, alipay_keys).query_payment(TradeRef(sub_merchant=ALIPAY_SUB,
                                                                             out_trade_no="A1"))
    assert (result.state, result.amount) == (TradeState.SUCCEEDED, fen)


@pytest.mark.parametrize("total_amount", [12.3, "12.345", "-1.00", "1e3", "¥12.30"])
def test_an_alipay_amount_that_is_not_a_yuan_string_is_unknown(raw_channel, alipay_keys, total_amount):
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.query", {
        "code": "10000", "msg": "Success", "out_trade_no": "A1", "trade_no": "2026", "trade_status": "TRADE_SUCCESS",
        "total_amount": total_amount, "send_pay_date": "2026-11-27 10:00:00"}))
    with pytest.raises(ChannelUnknown):
        alipay_adapter(raw_channel, alipay_keys).query_payment(TradeRef(sub_merchant=ALIPAY_SUB, out_trade_no="A1"))


def test_an_alipay_trade_status_we_do_not_know_is_unknown(raw_channel, alipay_keys):
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.query", {
        "code": "10000", "msg": "Success", "out_trade_no": "A1", "trade_status": "TRADE_PENDING"}))
    with pytest.raises(ChannelUnknown):
        alipay_adapter(raw_channel, alipay_keys).query_payment(TradeRef(sub_merchant=ALIPAY_SUB, out_trade_no="A1"))


def test_an_alipay_refund_query_for_a_refund_it_never_received_is_not_found_not_failed(raw_channel, alipay_keys):
    # B.5: refund_status absent = not received; the empty 10000 answer is "no such refund" — sent again, not failed.
    raw_channel.answers.append(alipay_signed(alipay_keys, "alipay.trade.fastpay.refund.query", {
        "code": "10000", "msg": "Success"}))
    result = alipay_adapter(raw_channel, alipay_keys).query_refund(
        trade=TradeRef(sub_merchant=ALIPAY_SUB, out_trade_no="A1"), out_refund_no="R1")
    assert result.state == RefundState.NOT_FOUND


def test_a_bank_refund_query_for_a_refund_it_never_received_is_not_found(bank):
    merchant = open_merchant(bank)
    assert bank.query_refund(trade=bank_ref(merchant, out_no()), out_refund_no=out_no("R")).state == \
        RefundState.NOT_FOUND


def test_a_failing_certificate_download_is_not_retried_for_every_answer(raw_channel):
    """A.3 mode 1: while /v3/certificates fails, each answer we cannot verify is unknown — but the download is tried
    at most once per CERTIFICATE_REFETCH_SECONDS, not once per answer (every order's answer would otherwise double
    the calls to a gateway that is already struggling)."""
    key = sim_crypto.new_key_pem()
    pem, serial = sim_crypto.self_signed_certificate(key, "platform")
    config = WechatPayConfig(sp_mchid="19" + secrets.token_hex(4), sp_appid="wx8888888888888888",
                             private_key_pem=sim_crypto.new_key_pem(), serial_no="5157F09E",
                             apiv3_key="0123456789abcdef0123456789ABCDEF")
    adapter = WechatPayAdapter(config, base_url=raw_channel.base_url, read_timeout=3)
    transaction = {"trade_state": "NOTPAY", "out_trade_no": "T1", "sub_mchid": "1900000109", "amount": {"total": 1}}

    def wechat(method, path, body):
        if path.startswith("/v3/certificates"):
            return 500, {"Content-Type": "application/json"}, b'{"code":"SYSTEM_ERROR","message":"busy"}'
        return wechat_signed({"platform": key}, 200, transaction, serial=serial)

    raw_channel.route = wechat
    for _ in range(3):
        with pytest.raises(ChannelUnknown):
            adapter.query_payment(TradeRef(sub_merchant=WECHAT_SUB, out_trade_no="T1"))

    downloads = [path for _, path, _ in raw_channel.requests if path.startswith("/v3/certificates")]
    assert len(downloads) == 1


# --- onboarding: "finished" without the sub-merchant id (design §5 rule 2) ---------------------------------------
# Finished with no id to trade under is not an activation: the contract would go active with an empty sub_mchid and
# every order routed to it would be refused. Unknown: the contract is polled again.
def test_a_wechat_applyment_finished_without_a_sub_mchid_is_unknown_not_active(raw_channel, wechat_keys):
    # A.13: APPLYMENT_STATE_FINISHED names the sub_mchid the merchant trades under.
    raw_channel.answers.append(wechat_signed(wechat_keys, 200, {
        "applyment_id": 2000002124775691, "applyment_state": "APPLYMENT_STATE_FINISHED", "business_code": "B1"}))
    with pytest.raises(ChannelUnknown):
        wechat_adapter(raw_channel, wechat_keys).onboarding_query(application_id="2000002124775691")


def test_a_wechat_applyment_finished_with_its_sub_mchid_is_active(raw_channel, wechat_keys):
    raw_channel.answers.append(wechat_signed(wechat_keys, 200, {
        "applyment_id": 2000002124775691, "applyment_state": "APPLYMENT_STATE_FINISHED", "sub_mchid": "1900006491"}))
    result = wechat_adapter(raw_channel, wechat_keys).onboarding_query(application_id="2000002124775691")
    assert (result.state, result.sub_mchid) == (OnboardingState.FINISHED, "1900006491")


def test_an_alipay_zft_order_finished_without_a_smid_is_unknown_not_active(raw_channel, alipay_keys):
    # B.7: status 99 = 已完结, and the smid is valid only then.
    raw_channel.answers.append(alipay_signed(alipay_keys, "ant.merchant.expand.indirect.zftorder.query", {
        "code": "10000", "msg": "Success", "orders": [{"order_id": "2021001", "status": "99", "external_id": "B1"}]}))
    with pytest.raises(ChannelUnknown):
        alipay_adapter(raw_channel, alipay_keys).onboarding_query(application_id="2021001")


def test_a_bank_apply_finished_without_a_mch_no_is_unknown_not_active(raw_channel):
    # bank.md §9.5: FINISHED carries mch_no. The raw channel answers as the bank would: signed, our nonce echoed.
    ours, _ours_public = new_key_pair()
    bank_private, bank_public = new_key_pair()
    config = BankConfig(org_no="ORG0001", key_id="k1", private_key_pem=ours, bank_key_id="bk1",
                        bank_public_key_pem=bank_public)

    def bank_answers(method, path, body):
        answer = {"code": "SUCCESS", "msg": "OK", "org_no": "ORG0001", "nonce": json.loads(body)["nonce"],
                  "key_id": "bk1", "sign_type": "RSA2", "apply_id": "AP1", "apply_no": "B1", "apply_state": "FINISHED"}
        answer["sign"] = bank_sign(answer, bank_private)
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    raw_channel.route = bank_answers
    with pytest.raises(ChannelUnknown):
        BankAdapter(config, base_url=raw_channel.base_url, read_timeout=3).onboarding_query(application_id="AP1")
