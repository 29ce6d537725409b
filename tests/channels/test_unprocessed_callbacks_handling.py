"""Operations mark callbacks not processed handled (channels.services.callback_handling): with a note, once, all or
nothing, audited, by operations only. A handled one leaves the open queue, its counts and the home tile, and shows
under the queue's "Handled" tab with who marked it, when, and the note."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aggpay.errors import Forbidden, InvalidRequest, InvalidState, NotFound
from aggpay.models import AuditLog
from aggpay.roles import ROLES, roles_sync
from aggpay.staff.queues import operations_queues
from channels import unprocessed
from channels.models import CallbackOutcome, ChannelCallback
from channels.services.callback_handling import callback_record_mark_handled
from tests.channels.test_unprocessed_callbacks import _html_row, _ids
from tests.factories import ChannelAccountFactory
from tests.race_condition import in_threads

pytestmark = pytest.mark.django_db

QUEUE = "/staff/channels/callbacks/unprocessed/"
HANDLED = "channels.callback.handled"


def _row(account, outcome, *, minutes_ago=0, kind="payment", event_id="", message=""):
    return ChannelCallback.objects.create(
        account=account, outcome=outcome, kind=kind, event_id=event_id, message=message, body="{}",
        received_at=timezone.now() - dt.timedelta(minutes=minutes_ago))


@pytest.fixture
def ops_amy(staff_member):
    """Persona: Amy, an operator who works the queue."""
    return staff_member("operations", username="ops-amy")


@pytest.fixture
def queue():
    """Two accounts' notices: on wx-main a failing refund handler, a complaint we have no handler for, an error a
    retry then applied, and processed and refused ones that are not the queue's; on bank-b one error from two days
    ago."""
    wx = ChannelAccountFactory(code="wx-main", kind="wechatpay")
    bank = ChannelAccountFactory(code="bank-b", kind="bank")
    rows = {
        "failing": _row(wx, CallbackOutcome.ERROR, minutes_ago=5, kind="refund", event_id="EV-F",
                        message="channel timed out"),
        "ignored": _row(wx, CallbackOutcome.IGNORED, minutes_ago=10, kind="complaint", event_id="EV-C"),
        "retried": _row(wx, CallbackOutcome.ERROR, minutes_ago=30, event_id="EV-R"),
        "retry_applied": _row(wx, CallbackOutcome.APPLIED, minutes_ago=20, event_id="EV-R"),
        "rejected": _row(wx, CallbackOutcome.REJECTED, minutes_ago=40, message="amount 1 differs"),
        "old": _row(bank, CallbackOutcome.ERROR, minutes_ago=2 * 24 * 60, event_id="EV-O"),
    }
    return {"wx": wx, "bank": bank, **rows}


def _tile(user):
    return next(q for q in operations_queues(user) if q.label.startswith("Callbacks not processed"))


def _untouched(*records) -> bool:
    for record in records:
        record.refresh_from_db()
    return (all(r.handled_at is None and r.handled_by is None and r.handled_note == "" for r in records)
            and not AuditLog.objects.filter(action=HANDLED).exists())


# --- the service --------------------------------------------------------------------------------------------------
def test_marking_them_handled_moves_them_out_of_the_open_counts(ops_amy, queue):
    before = unprocessed.counts()
    assert (before["all"], {t.code: (t.error, t.ignored) for t in before["accounts"]}) == (
        3, {"bank-b": (1, 0), "wx-main": (1, 1)})

    marked = callback_record_mark_handled(record_ids=[queue["failing"].pk, queue["old"].pk], actor=ops_amy,
                                          note="  refund handler timed out on the bank's side; retried fine  ")

    assert [r.pk for r in marked] == sorted([queue["failing"].pk, queue["old"].pk])
    after = unprocessed.counts()
    assert (after["all"], after["last_day"]) == (1, 1)
    assert {t["key"]: t["n"] for t in after["outcomes"]} == {"error": 0, "ignored": 1}
    assert {t.code: (t.error, t.ignored) for t in after["accounts"]} == {"wx-main": (0, 1)}
    assert unprocessed.state_counts() == {"open": 1, "settled": 1, "handled": 2, "all": 4}
    failing = ChannelCallback.objects.get(pk=queue["failing"].pk)
    assert failing.handled_by == ops_amy and failing.handled_at is not None
    assert failing.handled_note == "refund handler timed out on the bank's side; retried fine"


def test_each_mark_is_audited_without_the_callbacks_message(ops_amy, queue):
    callback_record_mark_handled(record_ids=[queue["failing"].pk], actor=ops_amy, note="looked: bank outage")

    (row,) = AuditLog.objects.filter(action=HANDLED)
    assert (row.actor, row.target_id, row.reason) == (ops_amy, str(queue["failing"].pk), "looked: bank outage")
    assert row.data == {"account": "wx-main", "outcome": "error", "kind": "refund", "event_id": "EV-F"}
    # The message may quote a stored secret (the page masks it); the audit log does not carry it.
    assert "timed out" not in json.dumps(row.data)


@pytest.mark.parametrize("note", ["", "   ", "\n\t ", None])
def test_a_blank_note_is_refused_and_nothing_is_written(ops_amy, queue, note):
    with pytest.raises(InvalidRequest) as refused:
        callback_record_mark_handled(record_ids=[queue["failing"].pk], actor=ops_amy, note=note)

    assert refused.value.param == "note" and "note is required" in refused.value.message
    assert _untouched(queue["failing"])


@pytest.mark.parametrize("role", ["support_agent", "finance", "risk_officer", "onboarding_clerk", "admin"])
def test_roles_other_than_operations_may_not_mark_them(staff_member, queue, role):
    with pytest.raises(Forbidden) as refused:
        callback_record_mark_handled(record_ids=[queue["failing"].pk], actor=staff_member(role), note="looked")

    assert "channels.handle_channelcallback" in refused.value.message
    assert _untouched(queue["failing"])


def test_one_already_handled_refuses_the_whole_selection_naming_it(ops_amy, staff_member, queue):
    callback_record_mark_handled(record_ids=[queue["old"].pk], actor=ops_amy, note="first look")
    other = staff_member("operations", username="ops-bo")

    with pytest.raises(InvalidState) as refused:
        callback_record_mark_handled(record_ids=[queue["failing"].pk, queue["old"].pk], actor=other, note="again")

    assert f"#{queue['old'].pk} by ops-amy" in refused.value.message
    assert str(queue["failing"].pk) not in refused.value.message
    old = ChannelCallback.objects.get(pk=queue["old"].pk)
    assert (old.handled_by, old.handled_note) == (ops_amy, "first look")  # the first mark stands
    queue["failing"].refresh_from_db()
    assert queue["failing"].handled_at is None
    assert AuditLog.objects.filter(action=HANDLED).count() == 1


def test_callbacks_not_in_the_queue_are_refused_by_name_and_nothing_is_marked(ops_amy, queue):
    for other, named in ((queue["retry_applied"], "(applied)"), (queue["rejected"], "(rejected)")):
        with pytest.raises(NotFound) as refused:
            callback_record_mark_handled(record_ids=[queue["ignored"].pk, other.pk], actor=ops_amy, note="looked")
        assert f"#{other.pk} {named}" in refused.value.message
        assert refused.value.param == "record_ids"
    with pytest.raises(NotFound) as refused:
        callback_record_mark_handled(record_ids=[queue["ignored"].pk, 987654321], actor=ops_amy, note="looked")
    assert "#987654321 (no such callback)" in refused.value.message
    queue["rejected"].refresh_from_db()
    assert queue["rejected"].reviewed_at is None  # risk's review is not touched either
    assert _untouched(queue["ignored"], queue["rejected"])


@pytest.mark.parametrize("ids", [[], None, ["x"]])
def test_it_needs_callback_ids(ops_amy, queue, ids):
    with pytest.raises(InvalidRequest) as refused:
        callback_record_mark_handled(record_ids=ids, actor=ops_amy, note="looked")
    assert refused.value.param == "record_ids"


def test_one_a_retry_applied_may_still_be_marked_and_then_shows_as_handled(ops_amy, queue):
    # It left the open list by itself; an operator who looked anyway may say so, and it is then "handled".
    callback_record_mark_handled(record_ids=[queue["retried"].pk], actor=ops_amy, note="retry went through")

    states = unprocessed.state_counts()
    assert (states["settled"], states["handled"]) == (0, 1)


@pytest.mark.django_db(transaction=True)
def test_two_operators_marking_the_same_callback_at_once_leave_one_mark(staff_member, queue):
    operators = [staff_member("operations", username=f"ops-{i}") for i in range(2)]

    def mark(i):
        try:
            return callback_record_mark_handled(record_ids=[queue["failing"].pk], actor=operators[i],
                                                note=f"by ops-{i}")
        except InvalidState as exc:
            return exc

    results = in_threads(2, mark)

    assert sorted(type(r).__name__ for r in results) == ["InvalidState", "list"]
    failing = ChannelCallback.objects.get(pk=queue["failing"].pk)
    assert failing.handled_note == f"by {failing.handled_by.username}"
    assert AuditLog.objects.filter(action=HANDLED).count() == 1


# --- the role ---------------------------------------------------------------------------------------------------
def test_only_operations_hold_the_permission_and_a_deployment_gets_it_on_migrate(ops_amy):
    roles_sync()
    holders = {role.slug for role in ROLES
               if Group.objects.get(name=role.slug).permissions.filter(codename="handle_channelcallback").exists()}
    assert holders == {"operations"}
    # A deployment from before this change: the group lacks it until the next migrate's roles_sync.
    Group.objects.get(name="operations").permissions.remove(
        Permission.objects.get(content_type__app_label="channels", codename="handle_channelcallback"))

    assert roles_sync()["operations"]["added"] == ["channels.handle_channelcallback"]


# --- the page ---------------------------------------------------------------------------------------------------
def test_the_page_marks_the_chosen_ones_handled_and_comes_back_to_the_same_list(client, ops_amy, queue):
    client.force_login(ops_amy)
    url = f"{QUEUE}?account=wx-main"
    page = client.get(url)
    assert f'name="record" value="{queue["failing"].pk}"' in page.content.decode()
    assert 'id="mark-handled"' in page.content.decode()

    response = client.post(url, {"record": [queue["failing"].pk, queue["ignored"].pk],
                                 "note": "complaints handler is issue 7; refund timeout was the bank"}, follow=True)

    assert response.redirect_chain == [(url, 302)]
    assert "Marked 2 callbacks handled." in response.content.decode()
    assert _ids(response) == []  # wx-main has nothing open left
    assert response.context["counts"]["all"] == 1  # bank-b's
    assert set(ChannelCallback.objects.filter(handled_by=ops_amy).values_list("pk", flat=True)) == {
        queue["failing"].pk, queue["ignored"].pk}


def test_a_blank_note_from_the_page_is_refused_and_nothing_is_written(client, ops_amy, queue):
    client.force_login(ops_amy)

    response = client.post(QUEUE, {"record": [queue["failing"].pk], "note": "   "}, follow=True)

    assert "a note is required" in response.content.decode()
    assert queue["failing"].pk in _ids(response)
    assert _untouched(queue["failing"])


@pytest.mark.parametrize("role", ["support_agent", "finance"])
def test_support_and_finance_are_refused_by_the_page(client, staff_member, queue, role):
    client.force_login(staff_member(role))

    assert client.get(QUEUE).status_code == 403
    assert client.post(QUEUE, {"record": [queue["failing"].pk], "note": "looked"}).status_code == 403
    assert _untouched(queue["failing"])


def test_someone_who_may_read_the_queue_but_not_mark_sees_no_checkboxes_and_is_refused(client, django_user_model,
                                                                                       queue):
    from tests.conftest import STAFF_PASSWORD

    reader = django_user_model.objects.create_user("reader", password=STAFF_PASSWORD, is_staff=True)
    reader.user_permissions.set(Permission.objects.filter(
        codename__in={"access_operations", "view_channelaccount", "view_channelcallback"}))
    client.force_login(reader)

    html = client.get(QUEUE).content.decode()
    assert 'name="record"' not in html and 'id="mark-handled"' not in html
    response = client.post(QUEUE, {"record": [queue["failing"].pk], "note": "looked"})
    assert response.status_code == 403
    assert _untouched(queue["failing"])


def test_the_handled_filter_lists_the_handled_ones_with_who_when_and_the_note(client, ops_amy, queue):
    callback_record_mark_handled(record_ids=[queue["old"].pk], actor=ops_amy, note="bank-b key rotated <b>late</b>")
    client.force_login(ops_amy)

    handled = client.get(QUEUE, {"state": "handled"})

    assert _ids(handled) == [queue["old"].pk]
    row = _html_row(handled, queue["old"])
    assert "data-handled" in row and "ops-amy" in row
    assert timezone.localtime(ChannelCallback.objects.get(pk=queue["old"].pk).handled_at).strftime(
        "%Y-%m-%d %H:%M") in row
    assert "bank-b key rotated &lt;b&gt;late&lt;/b&gt;" in row  # the note, escaped
    assert 'name="record"' not in row  # nothing to mark again
    assert queue["old"].pk not in _ids(client.get(QUEUE))  # not in the open list any more
    assert queue["old"].pk in _ids(client.get(QUEUE, {"state": "all"}))
    # The tabs say how many each holds.
    tabs = handled.content.decode()
    assert re.search(r'data-state="handled">Handled\s*<span class="n">1</span>', tabs)
    # Nothing on it can be chosen, so no note box, "Mark handled" or "select all" that could only answer "choose one".
    assert 'id="mark-handled"' not in tabs and 'id="select-all"' not in tabs
    assert 'id="mark-handled"' in client.get(QUEUE).content.decode()


def test_the_home_tile_counts_the_open_ones_only(client, ops_amy, queue):
    # Open: failing, ignored and two days' old one; not the one a retry applied, nor processed or refused ones.
    assert (_tile(ops_amy).count, _tile(ops_amy).tone) == (3, "bad")

    callback_record_mark_handled(record_ids=[queue["failing"].pk, queue["ignored"].pk], actor=ops_amy, note="seen")
    assert _tile(ops_amy).count == 1
    callback_record_mark_handled(record_ids=[queue["old"].pk], actor=ops_amy, note="seen")
    assert (_tile(ops_amy).count, _tile(ops_amy).tone) == (0, "")
    client.force_login(ops_amy)
    assert _ids(client.get(_tile(ops_amy).url)) == []


# --- the index ----------------------------------------------------------------------------------------------------
def _plan_index_names(query) -> set[str]:
    """The indexes the plan of ``query`` (a queryset, or the SQL of one that ran) can read."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the table is tiny here: ask what the plan can use
        if isinstance(query, str):
            cursor.execute(f"EXPLAIN (FORMAT JSON) {query}")
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
        else:
            plan = json.loads(query.explain(format="json"))
    names, stack = set(), list(plan)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            names.add(node.get("Index Name", ""))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def test_the_open_queue_reads_its_own_partial_index(queue):
    # Migration 0007: the open ones have an index of their own, however many are handled.
    assert "channel_callback_open" in _plan_index_names(
        unprocessed.filter_unprocessed(unprocessed.unprocessed(), state="open", account="wx-main"))
    assert "channel_callback_handled" in _plan_index_names(
        unprocessed.filter_unprocessed(unprocessed.unprocessed(), state="handled", account="wx-main"))


def test_the_tab_counts_read_the_two_partial_indexes_not_the_whole_table(queue):
    # One query counts the open ones and the handled ones for the tabs: asked for as the two indexes' slivers, so
    # the planner need not read every callback ever received.
    with CaptureQueriesContext(connection) as captured:
        unprocessed.state_counts()  # what the page opens on: no filter
    (sql,) = [query["sql"] for query in captured.captured_queries]

    assert {"channel_callback_open", "channel_callback_handled"} <= _plan_index_names(sql)
