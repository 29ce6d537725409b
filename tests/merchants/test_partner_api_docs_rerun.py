"""docs/api.md's partner example says a retried create makes no second merchant: run again as a whole, the script
itself must go through too (the merchant is already submitted), not stop on the second submit's 409."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from merchants.models import Merchant
from tests.aggpay.test_api_docs import snippet
from tests.merchants.records import jpeg_bytes, record


def run_partner_script(live_server, westlake_app, tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGGPAY_BASE_URL": live_server.url,
           "AGGPAY_APP_ID": westlake_app.app_id, "AGGPAY_APP_SECRET": westlake_app.secret}
    return subprocess.run([sys.executable, "partner.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)


def test_it_runs_the_documented_partner_flow_again_without_error(live_server, westlake_app, tmp_path):
    (tmp_path / "merchant.json").write_text(json.dumps(record(), ensure_ascii=False), encoding="utf-8")
    (tmp_path / "documents").mkdir()
    for doc_type in ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside"):
        (tmp_path / "documents" / f"{doc_type}.jpg").write_bytes(jpeg_bytes(doc_type))
    (tmp_path / "partner.py").write_text(snippet("python-hmac") + "\n\n" + snippet("python-partner"))
    first = run_partner_script(live_server, westlake_app, tmp_path)
    assert first.returncode == 0, first.stderr

    again = run_partner_script(live_server, westlake_app, tmp_path)

    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[1].split()[:2] == first.stdout.splitlines()[1].split()[:2]  # "created" the same merchant
    assert lines[-1] == "200 submitted"
    assert Merchant.objects.filter(partner=westlake_app.merchant).count() == 1


def test_it_names_the_error_code_when_the_refusal_has_no_param(live_server, westlake_app, tmp_path):
    westlake_app.scopes = ["payments"]
    westlake_app.save()
    (tmp_path / "merchant.json").write_text(json.dumps(record(), ensure_ascii=False), encoding="utf-8")
    (tmp_path / "partner.py").write_text(snippet("python-hmac") + "\n\n" + snippet("python-partner"))

    result = run_partner_script(live_server, westlake_app, tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith("403 forbidden: ")
