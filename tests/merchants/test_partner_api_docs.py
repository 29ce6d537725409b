"""docs/api.md's partner example, run as written (after the standalone Python example it continues) against a
live server with a partner app."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from merchants.models import Merchant
from tests.aggpay.test_api_docs import snippet
from tests.merchants.records import jpeg_bytes, record
from trades.models import Event


def test_the_documented_partner_flow_creates_documents_and_submits_a_merchant(live_server, westlake_app,
                                                                              tmp_path):
    (tmp_path / "merchant.json").write_text(json.dumps(record(), ensure_ascii=False), encoding="utf-8")
    (tmp_path / "documents").mkdir()
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside"):
        (tmp_path / "documents" / f"{doc_type}.jpg").write_bytes(jpeg_bytes(doc_type))
    (tmp_path / "partner.py").write_text(snippet("python-hmac") + "\n\n" + snippet("python-partner"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGGPAY_BASE_URL": live_server.url,
           "AGGPAY_APP_ID": westlake_app.app_id, "AGGPAY_APP_SECRET": westlake_app.secret}

    result = subprocess.run([sys.executable, "partner.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("200 ")  # the standalone example's GET /api/v1/merchant, as the partner
    created, merchant_no = lines[1].split()[:2]
    assert created == "created"
    assert lines[1].split()[3:] == ["bank_card", "id_back", "id_front", "licence", "store_front", "store_inside"]
    assert all(line.startswith("uploaded ") and " 201 " in line for line in lines[2:8])
    assert lines[8] == "200 submitted"
    assert Event.objects.get(object_id=merchant_no).type == "merchant.submitted"
    assert Merchant.objects.get(merchant_no=merchant_no).partner_reference == "WL-SHOP-0042"


def test_the_documented_partner_flow_stops_on_a_bad_record_naming_the_field(live_server, westlake_app, tmp_path):
    (tmp_path / "merchant.json").write_text(json.dumps(record(contact_phone="12345")), encoding="utf-8")
    (tmp_path / "partner.py").write_text(snippet("python-hmac") + "\n\n" + snippet("python-partner"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGGPAY_BASE_URL": live_server.url,
           "AGGPAY_APP_ID": westlake_app.app_id, "AGGPAY_APP_SECRET": westlake_app.secret}
    result = subprocess.run([sys.executable, "partner.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("400 contact_phone: ")


def test_the_docs_and_the_schema_name_every_merchant_event_type():
    from aggpay.api.events import EventOutputSerializer
    from aggpay.api.partner_resource import MERCHANT_EVENT_TYPES
    from tests.aggpay.test_api_docs import DOC

    text = DOC.read_text()
    notifications = text.split("## Notifications and events", 1)[1].split("\n## ", 1)[0]
    partner_events = text.split("**Events**: the partner's", 1)[1].split("\n\n", 1)[0]
    described = EventOutputSerializer().fields["type"].help_text
    assert "merchant.rejected" in MERCHANT_EVENT_TYPES
    for event_type in MERCHANT_EVENT_TYPES:
        assert f"`{event_type}`" in notifications, event_type
        assert f"`{event_type}`" in partner_events, event_type
        assert f"`{event_type}`" in described, event_type
