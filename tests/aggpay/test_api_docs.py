"""docs/api.md's examples, run as written against a live server: the curl + openssl recipes through bash and
the standalone Python example through a separate interpreter."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aggpay.api import signing
from aggpay.platform_keys import platform_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_SNIPPET = re.compile(r"<!-- snippet: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.S)

pytestmark = pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")),
                                reason="needs the openssl and curl command-line tools")


def snippet(name: str) -> str:
    found = {match.group(1): match.group(3) for match in _SNIPPET.finditer(DOC.read_text())}
    assert name in found, f"docs/api.md has no snippet {name!r}"
    return found[name]


def run_shell(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def saved_headers(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()[1:]  # after the status line
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def test_the_curl_and_openssl_hmac_example_works(env, tea_house_app, tmp_path):
    result = run_shell(snippet("shell-hmac"), env, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    status, body, verdict = result.stdout.splitlines()[:3]
    assert status == "200"
    assert json.loads(body)["merchant_no"] == tea_house_app.merchant.merchant_no
    assert verdict == "response signature OK"


def test_the_shell_examples_response_check_catches_a_wrong_signature(env, tmp_path):
    # With the wrong secret the request is refused (401, signed with the real secret), and the example's own
    # verification must notice that the answer's signature does not match what it computes.
    result = run_shell(snippet("shell-hmac"), {**env, "AGGPAY_APP_SECRET": "wrong-secret-0123456789"}, tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "401"
    assert "BAD response signature" in result.stderr


def test_the_curl_and_openssl_post_example_signs_the_body_bytes(env, tea_house_app, tmp_path):
    result = run_shell(snippet("shell-hmac-post"), env, tmp_path)
    assert result.returncode == 0, result.stderr
    status = int(result.stdout.splitlines()[0])
    assert status != 401, result.stdout  # authenticated: whatever /orders answers, it is not a signature failure
    assert signing.verify_response(saved_headers(tmp_path / "headers.txt"), (tmp_path / "body.json").read_bytes(),
                                   secret=tea_house_app.secret)


def test_the_curl_and_openssl_rsa_example_works(live_server, tea_house_rsa_app, merchant_rsa_keypair, tmp_path):
    (tmp_path / "merchant_private.pem").write_text(merchant_rsa_keypair[0])
    (tmp_path / "platform_public.pem").write_text(platform_key().public_key_pem)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AGGPAY_BASE_URL": live_server.url,
        "AGGPAY_APP_ID": tea_house_rsa_app.app_id,
        "AGGPAY_PRIVATE_KEY": str(tmp_path / "merchant_private.pem"),
        "AGGPAY_PLATFORM_PUBLIC_KEY": str(tmp_path / "platform_public.pem"),
    }
    result = run_shell(snippet("shell-rsa"), env, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == "200"
    assert json.loads(lines[1])["app"]["sign_type"] == "rsa"
    assert lines[2] == "Verified OK"


def test_the_standalone_python_example_works(env, tea_house_app, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(snippet("python-hmac"))
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"200 {tea_house_app.merchant.merchant_no} active"


def test_the_python_example_refuses_an_answer_it_cannot_verify(env, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(snippet("python-hmac"))
    result = subprocess.run([sys.executable, str(script)], env={**env, "AGGPAY_APP_SECRET": "wrong-0123456789"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "response not signed by aggpay" in result.stderr


def test_the_python_example_imports_nothing_from_aggpay():
    imports = re.findall(r"^(?:import|from) (\w+)", snippet("python-hmac"), re.M)
    assert "aggpay" not in imports
    assert set(imports) <= {"base64", "hashlib", "hmac", "json", "os", "secrets", "time", "requests"}
