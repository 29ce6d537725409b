"""The bank's daily bill (docs/channels/bank.md §8) downloaded from the simulator and parsed by header name."""

from __future__ import annotations

import datetime as dt

import pytest

from channels.adapters.base import RefundRequest
from channels.adapters.errors import ChannelError, ChannelUnknown
from tests.channels.test_bank_helpers import (
    fault,
    new_bank,
    open_merchant,
    out_no,
    pay,
    payment,
    ref,
    today,
)


@pytest.fixture(scope="module")
def bank(simulator_server):
    return new_bank(simulator_server, fee_rate="0.006")


def test_the_bill_lists_payments_refunds_and_reversals_of_the_day(local_midday, bank):
    merchant = open_merchant(bank)
    qr = payment(merchant, amount=1250, attach="table 7")
    bank.create_payment(qr)
    pay(bank, qr.out_trade_no)
    refund = bank.refund(RefundRequest(trade=ref(merchant, qr.out_trade_no), out_refund_no=out_no("R"), amount=250,
                                       total_amount=1250))
    bank.query_refund(trade=ref(merchant, qr.out_trade_no), out_refund_no=refund.out_refund_no)
    code = payment(merchant, "alipay.barcode", amount=999, auth_code="281234567890123452", terminal_id="T01")
    bank.create_payment(code)
    bank.reverse_payment(ref(merchant, code.out_trade_no))
    unpaid = payment(merchant)
    bank.create_payment(unpaid)

    lines = bank.download_bill(bill_date=today(), sub_mchid=merchant.sub_mchid)
    summary = sorted((line.kind, line.out_trade_no, line.amount, line.fee) for line in lines)
    # fees at 0.6 %: 1250 → 7.5 → 8; the 250 refund returns 8 × 250/1250 = 1.6 → 2; 999 → 5.994 → 6
    assert summary == sorted([
        ("payment", qr.out_trade_no, 1250, 8),
        ("refund", qr.out_trade_no, 250, 2),
        ("payment", code.out_trade_no, 999, 6),
        ("refund", code.out_trade_no, 999, 6),
    ])
    refund_line = next(line for line in lines if line.out_refund_no)
    assert (refund_line.out_refund_no, refund_line.channel_refund_no, refund_line.state) == \
        (refund.out_refund_no, refund.channel_refund_no, "REFUND")
    revoke_line = next(line for line in lines if line.state == "REVOKE")
    assert revoke_line.raw["终端号"] == "T01"
    assert all(line.sub_mchid == merchant.sub_mchid for line in lines)
    assert next(line for line in lines if line.kind == "payment" and line.out_trade_no == qr.out_trade_no) \
        .raw["附加数据"] == "table 7"
    assert unpaid.out_trade_no not in {line.out_trade_no for line in lines}


def test_the_whole_org_bill_includes_every_merchant_but_not_another_bank(local_midday, simulator_server, bank):
    first, second = open_merchant(bank), open_merchant(bank)
    for merchant in (first, second):
        request = payment(merchant)
        bank.create_payment(request)
        pay(bank, request.out_trade_no)
    other_bank = new_bank(simulator_server)
    stranger = open_merchant(other_bank)
    foreign = payment(stranger)
    other_bank.create_payment(foreign)
    pay(other_bank, foreign.out_trade_no)
    merchants = {line.sub_mchid for line in bank.download_bill(bill_date=today())}
    assert {first.sub_mchid, second.sub_mchid} <= merchants
    assert stranger.sub_mchid not in merchants
    assert [line.out_trade_no for line in other_bank.download_bill(bill_date=today())] == [foreign.out_trade_no]


def test_a_day_without_movements_has_an_empty_bill(simulator_server):
    assert new_bank(simulator_server).download_bill(bill_date=today() - dt.timedelta(days=3)) == []


def test_todays_bill_is_not_ready_until_tomorrow(local_midday, simulator_server):
    strict = new_bank(simulator_server, intraday_bills=False)
    with pytest.raises(ChannelError) as refused:
        strict.download_bill(bill_date=today())
    assert (refused.value.channel_code, refused.value.permanent) == ("BILL_NOT_READY", False)
    with pytest.raises(ChannelError):
        strict.download_bill(bill_date=today() + dt.timedelta(days=1))


def test_a_bill_older_than_90_days_is_gone(bank):
    with pytest.raises(ChannelError) as refused:
        bank.download_bill(bill_date=today() - dt.timedelta(days=91))
    assert refused.value.channel_code == "BILL_DATE_INVALID"


def test_a_failed_file_download_is_unknown(bank):
    fault(bank, "http_503", match={"path": "^/bill/file$"})
    with pytest.raises(ChannelUnknown):
        bank.download_bill(bill_date=today())


@pytest.mark.parametrize("status", [403, 404])
def test_a_file_download_answered_by_a_page_is_unknown_too(simulator_server, status):
    # §3.4: only a signed HTTP 200 is the bank's answer; the file URL's 4xx page says nothing about the bill.
    bank = new_bank(simulator_server)
    fault(bank, "html_error", status=status, match={"path": "^/bill/file$"})
    with pytest.raises(ChannelUnknown) as caught:
        bank.download_bill(bill_date=today())
    assert caught.value.retryable and caught.value.http_status == status


def test_a_file_download_cut_short_is_unknown_and_can_be_asked_again(local_midday, simulator_server):
    # §8: the file is vouched for by the signed answer's file_sha256; half of it is a download gone wrong, not the
    # bank's word on the bill — unknown, as WeChat Pay's file that misses its hash_value (test_wechatpay_bill).
    bank = new_bank(simulator_server)
    merchant = open_merchant(bank)
    qr = payment(merchant, amount=1250)
    bank.create_payment(qr)
    pay(bank, qr.out_trade_no)
    fault(bank, "truncated_file", match={"path": "^/bill/file$"})
    with pytest.raises(ChannelUnknown, match="file_sha256") as caught:
        bank.download_bill(bill_date=today(), sub_mchid=merchant.sub_mchid)
    assert caught.value.retryable
    assert [line.out_trade_no for line in bank.download_bill(bill_date=today(), sub_mchid=merchant.sub_mchid)] == [
        qr.out_trade_no]
