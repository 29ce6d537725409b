"""A small Python client for the merchant API: signs each request, verifies each response's signature.

Used by the tests over a live server, by the benchmarks, and as the reference a merchant can read. It needs no
Django settings or database (only requests and aggpay.api.signing), so it also works outside aggpay's process.

    client = AggpayClient("https://pay.example.com", "app_...", secret="...")
    status, headers, data = client.request("GET", "/api/v1/merchant")
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Mapping

import requests

from aggpay.api import signing


class ResponseSignatureError(Exception):
    """The response's Aggpay-Signature is missing where required, or does not verify: do not trust it."""

    def __init__(self, message: str, *, status: int, headers: Mapping[str, str], body: bytes):
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body


class AggpayClient:
    def __init__(
        self,
        base_url: str,
        app_id: str,
        *,
        secret: str | None = None,
        private_key_pem: str | bytes | None = None,
        platform_public_key_pem: str | bytes | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ):
        if (secret is None) == (private_key_pem is None):
            raise ValueError("give exactly one of secret (HMAC apps) or private_key_pem (RSA apps)")
        if private_key_pem is not None and platform_public_key_pem is None:
            raise ValueError("RSA apps need platform_public_key_pem to verify aggpay's responses")
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.secret = secret
        # Parse the PEM once, not per request.
        self.private_key = signing.load_private_key(private_key_pem) if private_key_pem is not None else None
        self.platform_public_key = (
            signing.load_public_key(platform_public_key_pem) if platform_public_key_pem is not None else None
        )
        self.timeout = timeout
        self.session = session or requests.Session()

    def authorization(self, method: str, target: str, body: bytes, *, timestamp: int | None = None,
                      nonce: str | None = None) -> str:
        """The Authorization header for one request (exposed for tests that tamper with what is sent)."""
        return signing.sign_request(
            method, target, body, app_id=self.app_id,
            timestamp=int(time.time()) if timestamp is None else timestamp,
            nonce=nonce or signing.new_nonce(), secret=self.secret, private_key=self.private_key,
        )

    def verify(self, headers, body: bytes) -> bool:
        if self.secret is not None:
            return signing.verify_response(headers, body, secret=self.secret)
        return signing.verify_response(headers, body, platform_public_key_pem=self.platform_public_key)

    def request(self, method: str, path: str, json=None, params: dict | None = None) -> tuple[int, Mapping[str, str], object]:
        """Send a signed request; returns (status, headers, decoded JSON body or None).

        Raises ResponseSignatureError when a response carries a signature that does not verify, or when a
        success (< 400) is unsigned. Errors aggpay answered before it could identify the app (unknown app,
        unreadable Authorization header) cannot be signed and are returned as they are.
        """
        method = method.upper()
        body = b"" if json is None else jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        # Sign what requests will actually put on the wire: it may re-quote the path and encodes the query.
        prepared = self.session.prepare_request(
            requests.Request(method, self.base_url + path, params=params or None, data=body or None,
                             headers=headers)
        )
        target = prepared.path_url
        prepared.headers["Authorization"] = self.authorization(method, target, body)
        options = self.session.merge_environment_settings(prepared.url, {}, None, None, None)
        response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **options)
        received = response.headers  # case-insensitive
        signed = signing.SIGNATURE_HEADER in response.headers
        if (signed or response.status_code < 400) and not self.verify(response.headers, response.content):
            raise ResponseSignatureError(
                f"response {response.status_code} to {method} {target} is not signed by aggpay for this app",
                status=response.status_code, headers=received, body=response.content,
            )
        data = response.json() if response.content else None
        return response.status_code, received, data
