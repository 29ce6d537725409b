"""The error envelope (merchant-api.md "Errors") and the API permissions, through the whole Django stack.

This module is also its own URLconf: besides the real /api/v1/ routes it mounts small views that raise each
kind of error, so the one exception handler is exercised the way real views will use it.
"""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.urls import include, path
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.response import Response

from aggpay import errors
from aggpay.api import signing
from aggpay.api import urls as api_urls
from aggpay.api.errors import first_error
from aggpay.api.permissions import HasScope, IsMerchantApp, MerchantIsActive, MerchantMayRefund
from aggpay.api.views import MerchantAPIView
from merchants.services.merchants import merchant_freeze
from tests.factories import MerchantAppFactory, MerchantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


class _PayerSerializer(serializers.Serializer):
    openid = serializers.CharField()


class _LineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField(min_value=1)


class _EchoView(MerchantAPIView):
    class InputSerializer(serializers.Serializer):
        amount = serializers.IntegerField(min_value=1)
        payer = _PayerSerializer(required=False)
        lines = _LineSerializer(many=True, required=False)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)


_FAILURES = {
    "invalid_state": lambda: errors.InvalidState("order T1 is paid; cannot close"),
    "product": lambda: errors.ProductNotAvailable("no active contract for wechat.jsapi", param="product"),
    "channel": lambda: errors.ChannelRefused("the channel refused", channel_code="ORDERPAID",
                                             channel_message="该订单已支付"),
    "boom": lambda: RuntimeError("database on fire"),
    "http404": lambda: Http404("nothing"),
    "django403": lambda: DjangoPermissionDenied("not yours"),
    "throttled": lambda: Throttled(wait=7),
}


class _FailView(MerchantAPIView):
    def get(self, request, kind):
        raise _FAILURES[kind]()


class _PayView(MerchantAPIView):
    permission_classes = [IsMerchantApp, HasScope("payments"), MerchantIsActive]

    def get(self, request):
        return Response({"ok": True})


class _OnboardView(MerchantAPIView):
    permission_classes = [IsMerchantApp, HasScope("onboarding")]

    def get(self, request):
        return Response({"ok": True})


class _RefundView(MerchantAPIView):
    permission_classes = [IsMerchantApp, HasScope("payments"), MerchantMayRefund]

    def get(self, request):
        return Response({"ok": True})


def _plain_page(request):
    from django.http import HttpResponse

    return HttpResponse("<p>staff</p>")


def _plain_boom(request):
    raise RuntimeError("outside DRF")


_test_routes = [
    path("echo", _EchoView.as_view()),
    path("fail/<str:kind>", _FailView.as_view()),
    path("pay", _PayView.as_view()),
    path("onboard", _OnboardView.as_view()),
    path("refund", _RefundView.as_view()),
]
urlpatterns = [
    path("api/v1/", include(_test_routes + api_urls.urlpatterns)),
    path("staff-page", _plain_page),
    path("api/plain-boom", _plain_boom),
    path("plain-boom", _plain_boom),
]
handler404 = "aggpay.api.errors.handler404"
handler500 = "aggpay.api.errors.handler500"


ENVELOPE_KEYS = {"code", "message", "param", "channel_code", "channel_message", "request_id"}


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"  # merchant-api.md "Conventions"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ENVELOPE_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response["X-Request-Id"]
    return body["error"]


def test_a_validation_error_is_400_invalid_request_naming_the_field(signed_api, tea_house_app):
    response = signed_api(tea_house_app).post("/api/v1/echo", json={"amount": 0})
    error = assert_envelope(response, 400, "invalid_request")
    assert error["param"] == "amount"
    assert error["message"].startswith("amount: ")


def test_a_nested_validation_error_names_the_field_dotted(signed_api, tea_house_app):
    response = signed_api(tea_house_app).post("/api/v1/echo", json={"amount": 5, "payer": {}})
    assert assert_envelope(response, 400, "invalid_request")["param"] == "payer.openid"


def test_a_validation_error_in_a_list_item_names_its_index(signed_api, tea_house_app):
    lines = [{"sku": "tea", "quantity": 1}, {"sku": "cup", "quantity": 0}]
    response = signed_api(tea_house_app).post("/api/v1/echo", json={"amount": 5, "lines": lines})
    assert assert_envelope(response, 400, "invalid_request")["param"] == "lines[1].quantity"


def test_a_body_that_is_not_json_is_400_invalid_request(signed_api, tea_house_app):
    response = signed_api(tea_house_app).post("/api/v1/echo", body=b"{not json")
    error = assert_envelope(response, 400, "invalid_request")
    assert error["message"].startswith("malformed request body")


