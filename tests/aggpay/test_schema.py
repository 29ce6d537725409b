"""The OpenAPI document (/api/schema/): valid, complete, and true of the running server.

The schemathesis run signs every generated request with a ``requests`` auth class, so it exercises the API past
authentication, and checks that no answer is a 5xx or contradicts the schema (status, content type, headers,
body).
"""

from __future__ import annotations

import time

import pytest
import requests
import schemathesis
import yaml
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aggpay.api import signing

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class AggpaySignatureAuth(requests.auth.AuthBase):
    """Signs a prepared request the documented way, over exactly what requests will send."""

    def __init__(self, app_id: str, secret: str):
        self.app_id = app_id
        self.secret = secret

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        prepared.headers["Authorization"] = signing.sign_request(
            prepared.method, prepared.path_url, body, app_id=self.app_id, timestamp=int(time.time()),
            nonce=signing.new_nonce(), secret=self.secret,
        )
        return prepared


def _schema_document() -> dict:
    from io import StringIO

    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


def test_the_schema_is_valid_without_warnings():
    document = _schema_document()
    assert "/api/v1/merchant" in document["paths"]


def test_the_schema_describes_the_signature_scheme():
    scheme = _schema_document()["components"]["securitySchemes"]["AggpaySignature"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert "AGGPAY-HMAC-SHA256" in scheme["description"] and "AGGPAY-SHA256-RSA2048" in scheme["description"]


def test_every_operation_documents_its_errors_with_the_envelope():
    document = _schema_document()
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    operations = [op for item in document["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert operations
    for operation in operations:
        assert operation["security"] == [{"AggpaySignature": []}], operation["operationId"]
        responses = operation["responses"]
        for status in ("400", "401", "429", "500"):
            assert status in responses, (operation["operationId"], status)
        for status, response in responses.items():
            assert "X-Request-Id" in response["headers"], (operation["operationId"], status)
            if int(status) >= 400:
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorEnvelope", (operation["operationId"], status)


def test_the_schema_and_docs_are_served(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/merchant" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200


def _operations(base_url: str):
    loaded = schemathesis.openapi.from_url(f"{base_url}/api/schema/?format=json")
    loaded.config.update(base_url=base_url)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert operations
    return operations


def test_the_running_api_matches_its_schema(live_server, tea_house_app):
    # The schemathesis pytest plugin's lazy loader (from_fixture) does not run under pytest 9, so each
    # operation's strategy is driven by hypothesis directly; the checks are schemathesis' own.
    auth = AggpaySignatureAuth(tea_house_app.app_id, tea_house_app.secret)
    for operation in _operations(live_server.url):

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(auth=auth, checks=CHECKS)

        check()


def test_refusals_of_unsigned_requests_match_the_schema_too(live_server, tea_house_app):
    # Without the signing auth, schemathesis sends whatever Authorization header it generated: every answer
    # must be a documented 401 in the envelope, never a 5xx.
    for operation in _operations(live_server.url):

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call_and_validate(checks=CHECKS)
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] in {"invalid_signature", "unknown_app"}

        check()


def test_every_order_number_in_the_schemas_examples_is_one_the_api_accepts():
    """A developer copies the examples: an out_trade_no the API would refuse (T1001 has 5 characters; the contract
    asks for 6–32) sends them to a 400 on their first call."""
    import json
    import re

    from trades.api.orders import OUT_NO

    text = json.dumps(_schema_document(), ensure_ascii=False)
    numbers = re.findall(r'"out_trade_no": "([^"]*)"', text) + re.findall(r"\\n(?:payment|refund),[^,]*,([^,]*),", text)
    assert numbers  # the bills example names its orders
    assert [n for n in numbers if not re.fullmatch(OUT_NO, n)] == []


def _operation(document, operation_id):
    return next(op for item in document["paths"].values() for op in item.values()
                if isinstance(op, dict) and op.get("operationId") == operation_id)


@pytest.mark.parametrize("operation_id", ["orders_create", "refunds_create", "partner_merchants_create"])
def test_a_creates_replay_declares_the_idempotent_replayed_header_and_its_first_answer_does_not(operation_id):
    responses = _operation(_schema_document(), operation_id)["responses"]
    assert responses["200"]["headers"]["Idempotent-Replayed"]["schema"] == {"type": "string", "enum": ["true"]}
    assert "Idempotent-Replayed" not in responses["201"]["headers"]


def test_the_error_envelope_may_carry_the_order_or_refund_it_is_about():
    envelope = _schema_document()["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    assert {"order", "refund"} <= set(envelope["properties"])


@pytest.mark.parametrize("operation_id", ["orders_close", "orders_reverse"])
def test_close_and_reverse_document_only_the_conflict_they_can_answer(operation_id):
    conflict = _operation(_schema_document(), operation_id)["responses"]["409"]["description"]
    assert "invalid_state" in conflict and "idempotency_conflict" not in conflict and "`order`" in conflict

