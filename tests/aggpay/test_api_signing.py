"""The signing scheme's pure functions (merchant-api.md "Authentication and signing")."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from aggpay.api import signing


def test_string_to_sign_is_method_target_timestamp_nonce_and_body_each_followed_by_a_newline():
    message = signing.string_to_sign("post", "/api/v1/orders?x=1", 1700000000, "abcdefghijklmnop", b'{"a":1}')
    assert message == b'POST\n/api/v1/orders?x=1\n1700000000\nabcdefghijklmnop\n{"a":1}\n'


def test_string_to_sign_of_a_get_ends_with_an_empty_body_line():
    assert signing.string_to_sign("GET", "/api/v1/merchant", "1", "n" * 16, b"") == (
        b"GET\n/api/v1/merchant\n1\n" + b"n" * 16 + b"\n\n"
    )


def test_string_to_sign_keeps_the_body_bytes_as_they_are():
    body = '{"subject":"绿茶"}\n'.encode()
    assert signing.string_to_sign("POST", "/x", "1", "n" * 16, body).endswith(body + b"\n")


def test_response_message_is_timestamp_nonce_and_body():
    assert signing.response_message("1700000000", "N" * 16, b"{}") == b"1700000000\n" + b"N" * 16 + b"\n{}\n"


def test_hmac_sign_is_base64_of_hmac_sha256():
    expected = base64.b64encode(hmac.new(b"k", b"message", hashlib.sha256).digest()).decode()
    assert signing.hmac_sign("k", b"message") == expected
    assert signing.hmac_verify("k", b"message", expected)
    assert not signing.hmac_verify("other", b"message", expected)
    assert not signing.hmac_verify("k", b"messagE", expected)


def test_hmac_verify_refuses_an_empty_secret():
    assert not signing.hmac_verify("", b"m", signing.hmac_sign("", b"m"))


def test_rsa_signatures_verify_with_the_matching_public_key_only(merchant_rsa_keypair):
    private_pem, public_pem = merchant_rsa_keypair
    signature = signing.rsa_sign(private_pem, b"message")
    assert signing.rsa_verify(public_pem, b"message", signature)
    assert not signing.rsa_verify(public_pem, b"messagE", signature)
    assert not signing.rsa_verify(public_pem, b"message", "not base64!")
    assert not signing.rsa_verify(public_pem, b"message", base64.b64encode(b"x" * 256).decode())


def test_it_parses_an_authorization_header_with_pairs_in_any_order():
    header = 'AGGPAY-HMAC-SHA256 signature="c2ln",nonce="abcdefghijklmnop", app_id="app_1",timestamp="170"'
    scheme, pairs = signing.parse_authorization(header)
    assert scheme == "AGGPAY-HMAC-SHA256"
    assert pairs == {"signature": "c2ln", "nonce": "abcdefghijklmnop", "app_id": "app_1", "timestamp": "170"}


def test_build_authorization_round_trips_through_parse():
    header = signing.build_authorization(
        signing.RSA_SCHEME, app_id="app_x", timestamp=5, nonce="A1" * 8, signature="c2lnbmF0dXJl"
    )
    assert signing.parse_authorization(header) == (
        signing.RSA_SCHEME, {"app_id": "app_x", "timestamp": "5", "nonce": "A1" * 8, "signature": "c2lnbmF0dXJl"}
    )


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (None, "missing Authorization header"),
        ("   ", "missing Authorization header"),
        ('Bearer app_id="a",timestamp="1",nonce="abcdefghijklmnop",signature="s"', "scheme must be"),
        ('AGGPAY-HMAC-SHA256 app_id=a,timestamp="1",nonce="abcdefghijklmnop",signature="s"', 'key="value"'),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1",nonce="abcdefghijklmnop",signature="s",', 'key="value"'),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1",nonce="abcdefghijklmnop"', "missing signature"),
        ('AGGPAY-HMAC-SHA256 app_id="a",app_id="b",timestamp="1",nonce="abcdefghijklmnop",signature="s"',
         "more than once"),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1",nonce="abcdefghijklmnop",signature="s",realm="x"',
         "unknown Authorization parameter"),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1.5",nonce="abcdefghijklmnop",signature="s"', "unix seconds"),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1",nonce="short",signature="s"', "16-64"),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1",nonce="' + "n" * 65 + '",signature="s"', "16-64"),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1",nonce="abcdefgh-jklmnop",signature="s"', "16-64"),
        ('AGGPAY-HMAC-SHA256 app_id="a b",timestamp="1",nonce="abcdefghijklmnop",signature="s"', "app_id"),
        ('AGGPAY-HMAC-SHA256 app_id="a",timestamp="1",nonce="abcdefghijklmnop",signature=""', "signature is empty"),
    ],
)
def test_it_rejects_a_malformed_authorization_header_saying_what_is_wrong(header, complaint):
    with pytest.raises(signing.AuthorizationError, match=complaint):
        signing.parse_authorization(header)


def test_verify_response_accepts_an_hmac_signed_response_with_headers_in_any_case():
    headers = signing.sign_response(b'{"ok":true}', timestamp=1700000000, nonce="N" * 20, secret="s3cret")
    lowered = {name.lower(): value for name, value in headers.items()}
    assert signing.verify_response(lowered, b'{"ok":true}', secret="s3cret")
    assert not signing.verify_response(lowered, b'{"ok":false}', secret="s3cret")
    assert not signing.verify_response(lowered, b'{"ok":true}', secret="other")
    assert not signing.verify_response({}, b'{"ok":true}', secret="s3cret")


def test_verify_response_accepts_an_rsa_signed_response_with_the_public_key(merchant_rsa_keypair):
    private_pem, public_pem = merchant_rsa_keypair
    headers = signing.sign_response(b"{}", timestamp=1, nonce="N" * 16, private_key=private_pem)
    assert signing.verify_response(headers, b"{}", platform_public_key_pem=public_pem)
    headers[signing.NONCE_HEADER] = "M" * 16
    assert not signing.verify_response(headers, b"{}", platform_public_key_pem=public_pem)


def test_verify_response_needs_exactly_one_kind_of_key():
    with pytest.raises(ValueError):
        signing.verify_response({}, b"", secret="a", platform_public_key_pem="b")
    with pytest.raises(ValueError):
        signing.verify_response({}, b"")


def test_new_nonces_are_valid_and_distinct():
    nonces = {signing.new_nonce() for _ in range(200)}
    assert len(nonces) == 200
    assert all(signing.NONCE_RE.match(nonce) for nonce in nonces)


def _api_views(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_every_merchant_api_view_signs_its_responses():
    """Tripwire: a view added under /api/v1/ without the base class would answer unsigned."""
    from aggpay.api.views import SignedResponseMixin

    api_views = [(route, callback) for route, callback in _api_views(get_resolver()) if route.startswith("api/v1/")]
    assert api_views, "no routes under api/v1/"
    for route, callback in api_views:
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        assert view_class is not None and issubclass(view_class, SignedResponseMixin), route
