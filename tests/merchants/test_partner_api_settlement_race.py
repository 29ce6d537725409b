"""An active merchant's settlement-account PATCH under a race (merchant-api.md "Partner onboarding", docs/api.md
"Corrections"): the patch merges into the account as it is under the lock, so a PATCH that waits while an earlier
change becomes the current account keeps that change's fields instead of asking for the old ones back."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from merchants.models import Merchant, SettlementChange
from merchants.services.settlement import _apply
from tests.merchants.test_partner_api import active_merchant_no, partner, patch, risk_officer  # noqa: F401 fixtures
from tests.merchants.test_partner_api_adversarial import _waiting_for_a_lock


@pytest.mark.django_db(transaction=True)
def test_a_settlement_patch_waiting_while_an_earlier_change_becomes_current_keeps_that_change(
        partner, active_merchant_no):  # noqa: F811 (the fixtures imported above)
    """Staged: the earlier change (a new branch) is accepted by its only channel, and the test holds that answer's
    transaction — it makes the new account current under the merchant's lock — while the PATCH of a new account
    number comes and waits. The PATCH used to merge into the account read before it waited and ask the channels for
    the old branch again."""
    url = f"/api/v1/merchants/{active_merchant_no}"
    first = patch(partner, url, {"settlement_account": {"bank_branch": "杭州龙井支行"}})
    assert first.status_code == 200, first.json()
    earlier = SettlementChange.objects.get()  # Bank A, the one active contract
    answers = []

    def second_patch():
        try:
            answers.append(patch(partner, url, {"settlement_account": {"account_number": "6222020200112233445"}}))
        finally:
            connection.close()

    with transaction.atomic():
        # The channel's answer as settlement_change_submit/poll apply it: every channel accepted, so it is current.
        _apply(earlier.pk, state="succeeded")
        thread = threading.Thread(target=second_patch)
        thread.start()
        deadline = time.monotonic() + 20
        while not _waiting_for_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_for_a_lock(), "the PATCH never waited for the earlier change's lock"
    thread.join(timeout=30)

    [answer] = answers
    assert answer.status_code == 200, answer.json()
    merchant = Merchant.objects.get(merchant_no=active_merchant_no)
    assert merchant.settlement_accounts.get(current=True).bank_branch == "杭州龙井支行"
    asked = SettlementChange.objects.exclude(pk=earlier.pk).get().new_account
    assert (asked.bank_branch, asked.account_number) == ("杭州龙井支行", "6222020200112233445")
