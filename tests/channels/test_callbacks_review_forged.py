"""Forged notices posted to an account's callback URL (design §5 rule 4): whatever their bytes or size, they are
refused and recorded as a security event — never a 500 that records nothing — and an oversized one is not stored
whole (channels.callbacks)."""

from __future__ import annotations

import pytest

from aggpay.models import AuditLog
from channels.callbacks import MAX_CALLBACK_BYTES, OVERSIZED_KEPT_BYTES
from channels.models import CallbackOutcome, ChannelCallback
from tests.factories import ChannelAccountFactory

pytestmark = pytest.mark.django_db


def _refusal(account) -> ChannelCallback:
    (record,) = ChannelCallback.objects.filter(account=account)
    assert record.outcome == CallbackOutcome.REJECTED
    audit = AuditLog.objects.get(action="security.callback.unverified", target_id=str(record.pk))
    assert audit.actor_label == f"channel:{account.code}"
    return record


@pytest.mark.parametrize("kind", ["bank", "wechatpay", "alipay"])
def test_a_forged_notice_with_a_nul_past_its_first_characters_is_refused_and_recorded(client, kind):
    # redact() looks for binary content in the first 200 characters only, so the NUL reached the audit row's jsonb.
    account = ChannelAccountFactory(code=f"{kind}-forged", kind=kind)
    body = b'{"notify_id": "' + b"N" * 300 + b'\x00", "sign": "forged"}'

    response = client.post(f"/callbacks/{account.code}/", data=body, content_type="application/json")

    assert response.content != b""
    record = _refusal(account)
    assert record.body.encode() == body  # the stored notice keeps its bytes (encrypted at rest)


def test_a_forged_notice_with_a_nul_in_a_header_is_refused_and_recorded(client):
    account = ChannelAccountFactory(code="bank-forged", kind="bank")

    client.post(f"/callbacks/{account.code}/", data=b'{"notify_id": "N1"}', content_type="application/json",
                HTTP_X_TRACE="a\x00b")

    record = _refusal(account)
    assert record.headers["X-Trace"] == "a\ufffdb"


def test_an_oversized_notice_is_refused_unread_and_only_its_start_is_kept(client):
    account = ChannelAccountFactory(code="bank-big", kind="bank")
    body = b'{"notify_id": "N1", "padding": "' + b"x" * MAX_CALLBACK_BYTES + b'"}'

    response = client.post(f"/callbacks/{account.code}/", data=body, content_type="application/json")

    assert response.content == b"FAIL"  # the bank's "not accepted" (bank.md §11.3)
    record = _refusal(account)
    assert len(record.body) == OVERSIZED_KEPT_BYTES and body.startswith(record.body.encode())
    assert f"a notice of {len(body)} bytes" in record.message


def test_a_notice_at_the_size_limit_is_still_read_and_verified(client):
    account = ChannelAccountFactory(code="bank-edge", kind="bank")
    head, tail = b'{"notify_id": "N1", "padding": "', b'"}'
    body = head + b"x" * (MAX_CALLBACK_BYTES - len(head) - len(tail)) + tail

    client.post(f"/callbacks/{account.code}/", data=body, content_type="application/json")

    record = _refusal(account)
    assert record.body.encode() == body and "bytes" not in record.message
