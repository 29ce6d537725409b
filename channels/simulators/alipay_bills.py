"""Bills in the Alipay simulator (channel-protocols.md B.8).

``alipay.data.dataservice.bill.downloadurl.query`` answers a short-lived ``bill_download_url`` on this simulator;
the URL serves ``<account>_<yyyyMMdd>.csv.zip`` holding the GBK CSVs ``…_业务明细.csv`` and ``…_业务明细(汇总).csv``
framed by ``#`` lines, id-like cells with a trailing TAB, CRLF line ends, and GBK member names without the zip
UTF-8 flag — as Alipay's files are. Bills list the trades this simulator saw; today's bill is allowed (a
convenience: real bills appear T+1), future dates answer ``isp.bill_not_exist``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import secrets
import time
import zipfile

from channels.simulators.alipay_gateway import AlipayFault, Call, ok
from channels.simulators.alipay_trades import BEIJING, now_bj, yuan
from channels.simulators.core import SimRequest, SimResponse

BILL_TTL = 300  # seconds a download URL stays valid (Alipay's are short-lived too)
DETAIL_COLUMNS = (
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称", "操作员", "终端号",
    "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）",
    "券核销金额（元）", "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）",
    "备注",
)
SUMMARY_COLUMNS = ("门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）",
                   "支付宝优惠（元）", "商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）", "实收净额（元）")
RULE = "-" * 41


def _id(value: str) -> str:
    return value + "\t"  # B.8: id-like cells end with a TAB so spreadsheets keep them as text


def _cn_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y年%m月%d日 %H:%M:%S")


class BillsMixin:
    BILLS = "alipay:bills"

    def m_bill_url(self, call: Call) -> dict:
        bill_type = call.biz.get("bill_type")
        bill_date = str(call.biz.get("bill_date", ""))
        if bill_type not in ("trade", "signcustomer", "trade_zft_merchant"):
            raise AlipayFault("isv.invalid-parameter", "bill_type参数有误", code="40002")
        if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", bill_date):
            raise AlipayFault("isv.invalid-parameter", "bill_date参数有误", code="40002")
        today = now_bj().strftime("%Y-%m-%d")
        if bill_date[:len(today)] > today[:len(bill_date)]:
            raise AlipayFault("isp.bill_not_exist", "账单不存在")
        seller = call.merchant["smid"] if call.merchant else call.app["isv_pid"]
        if bill_type == "trade_zft_merchant":
            merchant = self.store.get(self.MERCHANTS, str(call.biz.get("smid", "")))
            if merchant is None or merchant["app_id"] != call.app["app_id"]:
                raise AlipayFault("ACQ.SUB_MERCHANT_NOT_EXIST", "二级商户不存在")
            seller = merchant["smid"]
        file_id = secrets.token_hex(12)
        self.store.put(self.BILLS, file_id, {"app_id": call.app["app_id"], "seller": seller, "date": bill_date,
                                             "expires": time.time() + BILL_TTL})
        url = (f"{call.request.base_url}/downloadBillFile.resource?bizType={bill_type}&userId={seller}"
               f"&fileType=csv.zip&bizDates={bill_date.replace('-', '')}&fileId={file_id}")
        return ok(bill_download_url=url)

    def download_bill_file(self, request: SimRequest) -> SimResponse:
        record = self.store.get(self.BILLS, request.query.get("fileId", ""))
        if record is None or record["expires"] < time.time():
            return SimResponse.text("file not found or expired", 404)
        data, name = self.bill_zip(record["app_id"], record["seller"], record["date"])
        return SimResponse(200, data, {"Content-Type": "application/oct-stream",
                                       "Content-Disposition": f"attachment; filename={name}"})

    # --- building the files ---------------------------------------------------------------------------
    def bill_rows(self, app_id: str, seller: str, date: str) -> list[dict]:
        """Payments and refunds completed on ``date`` (yyyy-MM-dd, or yyyy-MM for a month)."""
        rows = []
        app = self._app(app_id)
        for _key, trade in self.store.items(self.TRADES):
            if trade["app_id"] != app_id or trade["seller_id"] != seller or not trade["gmt_payment"]:
                continue
            fee = self.fee_for(trade["total_amount"], app)
            if trade["gmt_payment"].startswith(date):
                rows.append({"trade": trade, "kind": "交易", "amount": trade["total_amount"], "fee": -fee,
                             "done": trade["gmt_payment"], "request_no": ""})
            for request_no, refund in trade["refunds"].items():
                if refund["status"] == "REFUND_SUCCESS" and refund["gmt_refund_pay"].startswith(date):
                    returned = fee * refund["amount"] // trade["total_amount"]
                    rows.append({"trade": trade, "kind": "退款", "amount": -refund["amount"], "fee": returned,
                                 "done": refund["gmt_refund_pay"], "request_no": request_no})
        return sorted(rows, key=lambda r: r["done"])

    def bill_zip(self, app_id: str, seller: str, date: str) -> tuple[bytes, str]:
        account = seller + "0156"  # B.8: the 16-digit PID followed by 0156
        compact = date.replace("-", "")
        rows = self.bill_rows(app_id, seller, date)
        start = dt.datetime.strptime(date if len(date) == 10 else date + "-01", "%Y-%m-%d").replace(tzinfo=BEIJING)
        end = start + dt.timedelta(days=1 if len(date) == 10 else 31)
        head = [f"#账号：[{account}]", f"#起始日期：[{_cn_time(start)}]   终止日期：[{_cn_time(end)}]"]
        exported = f"#导出时间：[{_cn_time(now_bj())}]"
        detail = self._detail_csv(head, rows, exported)
        summary = self._summary_csv(head, rows, exported)
        files = {f"{account}_{compact}_业务明细.csv": detail, f"{account}_{compact}_业务明细(汇总).csv": summary}
        return gbk_named_zip(files), f"{account}_{compact}.csv.zip"

    def _detail_csv(self, head: list[str], rows: list[dict], exported: str) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        lines = ["#支付宝业务明细查询", *head, f"#{RULE}业务明细列表{RULE}"]
        for line in lines:
            out.write(line + "\r\n")
        writer.writerow(DETAIL_COLUMNS)
        for row in rows:
            trade = row["trade"]
            writer.writerow([
                _id(trade["trade_no"]), _id(trade["out_trade_no"]), _id(row["kind"]), trade["subject"],
                trade["gmt_create"], row["done"], _id(trade["store_id"]), _id(trade["store_id"]), _id(""),
                _id(trade["terminal_id"]), _id(trade["buyer_logon_id"]), yuan(row["amount"]), yuan(row["amount"]),
                "0.00", "0.00", "0.00", "0.00", "0.00", "", _id("0.00"), "0.00", _id(row["request_no"]),
                yuan(row["fee"]), "0.00", trade["subject"],
            ])
        paid = [r for r in rows if r["kind"] == "交易"]
        refunded = [r for r in rows if r["kind"] == "退款"]
        out.write(f"#{RULE}业务明细列表结束{RULE}\r\n")
        out.write(f"#交易合计：{len(paid)}笔，商家实收共{yuan(sum(r['amount'] for r in paid))}元，商家优惠共0.00元\r\n")
        out.write(f"#退款合计：{len(refunded)}笔，商家实收退款共{yuan(sum(r['amount'] for r in refunded))}元，"
                  f"商家优惠退款共0.00元\r\n")
        out.write(exported + "\r\n")
        return out.getvalue().encode("gbk")

    def _summary_csv(self, head: list[str], rows: list[dict], exported: str) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for line in ["#支付宝业务汇总查询", *head, f"#{RULE}业务汇总列表{RULE}"]:
            out.write(line + "\r\n")
        writer.writerow(SUMMARY_COLUMNS)
        amount = sum(r["amount"] for r in rows)
        fee = sum(r["fee"] for r in rows)
        writer.writerow(["合计", "", sum(1 for r in rows if r["kind"] == "交易"), sum(1 for r in rows if r["kind"] == "退款"),
                         yuan(amount), yuan(amount), "0.00", "0.00", "0.00", yuan(fee), "0.00", yuan(amount + fee)])
        out.write(f"#{RULE}业务汇总列表结束{RULE}\r\n{exported}\r\n")
        return out.getvalue().encode("gbk")


def gbk_named_zip(files: dict[str, bytes]) -> bytes:
    """A zip whose member names are GBK bytes WITHOUT the UTF-8 flag, as Alipay's bill zips are.

    zipfile only writes ASCII or flagged UTF-8 names, so we write ASCII placeholders of the same byte length and
    swap in the GBK bytes afterwards (names are not covered by the CRCs).
    """
    buffer = io.BytesIO()
    swaps = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, content) in enumerate(files.items()):
            encoded = name.encode("gbk")
            placeholder = f"~{index:03d}".ljust(len(encoded), "~").encode("ascii")
            archive.writestr(placeholder.decode("ascii"), content)
            swaps.append((placeholder, encoded))
    data = buffer.getvalue()
    for placeholder, encoded in swaps:
        data = data.replace(placeholder, encoded)
    return data
