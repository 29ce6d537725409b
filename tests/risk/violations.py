"""WeChat Pay merchant violation notices (channel-protocols.md A.15) as WeChat sends them: the A.4 envelope with its
resource encrypted under the account's APIv3 key and signed with a platform key the account trusts. The account's
config is real keys (tests.factories.channel_config); only the platform key is one we hold here, so the notices are
verified by the adapter exactly as the simulator's are."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from decimal import Decimal

from channels.models import ChannelProduct
from channels.simulators import wechatpay_crypto as sim_crypto
from merchants.models import Contract, ContractRate
from tests.factories import ChannelAccountFactory, channel_config

PLATFORM_KEY = sim_crypto.new_key_pem()
PLATFORM_KEY_ID = "PUB_KEY_ID_0119000001002026112700000000000042"
APIV3_KEY = "c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8"
PUNISHED_AT = "2026-11-27T09:30:00+08:00"
TEA_SUB = "1900000109"  # the Tea House's WeChat sub-merchant id in these tests


def wechat_account(code: str = "wx-risk"):
    return ChannelAccountFactory(code=code, kind="wechatpay", name=f"WeChat Pay {code}", config=channel_config(
        "wechatpay", apiv3_key=APIV3_KEY, wechatpay_public_key_pem=sim_crypto.public_pem(PLATFORM_KEY),
        wechatpay_public_key_id=PLATFORM_KEY_ID))


def contract_on(account, merchant, *, sub_mchid: str, state: str = "active", products=("wechat.native",),
                cost_rate: str = "0.0020"):
    """An active contract of ``merchant`` on ``account`` serving ``products`` (the fixtures' way: a row, as the
    trades conftest makes them)."""
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state=state,
                                       business_code=f"B{account.code}-{merchant.pk}", sub_mchid=sub_mchid)
    for product in products:
        ChannelProduct.objects.get_or_create(account=account, product=product,
                                             defaults={"cost_rate": Decimal(cost_rate), "max_amount": 5_000_000})
        ContractRate.objects.create(contract=contract, product=product, rate=Decimal("0.0038"))
    return contract


def resource(*, record_id: str, sub_mchid: str, **fields) -> dict:
    return {"sub_mchid": sub_mchid, "company_name": "杭州茶馆有限公司", "record_id": record_id,
            "punish_plan": "关闭支付权限", "punish_time": PUNISHED_AT, "punish_description": "商户存在违规交易",
            "risk_type": "SUSPECTED_FRAUD", "risk_description": "涉嫌欺诈", **fields}


def envelope(data: dict, *, event: str = "PUNISH", event_id: str | None = None) -> bytes:
    plaintext = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return json.dumps({
        "id": event_id or "EV-" + uuid.uuid4().hex[:24].upper(), "create_time": PUNISHED_AT,
        "resource_type": "encrypt-resource", "event_type": f"VIOLATION.{event}", "summary": "商户违规处置通知",
        "resource": {"original_type": "violation", **sim_crypto.aes_encrypt(APIV3_KEY, plaintext, "violation")},
    }, ensure_ascii=False).encode("utf-8")


def signed_headers(body: bytes) -> dict:
    """A.3/A.4: the platform key signs ``timestamp\\nnonce\\nbody\\n``."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": PLATFORM_KEY_ID,
            "Wechatpay-Signature": sim_crypto.sign(PLATFORM_KEY, f"{timestamp}\n{nonce}\n".encode() + body + b"\n"),
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}


def post_violation(client, account, *, record_id: str, sub_mchid: str, event: str = "PUNISH",
                   event_id: str | None = None, **fields):
    """POST one signed violation notice to ``account``'s callback URL through Django's test client."""
    body = envelope(resource(record_id=record_id, sub_mchid=sub_mchid, **fields), event=event, event_id=event_id)
    return client.post(f"/callbacks/{account.code}/", data=body, content_type="application/json",
                       headers=signed_headers(body))
