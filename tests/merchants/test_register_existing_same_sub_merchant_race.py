"""Two clerks register contracts signed outside aggpay for two merchants at once, and both type the same Bank A
sub-merchant id (a copy-paste slip): the id is one merchant's per account (``unique_sub_mchid_per_account``). The
second registration is refused naming ``sub_mchid``, as it is when the first was committed already — not an
IntegrityError (a 500). Its check now runs after the account's lock, which the first registration holds until it
commits (merchants/services/locks.py: ``contract_register_existing`` takes the account before reading its costs).

Staged on PostgreSQL connections in threads (tests/merchants/test_lock_order.py ``_Staged``)."""

from __future__ import annotations

import pytest
from django.db import transaction

from aggpay.errors import InvalidRequest
from merchants.models import Contract
from merchants.services.contracts import contract_register_existing
from tests.factories import MerchantFactory
from tests.merchants.test_lock_order import _Staged

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_refuses_the_second_of_two_registrations_of_one_sub_merchant_naming_the_field(
        clerk_wang, onboarding_accounts):
    bank_a = onboarding_accounts["bank_a"]
    tea_house, noodle_bar = MerchantFactory(), MerchantFactory()
    staged = _Staged()

    def register(merchant):
        return contract_register_existing(merchant=merchant, account=bank_a, sub_mchid="BANKA0042",
                                          rates={"unionpay.qr": "0.0038"}, actor=clerk_wang,
                                          reason="signed at the bank")

    def first_clerk():
        with transaction.atomic():
            register(tea_house)
            staged.pause()  # registered, not committed: Bank A's account is still held

    staged.run(first_clerk, lambda: register(noodle_bar))

    assert staged.waited, "the second registration never waited: the race was not staged"
    assert [type(exc) for exc in staged.errors] == [InvalidRequest], staged.errors
    assert staged.errors[0].param == "sub_mchid"
    assert list(Contract.objects.filter(channel_account=bank_a, sub_mchid="BANKA0042")
                .values_list("merchant_id", flat=True)) == [tea_house.pk]
