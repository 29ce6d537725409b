"""A trade's timeline shows each channel call's request and answer, redacted (issue 5 "Staff pages": "each channel
call with request and answer redacted"), and a callback as the adapter read it — for WeChat Pay, the decrypted
resource, where the notice's own body holds only ciphertext (channel-protocols.md A.4).

Before, a call kept only the adapter's parsed answer: no request at all, ``{}`` for a refusal or a timeout, and a
WeChat Pay notice showed ``"ciphertext": "***"``. Over signed HTTP against the simulators, as support reads it.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from channels.models import ChannelCallback
from trades.models import ChannelCall, Order
from trades.workbench import order_timeline

pytestmark = pytest.mark.usefixtures("quiet_channels")

BUYER_ID = "2088102146225135"  # who pays, an Alipay user id: PII (design §5 rule 10)


def _create(shop, out_trade_no, product="wechat.native", **extra):
    status, _, order = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": out_trade_no, "amount": 1500, "product": product, "subject": "tea", **extra})
    return status, order


def test_a_create_records_what_was_sent_and_what_came_back(shop):
    status, answer = _create(shop, "EXG00001")
    assert status == 201, answer

    (call,) = ChannelCall.objects.filter(order_id=answer["id"], verb="create")
    first_line, _, body = call.request.partition("\n")
    assert first_line.startswith("POST http://") and first_line.endswith("/v3/pay/partner/transactions/native")
    assert f'"out_trade_no": "{answer["id"]}"' in body or f'"out_trade_no":"{answer["id"]}"' in body
    assert '"total": 1500' in body or '"total":1500' in body
    assert answer["pay_params"]["code_url"] in call.answer


def test_an_alipay_form_request_is_shown_as_fields_with_the_payer_masked(shop, caplog):
    caplog.set_level("INFO", logger="aggpay.channels.http")
    status, answer = _create(shop, "EXG00002", product="alipay.jsapi", payer={"buyer_id": BUYER_ID})
    assert status == 201, answer
    assert BUYER_ID not in caplog.text  # the call's log line masks it too
    assert '"buyer_id": "***"' in caplog.text or '"buyer_id":"***"' in caplog.text

    (call,) = ChannelCall.objects.filter(order_id=answer["id"], verb="create")
    assert call.request.startswith("POST ")
    # biz_content is read as an object, so the payer's id inside it is masked like any other (B.1's form body
    # percent-encodes it, which hid it from the masking)
    assert '"method": "alipay.trade.create"' in call.request
    assert '"buyer_id": "***"' in call.request
    assert BUYER_ID not in call.request
    assert '"sign": "***"' in call.request


def test_a_refused_create_keeps_the_channels_words_not_an_empty_answer(shop):
    shop.sim("wechatpay", "/_control/faults", fault="business_error", code="PARAM_ERROR", status=400,
             message="sub_mchid 与 sp_mchid 不匹配", match={"contains": "EXGrefused"})

    status, answer = _create(shop, "EXG00003", subject="EXGrefused")

    (call,) = ChannelCall.objects.filter(order__out_trade_no="EXG00003", verb="create")
    assert call.outcome == "error"
    assert call.answer.startswith("HTTP 400\n"), call.answer
    assert "PARAM_ERROR" in call.answer and "不匹配" in call.answer
    assert call.request.partition("\n")[0].endswith("/v3/pay/partner/transactions/native")


def test_a_create_nobody_answered_says_so(shop, settings):
    settings.AGGPAY_CHANNEL_READ_TIMEOUT = 0.5
    shop.sim("wechatpay", "/_control/faults", fault="timeout", seconds=1.5, match={"contains": "EXGslow"})

    status, answer = _create(shop, "EXG00004", subject="EXGslow")

    assert status == 201 and answer["state"] == "pending", answer
    (call,) = ChannelCall.objects.filter(order_id=answer["id"], verb="create")
    assert call.outcome == "unknown"
    assert call.answer == "no answer"
    assert "EXGslow" in call.request  # what we sent is known even when nothing came back


def test_support_reads_the_request_and_the_decrypted_payment_notice_on_the_order_page(shop, client, staff_member):
    status, answer = _create(shop, "EXG00005")
    assert status == 201, answer
    shop.sim("wechatpay", "/_payer/pay", code_url=answer["pay_params"]["code_url"])
    shop.sim("wechatpay", "/_control/flush")
    order = shop.wait_for(lambda: Order.objects.filter(pk=answer["id"], state="succeeded").first(), message="paid")

    notice = next(c for c in ChannelCallback.objects.filter(kind="payment") if order.pk in c.message)
    assert '"trade_state": "SUCCESS"' in notice.decoded
    entry = next(e for e in order_timeline(order)["entries"] if e.kind == "callback")
    assert entry.decoded
    assert '"trade_state": "SUCCESS"' in entry.body
    assert order.channel_trade_no in entry.body
    assert '"sp_openid": "***"' in entry.body or '"sub_openid": "***"' in entry.body

    client.force_login(staff_member("support_agent", username="zhou.support"))
    page = client.get(reverse("trades:detail", args=[order.pk])).content.decode()
    assert "Request (redacted)" in page
    assert "/v3/pay/partner/transactions/native" in page
    assert "Notice as read: decrypted and verified (redacted)" in page
    assert "SUCCESS" in page
