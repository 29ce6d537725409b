"""The wallet's number in the bank adapter's results (docs/channels/bank.md §2, §6.5, §14): the bank's own
``trade_no`` stays the result's channel trade number, and the wallet's (WeChat ``transaction_id``, Alipay
``trade_no``, UnionPay order id), which the bank sends as ``channel_trade_no``, comes out as ``wallet_trade_no`` —
read here off the page's own signed PAY_RESULT example."""

from __future__ import annotations

import json

from channels.adapters.bank import BankAdapter, BankConfig
from tests.channels.test_bank_doc import _block


def test_the_documented_pay_result_gives_the_wallets_number_beside_the_banks():
    notify = json.loads(_block("example-notify"))
    config = BankConfig(org_no=notify["org_no"], key_id="K1A2B3C4", private_key_pem="", bank_key_id=notify["key_id"],
                        bank_public_key_pem=_block("example-bank-public-key") + "\n")
    event = BankAdapter(config, base_url="http://bank.invalid").parse_callback(
        headers={}, body=json.dumps(notify, ensure_ascii=False).encode("utf-8"))

    assert event.payment.channel_trade_no == notify["trade_no"]  # B…: the bank's order number
    assert event.payment.wallet_trade_no == notify["channel_trade_no"]  # 4200…: on the payer's WeChat receipt
