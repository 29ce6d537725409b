"""A business is onboarded once (issue 4): a licensed one by its licence number; a 小微 merchant, which has no licence,
by its owner's ID number — encrypted at rest, so compared through its lookup digest. One check
(``merchants.services.record.check_record_duplicates``) stands behind the clerk's form, the partner API and the batch
import (tests/merchants/test_batch_duplicates_micro_owner.py, test_batch_import.py). A merchant that was closed or
that risk rejected does not stand in the way; one being onboarded, active or frozen does.
"""

from __future__ import annotations

import hashlib
import importlib

import pytest
from django.apps import apps
from django.db import connection

from aggpay.errors import InvalidRequest
from aggpay.masking import mask_id_number
from merchants.models import Merchant
from merchants.models.merchant import id_number_digest
from merchants.services.merchants import merchant_activate, merchant_freeze
from merchants.services.onboarding import (
    application_reject,
    application_review_start,
    application_submit,
    document_add,
    merchant_onboard_draft,
    merchant_record_update,
)
from tests.factories import MerchantAppFactory, MerchantFactory
from tests.merchants.records import ID_NUMBER, LICENCE_NO, id_number, licence_no, micro_record, png, record
from tests.merchants.test_workbench_form import form_data

pytestmark = pytest.mark.django_db

MASKED_ID = mask_id_number(ID_NUMBER)  # 110105********002X


def micro_form_data(**changes) -> dict:
    """Zhang San's 小微 tea stall as the browser posts the record form."""
    return form_data(**{"subject_type": "micro", "legal_name": "张三", "short_name": "张三茶摊", "licence_no": "",
                        "licence_valid_from": "", "settlement_account-account_type": "personal",
                        "settlement_account-account_holder": "张三", **changes})


def drafted(clerk, data: dict) -> Merchant:
    return Merchant.objects.get(pk=merchant_onboard_draft(actor=clerk, data=data).merchant_id)


# --- the lookup digest ---------------------------------------------------------------------------------------------
def test_the_id_number_is_stored_encrypted_beside_a_keyed_digest_of_it(clerk_wang):
    merchant = drafted(clerk_wang, micro_record())

    with connection.cursor() as cursor:
        cursor.execute("SELECT legal_person_id_number, legal_person_id_digest FROM merchants_merchant WHERE id = %s",
                       [merchant.pk])
        ciphertext, digest = cursor.fetchone()
    assert ID_NUMBER not in ciphertext and ID_NUMBER not in digest
    assert digest == id_number_digest(f" {ID_NUMBER.lower()} ")  # of the number normalised: stripped, upper case
    assert digest != hashlib.sha256(ID_NUMBER.encode()).hexdigest()  # keyed: not a hash anyone can recompute
    assert merchant.legal_person_id_digest == digest


def test_the_digest_key_is_the_lookup_key_when_one_is_set(settings):
    derived = id_number_digest(ID_NUMBER)
    settings.AGGPAY_LOOKUP_KEY = "a-lookup-key-of-its-own-0123456789abcdef"
    assert id_number_digest(ID_NUMBER) not in ("", derived)
    assert id_number_digest("") == ""


def test_every_write_of_the_id_number_writes_its_digest(clerk_wang):
    merchant = drafted(clerk_wang, micro_record())
    merchant_record_update(application_id=merchant.applications.get().pk, actor=clerk_wang,
                           data=micro_record(legal_person_id_number=id_number(3)))
    merchant.refresh_from_db()
    assert merchant.legal_person_id_digest == id_number_digest(id_number(3))

    merchant.legal_person_id_number = id_number(4)
    merchant.save(update_fields=["legal_person_id_number"])
    assert Merchant.objects.get(pk=merchant.pk).legal_person_id_digest == id_number_digest(id_number(4))


def test_the_migration_fills_in_the_digests_of_merchants_saved_before_the_column(clerk_wang, monkeypatch):
    for serial in range(3, 8):
        drafted(clerk_wang, micro_record(legal_person_id_number=id_number(serial), short_name=f"茶摊{serial}"))
    MerchantFactory()  # no ID number: nothing to digest
    Merchant.objects.update(legal_person_id_digest="")  # as the rows were before 0008
    migration = importlib.import_module("merchants.migrations.0009_backfill_legal_person_id_digest")
    monkeypatch.setattr(migration, "BATCH", 2)  # several batches

    migration.fill_digests(apps, connection.schema_editor())

    merchants = list(Merchant.objects.all())
    assert len(merchants) == 6
    for merchant in merchants:
        assert merchant.legal_person_id_digest == id_number_digest(merchant.legal_person_id_number)


