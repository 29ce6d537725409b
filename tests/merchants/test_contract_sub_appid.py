"""The merchant's WeChat appid on a bank contract (``Contract.sub_appid``, docs/channels/bank.md §6.2: a WeChat JSAPI
or mini-program trade names the appid the payer's openid belongs to; routing passes over a bank contract without one).
Approval used to leave it empty on every new contract — only the demo seed's registration set it — and no page set
it, so WeChat could never pay a newly onboarded merchant's store code through a bank. Now approval takes it from the
record (the official account's appid for wechat.jsapi, the mini program's for wechat.mini: bank.md §9.3 scene_info),
and an onboarding clerk sets or changes it on the contract's card, with a reason, audited."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggpay.errors import Forbidden, InvalidRequest
from aggpay.models import AuditLog
from channels.models import ChannelProduct
from channels.routing import choose
from merchants.models import Contract, ContractRate
from merchants.services import contracts as contract_services
from merchants.services.onboarding import (
    application_approve,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
)
from tests.factories import ChannelAccountFactory
from tests.merchants.records import png, record

pytestmark = pytest.mark.django_db

OFFICIAL_ACCOUNT_APPID = "wx1a2b3c4d5e6f7a8b"
MINI_PROGRAM_APPID = "wx9f8e7d6c5b4a3f2e"
STORE = {"type": "store", "name": "龙井路店"}
OFFICIAL_ACCOUNT = {"type": "official_account", "name": "西湖茶馆公众号", "appid": OFFICIAL_ACCOUNT_APPID}
MINI_PROGRAM = {"type": "mini_program", "name": "西湖茶馆小程序", "appid": MINI_PROGRAM_APPID}
WECHAT_PRODUCTS = ("wechat.jsapi", "wechat.mini", "wechat.native")


@pytest.fixture
def wechat_channels(db):
    """Bank A and the WeChat Pay ISV account onboard merchants for WeChat's JSAPI, mini-program and QR products."""
    accounts = {"bank": ChannelAccountFactory(kind="bank", code="bank-a", name="Bank A"),
                "wechat": ChannelAccountFactory(kind="wechatpay", code="wechatpay-isv", name="WeChat Pay ISV")}
    for account in accounts.values():
        for product in WECHAT_PRODUCTS:
            ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal("0.0020"),
                                          max_amount=5_000_000, onboards_merchants=True)
    return accounts


def _approved(clerk, risk, *, scenarios, products=WECHAT_PRODUCTS) -> dict[str, Contract]:
    application = merchant_onboard_draft(actor=clerk, data=record(requested_products=list(products),
                                                                  scenarios=scenarios))
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside", "site_screenshot"):
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    application_approve(application_id=application.pk, actor=risk, notes="real tea house")
    return {c.channel_account.kind: c for c in Contract.objects.filter(application=application)
            .select_related("channel_account", "merchant")}


def _activated(contract: Contract) -> Contract:
    """As the bank's FINISHED answer leaves it: active, with its sub-merchant id (only routing is asked here)."""
    Contract.objects.filter(pk=contract.pk).update(state="active", sub_mchid=f"M{contract.pk}")
    contract.refresh_from_db()
    return contract


def _bank_reason(contract: Contract, product: str = "wechat.jsapi") -> str:
    """Why routing passes over the contract for ``product`` ("" when it takes it)."""
    decision = choose(merchant=contract.merchant, product=product, amount=100,
                      only_account_id=contract.channel_account_id)
    (candidate,) = [c for c in decision.candidates if c["contract"] == contract.pk]
    return "" if candidate["eligible"] else candidate["reason"]


# --- (a) approval takes the appid from the record -------------------------------------------------------------------
def test_approval_names_the_official_account_appid_on_the_bank_contract_so_routing_takes_jsapi_there(
        wechat_channels, clerk_wang, risk_zhao):
    contracts = _approved(clerk_wang, risk_zhao, scenarios=[STORE, OFFICIAL_ACCOUNT, MINI_PROGRAM])

    assert contracts["bank"].sub_appid == OFFICIAL_ACCOUNT_APPID
    # WeChat's own ISV account pays under our service provider's appid (sp_openid, channel-protocols.md §E): its
    # contract names no appid, as before.
    assert contracts["wechatpay"].sub_appid == ""
    assert _bank_reason(_activated(contracts["bank"])) == ""
    created = contracts["bank"].events.get(from_state="")
    assert OFFICIAL_ACCOUNT_APPID in created.message and "official account" in created.message


def test_a_merchant_with_only_a_mini_program_gets_its_appid_when_it_does_not_ask_for_jsapi(
        wechat_channels, clerk_wang, risk_zhao):
    contracts = _approved(clerk_wang, risk_zhao, scenarios=[STORE, MINI_PROGRAM],
                          products=("wechat.mini", "wechat.native"))

    assert contracts["bank"].sub_appid == MINI_PROGRAM_APPID
    assert _bank_reason(_activated(contracts["bank"]), "wechat.mini") == ""


def test_a_record_without_an_official_account_leaves_jsapi_without_an_appid_and_the_card_says_so(
        client, wechat_channels, clerk_wang, risk_zhao):
    """Asking for JSAPI with only a mini program: the mini program's appid would have routing send JSAPI orders with
    an openid the bank cannot match, so none is named — and the contract's card says what is missing."""
    contracts = _approved(clerk_wang, risk_zhao, scenarios=[STORE, MINI_PROGRAM])
    bank = contracts["bank"]

    assert bank.sub_appid == ""
    assert _bank_reason(_activated(bank)).startswith("no sub_appid on the contract")
    client.force_login(clerk_wang)
    html = client.get(f"/staff/merchants/{bank.merchant.merchant_no}/").content.decode()
    assert html.count('data-role="sub-appid-missing"') == 1  # the bank's card, not WeChat Pay's own
    assert "WeChat JSAPI and WeChat mini program need the merchant&#x27;s appid" in html
    assert 'data-role="sub-appid-form"' in html


