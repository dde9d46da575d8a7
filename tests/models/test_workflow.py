"""The approval workflow's rules (services/models/workflow.py), without a database: every
state, action and actor relation, and the exact refusals the API reports."""

from __future__ import annotations

import itertools

import grpc
import pytest

from services.common.errors import ServiceError
from services.models import workflow
from services.models.workflow import (
    APPROVED,
    ARCHIVED,
    CANCELLED,
    IN_REVIEW,
    OPEN,
    PENDING_APPROVAL,
    REJECTED,
    REQUEST_STATES,
    STATUSES,
    VALIDATION_STATES,
    Decision,
    Transition,
)

UPLOADER = "uma"
SUBMITTER = "sam"
APPROVER = "ada"

# Who acts, against whom the version's uploader and submitter are.
RELATIONS = {
    "another approver": (APPROVER, UPLOADER, SUBMITTER),
    "the uploader": (UPLOADER, UPLOADER, SUBMITTER),
    "the submitter": (SUBMITTER, UPLOADER, SUBMITTER),
    "the uploader who submitted": (UPLOADER, UPLOADER, UPLOADER),
}


def _refused(call: object) -> ServiceError:
    assert callable(call)
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


# --- upload and submit ------------------------------------------------------------------------
def test_an_upload_makes_a_version_pending_approval() -> None:
    assert Transition(None, PENDING_APPROVAL) == workflow.UPLOAD


@pytest.mark.parametrize("status", STATUSES)
def test_only_a_pending_version_can_be_submitted(status: str) -> None:
    if status == PENDING_APPROVAL:
        assert workflow.submit(3, status) == Transition(PENDING_APPROVAL, IN_REVIEW)
        return
    error = _refused(lambda: workflow.submit(3, status))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "VERSION_NOT_PENDING")
    assert error.message == (
        f"version 3 is {status}; only PENDING_APPROVAL versions can be submitted"
    )
    assert error.metadata == {"status": status}


# --- approve and reject -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("approve", "comment", "required"),
    [
        (False, "", True),
        (False, "   \n", True),
        (False, "broken inputs", False),
        (True, "", False),
        (True, "fine", False),
    ],
)
def test_a_rejection_must_say_why(approve: bool, comment: str, required: bool) -> None:
    if not required:
        workflow.check_decision_comment(approve=approve, comment=comment)
        return
    error = _refused(lambda: workflow.check_decision_comment(approve=approve, comment=comment))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "COMMENT_REQUIRED")
    assert error.metadata == {"field": "comment"}


def _decide(
    actor: str = APPROVER,
    *,
    approve: bool = True,
    state: str = OPEN,
    validation: str = "PASSED",
    reason: str = "",
    uploader: str = UPLOADER,
    submitter: str = SUBMITTER,
) -> Decision:
    """A decision on request a-1 (by default of a version UPLOADER uploaded and SUBMITTER
    submitted)."""
    return workflow.decide(
        actor,
        approve=approve,
        approval_id="a-1",
        state=state,
        submitter=submitter,
        uploader=uploader,
        validation_state=validation,
        validation_reason=reason,
    )


def _expected_decision(
    state: str, approve: bool, actor: str, uploader: str, submitter: str, validation: str
) -> Decision | str:
    """The rules in the order they are checked: the first that refuses names the reason."""
    if state != OPEN:
        return "ALREADY_DECIDED"
    if actor in (uploader, submitter):
        return "SEPARATION_OF_DUTIES"
    if approve and validation != "PASSED":
        return "VALIDATION_NOT_PASSED"
    outcome = APPROVED if approve else REJECTED
    return Decision(outcome, Transition(IN_REVIEW, outcome))


_CODES = {
    "ALREADY_DECIDED": grpc.StatusCode.ABORTED,
    "SEPARATION_OF_DUTIES": grpc.StatusCode.PERMISSION_DENIED,
    "VALIDATION_NOT_PASSED": grpc.StatusCode.FAILED_PRECONDITION,
    "ALREADY_ARCHIVED": grpc.StatusCode.ABORTED,
}