# --- which merchants stand in the way -------------------------------------------------------------------------------
def _reject(application, clerk, risk) -> None:
    for doc_type in ("id_front", "id_back", "bank_card", "store_front", "store_inside"):
        document_add(merchant_id=application.merchant_id, actor=clerk, doc_type=doc_type,
                     uploaded_file=png(f"{doc_type}.png"))
    application_submit(application_id=application.pk, actor=clerk)
    application_review_start(application_id=application.pk, actor=risk)
    application_reject(application_id=application.pk, actor=risk, reason="虚假商户")


def test_a_micro_owner_whose_merchant_was_rejected_or_closed_may_be_onboarded_again(clerk_wang, risk_zhao):
    rejected = merchant_onboard_draft(actor=clerk_wang, data=micro_record())
    _reject(rejected, clerk_wang, risk_zhao)
    closed = drafted(clerk_wang, micro_record(legal_person_id_number=id_number(3)))
    closed.close()  # no service closes a merchant yet; the transition is the model's own
    closed.save()

    again = merchant_onboard_draft(actor=clerk_wang, data=micro_record(short_name="张三茶摊 新店"))
    back = merchant_onboard_draft(actor=clerk_wang, data=micro_record(legal_person_id_number=id_number(3)))

    assert again.merchant_id != rejected.merchant_id and back.merchant_id != closed.pk
    # The one onboarded again stands in the way in its turn.
    with pytest.raises(InvalidRequest) as raised:
        merchant_onboard_draft(actor=clerk_wang, data=micro_record(short_name="张三茶摊 第三家"))
    assert raised.value.param == "legal_person_id_number"
    assert again.merchant.merchant_no in raised.value.message


def test_a_frozen_merchant_stands_in_the_way_of_its_licence_onboarded_again(clerk_wang, risk_zhao):
    frozen = drafted(clerk_wang, record())
    merchant_activate(merchant_id=frozen.pk, actor=None)
    merchant_freeze(merchant_id=frozen.pk, actor=risk_zhao, reason="可疑交易")

    with pytest.raises(InvalidRequest) as raised:
        merchant_onboard_draft(actor=clerk_wang, data=record(short_name="西湖茶馆 换个名字"))

    assert raised.value.param == "licence_no"
    assert raised.value.message == f"licence_no: already onboarded: merchant {frozen.merchant_no} has this licence number"
    assert Merchant.objects.count() == 1


def test_an_enterprises_legal_person_may_also_own_a_micro_merchant(clerk_wang):
    drafted(clerk_wang, record())  # 张三 is the tea house company's legal person
    assert drafted(clerk_wang, micro_record()).legal_person_id_number == ID_NUMBER


# --- the clerk's form ------------------------------------------------------------------------------------------------
def test_the_form_refuses_a_micro_owner_already_onboarded_beside_the_id_number(client, clerk_wang):
    existing = drafted(clerk_wang, micro_record())
    client.force_login(clerk_wang)

    response = client.post("/staff/merchants/new/", micro_form_data(short_name="张三茶摊 二号店"))

    assert response.status_code == 200
    errors = response.context["forms"].record.errors
    assert list(errors) == ["legal_person_id_number"]
    assert errors["legal_person_id_number"] == [
        f"Already onboarded: 小微 merchant {existing.merchant_no} has this owner ID number ({MASKED_ID})"]
    assert ID_NUMBER not in response.content.decode()
    assert Merchant.objects.count() == 1


def test_the_form_refuses_a_licence_already_onboarded_beside_the_licence_number(client, clerk_wang,
                                                                                 drafted_tea_house):
    client.force_login(clerk_wang)

    response = client.post("/staff/merchants/new/", form_data(short_name="西湖茶馆 二号店"))

    assert response.status_code == 200
    assert response.context["forms"].record.errors["licence_no"] == [
        f"Already onboarded: merchant {drafted_tea_house.merchant.merchant_no} has this licence number"]
    assert Merchant.objects.count() == 1


def test_editing_a_draft_into_a_micro_owner_already_onboarded_is_refused_and_changes_nothing(client, clerk_wang):
    existing = drafted(clerk_wang, micro_record())
    other = drafted(clerk_wang, micro_record(legal_person_id_number=id_number(3), short_name="李四茶摊"))
    client.force_login(clerk_wang)

    response = client.post(f"/staff/merchants/{other.merchant_no}/edit/", micro_form_data(
        short_name="李四茶摊", **{"stores-INITIAL_FORMS": "1", "scenarios-INITIAL_FORMS": "1"}))

    assert response.status_code == 200
    assert existing.merchant_no in response.context["forms"].record.errors["legal_person_id_number"][0]
    other.refresh_from_db()
    assert other.legal_person_id_number == id_number(3)


