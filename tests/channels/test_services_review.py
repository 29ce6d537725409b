"""Channel configuration services under odd input and concurrency: a clear error naming the field, never a
database error (design §5 rule 12)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from aggpay.errors import InvalidRequest
from aggpay.money import MAX_FEN
from channels.models import ChannelAccount, ChannelConfigChange, ChannelConfigInvalid, ChannelProduct
from channels.services.accounts import channel_account_create
from channels.services.products import channel_product_set
from tests.channels.test_evaluation import _blocked_on_locks
from tests.factories import ChannelAccountFactory, channel_config, ec_pem


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["min_amount", "max_amount", "daily_cap"])
def test_an_amount_beyond_what_the_column_holds_is_refused_naming_the_field(field):
    account = ChannelAccountFactory(code="bank-a", kind="bank")
    values = {"cost_rate": "0.002", "min_amount": 1, "max_amount": MAX_FEN, "daily_cap": None}
    values[field] = MAX_FEN + 1

    with pytest.raises(InvalidRequest) as refused:
        channel_product_set(account_id=account.pk, product="unionpay.qr", actor="test", **values)

    assert refused.value.param == field
    assert not ChannelProduct.objects.exists()


@pytest.mark.django_db
def test_the_largest_amount_the_column_holds_is_taken():
    account = ChannelAccountFactory(code="bank-a", kind="bank")

    row = channel_product_set(account_id=account.pk, product="unionpay.qr", actor="test", cost_rate="0.002",
                              max_amount=MAX_FEN, daily_cap=MAX_FEN)

    assert ChannelProduct.objects.get(pk=row.pk).max_amount == MAX_FEN


@pytest.mark.django_db(transaction=True)
def test_two_ops_creating_the_same_account_code_at_once_get_one_account_and_a_clear_error():
    outcome: dict[str, object] = {}

    def create(name):
        try:
            channel_account_create(actor=name, kind="bank", code="bank-c", name=f"Bank C by {name}",
                                   base_url="http://127.0.0.1:9/bank", config=channel_config("bank"))
            outcome[name] = "created"
        except InvalidRequest as exc:
            outcome[name] = exc.param
        except Exception as exc:  # noqa: BLE001 - what the old code let through: IntegrityError, a 500
            outcome[name] = type(exc).__name__

    def in_own_connection(name):
        try:
            create(name)
        finally:
            connection.close()

    second = threading.Thread(target=in_own_connection, args=("bob",))
    # Alice's row is written but not committed: Bob's existence check cannot see it, his INSERT waits on the
    # unique index, and fails once hers commits.
    with transaction.atomic():
        create("alice")
        second.start()
        _blocked_on_locks(1)
    second.join(timeout=20)

    assert outcome == {"alice": "created", "bob": "code"}
    assert ChannelAccount.objects.get(code="bank-c").name == "Bank C by alice"
    assert ChannelConfigChange.objects.filter(action="account.created").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "field", "private"), [
    ("wechatpay", "private_key_pem", True), ("wechatpay", "wechatpay_public_key_pem", False),
    ("alipay", "app_private_key", True), ("alipay", "alipay_public_key", False),
    ("bank", "private_key_pem", True), ("bank", "bank_public_key_pem", False),
])
def test_a_key_that_loads_but_is_not_rsa_is_refused_naming_the_field(kind, field, private):
    # Accepted before, the account then failed every call at signing or verifying, once enabled.
    with pytest.raises(ChannelConfigInvalid) as refused:
        channel_account_create(actor="test", kind=kind, code=f"{kind}-ec", name="EC keys",
                               base_url="http://127.0.0.1:9/x", config=channel_config(kind, **{field: ec_pem(
                                   private=private)}))

    assert refused.value.param == f"config.{field}"
    assert "must be an RSA key" in refused.value.message
    assert not ChannelAccount.objects.exists()


@pytest.mark.django_db
def test_a_negative_zero_rate_is_kept_and_shown_in_the_history_as_zero():
    # The page's percent field takes "-0" (it is not below 0): the history read "-0.000000", a negative rate.
    account = ChannelAccountFactory(code="bank-a", kind="bank")

    channel_product_set(account_id=account.pk, product="unionpay.qr", actor="test", cost_rate="-0",
                        isv_rebate_rate="-0.0", max_amount=100)

    changes = ChannelConfigChange.objects.get(action="product.created").changes
    assert (changes["cost_rate"]["new"], changes["isv_rebate_rate"]["new"]) == ("0.000000", "0.000000")
