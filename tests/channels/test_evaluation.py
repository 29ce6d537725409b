"""Interface evaluations (接口评估): checklist, score, verdict, lifecycle and races (issue 3)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, transaction

from aggpay.errors import InvalidRequest, InvalidState
from aggpay.models import AuditLog
from channels.models import CHECKLIST_KEYS, ChannelConfigChange, EvaluationState, InterfaceEvaluation
from channels.services.evaluations import (
    interface_evaluation_approve,
    interface_evaluation_go_live,
    interface_evaluation_reject,
    interface_evaluation_save,
    interface_evaluation_start,
    interface_evaluation_start_integrating,
)
from tests.factories import ChannelAccountFactory, UserFactory


def _full_checklist(score=4) -> dict:
    return {key: {"finding": f"finding about {key}", "score": score} for key in CHECKLIST_KEYS}


@pytest.fixture
def evaluation(db):
    account = ChannelAccountFactory(code="bank-c", kind="bank")
    return interface_evaluation_start(account_id=account.pk, actor="test")


def _history(evaluation) -> list[str]:
    return list(ChannelConfigChange.objects.filter(target_type="evaluation", target_id=str(evaluation.pk))
                .order_by("id").values_list("action", flat=True))


def test_a_new_evaluation_starts_evaluating_with_an_empty_checklist(evaluation):
    assert evaluation.state == EvaluationState.EVALUATING
    assert evaluation.overall_score is None
    assert evaluation.missing_items() == list(CHECKLIST_KEYS)
    assert _history(evaluation) == ["evaluation.started"]


def test_only_one_evaluation_is_open_per_account(evaluation):
    with pytest.raises(InvalidState):
        interface_evaluation_start(account_id=evaluation.account_id, actor="test")


def test_saving_the_checklist_merges_items_and_records_what_changed(evaluation):
    interface_evaluation_save(evaluation_id=evaluation.pk, actor="test",
                              checklist={"refund": {"finding": "partial, 1 year", "score": 4}})
    interface_evaluation_save(evaluation_id=evaluation.pk, actor="test",
                              checklist={"bill": {"finding": "CSV after 10:00", "score": 3}}, verdict_notes="so far ok")

    evaluation.refresh_from_db()
    assert evaluation.item("refund") == {"finding": "partial, 1 year", "score": 4}
    assert evaluation.item("bill") == {"finding": "CSV after 10:00", "score": 3}
    assert evaluation.verdict_notes == "so far ok"
    last = ChannelConfigChange.objects.filter(action="evaluation.saved").order_by("-id").first()
    assert set(last.changes) == {"checklist.bill", "verdict_notes"}
    assert last.changes["checklist.bill"]["new"] == {"finding": "CSV after 10:00", "score": 3}


def test_the_overall_score_is_the_mean_of_the_scored_items(evaluation):
    interface_evaluation_save(evaluation_id=evaluation.pk, actor="test", checklist={
        "refund": {"finding": "a", "score": 5}, "bill": {"finding": "b", "score": 2},
        "fees": {"finding": "c", "score": 4}, "limits": {"finding": "not scored yet"},
    })

    evaluation.refresh_from_db()
    assert evaluation.overall_score == Decimal("3.7")  # 11 / 3, one decimal, half-up


@pytest.mark.parametrize(("entry", "param"), [
    ({"finding": "x", "score": 6}, "checklist.fees.score"),
    ({"finding": "x", "score": -1}, "checklist.fees.score"),
    ({"finding": "x", "score": "4"}, "checklist.fees.score"),
    ({"finding": 12, "score": 4}, "checklist.fees.finding"),
    ({"finding": "x" * 4001}, "checklist.fees.finding"),
    ("not an object", "checklist.fees"),
])
def test_bad_checklist_entries_are_refused_naming_the_item(evaluation, entry, param):
    with pytest.raises(InvalidRequest) as exc:
        interface_evaluation_save(evaluation_id=evaluation.pk, actor="test", checklist={"fees": entry})

    assert exc.value.param == param


def test_unknown_checklist_items_are_refused(evaluation):
    with pytest.raises(InvalidRequest) as exc:
        interface_evaluation_save(evaluation_id=evaluation.pk, actor="test", checklist={"weather": {"score": 1}})

    assert exc.value.param == "checklist.weather"


def test_approval_needs_every_item_answered_and_scored(evaluation):
    checklist = _full_checklist()
    checklist["contacts"] = {"finding": "", "score": 3}
    interface_evaluation_save(evaluation_id=evaluation.pk, actor="test", checklist=checklist)

    with pytest.raises(InvalidRequest) as exc:
        interface_evaluation_approve(evaluation_id=evaluation.pk, actor="test", reason="looks fine")

    assert exc.value.param == "checklist.contacts"
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.EVALUATING


def test_a_verdict_needs_a_reason(evaluation):
    interface_evaluation_save(evaluation_id=evaluation.pk, actor="test", checklist=_full_checklist())

    for verdict in (interface_evaluation_approve, interface_evaluation_reject):
        with pytest.raises(InvalidRequest) as exc:
            verdict(evaluation_id=evaluation.pk, actor="test", reason="")
        assert exc.value.param == "reason"


def test_it_goes_from_evaluating_to_live_recording_reviewer_score_and_history(evaluation):
    reviewer = UserFactory(username="ops-lead")
    interface_evaluation_save(evaluation_id=evaluation.pk, actor=reviewer, checklist=_full_checklist(score=4))

    interface_evaluation_approve(evaluation_id=evaluation.pk, actor=reviewer, reason="solid interface")
    interface_evaluation_start_integrating(evaluation_id=evaluation.pk, actor=reviewer)
    interface_evaluation_go_live(evaluation_id=evaluation.pk, actor=reviewer, reason="joint tests passed")

    evaluation = InterfaceEvaluation.objects.get(pk=evaluation.pk)
    assert evaluation.state == EvaluationState.LIVE
    assert evaluation.reviewer == reviewer
    assert evaluation.verdict_notes == "solid interface"
    assert evaluation.decided_at is not None
    assert _history(evaluation) == ["evaluation.started", "evaluation.saved", "evaluation.approved",
                                    "evaluation.integrating", "evaluation.live"]
    approved = ChannelConfigChange.objects.get(action="evaluation.approved")
    assert approved.changes["state"] == {"old": "evaluating", "new": "approved"}
    assert approved.changes["overall_score"]["new"] == "4.0"
    assert approved.actor == reviewer
    assert AuditLog.objects.filter(action="channels.evaluation.live", actor=reviewer).count() == 1


@pytest.mark.parametrize("illegal", [interface_evaluation_start_integrating, interface_evaluation_go_live])
def test_lifecycle_steps_out_of_order_are_invalid_state(evaluation, illegal):
    with pytest.raises(InvalidState):
        illegal(evaluation_id=evaluation.pk, actor="test", reason="skip ahead")

    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.EVALUATING


def test_a_decided_evaluation_cannot_be_decided_again_or_edited(evaluation):
    interface_evaluation_reject(evaluation_id=evaluation.pk, actor="test", reason="no refund API")

    with pytest.raises(InvalidState):
        interface_evaluation_approve(evaluation_id=evaluation.pk, actor="test", reason="changed my mind")
    with pytest.raises(InvalidState):
        interface_evaluation_save(evaluation_id=evaluation.pk, actor="test", checklist={"fees": {"score": 5}})
    with pytest.raises(InvalidState):
        interface_evaluation_start_integrating(evaluation_id=evaluation.pk, actor="test")


def test_after_a_rejection_a_new_evaluation_may_start(evaluation):
    interface_evaluation_reject(evaluation_id=evaluation.pk, actor="test", reason="no refund API")

    second = interface_evaluation_start(account_id=evaluation.account_id, actor="test", reason="bank added refunds")

    assert second.pk != evaluation.pk
    assert second.state == EvaluationState.EVALUATING


def test_the_state_field_cannot_be_assigned_directly(evaluation):
    with pytest.raises(AttributeError):
        evaluation.state = EvaluationState.LIVE


def _blocked_on_locks(count: int, timeout: float = 10.0) -> None:
    """Wait until ``count`` other sessions of the test database are waiting for a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            # Inside a transaction pg_stat_activity is a cached snapshot: drop it to see the sessions now.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"{count} sessions did not block on the row lock")


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_at_once_give_exactly_one_verdict():
    account = ChannelAccountFactory(code="bank-race", kind="bank")
    evaluation = interface_evaluation_start(account_id=account.pk, actor="test")
    interface_evaluation_save(evaluation_id=evaluation.pk, actor="test", checklist=_full_checklist())
    outcomes: dict[str, str] = {}

    def decide(name, verdict):
        try:
            verdict(evaluation_id=evaluation.pk, actor=name, reason=f"{name} decides")
            outcomes[name] = "done"
        except InvalidState:
            outcomes[name] = "invalid_state"
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=("alice", interface_evaluation_approve)),
               threading.Thread(target=decide, args=("bob", interface_evaluation_reject))]
    # Hold the row lock so both reviewers are provably waiting at the same point, then let them race.
    with transaction.atomic():
        InterfaceEvaluation.objects.select_for_update().get(pk=evaluation.pk)
        for thread in threads:
            thread.start()
        _blocked_on_locks(2)
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(outcomes.values()) == ["done", "invalid_state"]
    evaluation = InterfaceEvaluation.objects.get(pk=evaluation.pk)
    winner = next(name for name, outcome in outcomes.items() if outcome == "done")
    assert evaluation.state == {"alice": EvaluationState.APPROVED, "bob": EvaluationState.REJECTED}[winner]
    verdicts = ChannelConfigChange.objects.filter(action__in=["evaluation.approved", "evaluation.rejected"])
    assert [row.actor_label for row in verdicts] == [winner]
