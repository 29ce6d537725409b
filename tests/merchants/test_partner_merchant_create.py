"""A partner's create is idempotent by its ``partner_reference`` (merchants.services.partner; merchant-api.md
"Partner onboarding"): a retry replays the merchant, other content under the reference is a conflict, and the
unique constraint on (partner, partner_reference) settles two creates racing on one reference."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction

from aggpay.errors import IdempotencyConflict, InvalidRequest
from merchants.models import Document, Merchant, OnboardingApplication
from merchants.services import partner as partner_services
from merchants.services.partner import partner_merchant_create
from tests.factories import MerchantFactory
from tests.merchants.records import licence_no, png_bytes, record
from trades.models import Event

ACTOR = "api:app_westlake0001"
ALL_DOCUMENTS = ("licence", "id_front", "id_back", "bank_card", "store_front", "store_inside")


def documents(*doc_types: str) -> list[tuple[str, SimpleUploadedFile]]:
    return [(doc_type, SimpleUploadedFile(f"{doc_type}.png", png_bytes(doc_type)))
            for doc_type in doc_types]


@pytest.fixture
def agency(db):
    return MerchantFactory(short_name="Westlake Agency", is_partner=True)


@pytest.mark.django_db
def test_it_replays_the_merchant_a_reference_made_without_making_another(agency):
    first, replayed = partner_merchant_create(partner=agency, actor=ACTOR, data=record(), partner_reference="WL-001",
                                              documents=documents(*ALL_DOCUMENTS), submit=True)
    assert not replayed and first.partner_reference == "WL-001"

    again, replayed = partner_merchant_create(partner=agency, actor=ACTOR, data=record(),
                                              partner_reference="WL-001", documents=documents(*ALL_DOCUMENTS),
                                              submit=True)

    assert replayed and again.pk == first.pk
    assert Merchant.objects.filter(partner=agency).count() == 1
    assert OnboardingApplication.objects.get(merchant=first).state == "submitted"  # not submitted twice
    assert Document.objects.filter(merchant=first).count() == len(ALL_DOCUMENTS)
    assert Event.objects.filter(object_id=first.merchant_no, type="merchant.submitted").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("changes", [
    {"data": record(short_name="另一家茶馆")},
    {"documents": documents("licence", "id_front")},  # another set of documents
    {"submit": True},
])
def test_other_content_under_a_used_reference_is_a_conflict_naming_it(agency, changes):
    original = dict(data=record(), documents=documents("licence"), submit=False)
    first, _ = partner_merchant_create(partner=agency, actor=ACTOR, partner_reference="WL-002", **original)

    with pytest.raises(IdempotencyConflict) as raised:
        partner_merchant_create(partner=agency, actor=ACTOR, partner_reference="WL-002", **{**original, **changes})

    assert raised.value.param == "partner_reference" and first.merchant_no in raised.value.message
    assert Merchant.objects.filter(partner=agency).count() == 1
    assert Merchant.objects.get(pk=first.pk).short_name == "西湖茶馆"


@pytest.mark.django_db
def test_without_a_reference_every_create_is_a_new_merchant(agency):
    first, _ = partner_merchant_create(partner=agency, actor=ACTOR, data=record())
    second, replayed = partner_merchant_create(partner=agency, actor=ACTOR,
                                               data=record(licence_no=licence_no(1), short_name="另一家茶馆"))
    assert not replayed and first.pk != second.pk
    assert (first.partner_reference, second.partner_reference) == ("", "")


@pytest.mark.django_db
def test_a_reference_is_the_partners_own_another_partner_may_use_it_too(agency):
    rival = MerchantFactory(short_name="Qiantang Agency", is_partner=True)
    mine, _ = partner_merchant_create(partner=agency, actor=ACTOR, data=record(), partner_reference="SHOP-1")
    theirs, replayed = partner_merchant_create(partner=rival, actor="api:rival",
                                               data=record(licence_no=licence_no(1)), partner_reference="SHOP-1")
    assert not replayed and theirs.pk != mine.pk


@pytest.mark.django_db
def test_the_schema_refuses_a_second_merchant_under_one_reference(agency):
    MerchantFactory(partner=agency, partner_reference="WL-003")
    MerchantFactory(partner=agency)  # blank references are not unique
    MerchantFactory(partner=agency)
    with pytest.raises(IntegrityError), transaction.atomic():
        MerchantFactory(partner=agency, partner_reference="WL-003")


@pytest.mark.django_db
@pytest.mark.parametrize("reference", ["has space", "x" * 65, "引用", "a/b"])
def test_a_malformed_reference_is_refused_naming_it(agency, reference):
    with pytest.raises(InvalidRequest) as raised:
        partner_merchant_create(partner=agency, actor=ACTOR, data=record(), partner_reference=reference)
    assert raised.value.param == "partner_reference"
    assert not Merchant.objects.filter(partner=agency).exists()


@pytest.mark.django_db
def test_a_failed_create_leaves_its_reference_free_for_the_corrected_retry(agency):
    with pytest.raises(InvalidRequest) as raised:  # submit without the documents: nothing is created
        partner_merchant_create(partner=agency, actor=ACTOR, data=record(), partner_reference="WL-004", submit=True)
    assert raised.value.param == "documents"
    assert not Merchant.objects.filter(partner=agency).exists()

    merchant, replayed = partner_merchant_create(partner=agency, actor=ACTOR, data=record(),
                                                 partner_reference="WL-004", documents=documents(*ALL_DOCUMENTS),
                                                 submit=True)
    assert not replayed and merchant.partner_reference == "WL-004"


@pytest.mark.django_db
def test_a_bad_document_is_named_by_its_index(agency):
    bad = [("licence", SimpleUploadedFile("licence.png", b"GIF89a not allowed"))]
    with pytest.raises(InvalidRequest) as raised:
        partner_merchant_create(partner=agency, actor=ACTOR, data=record(), partner_reference="WL-005",
                                documents=documents("id_front") + bad)
    assert raised.value.param == "documents[1].file"
    assert not Merchant.objects.filter(partner=agency).exists()


# --- the race -----------------------------------------------------------------------------------------------------
def _race(agency, bodies: list[dict]) -> list:
    """Run one create per body in its own thread and connection, both past the read-first check before either
    inserts (the check is held at a barrier), so only the unique constraint can tell them apart."""
    gate = threading.Barrier(len(bodies), timeout=20)
    held = iter(range(len(bodies)))
    lock = threading.Lock()
    real_existing = partner_services._existing

    def existing_then_wait(**kwargs):
        found = real_existing(**kwargs)
        with lock:
            hold = next(held, None) is not None  # only the first check of each thread; not the replay's lookup
        if hold:
            gate.wait()
        return found

    outcomes: list = [None] * len(bodies)

    def create(index):
        try:
            outcomes[index] = partner_merchant_create(partner=agency, actor=ACTOR, partner_reference="RACE-1",
                                                      **bodies[index])
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
            outcomes[index] = exc
        finally:
            connection.close()

    with mock.patch.object(partner_services, "_existing", side_effect=existing_then_wait):
        threads = [threading.Thread(target=create, args=(i,)) for i in range(len(bodies))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_identical_creates_at_once_make_one_merchant_and_the_other_replays_it():
    agency = MerchantFactory(short_name="Westlake Agency", is_partner=True)
    body = {"data": record(), "documents": documents(*ALL_DOCUMENTS), "submit": True}

    outcomes = _race(agency, [body, {**body, "documents": documents(*ALL_DOCUMENTS)}])

    assert all(isinstance(outcome, tuple) for outcome in outcomes), outcomes
    assert sorted(replayed for _, replayed in outcomes) == [False, True]
    assert len({merchant.pk for merchant, _ in outcomes}) == 1
    merchant = Merchant.objects.get(partner=agency)
    assert merchant.partner_reference == "RACE-1"
    assert OnboardingApplication.objects.filter(merchant=merchant).count() == 1
    assert Document.objects.filter(merchant=merchant).count() == len(ALL_DOCUMENTS)
    assert Event.objects.filter(object_id=merchant.merchant_no, type="merchant.submitted").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_different_creates_at_once_under_one_reference_make_one_merchant_and_one_conflict():
    agency = MerchantFactory(short_name="Westlake Agency", is_partner=True)

    outcomes = _race(agency, [{"data": record()}, {"data": record(short_name="另一家茶馆")}])

    created = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, IdempotencyConflict)]
    assert len(created) == 1 and len(conflicts) == 1, outcomes
    assert created[0][1] is False and conflicts[0].param == "partner_reference"
    assert Merchant.objects.filter(partner=agency).count() == 1