def test_a_body_of_another_media_type_is_400_invalid_request(signed_api, tea_house_app):
    response = signed_api(tea_house_app).post("/api/v1/echo", body=b"amount=5", content_type="text/plain")
    assert "application/json" in assert_envelope(response, 400, "invalid_request")["message"]


def test_a_valid_body_gets_through(signed_api, tea_house_app):
    response = signed_api(tea_house_app).post("/api/v1/echo", json={"amount": 5})
    assert response.status_code == 201
    assert response.json() == {"amount": 5}


def test_a_401_is_in_the_envelope(client, db):
    assert_envelope(client.get("/api/v1/merchant"), 401, "invalid_signature")


def test_an_unknown_path_under_the_api_is_404_not_found(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/orders/nope/nope")
    assert_envelope(response, 404, "not_found")
    # No `Allow` at all: an empty one would say no method works on a path that does not exist.
    assert "Allow" not in response


def test_an_unsigned_call_to_an_unknown_path_has_no_allow_header_either(client, db):
    response = client.get("/api/v1/orders/nope/nope")
    assert response.status_code == 401 and "Allow" not in response


def test_a_trailing_slash_is_an_unknown_path_not_a_redirect(signed_api, tea_house_app):
    assert_envelope(signed_api(tea_house_app).get("/api/v1/merchant/"), 404, "not_found")


def test_a_wrong_method_is_405_method_not_allowed(signed_api, tea_house_app):
    response = signed_api(tea_house_app).request("DELETE", "/api/v1/merchant")
    assert_envelope(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"  # only what the path serves: OPTIONS answers 405 too


def test_options_is_405_too(signed_api, tea_house_app):
    assert_envelope(signed_api(tea_house_app).request("OPTIONS", "/api/v1/merchant"), 405, "method_not_allowed")


def test_an_unacceptable_accept_header_is_400(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/merchant", headers={"Accept": "text/html"})
    assert_envelope(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("invalid_state", 409, "invalid_state"),
        ("product", 422, "product_not_available"),
        ("http404", 404, "not_found"),
        ("django403", 403, "forbidden"),
        ("throttled", 429, "rate_limited"),
    ],
)
def test_domain_and_framework_errors_map_to_their_codes(signed_api, tea_house_app, kind, status, code):
    response = signed_api(tea_house_app).get(f"/api/v1/fail/{kind}")
    assert_envelope(response, status, code)
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


def test_an_application_error_keeps_its_param(signed_api, tea_house_app):
    error = assert_envelope(signed_api(tea_house_app).get("/api/v1/fail/product"), 422, "product_not_available")
    assert error["param"] == "product"
    assert error["message"] == "no active contract for wechat.jsapi"


def test_a_throttled_answer_says_when_to_retry(signed_api, tea_house_app):
    assert signed_api(tea_house_app).get("/api/v1/fail/throttled")["Retry-After"] == "7"


def test_a_channel_refusal_is_502_with_the_channels_words(signed_api, tea_house_app):
    error = assert_envelope(signed_api(tea_house_app).get("/api/v1/fail/channel"), 502, "channel_error")
    assert (error["channel_code"], error["channel_message"]) == ("ORDERPAID", "该订单已支付")


def test_an_unexpected_exception_is_a_logged_500_in_the_envelope(signed_api, tea_house_app, caplog):
    with caplog.at_level(logging.ERROR, logger="aggpay.api.errors"):
        response = signed_api(tea_house_app).get("/api/v1/fail/boom")
    error = assert_envelope(response, 500, "internal_error")
    assert "database on fire" not in error["message"]  # internals stay in the log
    assert any(record.exc_info and "database on fire" in str(record.exc_info[1]) for record in caplog.records)
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


def test_the_request_id_is_the_incoming_one_when_well_formed(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/nowhere", headers={"X-Request-Id": "lb-1234567890"})
    assert assert_envelope(response, 404, "not_found")["request_id"] == "lb-1234567890"


@pytest.mark.parametrize("path", ["/api/v1/merchant", "/api/v1/nowhere", "/api/v1/fail/boom", "/api/v2/x"])
def test_every_api_response_carries_x_request_id(signed_api, tea_house_app, client, path):
    for response in (signed_api(tea_house_app).get(path), client.get(path)):
        assert response["X-Request-Id"]


def test_a_django_level_404_under_api_is_the_json_envelope(client, db):
    assert_envelope(client.get("/api/v2/orders"), 404, "not_found")


def test_a_django_level_404_outside_the_api_stays_html(client, db):
    response = client.get("/staff-nope")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_failure_outside_drf_under_api_is_the_json_envelope(db):
    from django.test import Client

    response = Client(raise_request_exception=False).get("/api/plain-boom")
    assert_envelope(response, 500, "internal_error")


def test_a_failure_outside_the_api_keeps_djangos_page(db):
    from django.test import Client

    response = Client(raise_request_exception=False).get("/plain-boom")
    assert response.status_code == 500
    assert not response["Content-Type"].startswith("application/json")


def test_more_query_parameters_than_django_reads_is_400_not_a_logged_500(client, db, caplog):
    # Content negotiation reads the query before authentication, so this needs no key: it must not be a 500 that
    # logs a traceback for anyone who sends a long query.
    query = "&".join(f"p{i}=1" for i in range(1001))

    with caplog.at_level(logging.ERROR):
        response = client.get(f"/api/v1/merchant?{query}")

    assert assert_envelope(response, 400, "invalid_request")["message"] == "too many query parameters"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.urls("aggpay.urls")  # the root URLconf's handler400
def test_a_host_outside_allowed_hosts_is_refused_in_the_envelope_under_the_api(db, settings):
    from django.test import Client

    settings.ALLOWED_HOSTS = ["pay.example.com"]

    response = Client(HTTP_HOST="elsewhere.example.com").get("/api/v1/merchant")

    assert_envelope(response, 400, "invalid_request")


@pytest.mark.urls("aggpay.urls")
def test_a_host_outside_allowed_hosts_keeps_djangos_page_outside_the_api(db, settings):
    from django.test import Client

    settings.ALLOWED_HOSTS = ["pay.example.com"]

    response = Client(HTTP_HOST="elsewhere.example.com").get("/staff/login/")

    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


def test_the_payments_scope_is_required_for_payment_operations(signed_api, tea_house):
    partner_app = MerchantAppFactory(merchant=tea_house, scopes=["onboarding"])
    error = assert_envelope(signed_api(partner_app).get("/api/v1/pay"), 403, "forbidden")
    assert "payments" in error["message"]
    assert signed_api(partner_app).get("/api/v1/onboard").status_code == 200


def test_the_onboarding_scope_is_required_for_partner_operations(signed_api, tea_house_app):
    error = assert_envelope(signed_api(tea_house_app).get("/api/v1/onboard"), 403, "forbidden")
    assert "onboarding" in error["message"]


def test_an_active_merchant_with_the_scope_may_pay(signed_api, tea_house_app):
    assert signed_api(tea_house_app).get("/api/v1/pay").status_code == 200


def test_a_merchant_still_onboarding_may_not_pay(signed_api):
    app = MerchantAppFactory(merchant=MerchantFactory())
    error = assert_envelope(signed_api(app).get("/api/v1/pay"), 403, "forbidden")
    assert error["message"] == "merchant not active (state: onboarding)"


def test_a_frozen_merchant_may_refund_but_not_pay(signed_api, tea_house_app):
    merchant_freeze(merchant_id=tea_house_app.merchant_id, actor=None, reason="risk test")
    assert_envelope(signed_api(tea_house_app).get("/api/v1/pay"), 403, "forbidden")
    assert signed_api(tea_house_app).get("/api/v1/refund").status_code == 200


def test_a_forbidden_answer_is_signed(signed_api, tea_house_app):
    response = signed_api(tea_house_app).get("/api/v1/onboard")
    assert signing.verify_response(response.headers, response.content, secret=tea_house_app.secret)


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ({"amount": ["bad"]}, ("amount", "bad")),
        ({"payer": {"openid": ["required"]}}, ("payer.openid", "required")),
        ({"lines": [{}, {"qty": ["too small"]}]}, ("lines[1].qty", "too small")),
        # A ListField's errors come keyed by the item's index: the same bracket as a list of objects.
        ({"requested_products": {0: ["not a product"]}}, ("requested_products[0]", "not a product")),
        ({"non_field_errors": ["dates overlap"]}, (None, "dates overlap")),
        ({"payer": {"non_field_errors": ["give one id"]}}, ("payer", "give one id")),
        (["plain message"], (None, "plain message")),
        ({"tags": {"2": ["not a string"]}}, ("tags.2", "not a string")),  # a DictField's key "2" is a name
        ({"scenarios": [{"urls": [{}, {"host": ["bad"]}]}]}, ("scenarios[0].urls[1].host", "bad")),
    ],
)
def test_first_error_finds_the_first_offending_field(detail, expected):
    assert first_error(detail) == expected
