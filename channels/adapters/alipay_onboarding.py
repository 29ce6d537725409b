"""直付通 (zft) onboarding: the channel-neutral application → Alipay's fields, and review answers → ours (B.7).

The neutral application is ``channels.adapters.base_onboarding.OnboardingApplication``. Alipay needs a few things
WeChat does not: ``mcc`` (Alipay's MCC, required) and optionally ``alipay_logon_id`` (the merchant's Alipay account
to bind). Pictures are image ids from ``AlipayAdapter.upload_image``.

Review states of a zft order (B.7): ``031`` 审核中, ``99`` 已完结 (smid usable), ``-1`` 失败; while ``031`` the
secondary merchant may still have to confirm/sign (``sub_confirm`` NOT_CONFIRM, with a sign QR/short link).
"""

from __future__ import annotations

from typing import Any

from channels.adapters.base import OnboardingResult, OnboardingState, SettlementChangeResult
from channels.adapters.errors import ChannelError, ChannelUnknown

AUDITING = OnboardingState.AUDITING

# subject type → (merchant_type, cert_type) per B.7's list.
MERCHANT_TYPES = {
    "enterprise": ("01", "201"),
    "institution": ("02", "218"),
    "other": ("03", "204"),  # 民办非企业 and similar social organisations
    "government": ("05", "219"),
    "micro": ("06", "100"),  # 小微: a person, certified by their ID card
    "individual": ("07", "201"),  # 个体工商户
}
# ID type → legal_cert_type. Only the ID card code (100) is confirmed by B.7; the others are [UNVERIFIED].
LEGAL_CERT_TYPES = {"id_card": "100", "passport": "102", "hk_macao_permit": "105", "taiwan_permit": "106"}
SERVICES = {
    "alipay.qr": "当面付", "alipay.barcode": "当面付", "alipay.jsapi": "jsapi支付", "alipay.app": "app支付",
    "alipay.wap": "wap支付",
}


def _need(value: Any, name: str) -> Any:
    if value in (None, "", [], {}):
        raise ChannelError(f"the application lacks {name}, which Alipay 直付通 requires", code="invalid_params")
    return value


def settle_card(account: dict[str, Any]) -> dict[str, str]:
    """Neutral SettlementAccount → zft SettleCardInfo (B.7)."""
    return {
        "account_no": _need(account.get("account_number"), "settlement_account.account_number"),
        "account_holder_name": _need(account.get("account_name"), "settlement_account.account_name"),
        "account_type": "DC",  # debit card / settlement account
        "usage_type": "01" if account.get("type") == "corporate" else "02",  # 01 对公, 02 对私
        "account_inst_name": account.get("bank_name", ""),
        "account_branch_name": account.get("bank_branch", ""),
        "bank_code": account.get("bank_branch_id", ""),
        "account_inst_province": account.get("bank_address_code", "")[:2],
    }


def create_biz(application: dict[str, Any]) -> dict[str, Any]:
    subject = _need(application.get("subject_type"), "subject_type")
    if subject not in MERCHANT_TYPES:
        raise ChannelError(f"subject_type {subject!r} has no Alipay merchant_type", code="invalid_params")
    merchant_type, cert_type = MERCHANT_TYPES[subject]
    licence = application.get("licence") or {}
    person = application.get("legal_person") or {}
    contact = application.get("contact") or {}
    stores = application.get("stores") or []
    services = sorted({SERVICES[p] for p in application.get("products", []) if p in SERVICES})
    biz: dict[str, Any] = {
        "external_id": _need(application.get("business_code"), "business_code"),
        "name": _need(application.get("legal_name"), "legal_name"),
        "alias_name": _need(application.get("short_name"), "short_name"),
        "merchant_type": merchant_type, "mcc": _need(application.get("mcc"), "mcc"),
        "service": _need(services, "an Alipay product"),
        "legal_name": _need(person.get("name"), "legal_person.name"),
        "legal_cert_no": _need(person.get("id_number"), "legal_person.id_number"),
        "legal_cert_type": LEGAL_CERT_TYPES.get(person.get("id_type", "id_card"), "100"),
        "contact_infos": [{k: v for k, v in {
            "name": _need(contact.get("name"), "contact.name"), "mobile": _need(contact.get("mobile"), "contact.mobile"),
            "email": contact.get("email", ""), "id_card_no": contact.get("id_number", ""),
        }.items() if v}],
        "service_phone": application.get("service_phone", ""),
    }
    if subject == "micro":
        biz.update(cert_type=cert_type, cert_no=biz["legal_cert_no"], cert_name=biz["legal_name"],
                   cert_image=person.get("id_front", ""), cert_image_back=person.get("id_back", ""))
    else:
        biz.update(cert_type=cert_type, cert_no=_need(licence.get("number"), "licence.number"),
                   cert_name=biz["name"], cert_image=licence.get("copy", ""))
    biz["legal_cert_front_image"] = person.get("id_front", "")
    biz["legal_cert_back_image"] = person.get("id_back", "")
    if application.get("settlement_account"):
        card = settle_card(application["settlement_account"])
        biz["biz_cards"] = [card]
        biz["default_settle_rule"] = {"default_settle_type": "bankCard", "default_settle_target": card["account_no"]}
    elif application.get("alipay_logon_id"):
        biz["alipay_logon_id"] = application["alipay_logon_id"]
        biz["default_settle_rule"] = {"default_settle_type": "alipayAccount",
                                      "default_settle_target": application["alipay_logon_id"]}
    else:
        _need(None, "settlement_account (or alipay_logon_id)")
    if application.get("alipay_logon_id"):
        biz["binding_alipay_logon_id"] = application["alipay_logon_id"]
    if stores:
        first = stores[0]
        code = str(first.get("address_code", ""))
        biz["business_address"] = {"province_code": code[:2] + "0000", "city_code": code[:4] + "00",
                                   "district_code": code, "address": first.get("address", "")}
        biz["out_door_images"] = [s["entrance_pic"] for s in stores if s.get("entrance_pic")]
        biz["in_door_images"] = [s["indoor_pic"] for s in stores if s.get("indoor_pic")]
    if application.get("website"):
        biz["sites"] = [{"site_type": "02", "site_url": application["website"]}]  # 02 = website [UNVERIFIED]
    return {k: v for k, v in biz.items() if v not in ("", [], None)}


