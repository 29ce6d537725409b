"""WeChat Pay simulator routes about sub-merchants: media upload, applyment4sub (A.13), settlement changes,
complaints (A.14), violation notices (A.15), trade bills (A.12) and the snsapi_base OAuth pages (§E).

A mixin of ``WechatPaySimulator``; it relies on its ``account``, ``settings``, ``notify``, ``encryption_serial``.

Applyments: submitting decrypts every (enc) field with the account's platform private key — a field that does
not decrypt is ``400 PARAM_ERROR`` naming it, which proves the adapter encrypted with the right key and padding —
and checks that pictures are media ids uploaded here. Reviews move by ``POST /_control/applications/<id>``
{"action": "approve"|"reject"|"ask_confirm"|"ask_sign"|"finish"|"cancel", "reasons": [...]} or automatically per
the account setting ``auto_review`` {"delay_seconds": 2, "outcome": <action>} when the application is read.
"approve" moves AUDITING/TO_BE_CONFIRMED → TO_BE_SIGNED (sub_mchid allocated) and TO_BE_SIGNED → FINISHED.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
import secrets
import time
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from urllib.parse import urlencode

from channels.simulators import wechatpay_crypto as crypto
from channels.simulators.core import SimRequest, SimResponse

CST = dt.timezone(dt.timedelta(hours=8))
NS_MEDIA = "wechatpay:media"
# What /v3/merchant/media/upload takes (see media_upload): "2M" read as 2 MiB, the page gives no byte count.
MEDIA_SUFFIXES = ("jpg", "jpeg", "bmp", "png")
MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")
MEDIA_MAX_BYTES = 2 * 1024 * 1024
NS_APPLYMENTS = "wechatpay:applyments"  # applyment_id → record; "bc:<sp>:<business_code>" → applyment_id
NS_SETTLEMENTS = "wechatpay:settlements"  # "<sp>:<application_no>" → record; "current:<sp>:<sub>" → account
NS_COMPLAINTS = "wechatpay:complaints"
NS_BILLS = "wechatpay:bills"
NS_OAUTH = "wechatpay:oauth"
NS_OPENIDS = "wechatpay:openids"  # openid issued by the simulated OAuth → the appid it belongs to

# A.13 fields marked (enc): dotted paths, "[]" for every element of a list.
ENCRYPTED_FIELDS = (
    "contact_info.contact_name", "contact_info.contact_id_number", "contact_info.openid",
    "contact_info.mobile_phone", "contact_info.contact_email",
    "subject_info.identity_info.id_card_info.id_card_name", "subject_info.identity_info.id_card_info.id_card_number",
    "subject_info.identity_info.id_card_info.id_card_address",
    "subject_info.identity_info.id_doc_info.id_doc_name", "subject_info.identity_info.id_doc_info.id_doc_number",
    "subject_info.identity_info.id_doc_info.id_doc_address",
    "subject_info.ubo_info_list[].ubo_id_doc_name", "subject_info.ubo_info_list[].ubo_id_doc_number",
    "subject_info.ubo_info_list[].ubo_id_doc_address",
    "bank_account_info.account_name", "bank_account_info.account_number",
)
MEDIA_FIELDS = (
    "subject_info.business_license_info.license_copy", "subject_info.certificate_info.cert_copy",
    "subject_info.identity_info.id_card_info.id_card_copy", "subject_info.identity_info.id_card_info.id_card_national",
    "subject_info.identity_info.id_doc_info.id_doc_copy",
    "business_info.sales_info.biz_store_info.store_entrance_pic[]",
    "business_info.sales_info.biz_store_info.indoor_pic[]",
)
REQUIRED_FIELDS = ("business_code", "contact_info.contact_name", "contact_info.mobile_phone",
                   "subject_info.subject_type", "business_info.merchant_shortname", "settlement_info.settlement_id",
                   "bank_account_info.account_number", "bank_account_info.account_name",
                   "bank_account_info.bank_account_type")
SUBJECT_TYPES = ("SUBJECT_TYPE_INDIVIDUAL", "SUBJECT_TYPE_ENTERPRISE", "SUBJECT_TYPE_INSTITUTIONS",
                 "SUBJECT_TYPE_GOVERNMENT", "SUBJECT_TYPE_OTHERS", "SUBJECT_TYPE_MICRO")
ACTIONS = {  # action → (allowed from, to)
    "approve": (("AUDITING", "TO_BE_CONFIRMED", "TO_BE_SIGNED"), None),
    "reject": (("AUDITING", "TO_BE_CONFIRMED"), "APPLYMENT_STATE_REJECTED"),
    "ask_confirm": (("AUDITING",), "APPLYMENT_STATE_TO_BE_CONFIRMED"),
    "ask_sign": (("AUDITING", "TO_BE_CONFIRMED"), "APPLYMENT_STATE_TO_BE_SIGNED"),
    "finish": (("AUDITING", "TO_BE_CONFIRMED", "TO_BE_SIGNED", "SIGNING"), "APPLYMENT_STATE_FINISHED"),
    "cancel": (("AUDITING", "TO_BE_CONFIRMED", "TO_BE_SIGNED", "REJECTED", "EDITTING"), "APPLYMENT_STATE_CANCELED"),
}
STATE_MESSAGES = {
    "APPLYMENT_STATE_AUDITING": "审核中，请耐心等待", "APPLYMENT_STATE_REJECTED": "申请已驳回，请修改后重新提交",
    "APPLYMENT_STATE_TO_BE_CONFIRMED": "待超级管理员验证账户", "APPLYMENT_STATE_TO_BE_SIGNED": "待超级管理员签约",
    "APPLYMENT_STATE_FINISHED": "已完成", "APPLYMENT_STATE_CANCELED": "已作废",
    "APPLYMENT_STATE_SIGNING": "开通权限中", "APPLYMENT_STATE_EDITTING": "编辑中",
}
BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
               "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
               "手续费,费率,订单金额,申请退款金额,费率备注")
BILL_SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def _error(code: str, message: str, status: int = 400) -> SimResponse:
    return SimResponse.json({"code": code, "message": message}, status=status)


def _walk(data, path: str):
    """Yield (dotted path, parent, key) for each value at ``path`` (``a.b[].c``) that exists in ``data``."""
    def go(node, parts, trail):
        if not parts:
            return
        head, rest = parts[0], parts[1:]
        is_list = head.endswith("[]")
        name = head[:-2] if is_list else head
        if not isinstance(node, dict) or name not in node:
            return
        if is_list:
            items = node[name] if isinstance(node[name], list) else []
            for i, item in enumerate(items):
                if rest:
                    yield from go(item, rest, f"{trail}{name}[{i}].")
                else:
                    yield f"{trail}{name}[{i}]", items, i
        elif rest:
            yield from go(node[name], rest, f"{trail}{name}.")
        else:
            yield f"{trail}{name}", node, name
    yield from go(data, path.split("."), "")


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


class WechatPayMerchantRoutes:
    def register_merchant_routes(self) -> None:
        r = self.route
        r("POST", r"/v3/merchant/media/upload", self.media_upload)
        r("POST", r"/v3/applyment4sub/applyment/", self.applyment_submit)
        r("GET", r"/v3/applyment4sub/applyment/applyment_id/(?P<id>\d+)", self.applyment_query)
        r("GET", r"/v3/applyment4sub/applyment/business_code/(?P<bc>[^/]+)", self.applyment_query)
        r("POST", r"/v3/apply4sub/sub_merchants/(?P<sub>\d+)/modify-settlement", self.settlement_modify)
        r("GET", r"/v3/apply4sub/sub_merchants/(?P<sub>\d+)/application/(?P<no>[^/]+)", self.settlement_application)
        r("GET", r"/v3/apply4sub/sub_merchants/(?P<sub>\d+)/settlement", self.settlement_current)
        r("GET", r"/v3/merchant-service/complaints-v2", self.complaints_list)
        r("GET", r"/v3/merchant-service/complaints-v2/(?P<id>\d+)", self.complaint_detail)
        r("POST", r"/v3/merchant-service/complaints-v2/(?P<id>\d+)/response", self.complaint_response)
        r("POST", r"/v3/merchant-service/complaints-v2/(?P<id>\d+)/complete", self.complaint_complete)
        for method in ("POST", "PUT", "GET", "DELETE"):
            r(method, r"/v3/merchant-service/complaint-notifications", self.complaint_notify_url)
            r(method, r"/v3/merchant-risk-manage/violation-notifications", self.violation_notify_url)
        r("GET", r"/v3/bill/tradebill", self.bill_apply)
        r("GET", r"/v3/billdownload/file", self.bill_download)
        r("GET", r"/_payer/sign", self.sign_page)
        r("POST", r"/_payer/sign", self.sign_page)  # its button: the super admin confirms and signs
        r("GET", r"/_oauth/authorize", self.oauth_authorize)
        r("GET", r"/sns/oauth2/access_token", self.oauth_token)
        r("POST", r"/_control/applications/(?P<id>\d+)", self.control_application)
        r("POST", r"/_control/settlements/(?P<no>[^/]+)", self.control_settlement)
        r("POST", r"/_control/complaints", self.control_complaint)
        r("POST", r"/_control/violations", self.control_violation)

    # ================================================================== media (multipart, A.2/A.13)
    @staticmethod
    def multipart(request: SimRequest) -> dict[str, tuple[bytes, str]]:
        """name → (content, filename) of a multipart/form-data body; {} if it is not one."""
        match = re.search(r'boundary="?([^";]+)"?', request.header("content-type"))
        if not match:
            return {}
        parts = {}
        for chunk in request.body.split(b"--" + match.group(1).encode())[1:]:
            if chunk.startswith(b"--"):
                break
            # Each part is CRLF, headers, CRLF CRLF, content, CRLF (RFC 7578 / 2046 §5.1.1): cut exactly those
            # CRLFs. Stripping every CR and LF at the ends took a file's own last newline (a PDF ends "%%EOF\n"), so
            # its sha256 no longer matched the meta and it was refused for that instead of for what it is.
            head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            content = content.removesuffix(b"\r\n")
            name = re.search(rb'name="([^"]+)"', head)
            filename = re.search(rb'filename="([^"]*)"', head)
            if name:
                parts[name.group(1).decode()] = (content, filename.group(1).decode() if filename else "")
        return parts

    def media_upload(self, request: SimRequest) -> SimResponse:
        parts = self.multipart(request)
        if "meta" not in parts or "file" not in parts:
            return _error("PARAM_ERROR", "需要 multipart 的 meta 与 file 两部分")
        try:
            meta = json.loads(parts["meta"][0])
        except ValueError:
            return _error("PARAM_ERROR", "meta 不是 JSON")
        content = parts["file"][0]
        if meta.get("sha256") != hashlib.sha256(content).hexdigest():
            return _error("PARAM_ERROR", "文件 sha256 与 meta 不符")
        # The picture rules of the 特约商户进件 media upload: JPG, BMP or PNG, at most 2M, the filename ending in one
        # of them (https://pay.weixin.qq.com/docs/partner/apis/contracted-merchant-application/upload.html). WeChat
        # reads the picture, so the content is checked, not only the name. The messages are ours: the page gives
        # the rule and the PARAM_ERROR code (A.6), not WeChat's wording.
        if not content.startswith(MEDIA_MAGIC):
            return _error("PARAM_ERROR", "媒体图片只支持JPG、BMP、PNG格式")
        if len(content) > MEDIA_MAX_BYTES:
            return _error("PARAM_ERROR", "文件大小不能超过2M")
        if str(meta.get("filename") or "").rsplit(".", 1)[-1].lower() not in MEDIA_SUFFIXES:
            return _error("PARAM_ERROR", "文件名必须以JPG、BMP、PNG为后缀")
        media_id = "V1_" + secrets.token_urlsafe(24)
        self.store.put(NS_MEDIA, media_id, {"sp_mchid": request.account["sp_mchid"], "filename": meta.get("filename"),
                                            "size": len(content)})
        return SimResponse.json({"media_id": media_id})

    # ================================================================== applyment4sub (A.13)
    def open_sensitive(self, request: SimRequest, body: dict, paths) -> tuple[dict, SimResponse | None]:
        """Decrypt the (enc) fields in place (A.5); the first field that does not decrypt is named in a 400."""
        account = request.account
        if request.header("wechatpay-serial") != self.encryption_serial(account):
            return {}, _error("PARAM_ERROR", "请求头 Wechatpay-Serial 缺失或与加密所用公钥不一致")
        opened = {}
        for path in paths:
            for where, parent, key in _walk(body, path):
                value = parent[key]
                plain = crypto.oaep_decrypt(account["platform_private_key"], value) if isinstance(value, str) else None
                if plain is None:
                    return {}, _error("PARAM_ERROR", f"{where} 解密失败，请使用微信支付公钥 RSA-OAEP 加密")
                opened[where] = plain
        return opened, None

    def applyment_submit(self, request: SimRequest) -> SimResponse:
        account = request.account
        body = request.json()
        opened, failure = self.open_sensitive(request, body, ENCRYPTED_FIELDS)
        if failure:
            return failure
        for path in REQUIRED_FIELDS:
            if not [1 for _w, parent, key in _walk(body, path) if parent[key] not in ("", None)]:
                return _error("PARAM_ERROR", f"缺少必填字段 {path}")
        if body["subject_info"]["subject_type"] not in SUBJECT_TYPES:
            return _error("PARAM_ERROR", "subject_info.subject_type 取值无效")
        for path in MEDIA_FIELDS:
            for where, parent, key in _walk(body, path):
                media = self.store.get(NS_MEDIA, str(parent[key]))
                if media is None or media["sp_mchid"] != account["sp_mchid"]:
                    return _error("PARAM_ERROR", f"{where} 不是有效的 media_id")
        index_key = f"bc:{account['sp_mchid']}:{body['business_code']}"
        applyment_id = self.store.get(NS_APPLYMENTS, index_key)
        if applyment_id is not None:
            existing = self.store.get(NS_APPLYMENTS, str(applyment_id))
            if existing["state"] not in ("APPLYMENT_STATE_REJECTED", "APPLYMENT_STATE_EDITTING"):
                return SimResponse.json({"applyment_id": applyment_id})  # already under review: same id
        else:
            applyment_id = int("20000" + "".join(secrets.choice("0123456789") for _ in range(11)))
            self.store.put(NS_APPLYMENTS, index_key, applyment_id)
        number = opened.get("bank_account_info.account_number", "")
        self.store.put(NS_APPLYMENTS, str(applyment_id), {
            "applyment_id": applyment_id, "sp_mchid": account["sp_mchid"], "business_code": body["business_code"],
            "state": "APPLYMENT_STATE_AUDITING", "submitted_at": time.time(), "sub_mchid": "", "audit_detail": [],
            "merchant_name": body["business_info"]["merchant_shortname"],
            "decrypted_fields": sorted(opened),  # proof of decryption; the values themselves are not kept
            "bank": {"account_type": body["bank_account_info"]["bank_account_type"],
                     "account_bank": body["bank_account_info"].get("account_bank", ""),
                     "account_name": opened.get("bank_account_info.account_name", "")[:1] + "**",
                     "account_number": number[:2] + "*" * max(0, len(number) - 6) + number[-4:]},
        })
        return SimResponse.json({"applyment_id": applyment_id})

    def applyment_load(self, account: dict, applyment_id: str) -> dict | None:
        record = self.store.get(NS_APPLYMENTS, applyment_id)
        if record is None or record["sp_mchid"] != account["sp_mchid"]:
            return None
        auto = self.settings(account).get("auto_review")
        if auto and record["state"] == "APPLYMENT_STATE_AUDITING" and \
                time.time() >= record["submitted_at"] + float(auto.get("delay_seconds", 2)):
            record = self.applyment_act(record, auto.get("outcome", "approve"), auto.get("reasons") or [])
        return record

    def applyment_act(self, record: dict, action: str, reasons: list) -> dict:
        allowed, target = ACTIONS[action]
        if record["state"].removeprefix("APPLYMENT_STATE_") not in allowed:
            raise ValueError(f"cannot {action} an application in {record['state']}")
        if action == "approve":
            target = ("APPLYMENT_STATE_FINISHED" if record["state"] == "APPLYMENT_STATE_TO_BE_SIGNED"
                      else "APPLYMENT_STATE_TO_BE_SIGNED")
        changes: dict = {"state": target, "audit_detail": []}
        if target == "APPLYMENT_STATE_REJECTED":
            changes["audit_detail"] = [
                {"field": r.get("field", "") if isinstance(r, dict) else "", "field_name": "",
                 "reject_reason": r.get("reason", "") if isinstance(r, dict) else str(r)}
                for r in (reasons or ["资料不符合要求"])]
        if target in ("APPLYMENT_STATE_TO_BE_SIGNED", "APPLYMENT_STATE_FINISHED") and not record["sub_mchid"]:
            changes["sub_mchid"] = "16" + "".join(secrets.choice("0123456789") for _ in range(8))
        record = self.store.update(NS_APPLYMENTS, str(record["applyment_id"]), **changes)
        if target == "APPLYMENT_STATE_FINISHED":  # the sub-merchant can trade, and its settlement account is set
            account = self.account(record["sp_mchid"])
            self.store.update("wechatpay:accounts", account["sp_mchid"],
                              sub_mchids=sorted(set(account["sub_mchids"]) | {record["sub_mchid"]}))
            self.store.put(NS_SETTLEMENTS, f"current:{record['sp_mchid']}:{record['sub_mchid']}", record["bank"])
        return record

    def applyment_view(self, record: dict, request: SimRequest) -> dict:
        state = record["state"]
        view = {"business_code": record["business_code"], "applyment_id": record["applyment_id"],
                "applyment_state": state, "applyment_state_msg": STATE_MESSAGES.get(state, ""),
                "audit_detail": record["audit_detail"]}
        if state in ("APPLYMENT_STATE_TO_BE_SIGNED", "APPLYMENT_STATE_SIGNING", "APPLYMENT_STATE_FINISHED"):
            view["sub_mchid"] = record["sub_mchid"]
        if state in ("APPLYMENT_STATE_AUDITING", "APPLYMENT_STATE_TO_BE_CONFIRMED", "APPLYMENT_STATE_TO_BE_SIGNED"):
            view["sign_url"] = f"{request.base_url}/_payer/sign?applyment_id={record['applyment_id']}"
        return view

    def sign_page(self, request: SimRequest) -> SimResponse:
        """What the super admin sees after scanning sign_url (account verification / signing, A.13). Its button
        (a POST here) does what ``POST /_control/applications/<id> {"action": "finish"}`` does — the super admin
        confirmed and signed — as the bank simulator's sign page does (bank_merchants ``sign_page``)."""
        applyment_id = (request.query.get("applyment_id", "") if request.method == "GET"
                        else request.form().get("applyment_id", ""))
        record = self.store.get(NS_APPLYMENTS, applyment_id)
        if record is None:
            return SimResponse.html("<h1>申请单不存在</h1>", 404)
        if request.method == "POST":
            try:
                record = self.applyment_act(record, "finish", [])
            except ValueError as exc:
                return SimResponse.html(f"<h1>{escape(str(exc))}</h1>", 409)
        signing = record["state"].removeprefix("APPLYMENT_STATE_") in ("AUDITING", "TO_BE_CONFIRMED", "TO_BE_SIGNED")
        button = "" if not signing else (
            f"<form method=post><input type=hidden name=applyment_id value='{escape(str(record['applyment_id']))}'>"
            "<button>确认并签约 / confirm and sign</button></form>")
        return SimResponse.html(
            "<!doctype html><meta charset=utf-8><title>特约商户签约 (simulator)</title>"
            f"<h1>{escape(record['merchant_name'])}</h1><p>{escape(STATE_MESSAGES.get(record['state'], ''))}</p>"
            f"{button}<p>applyment_id {record['applyment_id']}: or drive it with POST /_control/applications/"
            f"{record['applyment_id']} {{\"action\": \"finish\"}}</p>")

    def applyment_query(self, request: SimRequest) -> SimResponse:
        account = request.account
        groups = request.match.groupdict()
        applyment_id = groups.get("id") or self.store.get(NS_APPLYMENTS, f"bc:{account['sp_mchid']}:{groups.get('bc')}")
        record = self.applyment_load(account, str(applyment_id)) if applyment_id else None
        if record is None:
            return _error("RESOURCE_NOT_EXISTS", "申请单不存在", 404)
        return SimResponse.json(self.applyment_view(record, request))

    def control_application(self, request: SimRequest) -> SimResponse:
        data = request.json()
        record = self.store.get(NS_APPLYMENTS, request.match["id"])
        if record is None:
            return SimResponse.json({"error": "no such application"}, 404)
        if data.get("action") not in ACTIONS:
            return SimResponse.json({"error": f"action must be one of {sorted(ACTIONS)}"}, 400)
        try:
            record = self.applyment_act(record, data["action"], data.get("reasons") or [])
        except ValueError as exc:
            return SimResponse.json({"error": str(exc)}, 409)
        return SimResponse.json(self.applyment_view(record, request))

    # ================================================================== settlement account changes (A.13)
    def settlement_modify(self, request: SimRequest) -> SimResponse:
        account, body, sub = request.account, request.json(), request.match["sub"]
        opened, failure = self.open_sensitive(request, body, ("account_number", "account_name"))
        if failure:
            return failure
        if "account_number" not in opened:
            return _error("PARAM_ERROR", "缺少必填字段 account_number")
        if body.get("modify_mode") != "MODIFY_MODE_ASYNC":
            return _error("PARAM_ERROR", "modify_mode 仅支持 MODIFY_MODE_ASYNC")
        if body.get("account_type") not in ("ACCOUNT_TYPE_BUSINESS", "ACCOUNT_TYPE_PRIVATE"):
            return _error("PARAM_ERROR", "account_type 取值无效")
        if self.settings(account)["strict_sub_mchid"] and sub not in account["sub_mchids"]:
            return _error("MCH_NOT_EXISTS", "特约商户号不存在")
        number = opened["account_number"]
        application_no = "MS" + secrets.token_hex(10).upper()
        self.store.put(NS_SETTLEMENTS, f"{account['sp_mchid']}:{application_no}", {
            "sub_mchid": sub, "created_at": time.time(), "verify_result": "AUDITING", "verify_fail_reason": "",
            "verify_finish_time": "",
            "bank": {"account_type": body["account_type"], "account_bank": body.get("account_bank", ""),
                     "bank_name": body.get("bank_name", ""), "bank_branch_id": body.get("bank_branch_id", ""),
                     "account_name": opened.get("account_name", "")[:1] + "**",
                     "account_number": number[:2] + "*" * max(0, len(number) - 6) + number[-4:]},
        })
        return SimResponse.json({"application_no": application_no})

    def settlement_load(self, account: dict, application_no: str) -> dict | None:
        key = f"{account['sp_mchid']}:{application_no}"
        record = self.store.get(NS_SETTLEMENTS, key)
        auto = {"delay_seconds": 2, "outcome": "approve", **(self.settings(account).get("settlement_review") or {})}
        if record and record["verify_result"] == "AUDITING" and \
                time.time() >= record["created_at"] + float(auto["delay_seconds"]):
            record = self.settlement_decide(account["sp_mchid"], application_no, auto["outcome"],
                                            auto.get("reason", ""))
        return record

    def settlement_decide(self, sp_mchid: str, application_no: str, outcome: str, reason: str) -> dict:
        key = f"{sp_mchid}:{application_no}"
        ok = outcome == "approve"
        record = self.store.update(NS_SETTLEMENTS, key, verify_result="AUDIT_SUCCESS" if ok else "AUDIT_FAIL",
                                   verify_fail_reason="" if ok else (reason or "银行账户信息有误"),
                                   verify_finish_time=dt.datetime.now(CST).isoformat(timespec="seconds"))
        if ok:
            self.store.put(NS_SETTLEMENTS, f"current:{sp_mchid}:{record['sub_mchid']}", record["bank"])
        return record

    def settlement_application(self, request: SimRequest) -> SimResponse:
        record = self.settlement_load(request.account, request.match["no"])
        if record is None or record["sub_mchid"] != request.match["sub"]:
            return _error("RESOURCE_NOT_EXISTS", "改结算账户申请单不存在", 404)
        return SimResponse.json({**record["bank"], "verify_result": record["verify_result"],
                                 "verify_fail_reason": record["verify_fail_reason"],
                                 "verify_finish_time": record["verify_finish_time"]})

    def settlement_current(self, request: SimRequest) -> SimResponse:
        bank = self.store.get(NS_SETTLEMENTS, f"current:{request.account['sp_mchid']}:{request.match['sub']}")
        if bank is None:
            return _error("RESOURCE_NOT_EXISTS", "结算账户不存在", 404)
        return SimResponse.json({**bank, "verify_result": "VERIFY_SUCCESS", "verify_fail_reason": ""})

    def control_settlement(self, request: SimRequest) -> SimResponse:
        data = request.json()
        key = f"{data.get('sp_mchid')}:{request.match['no']}"
        if self.store.get(NS_SETTLEMENTS, key) is None:
            return SimResponse.json({"error": "no such application"}, 404)
        record = self.settlement_decide(data["sp_mchid"], request.match["no"], data.get("action", "approve"),
                                        data.get("reason", ""))
        return SimResponse.json({"verify_result": record["verify_result"]})

    # ================================================================== complaints (A.14)
    def complaint_view(self, record: dict, account: dict) -> dict:
        view = {k: v for k, v in record.items() if k not in ("sp_mchid", "payer_phone_plain", "history")}
        if record.get("payer_phone_plain"):  # A.5: encrypted with the merchant's API public key
            merchant_pem = next(iter(account["merchant_keys"].values()))
            view["payer_phone"] = crypto.oaep_encrypt(merchant_pem, record["payer_phone_plain"])
        return view

    def control_complaint(self, request: SimRequest) -> SimResponse:
        data = request.json()
        account = self.account(str(data.get("sp_mchid")))
        if account is None or not data.get("sub_mchid"):
            return SimResponse.json({"error": "sp_mchid (known) and sub_mchid are required"}, 400)
        complaint_id = "2002" + "".join(secrets.choice("0123456789") for _ in range(16))
        orders = []
        trade = self.store.get("wechatpay:trades", f"{account['sp_mchid']}:{data.get('out_trade_no', '')}")
        if trade:
            orders = [{"transaction_id": trade.get("transaction_id", ""), "out_trade_no": trade["out_trade_no"],
                       "amount": trade["total"]}]
        record = {
            "complaint_id": complaint_id, "sp_mchid": account["sp_mchid"], "complainted_mchid": data["sub_mchid"],
            "complaint_time": dt.datetime.now(CST).isoformat(timespec="seconds"),
            "complaint_detail": data.get("detail", "商品未收到"), "complaint_state": "PENDING",
            "payer_openid": data.get("payer_openid", "o" + secrets.token_hex(13)),
            "payer_phone_plain": data.get("payer_phone", ""), "complaint_order_info": orders,
            "complaint_media_list": [], "complaint_full_refunded": False, "incoming_user_response": False,
            "problem_description": data.get("detail", "商品未收到"), "user_complaint_times": 1, "history": [],
        }
        self.store.put(NS_COMPLAINTS, complaint_id, record)
        url = data.get("notify_url") or account.get("complaint_notify_url", "")
        callback_id = self.notify(account, url, event_type="COMPLAINT.CREATE", summary="产生新投诉",
                                  original_type="complaint",
                                  resource={"complaint_id": complaint_id, "action_type": "CREATE_COMPLAINT"})
        return SimResponse.json({"complaint_id": complaint_id, "callback_id": callback_id}, 201)

    def complaints_list(self, request: SimRequest) -> SimResponse:
        account, query = request.account, request.query
        try:
            begin = dt.date.fromisoformat(query.get("begin_date", ""))
            end = dt.date.fromisoformat(query.get("end_date", ""))
            limit, offset = int(query.get("limit", "10")), int(query.get("offset", "0"))
        except ValueError:
            return _error("PARAM_ERROR", "begin_date/end_date 应为 YYYY-MM-DD，limit/offset 应为整数")
        if not 0 <= (end - begin).days <= 30 or not 1 <= limit <= 50 or offset < 0:
            return _error("PARAM_ERROR", "查询区间不超过 30 天，limit 取值 1-50")
        items = [record for _k, record in self.store.items(NS_COMPLAINTS)
                 if record["sp_mchid"] == account["sp_mchid"]
                 and begin <= dt.date.fromisoformat(record["complaint_time"][:10]) <= end
                 and query.get("complainted_mchid", record["complainted_mchid"]) == record["complainted_mchid"]]
        page = [self.complaint_view(r, account) for r in items[offset:offset + limit]]
        return SimResponse.json({"data": page, "limit": limit, "offset": offset, "total_count": len(items)})

    def complaint_load(self, request: SimRequest) -> dict | None:
        record = self.store.get(NS_COMPLAINTS, request.match["id"])
        return record if record and record["sp_mchid"] == request.account["sp_mchid"] else None

    def complaint_detail(self, request: SimRequest) -> SimResponse:
        record = self.complaint_load(request)
        if record is None:
            return _error("RESOURCE_NOT_EXISTS", "投诉单不存在", 404)
        return SimResponse.json(self.complaint_view(record, request.account))

    def complaint_response(self, request: SimRequest) -> SimResponse:
        record, body = self.complaint_load(request), request.json()
        if record is None:
            return _error("RESOURCE_NOT_EXISTS", "投诉单不存在", 404)
        if body.get("complainted_mchid") != record["complainted_mchid"]:
            return _error("PARAM_ERROR", "complainted_mchid 与投诉单不符")
        content = body.get("response_content")
        if not isinstance(content, str) or not 1 <= len(content) <= 200:
            return _error("PARAM_ERROR", "response_content 长度应为 1-200")
        if record["complaint_state"] == "PROCESSED":
            return _error("INVALID_REQUEST", "投诉单已处理完成")
        history = record["history"] + [{"log_id": secrets.token_hex(8), "operator": "商家",
                                         "operate_time": dt.datetime.now(CST).isoformat(timespec="seconds"),
                                         "operate_type": "MERCHANT_RESPONSE", "operate_details": content}]
        self.store.update(NS_COMPLAINTS, record["complaint_id"], complaint_state="PROCESSING", history=history)
        account = request.account
        self.notify(account, account.get("complaint_notify_url", ""), event_type="COMPLAINT.STATE_CHANGE",
                    summary="投诉单状态变化", original_type="complaint",
                    resource={"complaint_id": record["complaint_id"], "action_type": "MERCHANT_RESPONSE"})
        return SimResponse(204)

    def complaint_complete(self, request: SimRequest) -> SimResponse:
        record, body = self.complaint_load(request), request.json()
        if record is None:
            return _error("RESOURCE_NOT_EXISTS", "投诉单不存在", 404)
        if body.get("complainted_mchid") != record["complainted_mchid"]:
            return _error("PARAM_ERROR", "complainted_mchid 与投诉单不符")
        self.store.update(NS_COMPLAINTS, record["complaint_id"], complaint_state="PROCESSED")
        return SimResponse(204)

    def complaint_notify_url(self, request: SimRequest) -> SimResponse:
        return self._notify_url(request, "complaint_notify_url", "url")

    def violation_notify_url(self, request: SimRequest) -> SimResponse:
        return self._notify_url(request, "violation_notify_url", "notify_url")

    def _notify_url(self, request: SimRequest, field: str, name: str) -> SimResponse:
        account = request.account
        if request.method in ("POST", "PUT"):
            url = request.json().get(name)
            if not isinstance(url, str) or not re.match(r"^https?://", url):
                return _error("PARAM_ERROR", f"{name} 格式错误")
            account = self.store.update("wechatpay:accounts", account["sp_mchid"], **{field: url})
        elif request.method == "DELETE":
            self.store.update("wechatpay:accounts", account["sp_mchid"], **{field: ""})
            return SimResponse(204)
        if not account.get(field):
            return _error("RESOURCE_NOT_EXISTS", "未设置通知地址", 404)
        return SimResponse.json({"mchid": account["sp_mchid"], name: account[field]})

    # ================================================================== violations (A.15)
    def control_violation(self, request: SimRequest) -> SimResponse:
        data = request.json()
        account = self.account(str(data.get("sp_mchid")))
        event = data.get("event", "PUNISH")
        if account is None or not data.get("sub_mchid") or event not in ("PUNISH", "INTERCEPT", "APPEAL"):
            return SimResponse.json({"error": "sp_mchid, sub_mchid and event PUNISH|INTERCEPT|APPEAL required"}, 400)
        record_id = data.get("record_id") or "VR" + secrets.token_hex(10).upper()
        resource = {
            "sub_mchid": data["sub_mchid"], "company_name": data.get("company_name", "模拟特约商户"),
            "record_id": record_id, "punish_plan": data.get("punish_plan", "关闭支付权限"),
            "punish_time": dt.datetime.now(CST).isoformat(timespec="seconds"),
            "punish_description": data.get("punish_description", "商户存在违规交易"),
            "risk_type": data.get("risk_type", "SUSPECTED_FRAUD"),
            "risk_description": data.get("risk_description", "涉嫌欺诈"),
        }
        url = data.get("notify_url") or account.get("violation_notify_url", "")
        callback_id = self.notify(account, url, event_type="VIOLATION." + event, summary="商户违规处置通知",
                                  original_type="violation", resource=resource)
        return SimResponse.json({"record_id": record_id, "callback_id": callback_id}, 201)

    # ================================================================== trade bills (A.12)
    def bill_rows(self, account: dict, day: dt.date, sub_mchid: str, bill_type: str) -> list[str]:
        rate = Decimal(str(self.settings(account)["fee_rate"]))
        rate_text = f"{rate * 100:.2f}%"
        rows = []

        def fee(fen: int) -> str:
            return f"{(Decimal(fen) * rate / 100).quantize(Decimal('0.00001'), rounding=ROUND_HALF_UP):f}"

        def on_day(stamp: str) -> bool:
            return bool(stamp) and dt.datetime.fromisoformat(stamp).astimezone(CST).date() == day

        def row(values: list[str]) -> str:
            return ",".join("`" + v for v in values)

        for _k, t in self.store.items("wechatpay:trades"):
            if t["sp_mchid"] != account["sp_mchid"] or (sub_mchid and t["sub_mchid"] != sub_mchid):
                continue
            if bill_type in ("ALL", "SUCCESS") and t.get("transaction_id") and on_day(t.get("success_time", "")):
                state = "REVOKED" if t.get("reversed_paid") else "SUCCESS"
                stamp = dt.datetime.fromisoformat(t["success_time"]).strftime("%Y-%m-%d %H:%M:%S")
                rows.append(row([stamp, t["sp_appid"], t["sp_mchid"], t["sub_mchid"], "", t["transaction_id"],
                                 t["out_trade_no"], t.get("payer_openid", ""), t["trade_type"], state, "OTHERS", "CNY",
                                 _yuan(t["total"]), "0.00", "0", "0", "0.00", "0.00", "", "",
                                 t["description"].replace(",`", ", "), t.get("attach", ""), fee(t["total"]),
                                 rate_text, _yuan(t["total"]), "0.00", ""]))
        for key, rf in self.store.items("wechatpay:refunds"):
            if not key.startswith(account["sp_mchid"] + ":") or (sub_mchid and rf["sub_mchid"] != sub_mchid):
                continue
            refund = self.load_refund(key)
            if bill_type in ("ALL", "REFUND") and refund["status"] == "SUCCESS" and on_day(refund["success_time"]):
                t = self.store.get("wechatpay:trades", f"{account['sp_mchid']}:{refund['out_trade_no']}")
                stamp = dt.datetime.fromisoformat(refund["success_time"]).strftime("%Y-%m-%d %H:%M:%S")
                rows.append(row([stamp, t["sp_appid"], t["sp_mchid"], t["sub_mchid"], "", t["transaction_id"],
                                 t["out_trade_no"], t.get("payer_openid", ""), t["trade_type"], "REFUND", "OTHERS",
                                 "CNY", "0.00", "0.00", refund["refund_id"], refund["out_refund_no"],
                                 _yuan(refund["refund"]), "0.00", "ORIGINAL", "SUCCESS",
                                 t["description"].replace(",`", ", "), t.get("attach", ""),
                                 "-" + fee(refund["refund"]), rate_text, _yuan(t["total"]), _yuan(refund["refund"]),
                                 ""]))
        return rows

    def bill_apply(self, request: SimRequest) -> SimResponse:
        account, query = request.account, request.query
        try:
            day = dt.date.fromisoformat(query.get("bill_date", ""))
        except ValueError:
            return _error("PARAM_ERROR", "bill_date 应为 YYYY-MM-DD")
        bill_type = query.get("bill_type", "ALL")
        if bill_type not in ("ALL", "SUCCESS", "REFUND") or query.get("tar_type", "GZIP") != "GZIP":
            return _error("PARAM_ERROR", "bill_type 或 tar_type 取值无效")
        if day > dt.datetime.now(CST).date():
            return _error("INVALID_REQUEST", "账单日期不能晚于今天")
        rows = self.bill_rows(account, day, query.get("sub_mchid", ""), bill_type)
        if not rows:
            return _error("NO_STATEMENT_EXIST", "账单不存在")
        amounts = [line.split(",`") for line in rows]
        paid = sum(Decimal(v[12]) for v in amounts)
        refunded = sum(Decimal(v[16]) for v in amounts)
        fees = sum(Decimal(v[22]) for v in amounts)
        ordered = sum(Decimal(v[24]) for v in amounts if v[9] != "REFUND")
        summary = ",".join("`" + v for v in (str(len(rows)), f"{paid:.2f}", f"{refunded:.2f}", "0.00", f"{fees:.5f}",
                                             f"{ordered:.2f}", f"{refunded:.2f}"))
        content = "\r\n".join([BILL_HEADER, *rows, BILL_SUMMARY_HEADER, summary]) + "\r\n"
        raw = content.encode("utf-8")
        token = secrets.token_urlsafe(24)
        self.store.put(NS_BILLS, token, {"sp_mchid": account["sp_mchid"], "content": content,
                                         "expires": time.time() + 300})
        return SimResponse.json({"hash_type": "SHA1", "hash_value": hashlib.sha1(raw).hexdigest(),  # noqa: S324
                                 "download_url": f"{request.base_url}/v3/billdownload/file?{urlencode({'token': token})}"})

    def bill_download(self, request: SimRequest) -> SimResponse:
        bill = self.store.get(NS_BILLS, request.query.get("token", ""))
        if bill is None or bill["expires"] < time.time():
            return _error("INVALID_REQUEST", "下载链接已失效", 400)
        if bill["sp_mchid"] != request.account["sp_mchid"]:
            return _error("NO_AUTH", "无权下载该账单", 403)
        content = bill["content"].encode("utf-8")
        if request.fault("bad_signature"):  # the file's only guarantee is hash_value: corrupt it
            content = content.replace(b"SUCCESS", b"SUCCESZ", 1)
        body = gzip.compress(content)
        if request.fault("truncated_file"):  # a download cut short on the way: half the gzip, framed as whole
            body = body[:len(body) // 2]
        return SimResponse(200, body, {"Content-Type": "application/octet-stream"})

    # ================================================================== snsapi_base OAuth (§E)
    def oauth_authorize(self, request: SimRequest) -> SimResponse:
        """The payer's WeChat asks nothing for snsapi_base: it redirects back with a code at once."""
        query = request.query
        sp_mchid = self.store.get("wechatpay:appids", query.get("appid", ""))
        redirect = query.get("redirect_uri", "")
        if sp_mchid is None or not re.match(r"^https?://", redirect) or query.get("response_type") != "code" \
                or query.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
            return SimResponse.html("<h1>参数错误</h1><p>appid / redirect_uri / scope</p>", 400)
        payer = query.get("payer", "demo-payer")  # the simulator's stand-in for "which WeChat user is this"
        openid = "o" + hashlib.sha256(f"{query['appid']}:{payer}".encode()).hexdigest()[:27]
        code = secrets.token_hex(16)
        self.store.put(NS_OPENIDS, openid, query["appid"])  # prepay checks an openid against its appid (A.7)
        self.store.put(NS_OAUTH, code, {"appid": query["appid"], "openid": openid, "issued": time.time(),
                                        "used": False, "scope": query["scope"]})
        separator = "&" if "?" in redirect else "?"
        location = f"{redirect}{separator}{urlencode({'code': code, 'state': query.get('state', '')})}"
        return SimResponse(302, b"", {"Location": location})

    def oauth_token(self, request: SimRequest) -> SimResponse:
        query = request.query
        sp_mchid = self.store.get("wechatpay:appids", query.get("appid", ""))
        account = self.account(sp_mchid) if sp_mchid else None
        if account is None:
            return SimResponse.json({"errcode": 40013, "errmsg": "invalid appid"})
        if query.get("secret") != account["sp_appsecret"]:
            return SimResponse.json({"errcode": 40125, "errmsg": "invalid appsecret"})
        if query.get("grant_type") != "authorization_code":
            return SimResponse.json({"errcode": 40002, "errmsg": "invalid grant_type"})
        grant = self.store.get(NS_OAUTH, query.get("code", ""))
        if grant is None or grant["appid"] != query["appid"] or time.time() - grant["issued"] > 300:
            return SimResponse.json({"errcode": 40029, "errmsg": "invalid code"})
        if grant["used"]:
            return SimResponse.json({"errcode": 40163, "errmsg": "code been used"})
        self.store.update(NS_OAUTH, query["code"], used=True)
        return SimResponse.json({"access_token": secrets.token_hex(32), "expires_in": 7200,
                                 "refresh_token": secrets.token_hex(32), "openid": grant["openid"],
                                 "scope": grant["scope"]})
