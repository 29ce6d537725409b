"""The demo's channel risk notice (aggpay/management/demo_risk.py): after the morning's trades ``seed_demo`` has the
WeChat Pay simulator send one signed violation notice (channel-protocols.md A.15) about Demo Tea House to the WeChat
account's callback URL, which the command serves, so the risk officer's "Channel risk notices to handle" opens on one
notice recorded the real way — verified, matched to the shop's WeChat contract, with its callback row and audit
entry. Running the seed again sends none; a demo whose trades were made before there was a notice gets it.

PostgreSQL here, live HTTP, the simulators on their own port (as tests/aggpay/test_demo_trades.py)."""

from __future__ import annotations

import io
import socket
from contextlib import closing

import pytest
from django.core.management import call_command

from aggpay.management import demo, demo_risk, demo_trades
from aggpay.models import AuditLog
from channels.models import CallbackOutcome, ChannelCallback
from channels.services.demo import demo_channel_accounts_seed, demo_merchant_contracts_seed
from merchants.models import Contract, Merchant
from risk import notice_queue
from risk.models import ChannelRiskNotice
from trades.models import Order

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_channels")]


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_merchant(transactional_db, simulator_server, settings):
    """What ``seed_demo`` makes before the trades (tests/aggpay/test_demo_trades.py ``demo_merchant``), with the
    command serving the demo's address itself on a free port, on the in-process simulators' settings."""
    settings.AGGPAY_SIMULATOR_BASE_URL = simulator_server.base_url
    call_command("seed_demo", "--allow-published-passwords", "--skip-channels", "--skip-staff", stdout=io.StringIO())
    demo_channel_accounts_seed(simulator_root=simulator_server.base_url)
    merchant = Merchant.objects.get(merchant_no=demo.DEMO_MERCHANT_NO)
    demo_merchant_contracts_seed(merchant=merchant, simulator_root=simulator_server.base_url)
    settings.AGGPAY_SIMULATORS = True
    settings.AGGPAY_PUBLIC_BASE_URL = f"http://127.0.0.1:{_free_port()}"
    return merchant


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", "--allow-published-passwords", "--skip-staff", "--skip-onboarding", stdout=out)
    return out.getvalue()


def _wechat_contract(merchant) -> Contract:
    return Contract.objects.get(merchant=merchant, channel_account__kind="wechatpay")


def _the_notice_came_the_real_way_about_the_shops_wechat_contract(merchant) -> ChannelRiskNotice:
    contract = _wechat_contract(merchant)
    (notice,) = ChannelRiskNotice.objects.all()
    assert notice.kind in ("punish", "intercept")
    assert (notice.contract, notice.merchant, notice.sub_mchid) == (contract, merchant, contract.sub_mchid)
    assert (notice.state, notice.record_id) == ("new", demo_risk.RECORD_ID)
    assert notice.company_name == merchant.legal_name and notice.punish_plan
    # Sent by the simulator to the account's callback URL and applied there: the callback's row is the evidence
    # that it was signed and verified (a notice failing verification is rejected and records nothing).
    callback = notice.source_callback()
    assert callback is not None and (callback.account, callback.kind, callback.outcome) == (
        contract.channel_account, "violation", CallbackOutcome.APPLIED)
    assert AuditLog.objects.filter(action="risk.channel_notice.received", target_id=str(notice.pk),
                                   actor_label=f"channel:{contract.channel_account.code}").exists()
    assert notice_queue.new_count() == 1  # the risk officer's tile
    return notice


def test_the_seed_leaves_one_channel_risk_notice_for_the_risk_officer_and_a_second_run_adds_none(demo_merchant):
    output = _seed()

    assert Order.objects.count() == len(demo_trades.SALES)
    _the_notice_came_the_real_way_about_the_shops_wechat_contract(demo_merchant)
    assert (f"created channel risk notice about {demo.DEMO_MERCHANT_NO}'s contract on "
            f"{_wechat_contract(demo_merchant).channel_account.code}") in output
    assert 'risk\'s queue "Channel risk notices to handle"' in output

    callbacks = ChannelCallback.objects.count()
    again = _seed()

    assert ChannelRiskNotice.objects.count() == 1 and ChannelCallback.objects.count() == callbacks
    assert f"exists  {len(demo_trades.SALES)} demo trades" in again
    assert f"exists  channel risk notice about {demo.DEMO_MERCHANT_NO}'s contract" in again
    assert "making the demo" not in again


def test_a_demo_whose_trades_were_made_before_gets_its_notice_from_the_next_seed(demo_merchant, live_server,
                                                                                  simulator_server, settings,
                                                                                  callback_receiver):
    public = settings.AGGPAY_PUBLIC_BASE_URL
    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url
    demo_trades.demo_trades_seed(merchant=demo_merchant, base_url=live_server.url,
                                 simulator_root=simulator_server.base_url, notify_url=callback_receiver.url)
    assert not ChannelRiskNotice.objects.exists()
    orders = Order.objects.count()
    settings.AGGPAY_PUBLIC_BASE_URL = public

    output = _seed()

    assert "making the demo channel risk notice against" in output
    assert f"exists  {len(demo_trades.SALES)} demo trades" in output and Order.objects.count() == orders
    _the_notice_came_the_real_way_about_the_shops_wechat_contract(demo_merchant)
