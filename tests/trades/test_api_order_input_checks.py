"""What a unified order and a refund take, checked as the contract words it (merchant-api.md "Orders"; docs/api.md
"Errors": bad input is `400 invalid_request` naming the field, nothing written):

- `metadata` "≤ 2 KB" is the object as the merchant wrote it, compactly: not json.dumps's default form, whose
  `", "` and `": "` counted spaces never sent (1,871 compact bytes were refused as more than 2 KB);
- text that reaches the channel and the staff pages carries no control or bidirectional formatting characters: a
  subject ending "…\\u202etxt.exe" was forwarded and shown as "…exe.txt";
- `payer` carries the one key the product pays by: a second wallet's id beside it was dropped silently (201), and an
  unknown key was named two ways depending on its value.
"""

from __future__ import annotations

import json

import pytest

from tests.trades.test_api_audit import _create, _refused
from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")

VALID = {"out_trade_no": "INP00001", "amount": 100, "product": "wechat.native", "subject": "tea"}
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def _metadata_of_compact_size(size: int) -> dict:
    """Metadata whose compact UTF-8 JSON is exactly ``size`` bytes: 40 keys, so the default form would count 80
    spaces more, with Chinese text (3 bytes a character in UTF-8)."""
    metadata = {f"k{i:02d}": "龙井" * 5 for i in range(40)}
    compact = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    metadata["pad"] = "x" * (size - compact - len(',"pad":""'))
    assert len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode()) == size
    return metadata


def test_metadata_of_exactly_2_kb_written_compactly_is_taken_and_echoed(shop, signed_api):
    metadata = _metadata_of_compact_size(2048)
    assert len(json.dumps(metadata, ensure_ascii=False).encode()) > 2048  # what was measured before
    response = _create(signed_api(shop.app), json.dumps({**VALID, "metadata": metadata}).encode())
    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == metadata


def test_metadata_one_byte_over_2_kb_is_refused_naming_it(shop, signed_api):
    body = json.dumps({**VALID, "metadata": _metadata_of_compact_size(2049)}).encode()
    error = _refused(_create(signed_api(shop.app), body), "metadata", app=shop.app)
    assert "2 KB" in error["message"]
    assert not Order.objects.filter(merchant=shop.merchant).exists()


HIDDEN = [("right-to-left override", "invoice\u202etxt.exe"), ("left-to-right isolate", "tea\u2066x"),
          ("pop directional isolate", "tea\u2069"), ("right-to-left mark", "tea\u200f"),
          ("a C0 control", "tea\x07"), ("a newline", "Longjing\ntea"), ("DEL", "tea\x7f"), ("a C1 control", "tea\x85"),
          ("a line separator", "tea\u2028")]


@pytest.mark.parametrize("field", ["subject", "description", "store_id", "terminal_id"])
@pytest.mark.parametrize("text", [text for _, text in HIDDEN], ids=[name for name, _ in HIDDEN])
def test_order_text_with_a_control_or_bidi_character_is_refused_naming_the_field(shop, signed_api, field, text):
    error = _refused(_create(signed_api(shop.app), json.dumps({**VALID, field: text}).encode()), field, app=shop.app)
    assert "control or bidirectional" in error["message"]
    assert not Order.objects.filter(merchant=shop.merchant).exists()


@pytest.mark.parametrize(("product", "payer", "param"), [
    ("wechat.jsapi", {"openid": OPENID + "\u202e"}, "payer.openid"),
    ("alipay.jsapi", {"buyer_id": "2088102146225135\n"}, "payer.buyer_id"),
    ("unionpay.qr", {"user_id": "up-user\u20660001"}, "payer.user_id"),
])
def test_a_payer_id_with_a_control_or_bidi_character_is_refused_naming_it(shop, signed_api, product, payer, param):
    body = json.dumps({**VALID, "product": product, "payer": payer}).encode()
    _refused(_create(signed_api(shop.app), body), param, app=shop.app)
    assert not Order.objects.filter(merchant=shop.merchant).exists()


@pytest.mark.parametrize("field", ["notify_url", "return_url"])
def test_a_url_with_a_bidi_character_is_refused_naming_it(shop, signed_api, field):
    body = json.dumps({**VALID, field: "https://shop.example.com/done\u202egpj.exe"}).encode()
    _refused(_create(signed_api(shop.app), body), field, app=shop.app)


def test_text_in_any_script_with_emoji_and_joiners_is_still_taken(shop, signed_api):
    subject = "龙井 50 g · Thé vert · شاي 🍵 👨\u200d👩\u200d👧"
    response = _create(signed_api(shop.app), json.dumps({**VALID, "subject": subject,
                                                          "description": "明前\u200c茶"}).encode())
    assert response.status_code == 201, response.content
    assert response.json()["subject"] == subject


def test_a_refund_reason_with_a_bidi_override_is_refused_naming_it(shop, signed_api):
    api = signed_api(shop.app)
    assert _create(api, json.dumps(VALID).encode()).status_code == 201
    response = api.request("POST", f"/api/v1/orders/{VALID['out_trade_no']}/refunds", body=json.dumps(
        {"out_refund_no": "R1", "amount": 1, "reason": "damaged \u202eGNIPPIHS"}).encode())
    error = _refused(response, "reason", app=shop.app)
    assert "U+202E" in error["message"]
    assert not Refund.objects.exists()


@pytest.mark.parametrize(("product", "payer", "param"), [
    ("wechat.jsapi", {"openid": OPENID, "buyer_id": "2088102146225135"}, "payer.buyer_id"),
    ("wechat.mini", {"openid": OPENID, "user_id": "up-user-0001"}, "payer.user_id"),
    ("alipay.jsapi", {"buyer_id": "2088102146225135", "openid": OPENID}, "payer.openid"),
    ("unionpay.qr", {"user_id": "up-user-0001", "openid": OPENID}, "payer.openid"),
], ids=["wechat.jsapi", "wechat.mini", "alipay.jsapi", "unionpay.qr"])
def test_a_payer_key_of_another_wallet_beside_the_products_own_is_refused_naming_it(shop, signed_api, product,
                                                                                      payer, param):
    body = json.dumps({**VALID, "product": product, "payer": payer}).encode()
    error = _refused(_create(signed_api(shop.app), body), param, app=shop.app)
    assert product in error["message"]
    assert not Order.objects.filter(merchant=shop.merchant).exists()


@pytest.mark.parametrize("payer", [{"foo": "bar"}, {"openid": OPENID, "foo": 1}, {"foo": None},
                                   {"foo": {"a": 1}}], ids=["text", "number-beside-openid", "null", "object"])
def test_an_unknown_payer_key_is_named_the_same_way_whatever_its_value(shop, signed_api, payer):
    body = json.dumps({**VALID, "product": "wechat.jsapi", "payer": payer}).encode()
    error = _refused(_create(signed_api(shop.app), body), "payer.foo", app=shop.app)
    assert error["message"] == ("payer.foo: unknown key: payer takes openid (WeChat), buyer_id (Alipay) or user_id "
                                "(UnionPay)")
