"""The change history on the channel account and product pages speaks the staff's words: field labels instead of
column names, Yes/No instead of True/False, secrets still only "(changed)"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from channels.services.accounts import channel_account_enable, channel_account_update
from channels.services.products import channel_product_set
from tests.channels.test_channel_pages import ops, wechat_account  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def test_the_product_history_shows_field_labels_and_yes_no(ops, wechat_account):  # noqa: F811
    channel_product_set(account_id=wechat_account.pk, product="wechat.native", actor="test", enabled=False,
                        min_amount=100, reason="paused for maintenance")

    html = ops.get(reverse("channels:product_edit", args=["wx-isv", "wechat.native"])).content.decode()

    assert "Enabled</span>:" in html and "<del>Yes</del> → <ins>No</ins>" in html
    assert "Min amount</span>:" in html and "1.00 yuan" in html
    assert "True" not in html.split('class="table audit history"')[1]


def test_the_account_history_labels_config_keys_and_keeps_secrets_hidden(ops, wechat_account, evaluate):  # noqa: F811
    evaluate(wechat_account)
    channel_account_update(account_id=wechat_account.pk, actor="test", reason="rotate", name="WeChat ISV (new)",
                           config={"apiv3_key": "b" * 32})
    channel_account_enable(account_id=wechat_account.pk, actor="test", reason="go live")

    html = ops.get(reverse("channels:account_detail", args=["wx-isv"])).content.decode()
    history = html.split('class="table audit history"')[1]

    assert "Name</span>:" in history and "Config: apiv3 key</span>:" in history
    assert "<em>(changed)</em>" in history and "b" * 32 not in html
    assert "<del>No</del> → <ins>Yes</ins>" in history
