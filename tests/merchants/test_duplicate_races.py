"""A business is onboarded once even when it is sent several times at once (issue 4; design §5 rule 12): the
duplicate check (``merchants.services.record.check_record_duplicates``) and the insert it guards are one step, so
creates of one licence number — or of one 小微 owner's ID number — racing each other make one merchant, and every
other gets the field error a later create would get.

The race is staged, not hoped for: each create, once past its duplicate check, waits until every other create has
either checked too or is queued behind it (waiting for the identity's lock in ``pg_locks``). Without the lock they
all check before anyone inserts; with it only the first checks before it inserts. Threads run against PostgreSQL,
each on its own connection.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from unittest import mock

import pytest
from django.db import connection
from django.test import Client

from aggpay.errors import InvalidRequest
from merchants.models import Merchant, OnboardingApplication
from merchants.services import record as record_services
from merchants.services.onboarding import merchant_onboard_draft, merchant_record_update
from merchants.services.partner import partner_merchant_create
from tests.conftest import SignedApi
from tests.merchants.records import LICENCE_NO, id_number, licence_no, micro_record, record

pytestmark = pytest.mark.django_db(transaction=True)

CREATES = 5


def _queued_for_a_lock() -> int:
    """Transactions of this database waiting for an advisory lock another one holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        return cursor.fetchone()[0]


@contextmanager
def each_check_waits_for_the_others(count: int):
    """Hold every create just after its duplicate check until each of the ``count`` creates has checked or is
    queued for the lock, so no create can insert before the others had their chance to check."""
    real_check = record_services.check_record_duplicates
    checked = []

    def check_then_wait(**kwargs):
        problems = real_check(**kwargs)
        checked.append(1)
        deadline = time.monotonic() + 30
        while len(checked) + _queued_for_a_lock() < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return problems

    with mock.patch.object(record_services, "check_record_duplicates", side_effect=check_then_wait):
        yield


