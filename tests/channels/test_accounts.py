"""Channel accounts: typed config, write-only credentials, encryption at rest, history and audit (issue 3)."""

from __future__ import annotations

import pytest
from django.db import connection

from aggpay.errors import InvalidRequest, InvalidState
from aggpay.models import AuditLog
from channels.models import ChannelAccount, ChannelConfigChange, ChannelConfigInvalid
from channels.services.accounts import (
    channel_account_create,
    channel_account_disable,
    channel_account_enable,
    channel_account_update,
)
from channels.services.history import CHANGED
from tests.factories import _rsa_pem_pair, channel_config

pytestmark = pytest.mark.django_db


def _create(kind="wechatpay", code="wx-isv", **kwargs):
    kwargs.setdefault("config", channel_config(kind))
    return channel_account_create(actor="test", kind=kind, code=code, name=f"{kind} account",
                                  base_url=f"http://127.0.0.1:9/{kind}", **kwargs)


def _raw_config_column(account) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM channels_channelaccount WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


def test_it_builds_the_adapters_typed_config_from_the_stored_row():
    account = _create()

    account = ChannelAccount.objects.get(pk=account.pk)
    typed = account.typed_config
    assert type(typed).__name__ == "WechatPayConfig"
    assert typed.sp_mchid == "1900000100"
    assert typed.private_key_pem == channel_config("wechatpay")["private_key_pem"]


def test_it_builds_an_adapter_bound_to_the_accounts_gateway():
    account = _create(kind="bank", code="bank-x")

    adapter = account.adapter()

    assert type(adapter).__name__ == "BankAdapter"
    assert adapter.base_url == "http://127.0.0.1:9/bank"
    assert adapter.config.org_no == "ORG0001"


def test_the_database_column_holds_ciphertext_not_the_credentials():
    account = _create()
    config = channel_config("wechatpay")

    raw = _raw_config_column(account)

    assert raw.startswith("gAAAA")  # a Fernet token
    for secret in (config["apiv3_key"], "BEGIN PRIVATE KEY", config["sp_mchid"]):
        assert secret not in raw


@pytest.mark.parametrize(("kind", "mode"), [("wechatpay", "isv"), ("alipay", "isv"), ("bank", "bank")])
def test_it_derives_the_mode_from_the_kind(kind, mode):
    assert _create(kind=kind, code=f"acc-{kind}").mode == mode


def test_creating_writes_history_and_audit_with_secrets_replaced():
    account = _create(reason="new ISV account")
    config = channel_config("wechatpay")

    change = ChannelConfigChange.objects.get(account=account)
    assert change.action == "account.created"
    assert change.reason == "new ISV account"
    assert change.changes["config.sp_mchid"] == {"old": None, "new": "1900000100"}
    assert change.changes["config.private_key_pem"] == CHANGED
    assert change.changes["config.apiv3_key"] == CHANGED
    audit = AuditLog.objects.get(action="channels.account.created")
    assert audit.target_id == str(account.pk)
    dumped = str(audit.data) + str(change.changes)
    assert config["apiv3_key"] not in dumped
    assert "PRIVATE KEY" not in dumped


def test_saving_with_a_blank_secret_keeps_the_stored_one():
    account = _create()
    original = channel_config("wechatpay")

    channel_account_update(account_id=account.pk, actor="test", reason="new mchid",
                           config={"sp_mchid": "1900000200", "private_key_pem": "", "apiv3_key": "",
                                   "wechatpay_public_key_pem": ""})

    account.refresh_from_db()
    assert account.config["sp_mchid"] == "1900000200"
    assert account.config["private_key_pem"] == original["private_key_pem"]
    assert account.config["apiv3_key"] == original["apiv3_key"]
    assert account.config["wechatpay_public_key_pem"] == original["wechatpay_public_key_pem"]
    change = account.changes.get(action="account.updated")
    assert change.changes == {"config.sp_mchid": {"old": "1900000100", "new": "1900000200"}}


def test_a_new_secret_replaces_the_old_and_the_history_shows_only_that_it_changed():
    account = _create()
    new_key, _ = _rsa_pem_pair("wechatpay:rotated")

    channel_account_update(account_id=account.pk, actor="test", reason="key rotation",
                           config={"private_key_pem": new_key, "apiv3_key": "b" * 32})

    account.refresh_from_db()
    assert account.typed_config.private_key_pem == new_key
    assert account.typed_config.apiv3_key == "b" * 32
    change = account.changes.get(action="account.updated")
    assert change.changes == {"config.private_key_pem": CHANGED, "config.apiv3_key": CHANGED}
    assert AuditLog.objects.filter(action="channels.account.updated", reason="key rotation").count() == 1


