"""The merchant API over real HTTP with the Python client (aggpay/api/client.py): signing what requests puts
on the wire, verifying every answer."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest
import requests

from aggpay.api import signing
from aggpay.api.client import AggpayClient, ResponseSignatureError
from aggpay.platform_keys import platform_key


@pytest.fixture
def hmac_client(live_server, tea_house_app):
    return AggpayClient(live_server.url, tea_house_app.app_id, secret=tea_house_app.secret)


def test_the_client_gets_the_merchant_with_a_verified_hmac_answer(hmac_client, tea_house_app):
    status, headers, data = hmac_client.request("GET", "/api/v1/merchant")
    assert status == 200
    assert data["merchant_no"] == tea_house_app.merchant.merchant_no
    assert headers["X-Request-Id"]


def test_the_client_works_for_an_rsa_app(live_server, tea_house_rsa_app, merchant_rsa_keypair):
    client = AggpayClient(live_server.url, tea_house_rsa_app.app_id, private_key_pem=merchant_rsa_keypair[0],
                          platform_public_key_pem=platform_key().public_key_pem)
    status, headers, data = client.request("GET", "/api/v1/merchant")
    assert status == 200
    assert data["app"]["platform_public_key"] == platform_key().public_key_pem
    assert signing.SIGNATURE_HEADER in headers  # and the client verified it with the platform public key


def test_the_client_signs_query_parameters_as_requests_encodes_them(hmac_client):
    status, _, _ = hmac_client.request("GET", "/api/v1/merchant", params={"q": "绿茶 & 红茶", "n": 1})
    assert status == 200
    # A list is sent as the name repeated (n=1&n=2), signed as sent: the signature verifies (no 401), and the API
    # refuses a name given twice, naming it (docs/api.md "Errors").
    status, _, data = hmac_client.request("GET", "/api/v1/merchant", params={"q": "绿茶 & 红茶", "n": [1, 2]})
    assert (status, data["error"]["code"], data["error"]["param"]) == (400, "invalid_request", "n")


def test_the_client_signs_the_json_body_it_sends(hmac_client):
    status, headers, data = hmac_client.request("POST", "/api/v1/not-yet", json={"subject": "绿茶", "amount": 1})
    # Authenticated (the body's signature held), then no such path: a signed 404 in the envelope.
    assert status == 404
    assert data["error"]["code"] == "not_found"
    assert data["error"]["request_id"] == headers["X-Request-Id"]


def test_the_client_refuses_an_answer_signed_for_someone_else(live_server, tea_house_app):
    impostor = AggpayClient(live_server.url, tea_house_app.app_id, secret="a-different-secret-0123456789")
    with pytest.raises(ResponseSignatureError) as caught:
        impostor.request("GET", "/api/v1/merchant")
    assert caught.value.status == 401  # aggpay refused it, and signed that refusal with the real secret


def test_the_client_returns_an_unsigned_unknown_app_error_as_is(live_server, db):
    client = AggpayClient(live_server.url, "app_nobodyhome", secret="whatever-0123456789")
    status, headers, data = client.request("GET", "/api/v1/merchant")
    assert (status, data["error"]["code"]) == (401, "unknown_app")
    assert signing.SIGNATURE_HEADER not in headers


def test_a_replayed_request_over_http_is_refused(live_server, tea_house_app):
    target, timestamp, nonce = "/api/v1/merchant", int(time.time()), signing.new_nonce()
    authorization = signing.sign_request("GET", target, b"", app_id=tea_house_app.app_id, timestamp=timestamp,
                                         nonce=nonce, secret=tea_house_app.secret)
    first = requests.get(live_server.url + target, headers={"Authorization": authorization}, timeout=10)
    replay = requests.get(live_server.url + target, headers={"Authorization": authorization}, timeout=10)
    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "nonce_reused"


def test_the_query_is_verified_byte_for_byte_as_sent(live_server, tea_house_app):
    # http.client sends the target untouched (requests would rewrite %7E as ~). The server must check the
    # query exactly as received, escapes included, for a signer who escaped more than needed.
    target = "/api/v1/merchant?name=%E7%BB%BF%E8%8C%B6&x=%7E"
    authorization = signing.sign_request("GET", target, b"", app_id=tea_house_app.app_id,
                                         timestamp=int(time.time()), nonce=signing.new_nonce(),
                                         secret=tea_house_app.secret)
    parts = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", target, headers={"Authorization": authorization})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200, body
