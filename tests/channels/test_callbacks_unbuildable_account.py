"""A notice to an account whose adapter cannot be built (its stored config no longer loads): the channel gets its
"try again" answer, never an unrecorded 500, and the notice is kept as it came with a logged error for ops
(style.md §8: 5xx only for transient failures so the channel retries; channels.callbacks)."""

from __future__ import annotations

import json
import logging

import pytest

from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback
from tests.factories import ChannelAccountFactory, channel_config

pytestmark = pytest.mark.django_db

# Each channel's answer that makes it send the notice again: WeChat Pay any 4xx/5xx with {"code": "FAIL"} — a 5xx
# for our own trouble (channel-protocols.md A.4); Alipay any body but "success" (B.4); the bank any body but
# "SUCCESS" (bank.md §11.3).
RETRY_ANSWER = {
    "wechatpay": (500, lambda body: json.loads(body)["code"] == "FAIL"),
    "alipay": (200, lambda body: body == b"fail"),
    "bank": (500, lambda body: body == b"FAIL"),
}
BODY = {
    "wechatpay": b'{"id": "EV-2026-1", "event_type": "TRANSACTION.SUCCESS", "resource": {"ciphertext": "abc"}}',
    "alipay": b"notify_id=N2026&trade_status=TRADE_SUCCESS&out_trade_no=T1&sign=xyz",
    "bank": b'{"notify_id": "N2026", "trade_state": "SUCCESS", "sign": "xyz"}',
}


def _break(account: ChannelAccount, config: dict) -> None:
    ChannelAccount.objects.filter(pk=account.pk).update(config=config)


def _recorded_error(account: ChannelAccount, body: bytes) -> ChannelCallback:
    (record,) = ChannelCallback.objects.filter(account=account)
    assert record.outcome == CallbackOutcome.ERROR
    assert record.body.encode() == body  # the notice is not lost
    assert "cannot be built" in record.message
    return record


@pytest.mark.parametrize("kind", ["wechatpay", "alipay", "bank"])
def test_a_notice_to_an_account_whose_stored_config_no_longer_loads_is_kept_and_the_channel_retries(
        client, caplog, kind):
    account = ChannelAccountFactory(code=f"{kind}-broken", kind=kind)
    stored = channel_config(kind)
    del stored[next(iter(stored))]  # a required field gone: e.g. a config written by an older release
    _break(account, stored)

    with caplog.at_level(logging.ERROR, logger="channels.callbacks"):
        response = client.post(f"/callbacks/{account.code}/", data=BODY[kind], content_type="application/json")

    status, is_retry = RETRY_ANSWER[kind]
    assert response.status_code == status and is_retry(response.content)
    record = _recorded_error(account, BODY[kind])
    assert "does not fit" in record.message
    assert any(r.levelno == logging.ERROR and account.code in r.getMessage() for r in caplog.records)


def test_a_notice_to_an_account_whose_adapter_refuses_its_config_is_kept_and_the_channel_retries(client, caplog):
    # The config loads, but the Alipay adapter's constructor refuses a sign_type it does not support.
    account = ChannelAccountFactory(code="alipay-rsa1", kind="alipay")
    _break(account, channel_config("alipay", sign_type="RSA"))

    with caplog.at_level(logging.ERROR, logger="channels.callbacks"):
        response = client.post(f"/callbacks/{account.code}/", data=BODY["alipay"],
                               content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200 and response.content == b"fail"
    record = _recorded_error(account, BODY["alipay"])
    assert "sign_type" in record.message
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_a_notice_to_an_account_of_a_kind_without_an_adapter_gets_a_retry_every_channel_understands(client):
    account = ChannelAccountFactory(code="bank-gone", kind="bank")
    ChannelAccount.objects.filter(pk=account.pk).update(kind="retired")

    response = client.post(f"/callbacks/{account.code}/", data=BODY["bank"], content_type="application/json")

    # A 5xx whose body is no channel's success word: each of them sends the notice again.
    assert response.status_code == 503 and response.content not in (b"success", b"SUCCESS", b"")
    _recorded_error(account, BODY["bank"])
