"""The partner onboarding API under attack (merchant-api.md "Partner onboarding", "Errors"; design §5 rule 12): JSON
of the wrong type is a 400 naming the field, never quietly converted; a partner_reference is taken exactly as sent;
and two corrections of one merchant at once each keep the other's change."""

from __future__ import annotations

import base64
import threading
import time

import pytest
from django.db import connection, transaction

from aggpay.errors import InvalidRequest
from merchants.models import Document, Merchant, OnboardingApplication
from merchants.services.onboarding import merchant_record_update
from merchants.services.partner import partner_merchant_create
from tests.merchants.records import PNG_BYTES, record


def _document(**changes) -> dict:
    return {"doc_type": "licence", "filename": "licence.png",
            "content_base64": base64.b64encode(PNG_BYTES).decode(), **changes}


def _account(**changes) -> dict:
    return {**record()["settlement_account"], **changes}


@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


# --- JSON types: text is a JSON string, submit a JSON boolean --------------------------------------------------------
# DRF's CharField took 13800138000 for "13800138000" and 12.5 for "12.5", and BooleanField took "yes" for true: the
# module promised "a number where text belongs is a 400 naming the field".
WRONG_TYPES = [
    ({"contact_phone": 13800138000}, "contact_phone"),
    ({"legal_name": 12.5}, "legal_name"),
    ({"mcc": 5814}, "mcc"),
    ({"stores": [{"store_no": 1, "name": "龙井路店", "area_code": "330106", "address": "龙井路1号"}]},
     "stores[0].store_no"),
    ({"settlement_account": _account(account_number=571234567890123)}, "settlement_account.account_number"),
    ({"scenarios": [{"type": "store", "name": 7}]}, "scenarios[0].name"),
    ({"submit": "yes"}, "submit"),
    ({"submit": 1}, "submit"),
    ({"submit": "false"}, "submit"),
]


# Text of an application reaches risk's and the clerks' pages and the channels' onboarding calls: no control or
# bidirectional formatting characters, as in an order's subject (aggpay.api.strict.TextField). Bug: a name ending in
# U+202E "txt.exe" was taken and shown to risk reversed.
HIDDEN_CHARACTERS = [
    ({"legal_name": "西湖茶馆\u202etxt.exe"}, "legal_name"),
    ({"short_name": "茶\u0007馆"}, "short_name"),
    ({"stores": [{"store_no": "S1", "name": "龙井路店\u2066", "area_code": "330106", "address": "龙井路1号"}]},
     "stores[0].name"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("changes, param", HIDDEN_CHARACTERS)
def test_it_refuses_a_create_whose_text_hides_control_or_bidi_characters_naming_the_field(partner, changes, param):
    response = partner.post("/api/v1/merchants", json={**record(), **changes})
    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_request", param)
    assert not Merchant.objects.filter(partner__isnull=False).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("changes, param", WRONG_TYPES)
def test_it_refuses_a_create_with_a_json_value_of_the_wrong_type_naming_the_field(partner, changes, param):
    response = partner.post("/api/v1/merchants", json={**record(), **changes})
    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_request", param)
    assert not Merchant.objects.filter(partner__isnull=False).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("changes, param", WRONG_TYPES)
def test_it_refuses_a_patch_with_a_json_value_of_the_wrong_type_and_changes_nothing(partner, changes, param):
    merchant_no = partner.post("/api/v1/merchants", json=record()).json()["merchant_no"]
    response = partner.request("PATCH", f"/api/v1/merchants/{merchant_no}", json=changes)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param
    merchant = Merchant.objects.get(merchant_no=merchant_no)
    assert (merchant.contact_phone, merchant.legal_name) == ("13800138000", "杭州西湖茶馆有限公司")
    assert merchant.applications.get().state == "draft"


@pytest.mark.django_db
@pytest.mark.parametrize("changes, param", [
    ({"filename": 12345}, "filename"),
    ({"content_base64": 12345678}, "content_base64"),
])
def test_it_refuses_a_document_whose_name_or_content_is_not_a_json_string(partner, changes, param):
    merchant_no = partner.post("/api/v1/merchants", json=record()).json()["merchant_no"]
    response = partner.post(f"/api/v1/merchants/{merchant_no}/documents", json=_document(**changes))
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param
    assert not Document.objects.exists()


# --- partner_reference exactly as sent --------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("reference", [" WL-0001", "WL-0001 ", "WL-0001\n", "\tWL-0001"])
def test_it_refuses_a_partner_reference_with_surrounding_whitespace_rather_than_trimming_it(partner, reference):
    # DRF trimmed it: " WL-0001" was stored, and replayed, as "WL-0001" — another key than the partner's own.
    response = partner.post("/api/v1/merchants", json=record(partner_reference=reference))
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == "partner_reference"
    assert not Merchant.objects.filter(partner__isnull=False).exists()
    response = partner.get("/api/v1/merchants?partner_reference=%20WL-0001")
    assert response.status_code == 400 and response.json()["error"]["param"] == "partner_reference"


@pytest.mark.django_db
def test_the_service_refuses_a_partner_reference_ending_in_a_newline(westlake_agency):
    # PARTNER_REFERENCE_RE's $ matches before a final newline: .match took "WL-0001\n".
    with pytest.raises(InvalidRequest) as refused:
        partner_merchant_create(partner=westlake_agency, actor="api:app_westlake0001", data=record(),
                                partner_reference="WL-0001\n")
    assert refused.value.param == "partner_reference"
    assert not Merchant.objects.filter(partner=westlake_agency).exists()


# --- two corrections at once ------------------------------------------------------------------------------------------
def _waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # pg_stat_activity is otherwise frozen per transaction
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = "
                       "current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_two_patches_of_one_merchant_at_once_each_keep_the_others_change(partner):
    """Staged: the test plays the first PATCH (a new short name), holding the application's lock mid-transaction;
    the second PATCH (a new phone) comes meanwhile and waits. It used to merge its phone into the record as read
    before waiting, and write the old short name back over the first PATCH's once it got the lock."""
    merchant_no = partner.post("/api/v1/merchants", json=record()).json()["merchant_no"]
    application = OnboardingApplication.objects.get(merchant__merchant_no=merchant_no)
    answers = []

    def second_patch():
        try:
            answers.append(partner.request("PATCH", f"/api/v1/merchants/{merchant_no}",
                                           json={"contact_phone": "13900139000"}))
        finally:
            connection.close()

    with transaction.atomic():
        merchant_record_update(application_id=application.pk, actor="api:app_westlake0001",
                               data=record(short_name="西湖茶馆龙井店"))
        thread = threading.Thread(target=second_patch)
        thread.start()
        deadline = time.monotonic() + 20
        while not _waiting_for_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_for_a_lock(), "the second PATCH never waited for the first one's lock"
    thread.join(timeout=30)

    [answer] = answers
    assert answer.status_code == 200, answer.json()
    merchant = Merchant.objects.get(merchant_no=merchant_no)
    assert (merchant.short_name, merchant.contact_phone) == ("西湖茶馆龙井店", "13900139000")
    assert answer.json()["short_name"] == "西湖茶馆龙井店"