def at_once(count: int, work) -> list:
    """``work(i)`` for i in range(count), each in its own thread and connection, released together; each outcome is
    what ``work`` returned or raised."""
    gate = threading.Barrier(count, timeout=30)
    outcomes: list = [None] * count

    def run(i):
        try:
            gate.wait()
            outcomes[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
            outcomes[i] = exc
        finally:
            connection.close()

    with each_check_waits_for_the_others(count):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    return outcomes


def refused(outcomes: list) -> list[InvalidRequest]:
    return [outcome for outcome in outcomes if isinstance(outcome, InvalidRequest)]


def test_clerks_creating_one_licence_at_once_make_one_merchant_and_the_others_are_told_which(clerk_wang):
    outcomes = at_once(CREATES, lambda i: merchant_onboard_draft(
        actor=clerk_wang, data=record(short_name=f"西湖茶馆{i}")))

    created = [outcome for outcome in outcomes if isinstance(outcome, OnboardingApplication)]
    assert len(created) == 1 and len(refused(outcomes)) == CREATES - 1, outcomes
    merchant = Merchant.objects.get(licence_no=LICENCE_NO)
    assert merchant.pk == created[0].merchant_id
    for error in refused(outcomes):
        assert error.param == "licence_no"
        assert error.message == f"licence_no: already onboarded: merchant {merchant.merchant_no} has this licence number"
    assert OnboardingApplication.objects.count() == 1


def test_creates_of_one_micro_owner_at_once_make_one_merchant(clerk_wang):
    outcomes = at_once(CREATES, lambda i: merchant_onboard_draft(
        actor=clerk_wang, data=micro_record(short_name=f"张三茶摊{i}")))

    assert len(refused(outcomes)) == CREATES - 1, outcomes
    assert {error.param for error in refused(outcomes)} == {"legal_person_id_number"}
    assert Merchant.objects.filter(subject_type="micro").count() == 1


def test_a_draft_corrected_to_a_licence_another_clerk_is_creating_at_once_leaves_one_merchant_with_it(clerk_wang):
    draft = merchant_onboard_draft(actor=clerk_wang, data=record(licence_no=licence_no(1), short_name="另一家茶馆"))

    def work(i):
        if i == 0:
            return merchant_record_update(application_id=draft.pk, actor=clerk_wang,
                                          data=record(short_name="另一家茶馆"))  # now the Tea House's licence
        return merchant_onboard_draft(actor=clerk_wang, data=record())

    outcomes = at_once(2, work)

    assert len(refused(outcomes)) == 1 and refused(outcomes)[0].param == "licence_no", outcomes
    assert Merchant.objects.filter(licence_no=LICENCE_NO).count() == 1


def test_partners_creating_one_licence_at_once_through_the_api_make_one_merchant(westlake_app):
    def create(i):
        partner = SignedApi(Client(), westlake_app)
        return partner.post("/api/v1/merchants", json=record(short_name=f"西湖茶馆{i}"))

    responses = at_once(CREATES, create)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [400] * (CREATES - 1), [response.json() for response in responses]
    merchant = Merchant.objects.get(licence_no=LICENCE_NO)
    for response in responses:
        if response.status_code == 400:
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("invalid_request", "licence_no")
            assert merchant.merchant_no in error["message"]  # the partner's own merchant is named to it


def test_one_partner_reference_sent_at_once_with_one_licence_still_replays_the_merchant_it_made(westlake_agency):
    """The reference is looked at first, as when the retry comes later: a racing retry of a create is answered with
    the merchant it made, not with "already onboarded"."""
    outcomes = at_once(CREATES, lambda i: partner_merchant_create(
        partner=westlake_agency, actor="api:app_westlake0001", data=record(), partner_reference="WL-RACE"))

    assert all(isinstance(outcome, tuple) for outcome in outcomes), outcomes
    assert sorted(replayed for _, replayed in outcomes) == [False] + [True] * (CREATES - 1)
    assert len({merchant.pk for merchant, _ in outcomes}) == 1
    assert Merchant.objects.filter(licence_no=LICENCE_NO).count() == 1


def test_creates_of_different_businesses_at_once_are_not_held_up_by_each_other(clerk_wang):
    outcomes = at_once(3, lambda i: merchant_onboard_draft(
        actor=clerk_wang, data=record(licence_no=licence_no(10 + i), legal_person_id_number=id_number(10 + i),
                                      short_name=f"茶馆{i}")))

    assert all(isinstance(outcome, OnboardingApplication) for outcome in outcomes), outcomes
    assert Merchant.objects.count() == 3


def _peak_advisory_locks_while(work) -> int:
    """The most advisory locks this database held at once while ``work()`` ran, read from pg_locks by a watcher
    thread on its own connection every few milliseconds."""
    peak, done = [0], threading.Event()

    def watch():
        try:
            while not done.is_set():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                   "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
                    peak[0] = max(peak[0], cursor.fetchone()[0])
                time.sleep(0.005)
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        work()
    finally:
        done.set()
        watcher.join(timeout=30)
    return peak[0]


def test_a_batch_import_locks_every_identity_with_one_lock_not_one_per_row(clerk_wang):
    """Thousands of per-row locks held to the batch's commit would crowd the server's lock table (aggpay/locks.py);
    the batch takes the identities' scope once, and its rows still find each other's and earlier merchants."""
    from merchants.batch import services as batch_services
    from merchants.batch.examples import example_rows
    from tests.merchants.test_batch_import import upload

    rows = example_rows(40)
    job = batch_services.import_job_create(actor=clerk_wang, sheet=upload(rows))
    assert job.valid_rows == 40

    peak = _peak_advisory_locks_while(lambda: batch_services.import_job_confirm(job_id=job.pk, actor=clerk_wang))

    assert Merchant.objects.count() == 40
    assert peak == 1, f"{peak} advisory locks held at once by a 40-row batch"


def test_a_single_create_of_a_licence_a_running_batch_is_importing_waits_and_is_refused(clerk_wang):
    """The batch holds every identity until it commits: a clerk's create of one of its licences, sent meanwhile,
    waits for it and then finds the batch's merchant."""
    from merchants.batch import services as batch_services
    from merchants.batch.examples import example_rows
    from tests.merchants.test_batch_import import upload

    rows = example_rows(30)
    licence = next(row["licence_no"] for row in reversed(rows) if row["licence_no"])  # one of the last rows'
    job = batch_services.import_job_create(actor=clerk_wang, sheet=upload(rows))
    started = threading.Event()
    real_lock = record_services.transaction_lock_scope

    def lock_then_signal(scope):
        real_lock(scope)
        started.set()

    outcome = []

    def single_create():
        started.wait(timeout=30)
        try:
            outcome.append(merchant_onboard_draft(actor=clerk_wang, data=record(
                licence_no=licence, short_name="抢先一步")))
        except InvalidRequest as exc:
            outcome.append(exc)
        finally:
            connection.close()

    clerk_thread = threading.Thread(target=single_create)
    clerk_thread.start()
    with mock.patch.object(record_services, "transaction_lock_scope", side_effect=lock_then_signal):
        batch_services.import_job_confirm(job_id=job.pk, actor=clerk_wang)
    clerk_thread.join(timeout=60)

    assert isinstance(outcome[0], InvalidRequest) and outcome[0].param == "licence_no", outcome
    assert "already onboarded" in outcome[0].message
    assert Merchant.objects.filter(licence_no=licence).count() == 1
    assert Merchant.objects.count() == 30
