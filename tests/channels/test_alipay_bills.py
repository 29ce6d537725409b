"""Alipay daily bills: the simulator's zip of GBK CSVs and the adapter's parser (channel-protocols.md B.8)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
import requests

from channels.adapters.alipay_bill import _member_name, parse_bill_zip
from channels.adapters.base import PaymentRequest, RefundRequest, TradeRef
from channels.adapters.errors import ChannelError, ChannelUnknown, ParseError

BEIJING = dt.timezone(dt.timedelta(hours=8))

# The B.8 sample, verbatim apart from real TABs for the doc's "\t".
SAMPLE = """#支付宝业务明细查询
#账号：[20880211096256330156]
#起始日期：[2019年09月16日 00:00:00]   终止日期：[2019年09月17日 00:00:00]
#-----------------------------------------业务明细列表----------------------------------------
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注
2019091622001458860515315453\t,service_1568601259302\t,交易\t,下单测试,2019-09-16 10:55:16,2019-09-16 10:55:23,alipay_store\t,alipay_store\t,alipay\t,\t,*津水(602***@qq.com)\t,0.01,0.01,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,下单测试
2019091622001458860515315453\t,service_1568601259302\t,退款\t,下单测试,2019-09-16 10:55:16,2019-09-16 10:56:48,alipay_store\t,alipay_store\t,alipay\t,\t,*津水(602***@qq.com)\t,-0.01,-0.01,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,re_test_1568602607356\t,0.00,0.00,下单测试
#-----------------------------------------业务明细列表结束------------------------------------
#交易合计：1笔，商家实收共0.01元，商家优惠共0.00元
#退款合计：1笔，商家实收退款共-0.01元，商家优惠退款共0.00元
#导出时间：[2019年09月17日 06:27:10]
"""


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_it_parses_the_documented_sample_by_header_name():
    payment, refund = parse_bill_zip(zipped({"20880211096256330156_20190916_detail.csv": SAMPLE.encode("gbk")}))
    assert (payment.kind, payment.out_trade_no, payment.channel_trade_no) == (
        "payment", "service_1568601259302", "2019091622001458860515315453")
    assert (payment.amount, payment.fee, payment.sub_mchid) == (1, 0, "2088021109625633")
    assert payment.trade_time == dt.datetime(2019, 9, 16, 10, 55, 23, tzinfo=BEIJING)
    assert (refund.kind, refund.amount, refund.out_refund_no) == ("refund", 1, "re_test_1568602607356")
    assert refund.state == "退款" and refund.raw["对方账户"] == "*津水(602***@qq.com)"


def test_it_tolerates_a_utf8_bom_crlf_and_reordered_columns():
    lines = SAMPLE.splitlines()
    header, first = lines[4].split(","), lines[5].split(",")
    order = list(reversed(range(len(header))))
    lines[4] = ",".join(header[i].replace("（", "(").replace("）", ")") for i in order)
    lines[5] = ",".join(first[i] for i in order)
    text = "\r\n".join(lines[:6] + lines[7:]) + "\r\n"
    [line] = parse_bill_zip(zipped({"bill.csv": b"\xef\xbb\xbf" + text.encode("utf-8")}))
    assert (line.out_trade_no, line.amount) == ("service_1568601259302", 1)


@pytest.mark.parametrize(("data", "reason"), [
    (b"not a zip", "not a zip"),
    (zipped({"readme.txt": "hello".encode("gbk")}), "no 业务明细"),
    (zipped({"d.csv": SAMPLE.replace("商户订单号,", "订单号,", 1).encode("gbk")}), "lacks 商户订单号"),
    (zipped({"d.csv": SAMPLE.replace("0.01,0.01", "1.0.1,0.01", 1).encode("gbk")}), "bad amount"),
    (zipped({"d.csv": SAMPLE.replace(",交易\t,", ",转账\t,", 1).encode("gbk")}), "业务类型"),
    (zipped({"d.csv": SAMPLE.replace("2019-09-16 10:55:23", "yesterday", 1).encode("gbk")}), "bad time"),
    (zipped({"d.csv": SAMPLE.replace(",下单测试\n", "\n", 1).encode("gbk")}), "cells"),
    (zipped({"d.csv": b"\xff\xfe#\x00\xd8\x00"}), "neither GBK nor UTF-8"),
    (zipped({"d.csv": SAMPLE.encode("gbk")})[:-30], "not a zip"),
])
def test_a_malformed_bill_is_a_clear_parse_error(data, reason):
    with pytest.raises(ParseError) as caught:
        parse_bill_zip(data)
    assert reason in caught.value.message


def test_the_adapter_downloads_the_simulators_bill_of_the_day(local_midday, alipay_adapter, alipay_merchant,
                                                              alipay_config, simulator_server):
    def pay(out_trade_no: str, amount: int, auth_code: str = "281234567890123450"):
        return alipay_adapter.create_payment(PaymentRequest(
            product="alipay.barcode", sub_merchant=alipay_merchant, out_trade_no=out_trade_no, amount=amount,
            subject="茶叶", notify_url="", expires_at=dt.datetime.now(dt.UTC), auth_code=auth_code))

    pay("BILL-1", 10000)
    pay("BILL-2", 133)
    pay("BILL-3", 500, auth_code="281234567890123456")  # still confirming: not in the bill
    trade = TradeRef(sub_merchant=alipay_merchant, out_trade_no="BILL-1")
    alipay_adapter.refund(RefundRequest(trade=trade, out_refund_no="BILL-1-r", amount=2500, total_amount=10000))

    today = dt.datetime.now(BEIJING).date()
    lines = alipay_adapter.download_bill(bill_date=today, app_auth_token=alipay_merchant.app_auth_token)
    summary = sorted((line.kind, line.out_trade_no, line.amount, line.fee, line.out_refund_no) for line in lines)
    # Fees at the simulator's default 0.6%, half-up to the fen: 60.00 → 0.60, 1.33 → 0.01 (0.798); the refund
    # returns a quarter of the 0.60 fee.
    assert summary == [("payment", "BILL-1", 10000, 60, ""), ("payment", "BILL-2", 133, 1, ""),
                       ("refund", "BILL-1", 2500, 15, "BILL-1-r")]
    assert {line.sub_mchid for line in lines} == {alipay_merchant.sub_mchid}
    assert all(line.trade_time.date() == today and line.channel_trade_no for line in lines)

    with pytest.raises(ChannelError) as future:
        alipay_adapter.download_bill(bill_date=today + dt.timedelta(days=2), app_auth_token=alipay_merchant.app_auth_token)
    assert (future.value.channel_code, future.value.retryable) == ("isp.bill_not_exist", True)
    # Another merchant's bill holds none of these trades.
    assert alipay_adapter.download_bill(bill_date=today) == []


def test_the_simulators_zip_is_gbk_named_like_alipays(local_midday, alipay_adapter, alipay_merchant,
                                                      simulator_server):
    alipay_adapter.create_payment(PaymentRequest(
        product="alipay.barcode", sub_merchant=alipay_merchant, out_trade_no="BILL-Z", amount=100, subject="茶",
        notify_url="", expires_at=dt.datetime.now(dt.UTC), auth_code="281234567890123450"))
    biz = {"bill_type": "trade", "bill_date": dt.datetime.now(BEIJING).strftime("%Y-%m-%d")}
    url = alipay_adapter._call("alipay.data.dataservice.bill.downloadurl.query", biz,
                               sub_merchant=alipay_merchant)["bill_download_url"]
    data = requests.get(url, timeout=10).content
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert all(not info.flag_bits & 0x800 for info in infos)  # no UTF-8 flag: GBK bytes, as Alipay writes
    names = sorted(_member_name(info) for info in infos)
    assert names[0].endswith("_业务明细(汇总).csv") and names[1].endswith("_业务明细.csv")
    detail = zipfile.ZipFile(io.BytesIO(data)).read(infos[0]).decode("gbk")
    assert detail.startswith("#支付宝业务明细查询\r\n") and "BILL-Z\t," in detail
    assert requests.get(url.replace("fileId=", "fileId=x"), timeout=10).status_code == 404


@pytest.mark.parametrize("status", [403, 404])
def test_a_bill_file_answered_by_a_page_is_unknown_and_asked_again(local_midday, alipay_adapter, alipay_merchant,
                                                                   simulator_server, status):
    # B.8: the file URL answers the zip. A proxy's page carries no Alipay code and says nothing about the bill
    # (design §5 rule 2): unknown, and the next download gets the bill.
    alipay_adapter.create_payment(PaymentRequest(
        product="alipay.barcode", sub_merchant=alipay_merchant, out_trade_no=f"BILL-P{status}", amount=100,
        subject="茶", notify_url="", expires_at=dt.datetime.now(dt.UTC), auth_code="281234567890123450"))
    response = requests.post(simulator_server.base_url + "/alipay/_control/faults", timeout=10, json={
        "fault": "html_error", "status": status, "match": {"path": "^/downloadBillFile"}})
    assert response.status_code == 201
    today = dt.datetime.now(BEIJING).date()
    with pytest.raises(ChannelUnknown) as caught:
        alipay_adapter.download_bill(bill_date=today, app_auth_token=alipay_merchant.app_auth_token)
    assert caught.value.retryable and caught.value.http_status == status
    lines = alipay_adapter.download_bill(bill_date=today, app_auth_token=alipay_merchant.app_auth_token)
    assert [line.out_trade_no for line in lines] == [f"BILL-P{status}"]
