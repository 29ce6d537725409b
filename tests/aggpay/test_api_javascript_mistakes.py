"""What a JavaScript developer's first calls get wrong, and what the refusal says (docs/api.md "Signing a request").

Node's ``Date.now()`` is milliseconds, ``crypto.randomUUID()`` has dashes, base64 has ``+``, ``/`` and ``=``, and
``fetch`` sends a string body as ``text/plain;charset=UTF-8``: each is refused, and the message says which rule
was broken and how to keep it, so the developer need not guess."""

from __future__ import annotations

import time

import pytest

from aggpay.api import signing

JSON_BODY = {"out_trade_no": "T-JS-0001", "amount": 1, "product": "wechat.native", "subject": "tea"}


def _header(*, timestamp: str = "1764140000", nonce: str = "3kR9aXb2Qm7Lp4Zt") -> str:
    return f'AGGPAY-HMAC-SHA256 app_id="app_1",timestamp="{timestamp}",nonce="{nonce}",signature="c2ln"'


def _refusal(header: str) -> str:
    with pytest.raises(signing.AuthorizationError) as refused:
        signing.parse_authorization(header)
    return str(refused.value)


@pytest.mark.parametrize("timestamp", ["1764140000123", "1764140000123456"])
def test_a_timestamp_in_milliseconds_is_told_to_be_seconds_not_milliseconds(timestamp):
    message = _refusal(_header(timestamp=timestamp))
    assert message.startswith("timestamp must be unix seconds, not milliseconds")
    assert f"{len(timestamp)} digits" in message and "Math.floor(Date.now() / 1000)" in message


def test_a_timestamp_in_milliseconds_over_the_api_is_a_401_saying_so(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/merchant", timestamp=int(time.time() * 1000))
    assert response.status_code == 401, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_signature"
    assert "unix seconds, not milliseconds" in error["message"]


def test_a_timestamp_that_is_not_digits_is_still_told_digits_only():
    assert _refusal(_header(timestamp="1764140000.5")) == "timestamp must be unix seconds (digits only)"


@pytest.mark.parametrize(("nonce", "stray"), [
    ("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "'-'"),  # crypto.randomUUID()
    ("q83vEjRWeJq8Bw+YnF4Aew==", "'+'"),  # crypto.randomBytes(16).toString('base64')
    ("q83vEjRWeJq8Bw/YnF4Aew", "'/'"),
])
def test_a_nonce_with_a_character_outside_the_rule_names_it(nonce, stray):
    message = _refusal(_header(nonce=nonce))
    assert message.startswith("nonce must be 16-64 characters of [A-Za-z0-9]")
    assert f"{stray} is not one of them" in message and "hex" in message


def test_a_nonce_of_the_wrong_length_says_how_long_it_is():
    assert _refusal(_header(nonce="abc123")).endswith("this one has 6 characters")


def test_a_json_body_sent_as_text_plain_is_told_which_content_type_arrived(signed_api, tea_house_app):
    # What Node's fetch sends for a string body without a Content-Type header of the caller's.
    response = signed_api(tea_house_app).post("/api/v1/orders", json=JSON_BODY,
                                              content_type="text/plain;charset=UTF-8")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == ("Content-Type: send the body as application/json, not text/plain;charset=UTF-8")
    assert error["param"] is None  # param names fields of the body or the query, never a header (docs/api.md)
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


def test_a_body_without_a_content_type_is_told_it_has_none(signed_api, tea_house_app):
    response = signed_api(tea_house_app).post("/api/v1/orders", json=JSON_BODY, content_type="")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"] == (
        "Content-Type: send the body as application/json; the request has no Content-Type")
