"""The demo's channel risk notice: after the morning's trades WeChat Pay tells us it punished Demo Tea House's
sub-merchant, so the risk officer's queue "Channel risk notices to handle" (/staff/risk/notices/) opens on one.

FOR THE DEMO ONLY (``seed_demo``). Nothing here writes a row: the WeChat simulator is asked, through its control
endpoint, to send one violation notice (channel-protocols.md A.15, ``VIOLATION.PUNISH``) to the WeChat account's
callback URL, and it arrives the way a real one does — encrypted and signed by the channel, verified by the
adapter, recorded by risk.services.channel_notices (matched to the shop's WeChat contract by its sub-merchant id)
with its callback row and audit entry. This module only reads the database, to find the contract and to wait
until the notice is recorded.

Idempotent: nothing is sent when a notice about that contract exists; and the record id is fixed, so should the
notice arrive only after the wait (the simulator keeps its callbacks and retries them, demo_trades' note) and the
seed run again, the second copy is a duplicate of the same record (A.15's dedupe key), not a second notice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from aggpay.management.demo_trades import DemoTradesError

# The channel's id of the record (A.15: the notice's dedupe key). WeChat's are opaque; this one says it is the demo's.
RECORD_ID = "VRDEMO2026TEAHOUSE0001"
EVENT = "PUNISH"
# What WeChat says, as it says it (free text, A.15): it limits the shop's credit-card payments because what it sells
# does not match the business it declared — a reason a risk officer would look into, and may limit the contract for.
NOTICE = {
    "punish_plan": "限制信用卡支付",
    "punish_description": "商户实际经营内容与申请经营类目不符，限制信用卡支付",
    "risk_type": "BUSINESS_MISMATCH",
    "risk_description": "交易与经营类目不符",
}
# How long the seed waits for the notice to be delivered and recorded (the simulator sends it at once).
SETTLE_SECONDS = 15.0


@dataclass(frozen=True)
class DemoRiskNotice:
    created: bool  # sent by this run and recorded
    line: str  # what the seed says about it
    note: str = ""  # what did not go as planned (the running demo may still finish it)


def demo_contract(merchant):
    """The merchant's contract on a WeChat Pay account (the only channel that sends violation notices, A.15)."""
    from merchants.models import Contract

    return (Contract.objects.select_related("channel_account", "merchant")
            .filter(merchant=merchant, channel_account__kind="wechatpay").order_by("pk").first())


def demo_risk_notice_found(merchant) -> DemoRiskNotice | None:
    """What there is already (a notice about the merchant's WeChat contract, or no such contract to send one
    about), or None when the seed is to send the notice."""
    from risk.models import ChannelRiskNotice

    contract = demo_contract(merchant)
    if contract is None:
        return DemoRiskNotice(False, f"no WeChat Pay contract of {merchant.merchant_no}: no channel risk notice")
    existing = ChannelRiskNotice.objects.filter(contract=contract).order_by("pk").first()
    if existing is None:
        return None
    return DemoRiskNotice(False, f"{_about(contract)} ({existing.get_kind_display()} {existing.record_id})")


def _about(contract) -> str:
    return f"channel risk notice about {contract.merchant.merchant_no}'s contract on {contract.channel_account.code}"


def demo_risk_notice_seed(*, merchant, simulator_root: str, settle_seconds: float = SETTLE_SECONDS,
                          ) -> DemoRiskNotice:
    """Have the WeChat simulator at ``simulator_root`` send one violation notice about ``merchant``'s WeChat contract
    to that account's callback URL (served by the aggpay at AGGPAY_PUBLIC_BASE_URL), and wait at most
    ``settle_seconds`` until it is recorded. Nothing when a notice about the contract exists already.

    Raises DemoTradesError when the simulator refuses the request."""
    from channels.callbacks import callback_url

    found = demo_risk_notice_found(merchant)
    if found is not None:
        return found
    contract = demo_contract(merchant)
    account, what = contract.channel_account, _about(contract)
    response = requests.post(f"{simulator_root.rstrip('/')}/wechatpay/_control/violations", timeout=15, json={
        "sp_mchid": account.config["sp_mchid"], "sub_mchid": contract.sub_mchid, "event": EVENT,
        "record_id": RECORD_ID, "company_name": merchant.legal_name, "notify_url": callback_url(account), **NOTICE})
    if response.status_code >= 300:
        raise DemoTradesError(f"simulator wechatpay /_control/violations answered {response.status_code}: "
                              f"{response.text[:300]}")
    deadline = time.monotonic() + settle_seconds
    # Recorded, and its callback's row written (channels.callbacks writes it once the handler has returned): the
    # seed stops serving the callback URL after this.
    while (notice := _recorded(account)) is None:
        if time.monotonic() > deadline:
            return DemoRiskNotice(False, f"{what}: sent, not recorded yet",
                                  note=f"WeChat Pay's violation notice {RECORD_ID} was not recorded within "
                                       f"{settle_seconds:.0f} s; the simulator retries it while the demo runs")
        time.sleep(0.1)
    return DemoRiskNotice(True, f"{what} ({notice.get_kind_display()} {notice.record_id}, sent by WeChat Pay's "
                                f"simulator): risk's queue \"Channel risk notices to handle\"")


def _recorded(account):
    from risk.models import ChannelRiskNotice

    notice = ChannelRiskNotice.objects.filter(channel_account=account, record_id=RECORD_ID).first()
    return notice if notice is not None and notice.source_callback() is not None else None
