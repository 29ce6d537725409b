"""Risk's review of refused channel callbacks (channels.services.callback_reviews) and who may see them: only risk
officers (the risk section and ``channels.view_channelcallback``); marking needs ``channels.review_channelcallback``
as well, is set once, all-or-nothing, and audited.

The refused callbacks here are real ones: unsigned notices posted to a bank account's callback URL, refused and
recorded by channels.callbacks."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.urls import reverse

from aggpay.errors import Forbidden, InvalidRequest, NotFound
from aggpay.models import AuditLog
from aggpay.roles import roles_sync
from channels.models import CallbackOutcome, ChannelCallback
from channels.services.callback_reviews import callback_review_mark
from merchants.workbench import risk_home_queues
from tests.factories import ChannelAccountFactory

QUEUE = "/staff/channels/security/callbacks/"


def _refused(client, n: int = 1) -> list[ChannelCallback]:
    """``n`` unsigned bank notices, refused by the account's callback URL."""
    account = ChannelAccountFactory(code="bank-risk", kind="bank")
    for i in range(n):
        response = client.post(f"/callbacks/{account.code}/", data=f'{{"notify_id": "N{i}", "key_id": "forged"}}',
                               content_type="application/json", REMOTE_ADDR="198.51.100.7")
        assert response.status_code >= 400
    client.logout()
    rows = list(ChannelCallback.objects.filter(account=account).order_by("pk"))
    assert [r.outcome for r in rows] == [CallbackOutcome.REJECTED] * n
    return rows


def _tile():
    return next(q for q in risk_home_queues() if q.label.startswith("Refused channel callbacks"))


def test_it_marks_them_reviewed_once_and_keeps_the_first_note(client, risk_zhao, staff_member):
    first, second = _refused(client, 2)
    callback_review_mark(callback_ids=[first.pk], actor=risk_zhao, note="forged: not from the bank's range")
    other = staff_member("risk_officer", username="qian.risk")

    result = callback_review_mark(callback_ids=[first.pk, second.pk], actor=other, note="seen")

    assert result.reviewed == [second] and result.already_reviewed == [first]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.reviewed_by, first.review_note) == (risk_zhao, "forged: not from the bank's range")
    assert (second.reviewed_by, second.review_note) == (other, "seen")
    assert AuditLog.objects.filter(action="security.callback.reviewed", target_id=str(first.pk)).count() == 1
    assert AuditLog.objects.get(action="security.callback.reviewed", target_id=str(second.pk)).actor == other


def test_it_marks_nothing_when_one_id_is_not_a_refused_callback(client, risk_zhao):
    (refused,) = _refused(client)
    applied = ChannelCallback.objects.create(account=refused.account, outcome=CallbackOutcome.APPLIED, kind="payment")

    for ids in ([refused.pk, applied.pk], [refused.pk, 987654321]):
        with pytest.raises(NotFound):
            callback_review_mark(callback_ids=ids, actor=risk_zhao, note="looked")

    refused.refresh_from_db()
    assert refused.reviewed_at is None
    assert not AuditLog.objects.filter(action="security.callback.reviewed").exists()


@pytest.mark.parametrize(("ids", "note"), [([], "looked"), (None, "looked"), (["x"], "looked"), ("first", "  ")])
def test_it_needs_ids_and_a_note(client, risk_zhao, ids, note):
    (refused,) = _refused(client)
    with pytest.raises(InvalidRequest):
        callback_review_mark(callback_ids=[refused.pk] if ids == "first" else ids, actor=risk_zhao, note=note)
    refused.refresh_from_db()
    assert refused.reviewed_at is None


@pytest.mark.parametrize("role", ["support_agent", "operations", "finance", "onboarding_clerk", "admin"])
def test_other_roles_may_not_mark_them(client, staff_member, role):
    (refused,) = _refused(client)
    with pytest.raises(Forbidden):
        callback_review_mark(callback_ids=[refused.pk], actor=staff_member(role), note="looked")
    refused.refresh_from_db()
    assert refused.reviewed_at is None


