"""Fixtures of the channel tests."""

from __future__ import annotations

import pytest

from channels.models import CHECKLIST_KEYS, EvaluationState
from channels.services.evaluations import (
    interface_evaluation_approve,
    interface_evaluation_go_live,
    interface_evaluation_reject,
    interface_evaluation_save,
    interface_evaluation_start,
    interface_evaluation_start_integrating,
)

# The services that bring an evaluation to each state, in issue 3's order (evaluating → approved → integrating →
# live); rejected is the other verdict.
_STEPS = {
    EvaluationState.APPROVED: lambda pk: interface_evaluation_approve(evaluation_id=pk, actor="test", reason="fit"),
    EvaluationState.INTEGRATING: lambda pk: interface_evaluation_start_integrating(evaluation_id=pk, actor="test"),
    EvaluationState.LIVE: lambda pk: interface_evaluation_go_live(evaluation_id=pk, actor="test",
                                                                  reason="joint tests passed"),
}


@pytest.fixture
def evaluate(db):
    """``evaluate(account)`` takes a new interface evaluation of the account live through the services, as ops do
    before enabling it (design §1); ``until=`` stops at another state. Returns the evaluation."""

    def run(account, *, until: str = EvaluationState.LIVE):
        evaluation = interface_evaluation_start(account_id=account.pk, actor="test")
        if until == EvaluationState.EVALUATING:
            return evaluation
        interface_evaluation_save(evaluation_id=evaluation.pk, actor="test",
                                  checklist={key: {"finding": f"checked {key}", "score": 4} for key in CHECKLIST_KEYS})
        if until == EvaluationState.REJECTED:
            return interface_evaluation_reject(evaluation_id=evaluation.pk, actor="test", reason="no refunds")
        for state, step in _STEPS.items():
            evaluation = step(evaluation.pk)
            if state == until:
                return evaluation
        raise ValueError(f"no evaluation state {until!r}")

    return run
