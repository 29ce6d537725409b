"""WeChat Pay verbs about sub-merchants rather than trades: onboarding (applyment4sub, A.13), settlement account
changes, media upload, consumer complaints (A.14), violation notification URLs (A.15) and snsapi_base OAuth (§E).

A mixin of ``WechatPayAdapter``: it uses the adapter's signed ``_call``/``_send`` and ``encryption_key``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mimetypes
import secrets
from typing import Any
from urllib.parse import quote, urlencode

from channels.adapters import wechatpay_crypto as wx
from channels.adapters.base import OnboardingResult, OnboardingState, SettlementChangeResult
from channels.adapters.base_onboarding import OnboardingApplication
from channels.adapters.errors import ChannelError, ChannelUnknown
from channels.adapters.http import channel_request, without_nul

SUBJECT_TYPES = {
    "enterprise": "SUBJECT_TYPE_ENTERPRISE", "individual": "SUBJECT_TYPE_INDIVIDUAL",
    "institution": "SUBJECT_TYPE_INSTITUTIONS", "government": "SUBJECT_TYPE_GOVERNMENT",
    "other": "SUBJECT_TYPE_OTHERS", "micro": "SUBJECT_TYPE_MICRO",
}
ID_DOC_TYPES = {
    "id_card": "IDENTIFICATION_TYPE_IDCARD", "passport": "IDENTIFICATION_TYPE_OVERSEA_PASSPORT",
    "hk_macao_permit": "IDENTIFICATION_TYPE_HONGKONG_PASSPORT", "taiwan_permit": "IDENTIFICATION_TYPE_TAIWAN_PASSPORT",
    "foreign_resident": "IDENTIFICATION_TYPE_FOREIGN_RESIDENT",
    "hk_macao_resident": "IDENTIFICATION_TYPE_HONGKONG_MACAO_RESIDENT",
    "taiwan_resident": "IDENTIFICATION_TYPE_TAIWAN_RESIDENT",
}
SALES_SCENES = {
    "store": "SALES_SCENES_STORE", "official_account": "SALES_SCENES_MP", "mini_program": "SALES_SCENES_MINI_PROGRAM",
    "app": "SALES_SCENES_APP", "web": "SALES_SCENES_WEB", "wework": "SALES_SCENES_WEWORK",
}
APPLYMENT_STATES = {  # A.13 applyment_state → OnboardingState
    "APPLYMENT_STATE_EDITTING": OnboardingState.REJECTED,  # submission error: fix and resubmit
    "APPLYMENT_STATE_AUDITING": OnboardingState.AUDITING,
    "APPLYMENT_STATE_REJECTED": OnboardingState.REJECTED,
    "APPLYMENT_STATE_TO_BE_CONFIRMED": OnboardingState.TO_BE_CONFIRMED,
    "APPLYMENT_STATE_TO_BE_SIGNED": OnboardingState.TO_BE_SIGNED,
    "APPLYMENT_STATE_SIGNING": OnboardingState.TO_BE_SIGNED,  # signed, permissions being opened: not usable yet
    "APPLYMENT_STATE_FINISHED": OnboardingState.FINISHED,
    "APPLYMENT_STATE_CANCELED": OnboardingState.CANCELED,
}
SETTLEMENT_RESULTS = {"AUDITING": "auditing", "AUDIT_SUCCESS": "succeeded", "AUDIT_FAIL": "failed"}


def applyment_body(app: OnboardingApplication, encrypt) -> dict[str, Any]:
    """Map the channel-neutral application (base_onboarding) to the applyment4sub body (A.13).

    ``encrypt(text)`` encrypts one sensitive field (A.5); the fields marked (enc) in A.13 go through it.
    Raises ChannelError(invalid_params) naming the first missing field.
    """
    def need(mapping: dict, key: str, where: str) -> Any:
        value = mapping.get(key) if isinstance(mapping, dict) else None
        if value in (None, "", []):
            raise ChannelError(f"onboarding application lacks {where}{key}", code="invalid_params")
        return value

    licence = app.get("licence") or {}
    person = app.get("legal_person") or {}
    contact = app.get("contact") or {}
    account = app.get("settlement_account") or {}
    subject_type = SUBJECT_TYPES.get(need(app, "subject_type", ""))
    if subject_type is None:
        raise ChannelError(f"unknown subject_type {app.get('subject_type')!r}", code="invalid_params")
    id_type = ID_DOC_TYPES.get(person.get("id_type") or "id_card")
    if id_type is None:
        raise ChannelError(f"unknown legal_person.id_type {person.get('id_type')!r}", code="invalid_params")

    contact_type = "LEGAL" if (contact.get("type") or "legal") == "legal" else "SUPER"
    contact_info: dict[str, Any] = {
        "contact_type": contact_type,
        "contact_name": encrypt(need(contact, "name", "contact.")),
        "mobile_phone": encrypt(need(contact, "mobile", "contact.")),
        "contact_email": encrypt(need(contact, "email", "contact.")),
    }
    if contact_type == "SUPER":
        contact_info["contact_id_doc_type"] = "IDENTIFICATION_TYPE_IDCARD"
        contact_info["contact_id_number"] = encrypt(need(contact, "id_number", "contact."))
    if contact.get("openid"):
        contact_info["openid"] = encrypt(contact["openid"])

    if id_type == "IDENTIFICATION_TYPE_IDCARD":
        identity = {"id_card_info": {
            "id_card_copy": need(person, "id_front", "legal_person."),
            "id_card_national": need(person, "id_back", "legal_person."),
            "id_card_name": encrypt(need(person, "name", "legal_person.")),
            "id_card_number": encrypt(need(person, "id_number", "legal_person.")),
            "id_card_address": encrypt(need(person, "id_address", "legal_person.")),
            "card_period_begin": need(person, "valid_from", "legal_person."),
            "card_period_end": person.get("valid_to") or "长期",
        }}
    else:
        identity = {"id_doc_info": {
            "id_doc_copy": need(person, "id_front", "legal_person."),
            "id_doc_copy_back": person.get("id_back") or "",
            "id_doc_name": encrypt(need(person, "name", "legal_person.")),
            "id_doc_number": encrypt(need(person, "id_number", "legal_person.")),
            "id_doc_address": encrypt(need(person, "id_address", "legal_person.")),
            "doc_period_begin": need(person, "valid_from", "legal_person."),
            "doc_period_end": person.get("valid_to") or "长期",
        }}
    subject_info: dict[str, Any] = {
        "subject_type": subject_type,
        "identity_info": {"id_holder_type": "LEGAL", "id_doc_type": id_type, **identity, "owner": True},
    }
    if subject_type != "SUBJECT_TYPE_MICRO":
        subject_info["business_license_info"] = {
            "license_copy": need(licence, "copy", "licence."),
            "license_number": need(licence, "number", "licence."),
            "merchant_name": need(app, "legal_name", ""),
            "legal_person": need(person, "name", "legal_person."),
            "license_address": licence.get("address") or "",
            "period_begin": licence.get("valid_from") or "",
            "period_end": licence.get("valid_to") or "长期",
        }

    scenes = app.get("scenarios") or ["store"]
    unknown = [s for s in scenes if s not in SALES_SCENES]
    if unknown:
        raise ChannelError(f"unknown scenarios {unknown}", code="invalid_params")
    sales: dict[str, Any] = {"sales_scenes_type": [SALES_SCENES[s] for s in scenes]}
    if "store" in scenes:
        store = (app.get("stores") or [{}])[0]
        sales["biz_store_info"] = {
            "biz_store_name": need(store, "name", "stores[0]."),
            "biz_address_code": need(store, "address_code", "stores[0]."),
            "biz_store_address": need(store, "address", "stores[0]."),
            "store_entrance_pic": [need(store, "entrance_pic", "stores[0].")],
            "indoor_pic": [need(store, "indoor_pic", "stores[0].")],
        }
    if "mini_program" in scenes:
        sales["mini_program_info"] = {"mini_program_sub_appid": need(app, "mini_program_appid", "")}
    if "official_account" in scenes:
        sales["mp_info"] = {"mp_sub_appid": need(app, "official_account_appid", "")}
    if "app" in scenes:
        sales["app_info"] = {"app_sub_appid": need(app, "app_appid", "")}
    if "web" in scenes:
        sales["web_info"] = {"domain": need(app, "website", "")}

    bank_type = "BANK_ACCOUNT_TYPE_CORPORATE" if account.get("type") == "corporate" else "BANK_ACCOUNT_TYPE_PERSONAL"
    bank_info = {
        "bank_account_type": bank_type,
        "account_name": encrypt(need(account, "account_name", "settlement_account.")),
        "account_bank": need(account, "bank_name", "settlement_account."),
        "bank_address_code": need(account, "bank_address_code", "settlement_account."),
        "account_number": encrypt(need(account, "account_number", "settlement_account.")),
    }
    if account.get("bank_branch_id"):
        bank_info["bank_branch_id"] = account["bank_branch_id"]
    if account.get("bank_branch"):
        bank_info["bank_name"] = account["bank_branch"]
    settlement: dict[str, Any] = {"settlement_id": need(app, "settlement_rule_id", "")}
    if app.get("qualification_type"):
        settlement["qualification_type"] = app["qualification_type"]
    return {
        "business_code": need(app, "business_code", ""),
        "contact_info": contact_info,
        "subject_info": subject_info,
        "business_info": {"merchant_shortname": need(app, "short_name", ""),
                          "service_phone": need(app, "service_phone", ""), "sales_info": sales},
        "settlement_info": settlement,
        "bank_account_info": bank_info,
    }


def onboarding_result(data: dict) -> OnboardingResult:
    state = APPLYMENT_STATES.get(data.get("applyment_state"))  # type: ignore[arg-type]
    if state is None:
        raise ChannelUnknown(f"wechatpay applyment_state {data.get('applyment_state')!r} is unknown")
    if state == OnboardingState.FINISHED and not data.get("sub_mchid"):
        # A.13: a finished applyment names its sub_mchid. One that does not is an answer we cannot act on, not a
        # usable sub-merchant: the contract would go active with nothing to trade under (design §5 rule 2).
        raise ChannelUnknown("wechatpay applyment is FINISHED but names no sub_mchid")
    details = data.get("audit_detail") if isinstance(data.get("audit_detail"), list) else []
    return OnboardingResult(
        state=state,
        application_id=str(data.get("applyment_id") or ""),
        sub_mchid=str(data.get("sub_mchid") or ""),
        sign_url=str(data.get("sign_url") or ""),
        message=str(data.get("applyment_state_msg") or ""),
        rejections=[{"field": str(d.get("field") or d.get("field_name") or ""), "reason": str(d.get("reject_reason") or "")}
                    for d in details if isinstance(d, dict)],
        raw=data,
    )


class WechatPayMerchantVerbs:
    """Sub-merchant verbs of WechatPayAdapter (see the module docstring)."""

    # ------------------------------------------------------------------ onboarding (A.13)
    def onboarding_submit(self, *, application: dict[str, Any]) -> OnboardingResult:
        serial, pem = self.encryption_key()
        body = applyment_body(application, lambda text: wx.oaep_encrypt(pem, str(text)))
        # A.5: the request names the key the sensitive fields were encrypted with.
        _, data = self._call("POST", "/v3/applyment4sub/applyment/", body=body, sensitive_serial=serial)
        applyment_id = data.get("applyment_id")
        if applyment_id in (None, ""):
            raise ChannelUnknown("wechatpay applyment answer lacks applyment_id")
        return OnboardingResult(state=OnboardingState.SUBMITTED, application_id=str(applyment_id), raw=data)

    def onboarding_query(self, *, application_id: str, business_code: str = "") -> OnboardingResult:
        if application_id:
            path = "/v3/applyment4sub/applyment/applyment_id/" + quote(str(application_id), safe="")
        else:
            path = "/v3/applyment4sub/applyment/business_code/" + quote(business_code, safe="")
        _, data = self._call("GET", path)
        return onboarding_result(data)

    def settlement_modify(self, *, sub_mchid: str, account: dict[str, Any]) -> SettlementChangeResult:
        serial, pem = self.encryption_key()
        body: dict[str, Any] = {
            "modify_mode": "MODIFY_MODE_ASYNC",
            "account_type": "ACCOUNT_TYPE_BUSINESS" if account.get("type") == "corporate" else "ACCOUNT_TYPE_PRIVATE",
            "account_bank": account.get("bank_name") or "",
            "bank_address_code": account.get("bank_address_code") or "",
            "account_number": wx.oaep_encrypt(pem, str(account.get("account_number") or "")),
        }
        if account.get("account_name"):
            body["account_name"] = wx.oaep_encrypt(pem, str(account["account_name"]))
        if account.get("bank_branch"):
            body["bank_name"] = account["bank_branch"]
        if account.get("bank_branch_id"):
            body["bank_branch_id"] = account["bank_branch_id"]
        path = f"/v3/apply4sub/sub_merchants/{quote(sub_mchid, safe='')}/modify-settlement"
        _, data = self._call("POST", path, body=body, sensitive_serial=serial)
        return SettlementChangeResult(state="auditing", application_no=str(data.get("application_no") or ""),
                                      raw=data)

    def settlement_modify_query(self, *, sub_mchid: str, application_no: str) -> SettlementChangeResult:
        path = (f"/v3/apply4sub/sub_merchants/{quote(sub_mchid, safe='')}/application/"
                f"{quote(application_no, safe='')}")
        _, data = self._call("GET", path)
        state = SETTLEMENT_RESULTS.get(data.get("verify_result"))  # type: ignore[arg-type]
        if state is None:
            raise ChannelUnknown(f"wechatpay verify_result {data.get('verify_result')!r} is unknown")
        return SettlementChangeResult(state=state, application_no=application_no,
                                      message=str(data.get("verify_fail_reason") or ""), raw=data)

    def settlement_query(self, *, sub_mchid: str) -> dict[str, Any]:
        """The sub-merchant's current settlement account (number masked by WeChat)."""
        _, data = self._call("GET", f"/v3/apply4sub/sub_merchants/{quote(sub_mchid, safe='')}/settlement")
        return data

    # A.13 media upload: "媒体图片只支持JPG、BMP、PNG格式，文件大小不能超过2M", and the meta filename must end in one of
    # them (https://pay.weixin.qq.com/docs/partner/apis/contracted-merchant-application/upload.html, 特约商户进件).
    # "2M" taken as 2 MiB: the page gives no byte count. (The 电商收付通 page of the same path says 5M; not ours.)
    accepted_documents = dict.fromkeys(("image/jpeg", "image/png", "image/bmp"), 2 * 1024 * 1024)

    def upload_image(self, *, filename: str, content: bytes) -> str:
        """Upload a picture for onboarding (A.13) and return its media_id. The signature covers ``meta`` (A.2)."""
        meta = json.dumps({"filename": filename, "sha256": hashlib.sha256(content).hexdigest()},
                          ensure_ascii=False, separators=(",", ":"))
        boundary = "aggpay" + secrets.token_hex(12)
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n'
                f'{meta}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quote(filename)}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        resp = self._send("POST", self._url("/v3/merchant/media/upload"), body=body, sign_body=meta.encode("utf-8"),
                          content_type=f"multipart/form-data; boundary={boundary}")
        _, data = self._interpret(resp)
        media_id = data.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise ChannelUnknown("wechatpay upload answer lacks media_id")
        return media_id

    # ------------------------------------------------------------------ complaints (A.14) and violations (A.15)
    def complaints_list(self, *, begin: dt.date, end: dt.date, sub_mchid: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            query = {"limit": 50, "offset": offset, "begin_date": begin.isoformat(), "end_date": end.isoformat(),
                     "complainted_mchid": sub_mchid}
            _, data = self._call("GET", "/v3/merchant-service/complaints-v2", query=query)
            page = [item for item in (data.get("data") or []) if isinstance(item, dict)]
            for item in page:
                if item.get("payer_phone"):  # A.5: encrypted with OUR public key
                    try:
                        item = {**item, "payer_phone": wx.oaep_decrypt(self.config.private_key_pem, item["payer_phone"])}
                    except wx.CryptoError as exc:
                        raise ChannelUnknown(f"complaint payer_phone does not decrypt: {exc}") from None
                items.append(item)
            offset += len(page)
            total = data.get("total_count")
            if not page or not isinstance(total, int) or offset >= total:
                return items

    def complaint_respond(self, *, complaint_id: str, sub_mchid: str, content: str) -> None:
        path = f"/v3/merchant-service/complaints-v2/{quote(complaint_id, safe='')}/response"
        self._call("POST", path, body={"complainted_mchid": sub_mchid, "response_content": content[:200]})

    def complaint_complete(self, *, complaint_id: str, sub_mchid: str) -> None:
        path = f"/v3/merchant-service/complaints-v2/{quote(complaint_id, safe='')}/complete"
        self._call("POST", path, body={"complainted_mchid": sub_mchid})

    def complaint_notify_url_set(self, *, url: str) -> None:
        """One URL receives COMPLAINT.* callbacks for every sub-merchant of the service provider (A.14)."""
        self._call("POST", "/v3/merchant-service/complaint-notifications", body={"url": url})

    def violation_notify_url_set(self, *, url: str) -> None:
        self._call("POST", "/v3/merchant-risk-manage/violation-notifications", body={"notify_url": url})

    # ------------------------------------------------------------------ one-code-pay OAuth (§E)
    def oauth_authorize_url(self, *, redirect_uri: str, state: str) -> str:
        query = urlencode({"appid": self.config.sp_appid, "redirect_uri": redirect_uri, "response_type": "code",
                           "scope": "snsapi_base", "state": state})
        return f"{self.config.oauth_authorize_url}?{query}#wechat_redirect"

    def oauth_payer_id(self, *, code: str) -> str:
        """code → openid of the payer under sp_appid (use it as ``payer.sp_openid``)."""
        cfg = self.config
        query = urlencode({"appid": cfg.sp_appid, "secret": cfg.sp_appsecret, "code": code,
                           "grant_type": "authorization_code"})
        resp = channel_request("GET", f"{cfg.oauth_token_url}?{query}", kind=self.kind,
                               connect_timeout=self.connect_timeout, read_timeout=self.read_timeout)
        if resp.status >= 500:
            raise ChannelUnknown(f"wechat oauth answered HTTP {resp.status}")
        try:
            data = json.loads(resp.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ChannelUnknown("wechat oauth answer is not JSON") from None
        if not isinstance(data, dict):
            raise ChannelUnknown("wechat oauth answer is not a JSON object")
        data = without_nul(data)
        if data.get("errcode"):
            # e.g. 40029 invalid code, 40163 code been used: the payer must authorise again.
            raise ChannelError(f"wechat oauth {data.get('errcode')}: {data.get('errmsg')}", code="invalid_params",
                               channel_code=str(data.get("errcode")), channel_message=str(data.get("errmsg") or ""))
        openid = data.get("openid")
        if not isinstance(openid, str) or not openid:
            raise ChannelUnknown("wechat oauth answer lacks openid")
        return openid