def test_editing_a_draft_that_keeps_its_id_number_is_not_compared_again(clerk_wang):
    """A duplicate from before the check (two drafts of one owner) is for a person to sort out: it does not stop
    either draft's other fields from being corrected."""
    first = drafted(clerk_wang, micro_record())
    second = drafted(clerk_wang, micro_record(legal_person_id_number=id_number(3)))
    # As if both had been drafted before the check: the same owner twice.
    Merchant.objects.filter(pk=second.pk).update(legal_person_id_number=ID_NUMBER,
                                                 legal_person_id_digest=first.legal_person_id_digest)

    merchant_record_update(application_id=second.applications.get().pk, actor=clerk_wang,
                           data=micro_record(short_name="改个名字"))

    assert Merchant.objects.get(pk=second.pk).short_name == "改个名字"


# --- the partner API -----------------------------------------------------------------------------------------------
@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


@pytest.fixture
def rival(signed_api):
    """Another partner, 'Qiantang Agency', with its own onboarding app."""
    agency = MerchantFactory(short_name="Qiantang Agency", is_partner=True)
    return signed_api(MerchantAppFactory(merchant=agency, scopes=["onboarding"]))


def test_the_partner_api_names_the_field_and_the_partners_own_merchant(partner):
    first = partner.post("/api/v1/merchants", json=micro_record())
    assert first.status_code == 201, first.json()

    retried = partner.post("/api/v1/merchants", json=micro_record())  # no partner_reference: not a replay

    assert retried.status_code == 400
    error = retried.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "legal_person_id_number")
    assert error["message"] == (f"legal_person_id_number: already onboarded: 小微 merchant "
                                f"{first.json()['merchant_no']} has this owner ID number ({MASKED_ID})")
    assert ID_NUMBER.encode() not in retried.content
    assert Merchant.objects.filter(partner__isnull=False).count() == 1


def test_the_partner_api_never_names_another_partners_or_a_clerks_merchant(partner, rival, clerk_wang):
    theirs = rival.post("/api/v1/merchants", json=micro_record())
    assert theirs.status_code == 201, theirs.json()
    clerks = drafted(clerk_wang, record())

    by_owner = partner.post("/api/v1/merchants", json=micro_record())
    by_licence = partner.post("/api/v1/merchants", json=record())

    assert by_owner.status_code == by_licence.status_code == 400
    assert by_owner.json()["error"] == {
        **by_owner.json()["error"], "code": "invalid_request", "param": "legal_person_id_number",
        "message": "legal_person_id_number: a 小微 merchant with this owner ID number is already onboarded"}
    assert by_licence.json()["error"] == {
        **by_licence.json()["error"], "code": "invalid_request", "param": "licence_no",
        "message": "licence_no: a merchant with this licence number is already onboarded"}
    assert theirs.json()["merchant_no"].encode() not in by_owner.content
    assert clerks.merchant_no.encode() not in by_licence.content
    assert not Merchant.objects.filter(partner__merchant_no=partner.app.merchant.merchant_no).exists()


def test_a_partners_correction_into_another_partners_owner_is_refused_without_naming_it(partner, rival):
    assert rival.post("/api/v1/merchants", json=micro_record()).status_code == 201
    mine = partner.post("/api/v1/merchants", json=micro_record(legal_person_id_number=id_number(3)))
    assert mine.status_code == 201, mine.json()
    merchant_no = mine.json()["merchant_no"]

    response = partner.request("PATCH", f"/api/v1/merchants/{merchant_no}",
                               json={"legal_person_id_number": ID_NUMBER})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "legal_person_id_number")
    assert "already onboarded" in error["message"] and "merchant M" not in error["message"]
    assert Merchant.objects.get(merchant_no=merchant_no).legal_person_id_number == id_number(3)


def test_licence_numbers_are_stored_in_clear_and_compared_as_such(clerk_wang):
    """Licence numbers are public (printed on the licence, searchable in the national register): no digest needed."""
    merchant = drafted(clerk_wang, record())
    with connection.cursor() as cursor:
        cursor.execute("SELECT licence_no FROM merchants_merchant WHERE id = %s", [merchant.pk])
        assert cursor.fetchone() == (LICENCE_NO,)
    assert drafted(clerk_wang, record(licence_no=licence_no(1))).licence_no == licence_no(1)
