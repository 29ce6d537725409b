"""Changing a merchant's contract rate from the staff pages (issue 4 "Contract": the rate per product, ≥ the
account's cost unless an operator overrides with a reason): the rates beside the cost with their history, the
"Change rate" form for those who may use it, operations' own rates page, and the next order priced at the new rate
(the API front door's generation token, aggpay/api/credentials.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggpay.api import credentials
from aggpay.models import AuditLog
from aggpay.staff.services import staff_user_update
from channels.models import ChannelProduct
from merchants.models import Contract, ContractRate
from merchants.services.contracts import contract_set_rate
from tests.factories import ChannelAccountFactory
from trades.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture
def contract(tea_house):
    # The factory's gateway (port 9) refuses connections: an order stays pending, which is all pricing needs — the
    # fee snapshot is written before the channel is called (as in tests/channels/test_routing_review_cache.py).
    account = ChannelAccountFactory(code="bank-a", name="Bank A")
    ChannelProduct.objects.create(account=account, product="wechat.native", cost_rate=Decimal("0.0020"),
                                  max_amount=100_000)
    contract = Contract.objects.create(merchant=tea_house, channel_account=account, state="active",
                                       business_code="B-bank-a", sub_mchid="S-bank-a")
    ContractRate.objects.create(contract=contract, product="wechat.native", rate=Decimal("0.0038"))
    return contract


@pytest.fixture
def ops(staff_member):
    return staff_member("operations", username="ouyang.ops")


def _merchant_page(contract):
    return f"/staff/merchants/{contract.merchant.merchant_no}/"


def _rates_page(contract):
    return f"/staff/merchants/{contract.merchant.merchant_no}/rates/"


def _post_rate(client, contract, rate, reason="", page="merchant"):
    return client.post(f"/staff/merchants/{contract.merchant.merchant_no}/contracts/{contract.pk}/rate/",
                       {"product": "wechat.native", "rate": rate, "reason": reason, "page": page})


def _rate(contract) -> ContractRate:
    return contract.rates.get(product="wechat.native")


def _changes(contract):
    return AuditLog.objects.filter(action="merchants.contract.rate_changed", target_id=str(contract.pk))


def _row(response) -> dict:
    (card,) = response.context["contracts"]
    (row,) = card["rates"]
    return row


def test_the_merchant_page_shows_each_rate_beside_the_cost_with_who_changed_it_when_and_why(client, clerk_wang,
                                                                                            ops, contract):
    contract_set_rate(contract_id=contract.pk, actor=clerk_wang, product="wechat.native", rate="0.0045",
                      below_cost_reason="annual review")
    contract_set_rate(contract_id=contract.pk, actor=ops, product="wechat.native", rate="0.0015",
                      below_cost_reason="strategic launch, approved by the COO")
    client.force_login(clerk_wang)
    response = client.get(_merchant_page(contract))
    row = _row(response)
    assert (row["rate"], row["cost"], row["margin"]) == ("0.15%", "0.20%", "-0.05%")
    assert [(h["who"], h["old"], h["new"], h["reason"], h["below_cost"]) for h in row["history"]] == [
        ("ouyang.ops", "0.45%", "0.15%", "strategic launch, approved by the COO", "0.20%"),
        ("wang.clerk", "0.38%", "0.45%", "annual review", ""),
    ]
    html = response.content.decode()
    assert "0.45% → 0.15%" in html and "0.38% → 0.45%" in html and "annual review" in html
    assert 'data-role="rate-form"' in html


def test_a_clerk_changes_a_rate_at_the_cost_and_it_is_audited(client, clerk_wang, contract):
    client.force_login(clerk_wang)
    response = _post_rate(client, contract, "0.20", reason="matching the bank's offer")
    assert response.status_code == 302
    assert response["Location"] == _merchant_page(contract) + f"#contract-{contract.pk}"
    rate = _rate(contract)
    assert rate.rate == Decimal("0.0020") and rate.below_cost_reason == ""
    (row,) = _changes(contract)
    assert (row.actor, row.reason, row.data) == (clerk_wang, "matching the bank's offer",
                                                 {"product": "wechat.native", "from": "0.003800", "to": "0.002000"})
    assert "0.38% → 0.20%" in client.get(response["Location"]).content.decode()


def test_a_clerk_is_refused_below_cost_with_the_error_beside_the_rate_field(client, clerk_wang, contract):
    client.force_login(clerk_wang)
    response = _post_rate(client, contract, "0.19", reason="the merchant asked")
    assert response.status_code == 400
    form = _row(response)["form"]
    assert "0.19% is below the channel's cost 0.20%" in form.errors["rate"][0]
    assert "Only operations may price below cost" in form.errors["rate"][0]
    html = response.content.decode()
    assert 'data-field="rate"' in html and "0.19% is below the channel&#x27;s cost 0.20%" in html
    assert _rate(contract).rate == Decimal("0.0038") and not _changes(contract).exists()


def test_the_form_tells_a_clerk_before_posting_that_below_cost_is_operations(client, clerk_wang, ops, contract):
    client.force_login(clerk_wang)
    assert "only operations may price below cost" in client.get(_merchant_page(contract)).content.decode()
    client.force_login(ops)
    assert "Below the channel's cost (0.20%) needs a reason" in client.get(_rates_page(contract)).content.decode()


@pytest.mark.parametrize(("typed", "message"), [
    ("abc", "Enter a number."),
    ("100", "A rate must be below 100%."),
    ("-0.1", "Ensure this value is greater than or equal to 0."),
    ("0.38001", "Ensure that there are no more than 4 decimal places."),
])
def test_a_rate_that_is_not_a_percentage_is_refused_naming_the_rate_field(client, clerk_wang, contract, typed,
                                                                          message):
    client.force_login(clerk_wang)
    response = _post_rate(client, contract, typed)
    assert response.status_code == 400
    assert _row(response)["form"].errors["rate"] == [message]
    assert _rate(contract).rate == Decimal("0.0038") and not _changes(contract).exists()


def test_operations_overrides_below_cost_with_a_reason_on_its_rates_page_and_it_is_audited(client, ops, contract):
    client.force_login(ops)
    page = client.get(_rates_page(contract))
    assert page.status_code == 200 and 'data-role="rate-form"' in page.content.decode()
    response = _post_rate(client, contract, "0.15", reason="strategic launch, approved by the COO", page="rates")
    assert response.status_code == 302
    assert response["Location"] == _rates_page(contract) + f"#contract-{contract.pk}"
    rate = _rate(contract)
    assert (rate.rate, rate.below_cost_reason) == (Decimal("0.0015"), "strategic launch, approved by the COO")
    (row,) = _changes(contract)
    assert (row.actor, row.reason) == (ops, "strategic launch, approved by the COO")
    assert row.data == {"product": "wechat.native", "from": "0.003800", "to": "0.001500", "below_cost": "0.002000"}
    html = client.get(response["Location"]).content.decode()
    assert "below cost" in html and "strategic launch, approved by the COO" in html


def test_operations_is_refused_below_cost_without_a_reason_naming_the_reason_field(client, ops, contract):
    client.force_login(ops)
    response = _post_rate(client, contract, "0.15", reason="   ", page="rates")
    assert response.status_code == 400
    assert _row(response)["form"].errors["reason"] == [
        "A reason is required to price below the channel's cost (0.20%)."]
    assert 'data-field="reason"' in response.content.decode()
    assert _rate(contract).rate == Decimal("0.0038") and not _changes(contract).exists()


def test_operations_opens_the_rates_but_not_the_merchant_page(client, ops, contract):
    client.force_login(ops)
    assert client.get(_merchant_page(contract)).status_code == 403
    found = client.get("/staff/merchants/rates/", {"q": "tea house"})
    assert f'href="{_rates_page(contract)}"' in found.content.decode()
    html = client.get(_rates_page(contract)).content.decode()
    assert "Documents" not in html and "Settlement" not in html  # the record stays onboarding's and risk's
    assert 'href="/staff/merchants/rates/"' in client.get("/staff/operations/").content.decode()


def test_staff_without_a_rate_permission_see_no_form_and_are_refused_the_change(client, risk_zhao, staff_member,
                                                                               contract):
    client.force_login(risk_zhao)
    page = client.get(_merchant_page(contract))
    assert page.status_code == 200 and _row(page)["form"] is None
    assert 'data-role="rate-form"' not in page.content.decode()
    assert _post_rate(client, contract, "0.50").status_code == 403
    assert client.get(_rates_page(contract)).status_code == 403
    client.force_login(staff_member("support_agent"))
    assert _post_rate(client, contract, "0.50", page="rates").status_code == 403
    assert client.get("/staff/merchants/rates/").status_code == 403
    assert _rate(contract).rate == Decimal("0.0038") and not _changes(contract).exists()


def test_a_new_order_after_a_rate_change_is_priced_at_the_new_rate(client, clerk_wang, contract, signed_api,
                                                                   tea_house_app):
    api = signed_api(tea_house_app)

    def order(number):
        response = api.post("/api/v1/orders", json={"product": "wechat.native", "out_trade_no": f"RATE-{number}",
                                                    "amount": 10_000, "subject": "tea"})
        assert response.status_code == 201, response.content
        return Order.objects.get(pk=response.json()["id"])

    first, warm = order(1), order(2)  # the second is priced from this process's remembered routing rows
    assert (first.merchant_rate, first.merchant_fee, warm.merchant_rate) == (Decimal("0.0038"), 38, Decimal("0.0038"))
    token = credentials.generation_current()
    client.force_login(clerk_wang)
    assert _post_rate(client, contract, "0.60").status_code == 302
    assert credentials.generation_current() != token  # the rate's save replaced the front door's token
    after = order(3)
    assert (after.merchant_rate, after.merchant_fee, after.channel_cost, after.profit) == (
        Decimal("0.0060"), 60, 20, 40)


def test_an_account_whose_staff_status_is_taken_away_loses_the_merchant_pages(client, clerk_wang, staff_member,
                                                                              contract):
    client.force_login(clerk_wang)
    assert client.get(_merchant_page(contract)).status_code == 200
    assert client.get(_rates_page(contract)).status_code == 200

    staff_user_update(actor=staff_member("admin"), user_id=clerk_wang.pk, changes={"is_staff": False})

    # The session is still valid (only deactivation ends it); the pages must not be (aggpay.roles._check).
    for path in (_merchant_page(contract), _rates_page(contract), "/staff/merchants/rates/",
                 f"/staff/merchants/{contract.merchant.merchant_no}/edit/"):
        response = client.get(path)
        assert response.status_code == 403 and b"staff status" in response.content, path
    assert _post_rate(client, contract, "0.50").status_code == 403
    assert _rate(contract).rate == Decimal("0.0038")


def test_a_terminated_contract_shows_its_rates_without_a_form_and_refuses_a_change(client, clerk_wang, contract):
    Contract.objects.filter(pk=contract.pk).update(state="terminated")
    client.force_login(clerk_wang)

    page = client.get(_merchant_page(contract))
    assert _row(page)["form"] is None and 'data-role="rate-form"' not in page.content.decode()
    refused = _post_rate(client, contract, "0.50")
    assert refused.status_code in (400, 409) and "terminated" in refused.content.decode()
    assert _rate(contract).rate == Decimal("0.0038") and not _changes(contract).exists()