@pytest.mark.parametrize("role", ["support_agent", "operations", "finance", "onboarding_clerk", "admin"])
def test_other_roles_get_403_on_every_page(client, staff_member, role):
    (refused,) = _refused(client)
    client.force_login(staff_member(role))

    assert client.get(QUEUE).status_code == 403
    assert client.get(reverse("channels:refused_callback", args=[refused.pk])).status_code == 403
    response = client.post(reverse("channels:refused_callbacks_review"), {"callback": [refused.pk], "note": "x"})
    assert response.status_code == 403
    refused.refresh_from_db()
    assert refused.reviewed_at is None


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(QUEUE)
    assert response.status_code == 302 and "/staff/login/" in response["Location"]


def test_the_risk_officer_role_holds_the_permissions_and_a_deployment_gets_them_on_migrate(risk_zhao):
    assert risk_zhao.has_perm("channels.view_channelcallback")
    assert risk_zhao.has_perm("channels.review_channelcallback")
    # A deployment from before this change: the group lacks them until the next migrate's roles_sync.
    group = Group.objects.get(name="risk_officer")
    group.permissions.remove(*Permission.objects.filter(content_type__app_label="channels",
                                                        codename__in=("view_channelcallback",
                                                                      "review_channelcallback")))

    changes = roles_sync()

    assert sorted(changes["risk_officer"]["added"]) == ["channels.review_channelcallback",
                                                        "channels.view_channelcallback"]


def test_a_note_is_required_from_the_page_too(client, risk_zhao):
    (refused,) = _refused(client)
    client.force_login(risk_zhao)

    response = client.post(reverse("channels:refused_callbacks_review"), {"callback": [refused.pk], "note": ""},
                           follow=True)

    assert "a note is required" in response.content.decode()
    refused.refresh_from_db()
    assert refused.reviewed_at is None


def test_the_detail_page_marks_one_reviewed(client, risk_zhao):
    (refused,) = _refused(client)
    client.force_login(risk_zhao)
    detail = reverse("channels:refused_callback", args=[refused.pk])
    page = client.get(detail).content.decode()
    assert 'id="review-form"' in page and "198.51.100.7" in page and "bank notify signature did not verify" in page

    response = client.post(reverse("channels:refused_callbacks_review"),
                           {"callback": [refused.pk], "note": "forged", "next": detail}, follow=True)

    assert response.redirect_chain[-1][0] == detail
    assert 'id="review-note"' in response.content.decode()
    refused.refresh_from_db()
    assert refused.review_note == "forged"


def test_the_home_tile_is_coloured_only_while_some_are_unreviewed(client, risk_zhao):
    assert (_tile().count, _tile().tone) == (0, "")
    (refused,) = _refused(client)
    assert (_tile().count, _tile().tone) == (1, "bad")
    callback_review_mark(callback_ids=[refused.pk], actor=risk_zhao, note="forged")
    assert (_tile().count, _tile().tone) == (0, "")


@pytest.mark.django_db(transaction=True)
def test_two_officers_marking_the_same_callback_at_once_leave_one_mark(client, staff_member):
    (refused,) = _refused(client)
    officers = [staff_member("risk_officer", username=f"risk-{i}") for i in range(2)]
    barrier, results = threading.Barrier(2), {}

    def mark(officer):
        try:
            barrier.wait()
            results[officer.username] = callback_review_mark(callback_ids=[refused.pk], actor=officer,
                                                             note=f"by {officer.username}")
        finally:
            connection.close()  # this thread's own connection (close_old_connections keeps a healthy one open)

    threads = [threading.Thread(target=mark, args=(officer,)) for officer in officers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(r.reviewed) for r in results.values()) == [0, 1]
    refused.refresh_from_db()
    assert refused.review_note == f"by {refused.reviewed_by.username}"
    assert AuditLog.objects.filter(action="security.callback.reviewed").count() == 1


def test_the_risk_sidebar_links_the_queue(client, risk_zhao):
    client.force_login(risk_zhao)
    page = client.get(reverse("staff:risk")).content.decode()
    assert 'href="/staff/channels/security/callbacks/"' in page
