"""seed_demo refuses where its published passwords would be a back door (aggpay/management/commands/seed_demo.py
``refuse_outside_demo``): README.md prints the demo staff passwords and the demo app's HMAC secret, so a deployment
that ran it could be signed into as admin by anyone who read the README."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from merchants.models import MerchantApp
from tests.factories import ChannelAccountFactory


def _seed(*extra: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--skip-channels", *extra, stdout=out)
    return out.getvalue()


@pytest.fixture
def deployment(settings):
    """A deployment's settings: DEBUG and the in-process simulators off (`make up`)."""
    settings.DEBUG = False
    settings.AGGPAY_SIMULATORS = False
    return settings


@pytest.mark.django_db
def test_it_refuses_on_a_deployments_settings_and_writes_nothing(deployment):
    with pytest.raises(CommandError, match="--allow-published-passwords"):
        _seed()
    assert not get_user_model().objects.exists()
    assert not MerchantApp.objects.exists()


@pytest.mark.django_db
def test_a_person_who_asks_for_the_demo_logins_on_the_local_stack_gets_them(deployment):
    _seed("--allow-published-passwords")  # `make seed` on `make up`'s database
    assert get_user_model().objects.filter(username="admin").exists()


@pytest.mark.django_db
def test_it_runs_on_the_demos_settings_without_the_flag(settings):
    settings.DEBUG, settings.AGGPAY_SIMULATORS = False, True  # `make demo`: the in-process simulators
    _seed()
    assert MerchantApp.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("base_url", ["https://api.mch.weixin.qq.com", "https://openapi.alipay.com/gateway.do",
                                      "http://10.0.0.8/bank"])
def test_it_never_seeds_a_database_whose_channels_reach_real_gateways(settings, base_url):
    settings.DEBUG, settings.AGGPAY_SIMULATORS = True, True
    ChannelAccountFactory(code="wx-live", base_url=base_url)
    with pytest.raises(CommandError, match="wx-live"):
        _seed("--allow-published-passwords")
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8100/wechatpay", "http://localhost:8000/_sim/bank",
                                      "http://[::1]:8100/alipay"])
def test_accounts_on_the_simulators_of_this_machine_are_the_demos_own(settings, base_url):
    settings.DEBUG, settings.AGGPAY_SIMULATORS = True, True
    ChannelAccountFactory(code="sim", base_url=base_url)
    _seed()
    assert get_user_model().objects.filter(username="admin").exists()
