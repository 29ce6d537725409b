"""A bank (or WeChat Pay) account whose stored config holds a key that is not RSA (saved before the config check refused such keys,
channels.services.config): every call fails as the account's configuration at fault — a ChannelError of the config
kind (``invalid_params``, as the Alipay adapter reports a key that does not load) — before anything is sent, never a
ValueError (a 500 to the merchant) nor an unknown (bank.md §3.2: the gateway signs with RSA2 only).
"""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from channels.adapters.bank import BankAdapter
from channels.adapters.base import TradeState
from channels.adapters.errors import ChannelError, ChannelUnknown
from tests.channels.test_bank_helpers import new_bank, open_merchant, payment, ref
from tests.factories import ec_pem


def _with(bank: BankAdapter, **config) -> BankAdapter:
    return BankAdapter(dataclasses.replace(bank.config, **config), base_url=bank.base_url, connect_timeout=2,
                       read_timeout=5)


@pytest.mark.parametrize(("field", "private"), [("private_key_pem", True), ("bank_public_key_pem", False)])
def test_a_payment_on_an_account_with_a_key_that_is_not_rsa_is_a_config_error_and_is_not_sent(simulator_server,
                                                                                                 field, private):
    bank = new_bank(simulator_server)
    sub = open_merchant(bank)
    request = payment(sub)

    with pytest.raises(ChannelError) as caught:
        _with(bank, **{field: ec_pem(private=private)}).create_payment(request)

    assert not isinstance(caught.value, ChannelUnknown)
    assert caught.value.code == "invalid_params" and caught.value.permanent and field in caught.value.message
    # Nothing reached the bank: the trade is unknown to it (a request signed wrongly, or whose answer could not
    # be verified, might have been taken).
    assert bank.query_payment(ref(sub, request.out_trade_no)).state == TradeState.NOT_FOUND


def test_a_settlement_change_on_an_account_whose_bank_key_is_not_rsa_is_a_config_error(simulator_server):
    bank = new_bank(simulator_server)
    sub = open_merchant(bank)
    broken = _with(bank, bank_public_key_pem=ec_pem(private=False))

    with pytest.raises(ChannelError) as caught:
        broken.settlement_modify(sub_mchid=sub.sub_mchid, account={
            "type": "personal", "account_name": "张三", "account_number": "6222040404040404", "bank_name": "农业银行",
            "request_no": "SMK" + secrets.token_hex(6)})

    assert caught.value.code == "invalid_params" and "bank_public_key_pem" in caught.value.message


def test_a_wechat_payment_on_an_account_whose_private_key_is_not_rsa_is_a_config_error(wechatpay_adapter):
    # The same stored-config case at WeChat Pay (A.2 signs with RSA): a CryptoError escaped the adapter.
    from channels.adapters.wechatpay import WechatPayAdapter
    from tests.channels.test_wechatpay_payments import payment as wechat_payment

    broken = WechatPayAdapter(dataclasses.replace(wechatpay_adapter.config, private_key_pem=ec_pem(private=True)),
                              base_url=wechatpay_adapter.base_url)

    with pytest.raises(ChannelError) as caught:
        broken.create_payment(wechat_payment("wechat.native"))

    assert not isinstance(caught.value, ChannelUnknown)
    assert caught.value.code == "invalid_params" and "private_key_pem" in caught.value.message
