"""A channel's answer carrying a NUL (``\\u0000`` in its JSON) past its first characters: what trades stores of it —
the channel call's record, the order's failure — holds none, since PostgreSQL's text and jsonb columns cannot
(channels.adapters.http.without_nul). Before, the INSERT failed and the merchant got a 500 instead of the channel's
refusal. Over signed HTTP against the simulators, their ``business_error`` fault carrying the NUL.
"""

from __future__ import annotations

import pytest

from trades.models import ChannelCall, Order

pytestmark = pytest.mark.usefixtures("quiet_channels")

# Past the 200 characters redact() looks at for binary content.
WORDS = "参数错误" * 60 + "\u0000" + "请检查"

REFUSALS = {  # a definite refusal in each channel's own words (channel-protocols.md A.6, B.3; bank.md §3)
    "wechatpay": ("wechat.native", {"code": "PARAM_ERROR", "status": 400}),
    "alipay": ("alipay.qr", {"code": "ACQ.INVALID_PARAMETER"}),
    "bank": ("unionpay.qr", {"code": "PARAM_ERROR"}),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_a_refusal_whose_words_carry_a_nul_is_recorded_and_answered_not_a_500(shop, kind):
    product, rule = REFUSALS[kind]
    shop.sim(kind, "/_control/faults", fault="business_error", message=WORDS, match={"contains": "NULtea"}, **rule)

    status, _, answer = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": f"NUL{kind}", "amount": 1500, "product": product, "subject": "NULtea"})

    assert status != 500, answer
    order = Order.objects.get(out_trade_no=f"NUL{kind}", merchant=shop.merchant)
    (call,) = ChannelCall.objects.filter(order=order, verb="create")
    stored = " ".join([call.message, call.channel_code, call.answer, order.failure_message, order.failure_code])
    assert "\x00" not in stored
    assert "请检查" in call.message + call.answer  # the words after the NUL are kept, the NUL replaced