# --- (b) a clerk sets it on the contract ------------------------------------------------------------------------------
@pytest.fixture
def bank_contract_without_appid(tea_house, wechat_channels):
    contract = Contract.objects.create(merchant=tea_house, channel_account=wechat_channels["bank"], state="active",
                                       business_code="AGG-BANK-A", sub_mchid="826581000000001")
    ContractRate.objects.create(contract=contract, product="wechat.jsapi", rate=Decimal("0.0038"))
    return contract


def test_a_clerk_sets_the_appid_with_a_reason_and_routing_takes_jsapi_at_the_bank(bank_contract_without_appid,
                                                                                  clerk_wang):
    contract = bank_contract_without_appid
    assert _bank_reason(contract).startswith("no sub_appid on the contract")

    changed = contract_services.contract_set_sub_appid(contract_id=contract.pk, sub_appid=" wx8888888888888888 ",
                                                       actor=clerk_wang, reason="the merchant's email of 26 Nov")

    assert changed.sub_appid == "wx8888888888888888"
    assert _bank_reason(changed) == ""
    audit = AuditLog.objects.get(action="merchants.contract.sub_appid_set", target_id=str(contract.pk))
    assert (audit.actor_label, audit.reason, audit.data) == (
        "wang.clerk", "the merchant's email of 26 Nov", {"from": "", "to": "wx8888888888888888"})


@pytest.mark.parametrize("appid", ["", "wx123", "wx8888888888888888X", "gh_8888888888888888", "wx88888888-8888888"])
def test_it_refuses_what_is_not_a_wechat_appid_naming_the_field(bank_contract_without_appid, clerk_wang, appid):
    with pytest.raises(InvalidRequest) as refused:
        contract_services.contract_set_sub_appid(contract_id=bank_contract_without_appid.pk, sub_appid=appid,
                                                 actor=clerk_wang, reason="typo check")
    assert refused.value.param == "sub_appid" and refused.value.message.startswith("sub_appid: ")
    bank_contract_without_appid.refresh_from_db()
    assert bank_contract_without_appid.sub_appid == ""
    assert not AuditLog.objects.filter(action="merchants.contract.sub_appid_set").exists()


def test_it_refuses_a_change_without_a_reason_or_by_a_risk_officer(bank_contract_without_appid, clerk_wang,
                                                                    risk_zhao):
    with pytest.raises(InvalidRequest) as no_reason:
        contract_services.contract_set_sub_appid(contract_id=bank_contract_without_appid.pk,
                                                 sub_appid="wx8888888888888888", actor=clerk_wang, reason="  ")
    assert no_reason.value.param == "reason"
    with pytest.raises(Forbidden):
        contract_services.contract_set_sub_appid(contract_id=bank_contract_without_appid.pk,
                                                 sub_appid="wx8888888888888888", actor=risk_zhao, reason="seen it")
    bank_contract_without_appid.refresh_from_db()
    assert bank_contract_without_appid.sub_appid == ""


def _post(client, contract, **data):
    return client.post(f"/staff/merchants/{contract.merchant.merchant_no}/contracts/{contract.pk}/sub-appid/", data)


def test_a_clerk_sets_it_from_the_contract_card(client, bank_contract_without_appid, clerk_wang):
    contract = bank_contract_without_appid
    client.force_login(clerk_wang)
    page = client.get(f"/staff/merchants/{contract.merchant.merchant_no}/").content.decode()
    assert "WeChat JSAPI needs the merchant&#x27;s appid" in page and f"/contracts/{contract.pk}/sub-appid/" in page

    response = _post(client, contract, sub_appid="wx8888888888888888", reason="the merchant's email")

    assert response.status_code == 302 and response["Location"].endswith(f"#contract-{contract.pk}")
    contract.refresh_from_db()
    assert contract.sub_appid == "wx8888888888888888"
    page = client.get(response["Location"]).content.decode()
    assert 'data-role="sub-appid-missing"' not in page and "wx8888888888888888" in page


def test_a_malformed_appid_comes_back_beside_its_field_and_nothing_is_written(client, bank_contract_without_appid,
                                                                             clerk_wang):
    client.force_login(clerk_wang)

    response = _post(client, bank_contract_without_appid, sub_appid="wx123", reason="the merchant's email")

    assert response.status_code == 400
    (card,) = [c for c in response.context["contracts"] if c["contract"].pk == bank_contract_without_appid.pk]
    assert card["sub_appid_form"].errors["sub_appid"][0].startswith("A WeChat appid is wx followed by 16")
    bank_contract_without_appid.refresh_from_db()
    assert bank_contract_without_appid.sub_appid == ""


def test_a_risk_officer_posting_the_form_is_refused(client, bank_contract_without_appid, risk_zhao):
    client.force_login(risk_zhao)

    response = _post(client, bank_contract_without_appid, sub_appid="wx8888888888888888", reason="seen it")

    assert response.status_code == 403
    bank_contract_without_appid.refresh_from_db()
    assert bank_contract_without_appid.sub_appid == ""
    page = client.get(f"/staff/merchants/{bank_contract_without_appid.merchant.merchant_no}/").content.decode()
    assert 'data-role="sub-appid-form"' not in page
    assert "an onboarding clerk sets it here" in page
