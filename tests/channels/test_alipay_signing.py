"""Known answers for Alipay's RSA2 sign content and signatures (channel-protocols.md B.2–B.4)."""

from __future__ import annotations

import json

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.adapters.alipay_sign import (
    load_private_key,
    load_public_key,
    notify_sign_content,
    request_sign_content,
    response_substring,
    rsa2_sign,
    rsa2_verify,
)
from channels.simulators import alipay_keys

# channel-protocols.md B.2's example, as the single line it really is.
B2_EXAMPLE = (
    'app_auth_token=202405BBxxxxxxxx&app_id=2021000000000001&biz_content={"out_trade_no":"T20240501001",'
    '"total_amount":"0.01","subject":"test"}&charset=utf-8&format=JSON&method=alipay.trade.precreate'
    "&notify_url=http://127.0.0.1:9000/notify/alipay&sign_type=RSA2&timestamp=2024-05-01 12:00:00&version=1.0"
)
B2_PARAMS = {
    "method": "alipay.trade.precreate", "version": "1.0", "timestamp": "2024-05-01 12:00:00", "sign_type": "RSA2",
    "notify_url": "http://127.0.0.1:9000/notify/alipay", "format": "JSON", "charset": "utf-8",
    "biz_content": '{"out_trade_no":"T20240501001","total_amount":"0.01","subject":"test"}',
    "app_id": "2021000000000001", "app_auth_token": "202405BBxxxxxxxx", "sign": "ignored", "return_url": "",
}


@pytest.fixture(scope="module")
def key_pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


def test_it_builds_the_b2_example_sign_content_exactly():
    # sign dropped, the empty return_url dropped, sign_type kept, keys sorted, values raw (not URL-encoded).
    assert request_sign_content(B2_PARAMS) == B2_EXAMPLE


def test_the_simulator_builds_the_same_sign_content_independently():
    assert alipay_keys.request_content(B2_PARAMS) == B2_EXAMPLE


def test_notify_sign_content_leaves_out_sign_type_as_well():
    params = {"trade_status": "TRADE_SUCCESS", "sign_type": "RSA2", "sign": "x", "app_id": "2021", "body": ""}
    assert notify_sign_content(params) == "app_id=2021&trade_status=TRADE_SUCCESS"


def test_our_signature_is_byte_identical_to_the_sdks(key_pair):
    # RSA PKCS#1 v1.5 is deterministic, so an independent implementation (pycryptodome in python-alipay-sdk)
    # must produce the very same signature over the same content: a known answer without a stored vector.
    private_pem, public_pem = key_pair
    sdk = AliPay(appid="2021000000000001", app_private_key_string=private_pem, alipay_public_key_string=public_pem)
    ours = rsa2_sign(load_private_key(private_pem), B2_EXAMPLE)
    assert ours == sdk._sign(B2_EXAMPLE)
    assert sdk._verify(B2_EXAMPLE, ours)


def test_a_signature_verifies_only_for_its_content(key_pair):
    private_pem, public_pem = key_pair
    sign = rsa2_sign(load_private_key(private_pem), B2_EXAMPLE)
    assert rsa2_verify(load_public_key(public_pem), B2_EXAMPLE, sign)
    assert not rsa2_verify(load_public_key(public_pem), B2_EXAMPLE.replace("0.01", "0.02"), sign)
    assert not rsa2_verify(load_public_key(public_pem), B2_EXAMPLE, "not base64 ∆")


def test_it_loads_the_portals_bare_base64_keys(key_pair):
    private_pem, public_pem = key_pair
    bare = "".join(line for line in public_pem.splitlines() if not line.startswith("-----"))
    assert load_public_key(bare).public_numbers() == load_public_key(public_pem).public_numbers()
    bare_private = "".join(line for line in private_pem.splitlines() if not line.startswith("-----"))
    assert load_private_key(bare_private).private_numbers() == load_private_key(private_pem).private_numbers()


def test_the_response_substring_is_the_raw_text_even_with_braces_inside_strings():
    inner = '{"code":"40004","msg":"Business Failed","sub_msg":"bad } brace {","nested":{"a":1}}'
    raw = '{"alipay_trade_query_response":' + inner + ',"sign":"abc"}'
    assert response_substring(raw, "alipay_trade_query_response") == inner
    assert json.loads(response_substring(raw, "alipay_trade_query_response"))["nested"] == {"a": 1}
    assert response_substring(raw, "alipay_trade_pay_response") is None
    assert response_substring('{"alipay_trade_query_response":{"unterminated":"', "alipay_trade_query_response") is None
