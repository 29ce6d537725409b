"""Playwright against pytest-django's live_server, with the system Chromium (no downloaded browsers)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("the browser tests need a system Chromium on PATH")
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture
def sign_in(page, live_server):
    """Sign in through the real login form; returns the page, now on the staff home."""
    from tests.conftest import STAFF_PASSWORD

    def go(username: str):
        page.goto(live_server.url + "/staff/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", STAFF_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(live_server.url + "/staff/")
        return page

    return go


@pytest.fixture
def shots(tmp_path) -> Path:
    """Screenshots for a person to look at: AGGPAY_SCREENSHOT_DIR if set, else pytest's tmp dir."""
    folder = Path(os.environ.get("AGGPAY_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
