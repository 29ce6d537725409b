"""A partner's retried create (same ``partner_reference``) that spells out what it left out the first time — or
leaves out what it spelled out as null, "" or the default — is the same request (merchant-api.md "Errors": ``409
idempotency_conflict`` is for *different* parameters; design §5 rule 5): it replays (``200``,
``Idempotent-Replayed: true``). Other content is still a 409 naming ``partner_reference``, and a merchant stored
before the change (fingerprint of the old scheme) still replays. Over signed HTTP."""

from __future__ import annotations

import hashlib
import json

import pytest

from merchants.models import Merchant
from tests.merchants.records import record

OMIT = object()


@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


def _body(**changes) -> dict:
    """The Tea House record under reference WL-DEF-1, each change applied (OMIT drops the key; "a.b" is nested,
    "scenarios.0.url" the first scenario's)."""
    body = {**record(), "partner_reference": "WL-DEF-1"}
    for path, value in changes.items():
        *parents, key = path.split("__")
        target = body
        for parent in parents:
            target = target[int(parent)] if parent.isdigit() else target[parent]
        if value is OMIT:
            target.pop(key, None)
        else:
            target[key] = value
    return body


# (omitted, spelled out) pairs: each says the same as the other (merchants/services/record.py reads both alike).
SAME = {
    "contact_email null": ({"contact_email": OMIT}, {"contact_email": None}),
    "contact_email empty": ({"contact_email": OMIT}, {"contact_email": ""}),
    "industry null": ({"industry": OMIT}, {"industry": None}),
    "licence_valid_until null": ({"licence_valid_until": OMIT}, {"licence_valid_until": None}),
    "legal_person_id_valid_until null": ({"legal_person_id_valid_until": OMIT},
                                         {"legal_person_id_valid_until": None}),
    "legal_person_id_type default": ({"legal_person_id_type": OMIT}, {"legal_person_id_type": "id_card"}),
    "settlement bank_branch null": ({"settlement_account__bank_branch": OMIT},
                                    {"settlement_account__bank_branch": None}),
    "scenario url null": ({}, {"scenarios__0__url": None}),
    "submit false": ({}, {"submit": False}),
    "no documents": ({}, {"documents": []}),
    "all of them": ({"contact_email": OMIT, "industry": OMIT, "licence_valid_until": OMIT,
                     "legal_person_id_type": OMIT},
                    {"contact_email": "", "industry": None, "licence_valid_until": None,
                     "legal_person_id_type": "id_card", "submit": False, "documents": []}),
}


@pytest.mark.parametrize("explicit_first", [False, True], ids=["omitted-first", "explicit-first"])
@pytest.mark.parametrize("case", list(SAME))
def test_it_replays_a_partner_create_whether_a_default_is_omitted_or_spelled_out(partner, westlake_app, case,
                                                                                explicit_first):
    bodies = [_body(**changes) for changes in SAME[case]]
    if explicit_first:
        bodies.reverse()
    first = partner.post("/api/v1/merchants", json=bodies[0])
    assert first.status_code == 201, first.json()

    again = partner.post("/api/v1/merchants", json=bodies[1])

    assert again.status_code == 200, again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["merchant_no"] == first.json()["merchant_no"]
    assert Merchant.objects.filter(partner=westlake_app.merchant).count() == 1


@pytest.mark.parametrize("first_changes, retry_changes", [
    ({"contact_email": OMIT}, {"contact_email": "wang.wu@example.com"}),
    ({"industry": OMIT}, {"industry": "茶饮", "contact_email": None}),
    ({"legal_person_id_valid_until": OMIT}, {"legal_person_id_valid_until": "2036-05-01"}),
], ids=["contact_email", "defaults-and-one-real-change", "a-date-for-long-term"])
def test_it_still_answers_other_content_with_a_409_naming_partner_reference(partner, first_changes, retry_changes):
    first = partner.post("/api/v1/merchants", json=_body(**first_changes))
    assert first.status_code == 201, first.json()

    again = partner.post("/api/v1/merchants", json=_body(**retry_changes))

    assert again.status_code == 409, again.json()
    error = again.json()["error"]
    assert (error["code"], error["param"]) == ("idempotency_conflict", "partner_reference")


def test_it_still_replays_a_merchant_stored_with_a_fingerprint_of_the_old_scheme(partner, westlake_app):
    body = _body()
    first = partner.post("/api/v1/merchants", json=body)
    assert first.status_code == 201, first.json()
    # The old scheme: the record as given (without the reference, documents and submit), no documents, no submit.
    record_as_given = {k: v for k, v in body.items() if k != "partner_reference"}
    canonical = json.dumps({"record": record_as_given, "documents": [], "submit": False}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"), default=str)
    legacy = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    merchant = Merchant.objects.get(merchant_no=first.json()["merchant_no"])
    assert merchant.partner_request_fingerprint != legacy  # this record has a null the new scheme leaves out
    Merchant.objects.filter(pk=merchant.pk).update(partner_request_fingerprint=legacy)

    again = partner.post("/api/v1/merchants", json=body)

    assert again.status_code == 200, again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["merchant_no"] == merchant.merchant_no
    other = partner.post("/api/v1/merchants", json=_body(short_name="另一家茶馆"))
    assert other.status_code == 409 and other.json()["error"]["param"] == "partner_reference"
    assert Merchant.objects.filter(partner=westlake_app.merchant).count() == 1