def test_an_update_that_changes_nothing_writes_no_history():
    account = _create()

    channel_account_update(account_id=account.pk, actor="test", reason="no-op", name=account.name,
                           config={"private_key_pem": ""})

    assert account.changes.filter(action="account.updated").count() == 0


def test_an_update_needs_a_reason():
    account = _create()

    with pytest.raises(InvalidRequest) as exc:
        channel_account_update(account_id=account.pk, actor="test", reason=" ", name="Renamed")

    assert exc.value.param == "reason"
    account.refresh_from_db()
    assert account.name != "Renamed"


def test_a_missing_required_field_is_refused_naming_it():
    config = channel_config("wechatpay")
    del config["apiv3_key"]

    with pytest.raises(ChannelConfigInvalid) as exc:
        _create(config=config)

    assert exc.value.param == "config.apiv3_key"
    assert not ChannelAccount.objects.exists()


def test_a_broken_pem_key_is_refused_naming_the_field_without_echoing_it():
    broken = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"

    with pytest.raises(ChannelConfigInvalid) as exc:
        _create(kind="bank", code="bank-broken", config=channel_config("bank", private_key_pem=broken))

    assert exc.value.param == "config.private_key_pem"
    assert "MIIEvQ" not in exc.value.message


def test_a_key_field_that_is_not_pem_is_refused():
    with pytest.raises(ChannelConfigInvalid) as exc:
        _create(kind="alipay", code="ali", config=channel_config("alipay", alipay_public_key="not a key"))

    assert exc.value.param == "config.alipay_public_key"


def test_unknown_config_fields_are_refused_rather_than_dropped():
    with pytest.raises(InvalidRequest) as exc:
        _create(config=channel_config("wechatpay", password="x"))

    assert exc.value.param == "config.password"


def test_codes_are_unique_slugs_and_not_reserved_page_names():
    _create(code="wx-isv")
    for code, message in (("wx-isv", "exists"), ("new", "reserved"), ("bad code", "letters")):
        with pytest.raises(InvalidRequest) as exc:
            _create(code=code)
        assert exc.value.param == "code"
        assert message in exc.value.message


def test_a_stored_config_that_does_not_fit_the_adapter_gives_a_clear_error():
    account = _create()
    ChannelAccount.objects.filter(pk=account.pk).update(config={"sp_mchid": "1"})

    account = ChannelAccount.objects.get(pk=account.pk)
    with pytest.raises(ChannelConfigInvalid) as exc:
        account.typed_config  # noqa: B018 - the property raises

    assert "wx-isv" in exc.value.message
    assert "WechatPayConfig" in exc.value.message


def test_enable_and_disable_need_a_reason_and_keep_history(evaluate):
    account = _create()
    assert account.enabled is False
    evaluate(account)  # an account takes traffic only once its evaluation is live (design §1)

    with pytest.raises(InvalidRequest):
        channel_account_enable(account_id=account.pk, actor="test", reason="")
    channel_account_enable(account_id=account.pk, actor="test", reason="evaluation live")
    channel_account_disable(account_id=account.pk, actor="test", reason="channel outage")

    account.refresh_from_db()
    assert account.enabled is False
    actions = list(account.changes.filter(target_type="account").order_by("id").values_list("action", "reason"))
    assert actions[1:] == [("account.enabled", "evaluation live"), ("account.disabled", "channel outage")]
    assert AuditLog.objects.filter(action="channels.account.disabled", reason="channel outage").exists()


def test_enabling_an_enabled_account_is_an_invalid_state(evaluate):
    account = _create()
    evaluate(account)
    channel_account_enable(account_id=account.pk, actor="test", reason="live")

    with pytest.raises(InvalidState):
        channel_account_enable(account_id=account.pk, actor="test", reason="again")


def test_history_rows_are_append_only():
    account = _create()
    change = account.changes.get()

    change.reason = "rewritten"
    with pytest.raises(TypeError):
        change.save()
    with pytest.raises(TypeError):
        change.delete()
