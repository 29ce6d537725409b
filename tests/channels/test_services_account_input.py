"""The account services refuse what the pages never send — a name of only spaces, a number or a dict for a text
config field — naming the field, because admin actions and APIs call them directly (preamble: bad input gets a
clear error naming the field; nothing partial is written)."""

from __future__ import annotations

import pytest

from aggpay.errors import InvalidRequest
from channels.models import ChannelAccount, ChannelConfigChange
from channels.services.accounts import channel_account_create, channel_account_update
from tests.factories import channel_config

pytestmark = pytest.mark.django_db


def _create(**overrides) -> ChannelAccount:
    values = {"actor": "test", "kind": "bank", "code": "bank-c", "name": "Bank C",
              "base_url": "http://127.0.0.1:9/bank", "config": channel_config("bank")}
    return channel_account_create(**{**values, **overrides})


@pytest.mark.parametrize("name", ["   ", "\t\n", 42, None])
def test_creating_an_account_with_a_blank_or_non_text_name_is_refused_naming_it(name):
    with pytest.raises(InvalidRequest) as refused:
        _create(name=name)

    assert refused.value.param == "name"
    assert not ChannelAccount.objects.exists()


@pytest.mark.parametrize("name", ["   ", 42])
def test_renaming_an_account_to_a_blank_or_non_text_name_is_refused_naming_it(name):
    account = _create()

    with pytest.raises(InvalidRequest) as refused:
        channel_account_update(account_id=account.pk, actor="test", reason="rename", name=name)

    assert refused.value.param == "name"
    assert ChannelAccount.objects.get(pk=account.pk).name == "Bank C"
    assert not ChannelConfigChange.objects.filter(action="account.updated").exists()


@pytest.mark.parametrize("value", [123456, 1.5, True, {"org_no": "ORG1"}, ["ORG1"]])
def test_creating_an_account_with_a_non_text_config_value_is_refused_naming_the_field(value):
    with pytest.raises(InvalidRequest) as refused:
        _create(config=channel_config("bank", org_no=value))

    assert refused.value.param == "config.org_no"
    assert not ChannelAccount.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("key_id", 7), ("user_auth_url", {"url": "x"}),
                                              ("private_key_pem", 0)])
def test_updating_a_text_config_field_with_a_non_text_value_is_refused_naming_it(field, value):
    account = _create()
    before = dict(ChannelAccount.objects.get(pk=account.pk).config)

    with pytest.raises(InvalidRequest) as refused:
        channel_account_update(account_id=account.pk, actor="test", reason="fix", config={field: value})

    assert refused.value.param == f"config.{field}"
    assert ChannelAccount.objects.get(pk=account.pk).config == before


def test_a_required_config_field_of_only_spaces_is_refused_as_missing():
    with pytest.raises(InvalidRequest) as refused:
        _create(config=channel_config("bank", org_no="   "))

    assert refused.value.param == "config.org_no"


def test_a_non_text_code_is_refused_naming_it():
    with pytest.raises(InvalidRequest) as refused:
        _create(code=12345)

    assert refused.value.param == "code"
    assert not ChannelAccount.objects.exists()
