"""The approval workflow as rules: the version's and the approval request's states, the moves
between them, and who may make each move. Plain code, no I/O: the services read the facts,
ask these rules, and write what they answer (services/models/approvals.py).

    upload                       submit                    approve
    ──────► PENDING_APPROVAL ─────────────► IN_REVIEW ─────────────► APPROVED
                                            (request OPEN) reject
                                                       ─────────────► REJECTED
    any status but ARCHIVED ── archive (by an approver) ──► ARCHIVED
                               (an OPEN request becomes CANCELLED)

Separation of duties: whoever uploaded a version or submitted it for review may not approve
it, reject it, nor archive it while it is in review (archiving cancels the review). Approval
also needs the version's validation report to have PASSED. Which role may call which method
is the access matrix's business (services/common/access.py), not these rules'.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from services.common.errors import ServiceError, invalid_argument, permission_denied

# Version statuses.
PENDING_APPROVAL = "PENDING_APPROVAL"
IN_REVIEW = "IN_REVIEW"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
ARCHIVED = "ARCHIVED"
STATUSES = (PENDING_APPROVAL, IN_REVIEW, APPROVED, REJECTED, ARCHIVED)

# Approval request states (a decision's state is the version's new status).
OPEN = "OPEN"
CANCELLED = "CANCELLED"
REQUEST_STATES = (OPEN, APPROVED, REJECTED, CANCELLED)

# Validation states (services/validation/): approval needs PASSED.
VALIDATION_PASSED = "PASSED"
VALIDATION_STATES = ("PENDING", "RUNNING", VALIDATION_PASSED, "FAILED")


@dataclass(frozen=True)
class Transition:
    """A version's move from one status to another (`from_status` None: it is new)."""

    from_status: str | None
    to_status: str


UPLOAD = Transition(None, PENDING_APPROVAL)


@dataclass(frozen=True)
class Decision:
    """What deciding a request does: the request's new state, and the version's move."""

    state: str
    transition: Transition


def _refusal(code: grpc.StatusCode, reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(code, reason, message, metadata=metadata)


def submit(version: int, status: str) -> Transition:
    """Submitting a version for review: only a PENDING_APPROVAL version can be."""
    if status != PENDING_APPROVAL:
        raise _refusal(
            grpc.StatusCode.ALREADY_EXISTS,
            "VERSION_NOT_PENDING",
            f"version {version} is {status}; only PENDING_APPROVAL versions can be submitted",
            status=status,
        )
    return Transition(PENDING_APPROVAL, IN_REVIEW)


def check_decision_comment(*, approve: bool, comment: str) -> None:
    """A rejection must say why (checked before anything is read)."""
    if not approve and not comment.strip():
        raise invalid_argument(
            "COMMENT_REQUIRED", "a rejection needs a comment saying why", field="comment"
        )


def decide(
    actor: str,
    *,
    approve: bool,
    approval_id: str,
    state: str,
    submitter: str,
    uploader: str,
    validation_state: str,
    validation_reason: str = "",
) -> Decision:
    """Approving or rejecting the request `approval_id`, in `state`, by `actor`."""
    if state != OPEN:
        raise _refusal(
            grpc.StatusCode.ABORTED,
            "ALREADY_DECIDED",
            f"approval {approval_id} is already {state}",
            state=state,
        )
    if actor in (submitter, uploader):
        raise permission_denied(
            "SEPARATION_OF_DUTIES", "the uploader or submitter of a version cannot decide on it"
        )
    if approve and validation_state != VALIDATION_PASSED:
        raise validation_not_passed(validation_state, validation_reason)
    outcome = APPROVED if approve else REJECTED
    return Decision(outcome, Transition(IN_REVIEW, outcome))


def validation_not_passed(state: str, reason: str) -> ServiceError:
    """Approval needs a passed validation report: evidence, not the uploader's claims."""
    if state == "FAILED":
        detail = f"its validation failed ({reason}); see the version's validation report"
    else:
        detail = f"its validation is still {state.lower()}; approve once it has passed"
    return _refusal(
        grpc.StatusCode.FAILED_PRECONDITION,
        "VALIDATION_NOT_PASSED",
        f"this version cannot be approved: {detail}",
        validationState=state,
        **({"validationReason": reason} if reason else {}),
    )


def archive(
    actor: str, *, version: int, status: str, uploader: str, submitters: tuple[str, ...]
) -> Transition:
    """Archiving a version in `status` by `actor`; `submitters` submitted its open request,
    if it has one. The open request, if any, is cancelled with it."""
    if status == ARCHIVED:
        raise _refusal(
            grpc.StatusCode.ABORTED,
            "ALREADY_ARCHIVED",
            f"version {version} is already ARCHIVED",
            status=status,
        )
    if status == IN_REVIEW and actor in (uploader, *submitters):
        raise permission_denied(
            "SEPARATION_OF_DUTIES",
            "the uploader or submitter of a version cannot archive it while it is in review "
            "(archiving cancels the review); another approver can",
        )
    return Transition(status, ARCHIVED)
