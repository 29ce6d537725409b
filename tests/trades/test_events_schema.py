"""GET /api/v1/events against its OpenAPI document with events to list (issue 5: "schemathesis over the orders,
refunds and events endpoints finds no 5xx"): every answer — pages, filters, bad parameters — is documented."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.aggpay.test_schema import AggpaySignatureAuth, _operations
from tests.merchants.test_partner_api_schema import _run
from trades.services.events import event_emit


@pytest.mark.slow
def test_the_events_list_matches_its_schema_with_events_present(live_server, tea_house_app):
    for i, kind in enumerate(["order.succeeded", "refund.succeeded", "order.closed"]):
        with transaction.atomic():
            event_emit(merchant=tea_house_app.merchant, type=kind, obj_type=kind.split(".")[0], obj_id=f"ord_{i}",
                       data={"id": f"ord_{i}", "amount": 100 + i, "metadata": {"table": "7"}})
    auth = AggpaySignatureAuth(tea_house_app.app_id, tea_house_app.secret)
    [operation] = [op for op in _operations(live_server.url) if op.path == "/api/v1/events"]
    _run(operation, auth, max_examples=100)
