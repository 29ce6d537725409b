"""docs/api.md's order examples are requests the live server accepts as written — not merely signed correctly —
and its fixed signing values are what aggpay computes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from aggpay.api import signing
from tests.aggpay.test_api_docs import DOC, run_shell, snippet

REPO = Path(__file__).resolve().parents[2]


def shop_env(shop) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGGPAY_BASE_URL": shop.client.base_url,
            "AGGPAY_APP_ID": shop.app.app_id, "AGGPAY_APP_SECRET": shop.app.secret}


def test_it_creates_the_order_of_the_curl_post_example(shop, tmp_path):
    result = run_shell(snippet("shell-hmac-post"), shop_env(shop), tmp_path)

    assert result.returncode == 0, result.stderr
    status, body = result.stdout.splitlines()[:2]
    assert status == "201", body
    assert json.loads(body)["state"] == "pending"


def test_it_creates_the_order_of_the_orders_section_example(shop):
    section = DOC.read_text().split("## Orders and refunds", 1)[1]
    example = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))

    status, _, order = shop.client.request("POST", "/api/v1/orders", json=example)

    assert status == 201, order
    assert order["metadata"] == example["metadata"]


def test_it_computes_the_fixed_signing_values_the_docs_print():
    text = DOC.read_text()
    section = text.split("### Check your signer with fixed values", 1)[1].split("\n### ", 1)[0]
    secret = re.search(r"secret\s+`([^`]+)`", section).group(1)
    timestamp = re.search(r"timestamp\s+`(\d+)`", section).group(1)
    nonce = re.search(r"nonce\s+`(\w+)`", section).group(1)
    method, target, _, _, body = snippet("vector-string-to-sign").split("\n")
    printed_signature = re.search(r"the signature\s+`([^`]+)`", section).group(1)
    printed_header = re.search(r"^Authorization: (.+)$", section, re.M).group(1)

    assert signing.string_to_sign(method, target, timestamp, nonce, body.encode()) == (
        snippet("vector-string-to-sign") + "\n").encode()
    header = signing.sign_request(method, target, body.encode(), app_id="app_demoteahouse0001",
                                  timestamp=timestamp, nonce=nonce, secret=secret)
    assert header == printed_header
    assert signing.parse_authorization(header)[1]["signature"] == printed_signature
    shell = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", snippet("shell-vector")], capture_output=True,
                           text=True, timeout=30)
    assert shell.stdout.strip() == printed_signature, shell.stderr


@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "python").exists(), reason="needs the checkout's .venv (make install)")
def test_the_credentials_recipe_runs_in_the_checkout(tmp_path):
    """The recipe that fills AGGPAY_BASE_URL, AGGPAY_APP_ID and AGGPAY_APP_SECRET (docs/api.md "Credentials"), run
    as a shell in the checkout runs it after `PORT=8700 make demo`: nothing exported but PORT."""
    recipe = DOC.read_text().split("## Credentials", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    # The demo's embedded defaults, kept inside tmp_path: SQLite (not migrated: the command still prints).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": "8700", "AGGPAY_VAR_DIR": str(tmp_path / "var")}

    result = run_shell(recipe + '\necho "$AGGPAY_BASE_URL $AGGPAY_APP_ID $AGGPAY_APP_SECRET"', env, REPO)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://127.0.0.1:8700", "app_demoteahouse0001",
                                     "demo-tea-house-secret-not-for-production"]
