"""直付通 (zft) onboarding in the Alipay simulator (channel-protocols.md B.7).

``ant.merchant.expand.indirect.zft.create`` / ``.simplecreate`` / ``.modify`` open an order in ``031`` (审核中);
review is driven by ``POST /alipay/_control/applications/<order_id>`` {"action": "approve" | "reject" |
"ask_sign" | "finish", "reasons": [...]} or automatically after the app setting
``{"auto_review": {"delay_seconds": 2, "outcome": "approve" | "reject" | "ask_sign", "reasons": [...]}}``.
``approve``/``finish`` end in ``99`` with an smid (usable in ``sub_merchant.merchant_id``), ``reject`` in ``-1``
with the reasons; ``ask_sign`` keeps ``031`` with ``sub_confirm=NOT_CONFIRM`` and a sign QR/short link. Zft has
no account-verification step, so ``ask_confirm`` is refused. End states send the 蚂蚁消息
``ant.merchant.expand.indirect.zft.passed`` / ``.rejected`` (B.4) to the app's registered ``message_url``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from channels.simulators.alipay_gateway import AlipayFault, Call, ok
from channels.simulators.alipay_trades import digits, fmt, now_bj

REQUIRED = ("external_id", "name", "alias_name", "merchant_type", "mcc", "cert_no", "cert_type", "service",
            "contact_infos")
ACTIONS = ("approve", "reject", "ask_sign", "finish")
# ant.merchant.expand.indirect.image.upload (https://opendocs.alipay.com/solution/
# d0814d9c_ant.merchant.expand.indirect.image.upload): image_type "bmp、jpg、jpeg、png、gif"; image_content
# "最大为10M", else EXCEED_MAX_SIZE; content it cannot read as a picture is INVALID_IMAGE_FORMAT. "10M" read as 10 MiB.
IMAGE_TYPES = ("jpg", "jpeg", "png", "bmp", "gif")
IMAGE_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"BM", "bmp"), (b"GIF87a", "gif"),
               (b"GIF89a", "gif"))
IMAGE_MAX_BYTES = 10 * 1024 * 1024


class ZftMixin:
    ORDERS = "alipay:zft_orders"
    IMAGES = "alipay:images"

    def m_image_upload(self, call: Call) -> dict:
        content = call.files.get("image_content")
        if not content:
            raise AlipayFault("isv.missing-parameter", "缺少image_content", code="40001")
        image_type = call.params.get("image_type", "").lower()
        if image_type not in IMAGE_TYPES:
            raise AlipayFault("isv.invalid-parameter", "image_type不支持", code="40002")
        # Alipay reads the picture itself: it refuses "非常用的图片格式，如CMYK" as INVALID_IMAGE_FORMAT and anything
        # over 10M as EXCEED_MAX_SIZE (the page cited above IMAGE_TYPES). So a PDF declared ``jpg`` is refused.
        if len(content) > IMAGE_MAX_BYTES:
            raise AlipayFault("EXCEED_MAX_SIZE", "超过单个图片允许的最大值（10M）")
        kind = next((name for magic, name in IMAGE_MAGIC if content.startswith(magic)), None)
        if kind is None:
            raise AlipayFault("INVALID_IMAGE_FORMAT", "文件格式不支持")
        image_id = hashlib.sha256(content).hexdigest()[:32]
        # What was declared and what the bytes are, for tests of the caller: the page does not say that a declared
        # type other than the content's is refused, so it is not.
        self.store.put(self.IMAGES, image_id, {"app_id": call.app["app_id"], "size": len(content),
                                               "image_type": image_type, "content_kind": kind})
        return ok(image_id=image_id)

    def m_zft_create(self, call: Call) -> dict:
        biz = call.biz
        missing = [name for name in REQUIRED if biz.get(name) in (None, "", [], {})]
        if biz.get("merchant_type") != "06" and not biz.get("legal_name"):
            missing.append("legal_name")
        if not biz.get("biz_cards") and not biz.get("alipay_logon_id"):
            missing.append("biz_cards")
        if missing:
            raise AlipayFault("isv.invalid-parameter", f"参数有误：缺少{','.join(missing)}", code="40002")
        for order_id, order in self.store.items(self.ORDERS):
            same = order["app_id"] == call.app["app_id"] and order["external_id"] == biz["external_id"]
            if same and order["apply_type"] == "ZHIFUTONG_CREATE" and order["status"] != "-1":
                return ok(order_id=order_id)  # a repeat while under review or done: the same order
        return ok(order_id=self._open_order(call, "ZHIFUTONG_CREATE", biz, smid=""))

    def m_zft_modify(self, call: Call) -> dict:
        smid = str(call.biz.get("smid", ""))
        merchant = self.store.get(self.MERCHANTS, smid)
        if merchant is None or merchant["app_id"] != call.app["app_id"]:
            raise AlipayFault("ISV.SMID_NOT_EXIST", "二级商户不存在")
        if not call.biz.get("biz_cards") and not call.biz.get("alipay_logon_id"):
            raise AlipayFault("isv.invalid-parameter", "参数有误：缺少biz_cards", code="40002")
        external_id = merchant.get("external_id") or smid
        return ok(order_id=self._open_order(call, "ZHIFUTONG_MODIFY", {**call.biz, "external_id": external_id},
                                            smid=smid))

    def m_zft_query(self, call: Call) -> dict:
        order_id, external_id = str(call.biz.get("order_id", "")), str(call.biz.get("external_id", ""))
        if not order_id and not external_id:
            raise AlipayFault("isv.invalid-parameter", "order_id和external_id不能同时为空", code="40002")
        orders = []
        for key, order in self.store.items(self.ORDERS):
            if order["app_id"] != call.app["app_id"]:
                continue
            if (order_id and key == order_id) or (not order_id and order["external_id"] == external_id):
                orders.append(self._public_order(self._auto_review(key, order)))
        if not orders:
            raise AlipayFault("ISV.ORDER_NOT_EXIST", "申请单不存在")
        return ok(orders=orders)

    # --- review ---------------------------------------------------------------------------------------
    def _open_order(self, call: Call, apply_type: str, biz: dict, *, smid: str) -> str:
        # Increasing like Alipay's, so "the latest order" is well defined even within one second.
        order_id = now_bj().strftime("%Y%m%d") + f"{time.time_ns() // 1000 % 10**14:014d}"
        order = {
            "order_id": order_id, "app_id": call.app["app_id"], "external_id": str(biz["external_id"]),
            "merchant_name": str(biz.get("name", "")), "apply_type": apply_type, "status": "031",
            "fk_audit": "CREATE", "kz_audit": "CREATE", "sub_confirm": "CREATE", "apply_time": fmt(now_bj()),
            "smid": smid, "reason": "", "card_alias_no": "", "sub_sign_qr_code_url": "",
            "sub_sign_short_chain_url": "", "biz": biz, "review_at": None,
        }
        review = call.app["settings"].get("auto_review")
        if review:
            order["review_at"] = time.time() + float(review.get("delay_seconds", 2))
            self._schedule(float(review.get("delay_seconds", 2)))
        self.store.put(self.ORDERS, order_id, order)
        return order_id

    def _auto_review(self, order_id: str, order: dict) -> dict:
        if order.get("review_at") and order["review_at"] <= time.time() and order["status"] == "031":
            review = self._app(order["app_id"])["settings"].get("auto_review") or {}
            order["review_at"] = None
            self.store.put(self.ORDERS, order_id, order)
            order = self.review(order_id, review.get("outcome", "approve"), review.get("reasons") or [])
        return order

    def review_due(self) -> None:
        for order_id, order in self.store.items(self.ORDERS):
            self._auto_review(order_id, order)

    def review(self, order_id: str, action: str, reasons: list[Any]) -> dict:
        """Apply a reviewer's decision (control API or auto review)."""
        order = self.store.get(self.ORDERS, order_id)
        if order is None:
            raise KeyError(order_id)
        if action not in ACTIONS:
            raise ValueError(f"直付通 has no {action!r} step; use one of {', '.join(ACTIONS)}")
        if order["status"] != "031":
            raise ValueError(f"order {order_id} is already {order['status']}")
        base_url = self._app(order["app_id"]).get("sim_base_url", "")
        if action == "reject":
            text = "; ".join(r if isinstance(r, str) else f"{r.get('field', '')}: {r.get('reason', '')}"
                             for r in reasons) or "资料不符合要求"
            order.update(status="-1", fk_audit="REJECT", reason=text)
        elif action == "ask_sign":
            order.update(fk_audit="PASS", kz_audit="PASS", sub_confirm="NOT_CONFIRM",
                         sub_sign_qr_code_url=f"{base_url}/_payer/sign?order_id={order_id}",
                         sub_sign_short_chain_url=f"{base_url}/_payer/sign?order_id={order_id}&short=1")
        else:  # approve / finish
            order.update(status="99", fk_audit="PASS", kz_audit="PASS",
                         sub_confirm="FINISH" if order["sub_confirm"] == "NOT_CONFIRM" else "SKIP")
            self._finish_order(order)
        self.store.put(self.ORDERS, order_id, order)
        if order["status"] in ("99", "-1") and order["apply_type"] == "ZHIFUTONG_CREATE":
            self._zft_message(order)
        return order

    def _finish_order(self, order: dict) -> None:
        cards = order["biz"].get("biz_cards") or []
        order["card_alias_no"] = digits(json.dumps(cards, sort_keys=True), 16) if cards else ""
        if order["apply_type"] == "ZHIFUTONG_MODIFY":
            merchant = self.store.get(self.MERCHANTS, order["smid"])
            merchant["biz_cards"] = cards
            self.store.put(self.MERCHANTS, order["smid"], merchant)
            return
        smid = "2088" + digits(order["order_id"] + "smid", 12)
        order["smid"] = smid
        self.store.put(self.MERCHANTS, smid, {
            "smid": smid, "app_id": order["app_id"], "name": order["merchant_name"], "kind": "zft",
            "app_auth_token": "", "auth_app_id": "", "external_id": order["external_id"], "biz_cards": cards,
        })

    def _zft_message(self, order: dict) -> None:
        app = self._app(order["app_id"])
        if not app.get("message_url"):
            return
        passed = order["status"] == "99"
        content = {"order_id": order["order_id"], "external_id": order["external_id"]}
        if passed:
            content.update(smid=order["smid"], card_alias_no=order["card_alias_no"], memo="审核通过")
        else:
            content.update(reason=order["reason"])
        params = {
            "msg_method": "ant.merchant.expand.indirect.zft." + ("passed" if passed else "rejected"),
            "biz_content": json.dumps(content, ensure_ascii=False, separators=(",", ":")),
            "notify_id": secrets.token_hex(16), "utc_timestamp": str(int(time.time() * 1000)),
            "app_id": order["app_id"], "version": "1.1", "charset": "utf-8", "sign_type": "RSA2",
        }
        self.send_signed_notify(app, app["message_url"], params, thread=order["order_id"])

    @staticmethod
    def _public_order(order: dict) -> dict:
        return {k: v for k, v in order.items() if k not in ("biz", "app_id", "review_at") and v not in ("", None)}
