"""Shared fixtures: named personas, merchants with apps, and the channel simulators on their own port."""

from __future__ import annotations

import os

import pytest

from channels.simulators.server import SimulatorThread
from channels.simulators.store import Store
from merchants.services.merchants import merchant_activate
from tests.factories import MerchantAppFactory, MerchantFactory

# Playwright's sync API runs an event loop in the test thread; Django's ORM guard must not trip on it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def tea_house(db):
    """Persona: an active merchant, 'Tea House', with an HMAC payments app."""
    merchant = MerchantFactory(short_name="Tea House", legal_name="Hangzhou Tea House Co., Ltd.")
    merchant = merchant_activate(merchant_id=merchant.pk, actor=None, reason="test persona")
    return merchant


@pytest.fixture
def tea_house_app(tea_house):
    return MerchantAppFactory(merchant=tea_house, app_id="app_teahouse0001", secret="tea-house-secret-0123456789")


@pytest.fixture(scope="session")
def simulator_server(tmp_path_factory):
    """The channel simulators in a background thread on their own loopback port, with a fresh state file.

    Adapters reach them only over HTTP at ``simulator_server.base_url + "/<kind>"``.
    """
    store = Store(tmp_path_factory.mktemp("sim") / "simulators.sqlite3")
    server = SimulatorThread(store).start()
    yield server
    server.stop()
