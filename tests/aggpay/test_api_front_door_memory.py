"""The API front door remembers apps and products per process (aggpay.api.credentials); every change to what they
come from takes effect on the next call, in every process."""

from __future__ import annotations

import secrets
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from aggpay.api import credentials
from merchants.models import Contract, ContractRate
from merchants.services.merchants import merchant_freeze
from tests.factories import ChannelAccountFactory, MerchantAppFactory

pytestmark = pytest.mark.django_db


def _code(response) -> str:
    return response.json()["error"]["code"]


def _contract_for(merchant, *, product="wechat.native", rate="0.0038", state="active"):
    from channels.models import ChannelProduct

    account = ChannelAccountFactory()
    ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal("0.0020"), max_amount=100_000)
    contract = Contract.objects.create(merchant=merchant, channel_account=account, state=state,
                                       business_code=f"B-{account.code}")
    ContractRate.objects.create(contract=contract, product=product, rate=Decimal(rate))
    return contract


def test_a_deactivated_app_is_refused_on_the_next_call(signed_api, tea_house_app):
    api = signed_api(tea_house_app)
    assert api.get("/api/v1/merchant").status_code == 200
    tea_house_app.active = False
    tea_house_app.save(update_fields=["active"])
    response = api.get("/api/v1/merchant")
    assert response.status_code == 401 and _code(response) == "unknown_app"


def test_a_rotated_secret_takes_effect_on_the_next_call(signed_api, tea_house_app):
    old = signed_api(tea_house_app, secret="tea-house-secret-0123456789")
    assert old.get("/api/v1/merchant").status_code == 200
    tea_house_app.secret = "tea-house-rotated-secret-9876543210"
    tea_house_app.save(update_fields=["secret"])
    response = old.get("/api/v1/merchant")
    assert response.status_code == 401 and _code(response) == "invalid_signature"
    assert signed_api(tea_house_app, secret="tea-house-rotated-secret-9876543210").get(
        "/api/v1/merchant").status_code == 200


def test_a_frozen_merchant_may_not_trade_from_the_next_call(signed_api, tea_house_app):
    api = signed_api(tea_house_app)
    assert api.get("/api/v1/merchant").json()["state"] == "active"
    merchant_freeze(merchant_id=tea_house_app.merchant_id, actor=None, reason="risk: chargebacks")
    assert api.get("/api/v1/merchant").json()["state"] == "frozen"
    response = api.post("/api/v1/orders", json={"product": "wechat.native", "out_trade_no": "T-frozen-1",
                                                 "amount": 100, "subject": "tea"})
    assert response.status_code == 403 and _code(response) == "forbidden"


def test_a_contract_activated_elsewhere_shows_in_products_on_the_next_call(signed_api, tea_house_app):
    api = signed_api(tea_house_app)
    contract = _contract_for(tea_house_app.merchant, state="signing")
    assert api.get("/api/v1/merchant").json()["products"] == []
    Contract.objects.filter(pk=contract.pk).update(state="active")  # as another process would, without signals
    assert api.get("/api/v1/merchant").json()["products"] == []  # remembered: nothing told this process
    credentials.generation_bump()  # what the other process's save does
    assert api.get("/api/v1/merchant").json()["products"] == [{"product": "wechat.native", "rate": "0.003800"}]


def test_a_request_for_an_unknown_app_is_never_remembered(signed_api, tea_house):
    ghost = MerchantAppFactory.build(merchant=tea_house, app_id="app_ghost000000001", secret="ghost-secret-0123456")
    response = signed_api(ghost).get("/api/v1/merchant")
    assert response.status_code == 401 and _code(response) == "unknown_app"
    assert credentials.app_remembered("app_ghost000000001") is None


def test_each_request_gets_its_own_copy_of_the_remembered_app(signed_api, tea_house_app):
    signed_api(tea_house_app).get("/api/v1/merchant")
    token, first = credentials.app_remembered(tea_house_app.app_id)
    first.merchant.short_name = "changed by a view"
    _token, second = credentials.app_remembered(tea_house_app.app_id)
    assert second.merchant.short_name == "Tea House" and second is not first


def test_a_replayed_nonce_is_refused_when_the_app_is_remembered(signed_api, tea_house_app):
    api = signed_api(tea_house_app)
    assert api.get("/api/v1/merchant").status_code == 200
    nonce = secrets.token_hex(12)
    assert api.get("/api/v1/merchant", nonce=nonce).status_code == 200
    response = api.get("/api/v1/merchant", nonce=nonce)
    assert response.status_code == 401 and _code(response) == "nonce_reused"


@pytest.mark.django_db(transaction=True)
def test_a_read_racing_an_uncommitted_change_is_dropped_when_it_commits(tea_house_app):
    # Staged race: while one process deactivates the app in an open transaction (its save has already bumped the
    # token), another process reads the app — still active for it — and remembers it under the new token. The
    # commit bumps again, so the stale read is never trusted afterwards.
    seen = {}

    def other_process_reads():
        try:
            seen["token"], seen["app"] = credentials.app_read(tea_house_app.app_id)
        finally:
            connection.close()

    with transaction.atomic():
        tea_house_app.active = False
        tea_house_app.save(update_fields=["active"])
        reader = threading.Thread(target=other_process_reads)
        reader.start()
        reader.join()
        assert seen["app"] is not None and seen["app"].active  # read the committed row, not ours
        assert credentials.generation_current() == seen["token"]  # and tagged it with the current token
    assert credentials.generation_current() != seen["token"]  # the commit made that token stale
    assert credentials.app_read(tea_house_app.app_id)[1] is None


def test_a_warm_call_costs_no_query(signed_api, tea_house_app):
    _contract_for(tea_house_app.merchant)
    api = signed_api(tea_house_app)
    assert api.get("/api/v1/merchant").json()["products"]
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/v1/merchant").json()["products"] == [{"product": "wechat.native", "rate": "0.003800"}]
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_a_save_succeeds_when_the_cache_is_unreachable(tea_house_app, caplog):
    from django.test import override_settings

    unreachable = {"default": {"BACKEND": "aggpay.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=unreachable), caplog.at_level("WARNING", logger="aggpay.api.credentials"):
        tea_house_app.notify_url = "https://tea.example/notify"
        tea_house_app.save(update_fields=["notify_url"])
    tea_house_app.refresh_from_db()
    assert tea_house_app.notify_url == "https://tea.example/notify"
    assert "could not replace the API front door's generation token" in caplog.text


def test_nothing_is_trusted_longer_than_the_maximum_age(signed_api, tea_house_app, monkeypatch):
    api = signed_api(tea_house_app)
    assert api.get("/api/v1/merchant").status_code == 200
    monkeypatch.setattr(credentials, "MAX_AGE_SECONDS", -1.0)  # every entry is already too old
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/v1/merchant").status_code == 200
    assert len(queries) == 2, [q["sql"] for q in queries]
