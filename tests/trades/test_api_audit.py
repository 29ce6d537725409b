"""Hostile bodies and headers on the Orders and Refunds endpoints (issue 5 "Bad input"; merchant-api.md "Errors":
a missing or malformed field is ``400 invalid_request`` naming it): JSON that ``json.loads`` takes but that has no
one meaning, or that PostgreSQL cannot store, is refused naming the field — never a 5xx, never a row written —
and every answer to a known app is signed, whatever its Accept header or query.
"""

from __future__ import annotations

import json

import pytest

from aggpay.api import signing
from aggpay.api.parsers import MAX_DEPTH
from trades.models import Order, Refund

pytestmark = pytest.mark.usefixtures("quiet_channels")

ORDER = '"out_trade_no":"AUD00001","product":"wechat.native","subject":"tea"'


def _create(api, body: bytes):
    return api.request("POST", "/api/v1/orders", body=body)


def _refused(response, param, *, app) -> dict:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param), error
    assert signing.verify_response(response.headers, response.content, secret=app.secret)
    return error


HOSTILE_ORDERS = [
    # the same name twice: json.loads keeps the last, a merchant's logging or gateway may have read the first
    ("amount twice", '{' + ORDER + ',"amount":100,"amount":100000}', "amount"),
    ("a metadata key twice", '{' + ORDER + ',"amount":100,"metadata":{"table":"7","table":"8"}}', "metadata.table"),
    # lone surrogates: no Unicode character, not UTF-8 — stored or echoed back they failed as a 500
    ("a lone surrogate in metadata", '{' + ORDER + ',"amount":100,"metadata":{"note":"\\udc00"}}', "metadata.note"),
    ("a lone surrogate in a metadata key", '{' + ORDER + ',"amount":100,"metadata":{"\\ud800":"x"}}', "metadata"),
    ("a lone surrogate as an unknown field", '{' + ORDER + ',"amount":100,"\\ud800":1}', None),
    # what jsonb cannot hold
    ("NUL in a metadata value", '{' + ORDER + ',"amount":100,"metadata":{"note":"a\\u0000b"}}', "metadata"),
    ("NUL in a metadata key", '{' + ORDER + ',"amount":100,"metadata":{"a\\u0000":"b"}}', "metadata"),
    ("an infinite number in metadata", '{' + ORDER + ',"amount":100,"metadata":{"n":1e400}}', "metadata"),
    ("a negative infinite number in metadata", '{' + ORDER + ',"amount":100,"metadata":{"n":[-1e999]}}', "metadata"),
    # past Python's 4,300-digit limit for reading an integer: a 400 without a param, telling the merchant to call
    # sys.set_int_max_str_digits()
    ("an amount of 5,000 digits", '{' + ORDER + ',"amount":' + "9" * 5000 + '}', "amount"),
    ("a metadata number of 5,000 digits", '{' + ORDER + ',"amount":100,"metadata":{"n":' + "9" * 5000 + '}}',
     "metadata"),
    # nesting: a thousand levels was a RecursionError, a few hundred fails in whatever walks the value next
    ("metadata nested too deep", '{' + ORDER + ',"amount":100,"metadata":{"a":' + "[" * 300 + "]" * 300 + "}}",
     "metadata"),
    ("metadata nested past the recursion limit",  # too deep for the parser: found by counting brackets
     '{' + ORDER + ',"amount":100,"metadata":{"a":' + "[" * 5000 + "]" * 5000 + "}}", "metadata"),
]


@pytest.mark.parametrize(("body", "param"), [case[1:] for case in HOSTILE_ORDERS],
                         ids=[case[0] for case in HOSTILE_ORDERS])
def test_it_refuses_a_hostile_order_body_naming_the_field_and_writes_nothing(shop, signed_api, body, param):
    _refused(_create(signed_api(shop.app), body.encode()), param, app=shop.app)
    assert not Order.objects.filter(merchant=shop.merchant).exists()


def test_it_still_takes_metadata_nested_as_deep_as_allowed_and_paired_surrogates(shop, signed_api):
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # metadata.a at depth 2, its lists below
    body = '{' + ORDER + ',"amount":100,"metadata":{"a":' + nested + ',"tea":"\\ud83c\\udf75 \\u9f99\\u4e95"}}'
    response = _create(signed_api(shop.app), body.encode())
    assert response.status_code == 201, response.content
    assert response.json()["metadata"]["tea"] == "\U0001f375 龙井"


def test_it_refuses_a_top_level_array_nested_too_deep_without_a_param(tea_house_app, signed_api):
    _refused(_create(signed_api(tea_house_app), b"[" * 100_000 + b"]" * 100_000), None, app=tea_house_app)