@pytest.mark.parametrize(
    ("state", "approve", "relation", "validation"),
    list(itertools.product(REQUEST_STATES, [True, False], RELATIONS, VALIDATION_STATES)),
)
def test_every_decision(state: str, approve: bool, relation: str, validation: str) -> None:
    actor, uploader, submitter = RELATIONS[relation]
    expected = _expected_decision(state, approve, actor, uploader, submitter, validation)

    def decide() -> Decision:
        reason = "RUNTIME_CHECK_FAILED" if validation == "FAILED" else ""
        return _decide(
            actor,
            approve=approve,
            state=state,
            validation=validation,
            reason=reason,
            uploader=uploader,
            submitter=submitter,
        )

    if isinstance(expected, Decision):
        assert decide() == expected
        return
    error = _refused(decide)
    assert (error.code, error.reason) == (_CODES[expected], expected)


def test_a_decided_request_says_its_state() -> None:
    error = _refused(lambda: _decide(state=CANCELLED))
    assert error.message == "approval a-1 is already CANCELLED"
    assert error.metadata == {"state": CANCELLED}


def test_separation_of_duties_on_a_decision_says_why() -> None:
    error = _refused(lambda: _decide(SUBMITTER, approve=False))
    assert error.message == "the uploader or submitter of a version cannot decide on it"
    assert error.metadata == {}


@pytest.mark.parametrize(
    ("state", "reason", "message", "metadata"),
    [
        (
            "PENDING",
            "",
            "this version cannot be approved: its validation is still pending; approve once it "
            "has passed",
            {"validationState": "PENDING"},
        ),
        (
            "RUNNING",
            "",
            "this version cannot be approved: its validation is still running; approve once it "
            "has passed",
            {"validationState": "RUNNING"},
        ),
        (
            "FAILED",
            "METRICS_NOT_REPRODUCED",
            "this version cannot be approved: its validation failed (METRICS_NOT_REPRODUCED); "
            "see the version's validation report",
            {"validationState": "FAILED", "validationReason": "METRICS_NOT_REPRODUCED"},
        ),
    ],
)
def test_approval_waits_for_a_passed_validation(
    state: str, reason: str, message: str, metadata: dict[str, str]
) -> None:
    error = _refused(lambda: _decide(validation=state, reason=reason))
    assert (error.reason, error.message, error.metadata) == (
        "VALIDATION_NOT_PASSED",
        message,
        metadata,
    )


def test_a_rejection_needs_no_passed_validation() -> None:
    decision = _decide(approve=False, validation="FAILED", reason="RUNTIME_CHECK_FAILED")
    assert decision == Decision(REJECTED, Transition(IN_REVIEW, REJECTED))


# --- archive ----------------------------------------------------------------------------------
def _expected_archive(status: str, actor: str, uploader: str, submitters: tuple[str, ...]) -> str:
    if status == ARCHIVED:
        return "ALREADY_ARCHIVED"
    if status == IN_REVIEW and actor in (uploader, *submitters):
        return "SEPARATION_OF_DUTIES"
    return ARCHIVED


@pytest.mark.parametrize(
    ("status", "relation", "open_request"),
    list(itertools.product(STATUSES, RELATIONS, [True, False])),
)
def test_every_archive(status: str, relation: str, open_request: bool) -> None:
    actor, uploader, submitter = RELATIONS[relation]
    submitters = (submitter,) if open_request else ()
    expected = _expected_archive(status, actor, uploader, submitters)

    def archive() -> Transition:
        return workflow.archive(
            actor, version=2, status=status, uploader=uploader, submitters=submitters
        )

    if expected == ARCHIVED:
        assert archive() == Transition(status, ARCHIVED)
        return
    error = _refused(archive)
    assert (error.code, error.reason) == (_CODES[expected], expected)
    if expected == "ALREADY_ARCHIVED":
        assert error.message == "version 2 is already ARCHIVED"
        assert error.metadata == {"status": ARCHIVED}
    else:
        assert error.message == (
            "the uploader or submitter of a version cannot archive it while it is in review "
            "(archiving cancels the review); another approver can"
        )


def test_the_uploader_may_archive_outside_a_review() -> None:
    """Separation of duties guards the review that archiving would cancel, nothing else."""
    for status in (PENDING_APPROVAL, APPROVED, REJECTED):
        move = workflow.archive(
            UPLOADER, version=1, status=status, uploader=UPLOADER, submitters=()
        )
        assert move == Transition(status, ARCHIVED)
