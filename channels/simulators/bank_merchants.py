"""Merchant apply (进件), settlement account changes and UnionPay userAuth in the bank simulator
(docs/channels/bank.md §9, §10, §13.4).

Reviews are driven by ``POST /bank/_control/applications/<apply_id>`` or by the account's ``auto_review`` setting;
like trades, a scheduled review stores the state it will reach and a timer; applying it queues the notify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from channels.simulators import bank_wire as wire
from channels.simulators.bank_state import (
    APPLY_IDS,
    DATE8,
    MODIFY_IDS,
    OAUTH,
    OUT_NO,
    URL,
    BankFail,
    ns,
    settings_of,
    text,
)
from channels.simulators.core import SimRequest, SimResponse

MERCHANT_TYPES = ("ENTERPRISE", "INDIVIDUAL", "MICRO", "INSTITUTION")
ID_TYPES = ("ID_CARD", "PASSPORT", "HK_MACAO_PERMIT", "TAIWAN_PERMIT", "FOREIGN_RESIDENT", "HK_MACAO_RESIDENT",
            "TAIWAN_RESIDENT")
PRODUCTS = ("WECHAT_NATIVE", "WECHAT_JSAPI", "WECHAT_MINIAPP", "WECHAT_MICROPAY", "ALIPAY_NATIVE", "ALIPAY_JSAPI",
            "ALIPAY_MICROPAY", "UNIONPAY_NATIVE", "UNIONPAY_JSAPI", "UNIONPAY_MICROPAY")
SCENES = ("STORE", "OFFICIAL_ACCOUNT", "MINI_PROGRAM", "APP", "WEB")
FILE_TYPES = ("LICENSE", "ID_FRONT", "ID_BACK", "STORE_DOOR", "STORE_INSIDE", "BANK_CARD", "OTHER")
FILE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"%PDF-")
MAX_FILE = 2 * 1024 * 1024
STATE_DESC = {"AUDITING": "审核中", "REJECTED": "已驳回", "WAIT_VERIFY": "待账户验证", "WAIT_SIGN": "待签约",
              "FINISHED": "已开通", "CANCELED": "已作废"}
# bank.md §9.5: review action → (states it may start from, state it leads to).
TRANSITIONS = {
    "approve": (("AUDITING", "WAIT_VERIFY", "WAIT_SIGN"), "FINISHED"),
    "reject": (("AUDITING", "WAIT_VERIFY"), "REJECTED"),
    "ask_confirm": (("AUDITING",), "WAIT_VERIFY"),
    "ask_sign": (("AUDITING", "WAIT_VERIFY"), "WAIT_SIGN"),
    "finish": (("WAIT_VERIFY", "WAIT_SIGN"), "FINISHED"),
    "cancel": (("AUDITING", "WAIT_VERIFY", "WAIT_SIGN", "REJECTED"), "CANCELED"),
}
APPLY_VIEW = ("apply_no", "apply_id", "apply_state", "apply_state_desc", "mch_no", "sign_url", "reject_reasons",
              "finish_time")
DEFAULT_REJECT = [{"field": "license.license_pic", "reason": "营业执照照片不清晰，请重新上传"}]
ID_CARD = re.compile(r"^\d{17}[\dX]$")
MOBILE = re.compile(r"^1[3-9]\d{9}$")
ACCOUNT_NO = re.compile(r"^\d{8,30}$")
LICENSE_NO = re.compile(r"^[0-9A-Z]{15}([0-9A-Z]{3})?$")


def apply_view(apply: dict) -> dict[str, Any]:
    view = {k: apply[k] for k in APPLY_VIEW if apply.get(k) not in (None, "", [])}
    if apply["apply_state"] not in ("WAIT_SIGN", "FINISHED"):
        view.pop("mch_no", None)  # §9.4: the merchant number is shown once signing starts
    return view


def _mask(value: str) -> str:
    return "*" * max(len(value) - 4, 0) + value[-4:]


class MerchantHandlers:
    """Mixed into BankSimulator, which provides ``store``, ``lock``, ``notify``, ``schedule`` and ``account``."""

    # --- files (§9.1) -----------------------------------------------------------------------------------
    def api_file_upload(self, request: SimRequest, msg: dict, account: dict) -> dict:
        file_type = text(msg, "file_type", choices=FILE_TYPES)
        name = text(msg, "file_name", max_len=128)
        try:
            content = base64.b64decode(text(msg, "file_content", max_len=3 * MAX_FILE), validate=True)
        except binascii.Error:
            raise BankFail("FILE_INVALID", "file_content is not base64") from None
        if not content or len(content) > MAX_FILE:
            raise BankFail("FILE_INVALID", "a file must be 1 byte to 2 MiB")
        if hashlib.sha256(content).hexdigest() != text(msg, "file_sha256", max_len=64).lower():
            raise BankFail("FILE_INVALID", "file_sha256 does not match file_content")
        if not content.startswith(FILE_MAGIC):
            raise BankFail("FILE_INVALID", "only JPEG, PNG and PDF files are accepted")
        file_id = "F" + secrets.token_hex(12)
        self.store.put(ns("files", account["org_no"]), file_id, {"type": file_type, "name": name,
                                                                 "size": len(content)})
        return {"file_id": file_id}

    # --- apply (§9.3–§9.5) ------------------------------------------------------------------------------
    def api_merchant_apply(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org = account["org_no"]
        data = self._apply_content(msg, account)
        apply_no = data["apply_no"]
        fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        apply = self.store.get(ns("applies", org), apply_no)
        if apply is not None:
            apply = self.settle_apply(account, apply)
            state = apply["apply_state"]
            if state == "FINISHED":
                raise BankFail("APPLY_FINISHED", "this apply_no is already open; use settlement/modify for changes")
            if state not in ("REJECTED", "CANCELED"):
                if apply["fingerprint"] == fingerprint:
                    return apply_view(apply)
                raise BankFail("APPLY_IN_REVIEW", "the application is under review and cannot be changed now")
            apply_id, mch_no = apply["apply_id"], apply["mch_no"]
        else:
            apply_id = "AP" + wire.now_text()[:8] + wire.digits(8)
            mch_no = "8" + wire.digits(14)
        apply = {
            "org_no": org, "apply_no": apply_no, "apply_id": apply_id, "mch_no": mch_no,
            "apply_state": "AUDITING", "apply_state_desc": STATE_DESC["AUDITING"], "fingerprint": fingerprint,
            "notify_url": data["notify_url"], "base_url": request.base_url, "merchant": data["merchant"],
            "reject_reasons": [], "sign_url": "", "pending": None,
        }
        auto = settings_of(account).get("auto_review")
        if auto and auto.get("outcome") in TRANSITIONS:
            at = time.time() + float(auto.get("delay_seconds", 10))
            fields = self._review_fields(apply, auto["outcome"], auto.get("reasons") or DEFAULT_REJECT, at)
            apply["pending"] = {"at": at, "fields": fields}
            self.schedule("apply", org, apply_no, at)
        self.store.put(ns("applies", org), apply_no, apply)
        self.store.put(APPLY_IDS, apply_id, {"org_no": org, "apply_no": apply_no})
        self.store.put(ns("mch_applies", org), mch_no, apply_no)
        return apply_view(apply)

    def api_merchant_query(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org = account["org_no"]
        apply_no = text(msg, "apply_no", required=False, max_len=32)
        if not apply_no and msg.get("apply_id"):
            link = self.store.get(APPLY_IDS, text(msg, "apply_id", max_len=32)) or {}
            apply_no = link.get("apply_no", "") if link.get("org_no") == org else ""
            if not apply_no:
                raise BankFail("APPLY_NOT_EXIST", "no such application")
        if not apply_no:
            raise BankFail("PARAM_ERROR", "apply_id or apply_no is required")
        apply = self.store.get(ns("applies", org), apply_no)
        if apply is None:
            raise BankFail("APPLY_NOT_EXIST", "no such application")
        return apply_view(self.settle_apply(account, apply))

    def _apply_content(self, msg: dict, account: dict) -> dict:
        """Validate and decrypt an apply body; PARAM_ERROR / DECRYPT_ERROR name the field (bank.md §12)."""
        merchant_type = text(msg, "merchant_type", choices=MERCHANT_TYPES)
        name = text(msg, "merchant_name", max_len=128)
        person = self._object(msg, "legal_person")
        contact = self._object(msg, "contact")
        id_type = text(person, "id_type", choices=ID_TYPES)
        id_no = self._secret(person, "legal_person.id_no", account)
        if id_type == "ID_CARD" and not ID_CARD.match(id_no):
            raise BankFail("PARAM_ERROR", "legal_person.id_no is not an 18-character resident ID number")
        mobile = self._secret(contact, "contact.mobile", account)
        if not MOBILE.match(mobile):
            raise BankFail("PARAM_ERROR", "contact.mobile is not a mainland mobile number")
        for field in ("id_front_pic", "id_back_pic"):
            self._file(person, field, account, f"legal_person.{field}")
        text(person, "name", max_len=64)
        text(contact, "name", max_len=64)
        if merchant_type != "MICRO":
            license_ = self._object(msg, "license")
            if not LICENSE_NO.match(text(license_, "license_no", max_len=18)):
                raise BankFail("PARAM_ERROR", "license.license_no is not a 15/18-character registration number")
            text(license_, "valid_from", pattern=DATE8)
            if license_.get("valid_to") != "FOREVER":
                text(license_, "valid_to", pattern=DATE8)
            self._file(license_, "license_pic", account, "license.license_pic")
        account_data = self.settlement_content(msg, account)
        if merchant_type == "MICRO" and account_data["account_type"] != "PERSONAL":
            raise BankFail("PARAM_ERROR", "settlement_account.account_type of a MICRO merchant must be PERSONAL")
        if account_data["account_type"] == "CORPORATE" and account_data["account_name"] != name:
            raise BankFail("PARAM_ERROR", "settlement_account.account_name must equal merchant_name")
        scenes = msg.get("scenes")
        if not isinstance(scenes, list) or not scenes or any(s not in SCENES for s in scenes):
            raise BankFail("PARAM_ERROR", f"scenes must be a non-empty list of {', '.join(SCENES)}")
        stores = msg.get("stores") or []
        if "STORE" in scenes and (not isinstance(stores, list) or not stores):
            raise BankFail("PARAM_ERROR", "stores is required for the STORE scene")
        for i, store in enumerate(stores):
            if not isinstance(store, dict):
                raise BankFail("PARAM_ERROR", f"stores[{i}] must be an object")
            text(store, "store_name", max_len=64)
            text(store, "address", max_len=256)
            for field in ("door_pic", "inside_pic"):
                if store.get(field):
                    self._file(store, field, account, f"stores[{i}].{field}")
        products = msg.get("products")
        if not isinstance(products, list) or not products or any(p not in PRODUCTS for p in products):
            raise BankFail("PARAM_ERROR", "products must be a non-empty list of bank.md §9.3 product codes")
        return {
            "apply_no": text(msg, "apply_no", pattern=OUT_NO),
            "notify_url": text(msg, "notify_url", required=False, pattern=URL, max_len=512),
            "merchant": {"name": name, "short_name": text(msg, "short_name", max_len=64),
                         "merchant_type": merchant_type, "products": sorted(set(products)),
                         "settlement": account_data["masked"], "id_no": _mask(id_no), "mobile": _mask(mobile)},
            "content": {k: v for k, v in msg.items() if k not in ("sign", "nonce", "req_time") and
                        k not in ("legal_person", "contact", "settlement_account")},
            "secrets": [id_no, mobile, account_data["account_no"], account_data["account_name"]],
        }

    def settlement_content(self, msg: dict, account: dict) -> dict:
        sa = self._object(msg, "settlement_account")
        account_type = text(sa, "account_type", choices=("CORPORATE", "PERSONAL"))
        account_name = self._secret(sa, "settlement_account.account_name", account)
        account_no = self._secret(sa, "settlement_account.account_no", account)
        if not ACCOUNT_NO.match(account_no):
            raise BankFail("PARAM_ERROR", "settlement_account.account_no must be 8–30 digits")
        bank_name = text(sa, "bank_name", max_len=64)
        branch_no = text(sa, "bank_branch_no", required=False, pattern=re.compile(r"^\d{12}$"))
        return {"account_type": account_type, "account_name": account_name, "account_no": account_no,
                "masked": {"account_type": account_type, "account_no": _mask(account_no), "bank_name": bank_name,
                           "bank_branch_no": branch_no}}

    @staticmethod
    def _object(msg: dict, name: str) -> dict:
        value = msg.get(name)
        if not isinstance(value, dict):
            raise BankFail("PARAM_ERROR", f"{name} is required and must be an object")
        return value

    @staticmethod
    def _secret(obj: dict, path: str, account: dict) -> str:
        field = path.rsplit(".", 1)[-1]
        value = obj.get(field)
        if not isinstance(value, str) or not value:
            raise BankFail("PARAM_ERROR", f"{path} is required")
        try:
            return wire.decrypt(value, account["bank_private_key_pem"])
        except ValueError:
            raise BankFail("DECRYPT_ERROR", f"{path} is not encrypted with this org's bank key (bank.md §9.2)") \
                from None

    def _file(self, obj: dict, field: str, account: dict, path: str) -> None:
        file_id = obj.get(field)
        if not isinstance(file_id, str) or self.store.get(ns("files", account["org_no"]), file_id) is None:
            raise BankFail("PARAM_ERROR", f"{path} must be a file_id from /api/merchant/file/upload")

    # --- reviews ----------------------------------------------------------------------------------------
    def _review_fields(self, apply: dict, action: str, reasons: list, at: float) -> dict:
        target = TRANSITIONS[action][1]
        fields: dict[str, Any] = {"apply_state": target, "apply_state_desc": STATE_DESC[target],
                                  "reject_reasons": [], "sign_url": "", "finish_time": ""}
        if target == "REJECTED":
            fields["reject_reasons"] = [{"field": str(r.get("field", "")), "reason": str(r.get("reason", ""))}
                                        for r in reasons if isinstance(r, dict)] or DEFAULT_REJECT
        elif target in ("WAIT_VERIFY", "WAIT_SIGN"):
            fields["sign_url"] = f"{apply['base_url']}/_payer/sign?" + urlencode({"apply_id": apply["apply_id"]})
        elif target == "FINISHED":
            fields["finish_time"] = wire.now_text(at)
        return fields

    def review(self, account: dict, apply: dict, action: str, reasons: list) -> dict:
        """Apply a review action now (control API, sign page). Raises ValueError if the state forbids it."""
        apply = self.settle_apply(account, apply)
        if action not in TRANSITIONS or apply["apply_state"] not in TRANSITIONS[action][0]:
            raise ValueError(f"cannot {action} an application in {apply['apply_state']}")
        apply = {**apply, **self._review_fields(apply, action, reasons, time.time()), "pending": None}
        self._store_apply(account, apply)
        self._apply_notify(account, apply)
        return apply

    def settle_apply(self, account: dict, apply: dict) -> dict:
        pending = apply.get("pending")
        if pending and pending["at"] <= time.time():
            apply = {**apply, **pending["fields"], "pending": None}
            self._store_apply(account, apply)
            self._apply_notify(account, apply)
        return apply

    def _store_apply(self, account: dict, apply: dict) -> None:
        org = account["org_no"]
        self.store.put(ns("applies", org), apply["apply_no"], apply)
        if apply["apply_state"] == "FINISHED" and self.store.get(ns("merchants", org), apply["mch_no"]) is None:
            self.store.put(ns("merchants", org), apply["mch_no"], {
                **apply["merchant"], "mch_no": apply["mch_no"], "state": "NORMAL", "apply_no": apply["apply_no"],
                "modifies": [],
            })

    def _apply_notify(self, account: dict, apply: dict) -> None:
        if apply.get("notify_url"):
            self.notify(account, apply["notify_url"], "MERCHANT_APPLY", apply_view(apply))

    # --- merchants ----------------------------------------------------------------------------------------
    def merchant(self, account: dict, msg: dict, *, for_payment: bool = False) -> dict:
        org = account["org_no"]
        mch_no = text(msg, "mch_no", max_len=32)
        merchant = self.store.get(ns("merchants", org), mch_no)
        if merchant is None:  # an application may have been approved by a review that nobody has read yet
            apply_no = self.store.get(ns("mch_applies", org), mch_no)
            if apply_no:
                self.settle_apply(account, self.store.get(ns("applies", org), apply_no))
                merchant = self.store.get(ns("merchants", org), mch_no)
        if merchant is None:
            raise BankFail("MCH_NOT_EXIST", f"merchant {mch_no} does not exist under this org")
        if for_payment and merchant["state"] != "NORMAL":
            raise BankFail("MCH_LIMITED", f"merchant {mch_no} is {merchant['state']}")
        return merchant

    # --- settlement account changes (§9.6) --------------------------------------------------------------
    def api_settlement_modify(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org, s = account["org_no"], settings_of(account)
        merchant = self.merchant(account, msg)
        modify_no = text(msg, "modify_no", pattern=OUT_NO)
        existing = self.store.get(ns("modifies", org), modify_no)
        if existing is not None:
            if existing["mch_no"] != merchant["mch_no"]:
                raise BankFail("PARAM_ERROR", "modify_no was used for another merchant")
            return self._modify_view(self._settle_modify(account, existing))
        today = wire.now_text()[:8]
        todays = [m for m in merchant.get("modifies", []) if m.startswith(today)]
        if len(todays) >= 5:
            raise BankFail("SETTLE_MODIFY_LIMIT", "at most 5 settlement changes per merchant per day")
        data = self.settlement_content(msg, account)
        if merchant.get("merchant_type") == "MICRO" and data["account_type"] != "PERSONAL":
            raise BankFail("PARAM_ERROR", "settlement_account.account_type of a MICRO merchant must be PERSONAL")
        at = time.time() + float(s["settlement_seconds"])
        outcome = "FAIL" if s["settlement_outcome"] == "FAIL" else "SUCCESS"
        modify = {
            "org_no": org, "mch_no": merchant["mch_no"], "modify_no": modify_no,
            "modify_id": "SM" + today + wire.digits(8), "modify_state": "AUDITING", "account": data["masked"],
            "pending": {"at": at, "fields": {"modify_state": outcome, "finish_time": wire.now_text(at),
                                             "fail_reason": "" if outcome == "SUCCESS" else "账户信息与开户名不符"}},
        }
        self.store.put(ns("modifies", org), modify_no, modify)
        self.store.put(MODIFY_IDS, modify["modify_id"], {"org_no": org, "modify_no": modify_no})
        self.store.put(ns("merchants", org), merchant["mch_no"],
                       {**merchant, "modifies": merchant.get("modifies", []) + [today + modify["modify_id"]]})
        return self._modify_view(modify)

    def api_settlement_query(self, request: SimRequest, msg: dict, account: dict) -> dict:
        org = account["org_no"]
        self.merchant(account, msg)
        modify_no = text(msg, "modify_no", required=False, max_len=32)
        if not modify_no and msg.get("modify_id"):
            link = self.store.get(MODIFY_IDS, text(msg, "modify_id", max_len=32)) or {}
            modify_no = link.get("modify_no", "") if link.get("org_no") == org else ""
        modify = self.store.get(ns("modifies", org), modify_no) if modify_no else None
        if modify is None or modify["mch_no"] != msg.get("mch_no"):
            raise BankFail("MODIFY_NOT_EXIST", "no such settlement change")
        return self._modify_view(self._settle_modify(account, modify))

    def decide_modify(self, account: dict, modify: dict, action: str, reasons: list) -> dict:
        modify = self._settle_modify(account, modify)
        if modify["modify_state"] != "AUDITING" or action not in ("approve", "reject"):
            raise ValueError(f"cannot {action} a settlement change in {modify['modify_state']}")
        reason = "; ".join(str(r.get("reason", "")) for r in reasons if isinstance(r, dict)) or "账户信息与开户名不符"
        modify = {**modify, "pending": {"at": 0, "fields": {
            "modify_state": "SUCCESS" if action == "approve" else "FAIL", "finish_time": wire.now_text(),
            "fail_reason": "" if action == "approve" else reason}}}
        return self._settle_modify(account, modify)

    def _settle_modify(self, account: dict, modify: dict) -> dict:
        pending = modify.get("pending")
        if pending and pending["at"] <= time.time():
            modify = {**modify, **pending["fields"], "pending": None}
            org = account["org_no"]
            self.store.put(ns("modifies", org), modify["modify_no"], modify)
            if modify["modify_state"] == "SUCCESS":
                merchant = self.store.get(ns("merchants", org), modify["mch_no"])
                self.store.put(ns("merchants", org), modify["mch_no"], {**merchant, "settlement": modify["account"]})
        return modify

    @staticmethod
    def _modify_view(modify: dict) -> dict:
        view = {k: modify[k] for k in ("mch_no", "modify_no", "modify_id", "modify_state", "fail_reason",
                                       "finish_time") if modify.get(k)}
        view["settlement_account"] = {k: v for k, v in modify["account"].items() if v}
        return view

    # --- UnionPay userAuth (§10) ------------------------------------------------------------------------
    def oauth_user_auth(self, request: SimRequest) -> SimResponse:
        redirect = request.query.get("redirectUrl", "")
        if not URL.match(redirect):
            return SimResponse.html("<h1>redirectUrl is required</h1>", 400)
        code = "UA" + secrets.token_hex(16)
        user_id = request.query.get("userId") or "UP" + secrets.token_hex(10).upper()
        self.store.put(OAUTH, code, {"user_id": user_id, "expires": time.time() + 300, "used": False})
        target = redirect + ("&" if "?" in redirect else "?") + urlencode({"userAuthCode": code, "respCode": "00"})
        return SimResponse(302, b"", {"Location": target})

    def api_oauth_user_id(self, request: SimRequest, msg: dict, account: dict) -> dict:
        code = text(msg, "user_auth_code", max_len=64)
        grant = self.store.get(OAUTH, code)
        if grant is None or grant["used"] or grant["expires"] < time.time():
            raise BankFail("USER_AUTH_CODE_INVALID", "userAuthCode is unknown, used or expired")
        self.store.put(OAUTH, code, {**grant, "used": True})
        return {"user_id": grant["user_id"]}

    # --- the merchant's signing page (§13.4) ------------------------------------------------------------
    def sign_page(self, request: SimRequest) -> SimResponse:
        apply_id = request.query.get("apply_id", "") if request.method == "GET" else request.form().get("apply_id", "")
        link = self.store.get(APPLY_IDS, apply_id)
        account = link and self.account(link["org_no"])
        apply = account and self.store.get(ns("applies", account["org_no"]), link["apply_no"])
        if not apply:
            return SimResponse.html("<h1>unknown application</h1>", 404)
        with self.lock:
            if request.method == "POST":
                try:
                    apply = self.review(account, apply, "finish", [])
                except ValueError as exc:
                    return SimResponse.html(f"<h1>{html.escape(str(exc))}</h1>", 409)
            apply = self.settle_apply(account, apply)
        button = "" if apply["apply_state"] not in ("WAIT_VERIFY", "WAIT_SIGN") else (
            f"<form method=post><input type=hidden name=apply_id value='{html.escape(apply_id)}'>"
            "<button>确认并签约 / confirm and sign</button></form>")
        return SimResponse.html(
            "<!doctype html><meta charset=utf-8><title>Bank simulator · sign</title>"
            f"<h1>{html.escape(apply['merchant']['name'])}</h1>"
            f"<p>{html.escape(apply['apply_state'])} · {html.escape(apply['apply_state_desc'])}</p>{button}")
