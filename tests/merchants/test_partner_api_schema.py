"""Bad input on the partner onboarding API never breaks it (issue 4/5 "How it is checked": schemathesis finds no
5xx): schemathesis drives the partner endpoints of the running server through their OpenAPI document, signed
for a partner app, and checks every answer against that document; a second, in-process run throws arbitrary JSON
at the record fields so that wrong types anywhere end in a 400 naming the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aggpay.test_schema import CHECKS, AggpaySignatureAuth, _operations
from tests.merchants.records import TEA_HOUSE_RECORD, record

PARTNER_PATHS = ("/api/v1/merchants", "/api/v1/merchants/{merchant_no}", "/api/v1/merchants/{merchant_no}/documents",
                 "/api/v1/events")


def _partner_operations(base_url: str):
    operations = [op for op in _operations(base_url) if op.path in PARTNER_PATHS]
    assert {op.path for op in operations} == set(PARTNER_PATHS)
    return operations


def _run(operation, auth, *, merchant_no: str | None = None, max_examples: int = 60):
    @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def check(case):
        if merchant_no is not None and "merchant_no" in (case.path_parameters or {}):
            case.path_parameters["merchant_no"] = merchant_no
        case.call_and_validate(auth=auth, checks=CHECKS)

    check()


@pytest.mark.slow
def test_the_partner_endpoints_match_their_schema_and_never_answer_5xx(live_server, westlake_app):
    from aggpay.api.client import AggpayClient

    auth = AggpaySignatureAuth(westlake_app.app_id, westlake_app.secret)
    client = AggpayClient(live_server.url, westlake_app.app_id, secret=westlake_app.secret)
    status, _, created = client.request("POST", "/api/v1/merchants", json=record())
    assert status == 201
    for operation in _partner_operations(live_server.url):
        _run(operation, auth)  # made-up merchant numbers: 404s, bodies checked first where they come first
        if "{merchant_no}" in operation.path:
            _run(operation, auth, merchant_no=created["merchant_no"])  # a real draft: bodies reach the services


@pytest.mark.slow
def test_an_app_without_the_onboarding_scope_gets_documented_403s(live_server, tea_house_app):
    auth = AggpaySignatureAuth(tea_house_app.app_id, tea_house_app.secret)
    for operation in _partner_operations(live_server.url):
        if operation.path != "/api/v1/events":
            _run(operation, auth, max_examples=15)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(sorted(TEA_HOUSE_RECORD) + ["submit", "documents", "stores", "unknown"])


@pytest.mark.django_db
def test_arbitrary_json_in_any_record_field_is_a_400_never_a_crash(signed_api, westlake_app):
    api = signed_api(westlake_app)
    created = api.post("/api/v1/merchants", json=record()).json()
    target = f"/api/v1/merchants/{created['merchant_no']}"

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(changes=st.dictionaries(FIELDS, JSON, min_size=1, max_size=3), create=st.booleans())
    def check(changes, create):
        if create:
            response = api.post("/api/v1/merchants", json={**record(), **changes})
        else:
            response = api.request("PATCH", target, json=changes)
        assert response.status_code < 500, response.content
        if response.status_code >= 400:
            error = json.loads(response.content)["error"]
            assert error["code"] in {"invalid_request", "invalid_state"}
            if error["code"] == "invalid_request":
                assert error["param"], error

    check()
