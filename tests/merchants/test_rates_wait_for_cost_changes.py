"""A merchant rate is checked against its channel account's cost with the account locked, whichever path sets it
(issue 4 "Contract": never below cost unless an operator overrides with a reason): a cost change
(channels.services.products ``channel_product_set`` locks the account) and the check wait for each other, as
``contract_set_rate``'s does (tests/merchants/test_locks_let_inserts_through.py). Approving an application
(``contracts_create_for_application``) and registering an existing contract (``contract_register_existing``) read
the cost without that lock: a cost raised at the same moment let a rate below the new cost through, nobody's
override. They now take the account after the application and merchant (merchants/services/locks.py's order).

Staged on PostgreSQL connections in threads (tests/merchants/test_lock_order.py ``_Staged``): operations' cost
change holds Bank A's account until the other path waits for a lock, then commits.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from aggpay.errors import InvalidRequest
from channels.models import ChannelProduct
from channels.services.products import channel_product_set
from merchants.models import ApplicationState, Contract, ContractRate, OnboardingApplication
from merchants.services.contracts import contract_register_existing
from merchants.services.onboarding import application_approve, application_review_start, application_submit
from tests.factories import MerchantFactory
from tests.merchants.test_lock_order import _Staged

pytestmark = pytest.mark.django_db(transaction=True)

NEW_COST = "0.0040"  # above the 0.38% offline default a merchant is approved at, and the rate typed below


def _raise_bank_a_cost(staged: _Staged, *, account, product: str, ops):
    """Operations raise Bank A's cost of ``product`` to NEW_COST, holding the account until ``staged.pause()``."""
    def ops_raise_the_cost():
        with transaction.atomic():
            channel_product_set(account_id=account.pk, product=product, actor=ops, reason="Bank A's new price list",
                                cost_rate=NEW_COST)
            staged.pause()

    return ops_raise_the_cost


def test_it_makes_an_approval_wait_for_a_cost_change_and_refuses_a_default_rate_below_the_new_cost(
        clerk_wang, risk_zhao, staff_member, drafted_tea_house, onboarding_accounts):
    """Li raises Bank A's WeChat cost to 0.40% while Zhao approves the Tea House, whose contracts are priced at the
    0.38% default. The approval waits for the cost change, then is refused naming the rate: nothing is approved,
    no contract is made. Had it not waited, Bank A would have carried the Tea House at 0.38% against a 0.40% cost."""
    application_submit(application_id=drafted_tea_house.pk, actor=clerk_wang)
    application_review_start(application_id=drafted_tea_house.pk, actor=risk_zhao)
    bank_a = onboarding_accounts["bank_a"]
    staged = _Staged()

    staged.run(_raise_bank_a_cost(staged, account=bank_a, product="wechat.native", ops=staff_member("operations")),
               lambda: application_approve(application_id=drafted_tea_house.pk, actor=risk_zhao, notes="real shop"))

    assert [type(exc) for exc in staged.errors] == [InvalidRequest], \
        "approved below the new cost: " + ", ".join(f"{r.contract.channel_account.code} {r.product} {r.rate}"
                                                    for r in ContractRate.objects.select_related("contract__channel_account"))
    assert staged.errors[0].param == "rates.wechat.native" and "0.4" in staged.errors[0].message
    assert staged.waited, "the approval never waited for the cost change: the race was not staged"
    assert OnboardingApplication.objects.get(pk=drafted_tea_house.pk).state == ApplicationState.RISK_REVIEW
    assert not Contract.objects.exists()
    assert ChannelProduct.objects.get(account=bank_a, product="wechat.native").cost_rate == Decimal(NEW_COST)


def test_it_makes_registering_an_existing_contract_wait_for_a_cost_change_and_refuses_a_rate_below_the_new_cost(
        clerk_wang, staff_member, onboarding_accounts):
    """Li raises Bank A's UnionPay cost to 0.40% while Wang registers a contract a merchant signed at Bank A, at
    0.38%: the registration waits for the cost change, then is refused naming the rate, and no contract is made."""
    bank_a, merchant = onboarding_accounts["bank_a"], MerchantFactory()
    staged = _Staged()

    staged.run(_raise_bank_a_cost(staged, account=bank_a, product="unionpay.qr", ops=staff_member("operations")),
               lambda: contract_register_existing(merchant=merchant, account=bank_a, sub_mchid="BANKA0099",
                                                  rates={"unionpay.qr": "0.0038"}, actor=clerk_wang,
                                                  reason="signed at the bank"))

    assert [type(exc) for exc in staged.errors] == [InvalidRequest], "registered below the new cost"
    assert staged.errors[0].param == "rates.unionpay.qr"
    assert staged.waited, "the registration never waited for the cost change: the race was not staged"
    assert not merchant.contracts.exists()
    assert ChannelProduct.objects.get(account=bank_a, product="unionpay.qr").cost_rate == Decimal(NEW_COST)
