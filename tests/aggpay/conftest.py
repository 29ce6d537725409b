"""Fixtures shared by tests/aggpay's modules."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def env(live_server, tea_house_app):
    """The environment docs/api.md's examples run in (shell, Python, Node): the live server and the demo shop's app."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AGGPAY_BASE_URL": live_server.url,
        "AGGPAY_APP_ID": tea_house_app.app_id,
        "AGGPAY_APP_SECRET": tea_house_app.secret,
    }