def modify_biz(sub_mchid: str, account: dict[str, Any]) -> dict[str, Any]:
    card = settle_card(account)
    return {"smid": sub_mchid, "biz_cards": [card],
            "default_settle_rule": {"default_settle_type": "bankCard", "default_settle_target": card["account_no"]}}


def _order(inner: dict[str, Any], order_id: str) -> dict[str, Any]:
    orders = inner.get("orders")
    if not isinstance(orders, list) or not orders:
        raise ChannelError("Alipay knows no such 直付通 order", code="order_not_found")
    for order in orders:
        if isinstance(order, dict) and order_id and str(order.get("order_id")) == order_id:
            return order
    if order_id:
        raise ChannelUnknown(f"Alipay's answer does not list order {order_id}")
    candidates = [o for o in orders if isinstance(o, dict)]
    # The latest resubmission; order ids increase, so they break ties within one second.
    return max(candidates, key=lambda o: (str(o.get("apply_time", "")), str(o.get("order_id", ""))))


def onboarding_result(inner: dict[str, Any], *, order_id: str) -> OnboardingResult:
    order = _order(inner, order_id)
    status = str(order.get("status", ""))
    reason = str(order.get("reason") or "")
    result = OnboardingResult(state=AUDITING, application_id=str(order.get("order_id", order_id)),
                              message=reason, raw=order)
    if status == "99":
        if not order.get("smid"):
            # B.7: status 99 = 已完结, the smid usable. Without the smid there is nothing to trade under: an
            # answer we cannot act on, not an activation (design §5 rule 2).
            raise ChannelUnknown("Alipay's 直付通 order is finished (99) but names no smid")
        result.state, result.sub_mchid = OnboardingState.FINISHED, str(order["smid"])
    elif status == "-1":
        result.state = OnboardingState.REJECTED
        result.rejections = [{"field": "", "reason": reason or "rejected"}]
    elif status == "031" and order.get("sub_confirm") == "NOT_CONFIRM":
        # The secondary merchant must confirm in Alipay (scan the QR / open the short link) (B.7).
        result.state = OnboardingState.TO_BE_SIGNED
        result.sign_url = str(order.get("sub_sign_short_chain_url") or order.get("sub_sign_qr_code_url") or "")
    elif status != "031":
        raise ChannelUnknown(f"unknown 直付通 order status {status!r}")
    return result


def settlement_result(inner: dict[str, Any], *, order_id: str) -> SettlementChangeResult:
    order = _order(inner, order_id)
    status = str(order.get("status", ""))
    state = {"99": "succeeded", "-1": "failed", "031": "auditing"}.get(status)
    if state is None:
        raise ChannelUnknown(f"unknown 直付通 order status {status!r}")
    return SettlementChangeResult(state=state, application_no=str(order.get("order_id", order_id)),
                                  message=str(order.get("reason") or ""), raw=order)