def test_it_refuses_a_refund_amount_sent_twice_and_reserves_nothing(shop, signed_api):
    api = signed_api(shop.app)
    paid = api.post("/api/v1/orders", json={"out_trade_no": "AUD00002", "amount": 1000, "product": "barcode",
                                            "subject": "tea", "auth_code": "134567890123456780"}).json()
    assert paid["state"] == "succeeded", paid
    body = b'{"out_refund_no":"AUDR0001","amount":10,"amount":1000}'
    _refused(api.request("POST", "/api/v1/orders/AUD00002/refunds", body=body), "amount", app=shop.app)
    assert not Refund.objects.filter(merchant=shop.merchant).exists()
    assert Order.objects.get(pk=paid["id"]).refund_reserved == 0


@pytest.mark.parametrize("charset", ["latin-1", "gbk", "utf-16", "no-such-charset"])
def test_it_refuses_a_body_declared_in_another_charset_than_utf8(shop, signed_api, charset):
    # The bytes are the UTF-8 of the subject: read as the header says, they were another subject (mojibake).
    body = ('{' + ORDER.replace('"tea"', '"龙井茶"') + ',"amount":100}').encode()
    response = signed_api(shop.app).request("POST", "/api/v1/orders", body=body,
                                            content_type=f"application/json; charset={charset}")
    error = _refused(response, None, app=shop.app)
    assert "UTF-8" in error["message"] and charset in error["message"]
    assert not Order.objects.filter(merchant=shop.merchant).exists()


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json; charset=UTF8",
                                          "application/json"])
def test_it_takes_a_body_declared_utf8_or_with_no_charset(shop, signed_api, content_type):
    body = ('{' + ORDER.replace('"tea"', '"龙井茶"') + ',"amount":100}').encode()
    response = signed_api(shop.app).request("POST", "/api/v1/orders", body=body, content_type=content_type)
    assert response.status_code == 201, response.content
    assert response.json()["subject"] == "龙井茶"


def test_it_refuses_a_client_ip_with_an_ipv6_zone(shop, signed_api):
    response = signed_api(shop.app).post("/api/v1/orders", json={
        "out_trade_no": "AUD00003", "amount": 100, "product": "wechat.native", "subject": "tea",
        "client_ip": "fe80::1%eth0"})
    error = _refused(response, "client_ip", app=shop.app)
    assert "zone" in error["message"]
    assert not Order.objects.filter(merchant=shop.merchant).exists()


# --- negotiation: after authentication, and `format` is not a renderer switch ----------------------------------


@pytest.mark.parametrize("target", ["/api/v1/orders?format=csv", "/api/v1/orders?format=xml&limit=5",
                                    "/api/v1/events?format=csv"])
def test_a_format_query_on_a_list_is_ignored_like_any_unknown_parameter(tea_house_app, signed_api, target):
    response = signed_api(tea_house_app).get(target)
    assert response.status_code == 200, response.content
    assert response.json() == {"data": [], "has_more": False}
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


def test_an_accept_header_without_json_is_refused_signed_once_the_app_is_known(tea_house_app, signed_api):
    response = signed_api(tea_house_app).get("/api/v1/orders", headers={"Accept": "text/html"})
    _refused(response, None, app=tea_house_app)


def test_an_accept_header_without_json_does_not_spare_an_unsigned_request_its_401(tea_house_app, client):
    response = client.get("/api/v1/orders", HTTP_ACCEPT="text/html")
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "invalid_signature"


def test_a_signed_request_with_a_bad_signature_and_bad_accept_gets_the_401(tea_house_app, signed_api):
    response = signed_api(tea_house_app, secret="not-the-secret").get("/api/v1/orders",
                                                                      headers={"Accept": "text/csv"})
    assert response.status_code == 401, response.content
    assert json.loads(response.content)["error"]["code"] == "invalid_signature"


# --- unknown paths: every one after authentication, in the envelope, signed ------------------------------------


@pytest.mark.parametrize("target", ["/api/v1/orders/AUD00001%0A", "/api/v1/orders/AUD00001%0A/close",
                                    "/api/v1/%0A"])
def test_a_path_with_a_newline_is_an_unknown_path_answered_signed(tea_house_app, signed_api, target):
    response = signed_api(tea_house_app).post(target)
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


def test_a_path_with_a_newline_is_not_answered_before_authentication(tea_house_app, client):
    response = client.post("/api/v1/orders/AUD00001%0A/close")
    assert response.status_code == 401, response.content


def test_it_refuses_a_refund_amount_of_5000_digits_naming_it(shop, signed_api):
    api = signed_api(shop.app)
    paid = api.post("/api/v1/orders", json={"out_trade_no": "AUD00003", "amount": 1000, "product": "barcode",
                                            "subject": "tea", "auth_code": "134567890123456780"}).json()
    assert paid["state"] == "succeeded", paid
    body = b'{"out_refund_no":"AUDR0003","amount":' + b"9" * 5000 + b"}"
    _refused(api.request("POST", "/api/v1/orders/AUD00003/refunds", body=body), "amount", app=shop.app)
    assert not Refund.objects.filter(order_id=paid["id"]).exists()


def test_a_body_that_is_too_deep_an_array_names_no_field(shop, signed_api):
    response = _create(signed_api(shop.app), ("[" * 5000 + "]" * 5000).encode())
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["param"] is None
    assert "nested more than 32 levels deep" in error["message"]
