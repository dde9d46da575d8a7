"""One-line hints for the failures that leave a newcomer stuck: no token, an
expired or mangled one, the wrong role, nothing listening at the URL; and for
the validation gate: an evaluation set refused, an approval refused because the
version's validation has not passed, a wait for a report that timed out.

`diagnose` names the cause, keyed on the `ErrorInfo.reason` first (the services
send one, domain `mlplane`; the gateway too, domain `gateway.mlplane`) and
falling back to the status code and message (Envoy's own gRPC refusals carry
only a text such as `Jwt is missing` or `RBAC: access denied`, and connection
failures only gRPC's). `render` words the hint for who reads it: the SDK says
`token=`, the CLI `--token`.

>>> d = diagnose(UNAUTHENTICATED, "", "Jwt is expired", {}, url="http://localhost:8080")
>>> d.cause.name
'TOKEN_EXPIRED'
>>> render(d, SDK)
'mint a new one (a dev stack: `mlplane token --role data_scientist`) and pass it as token= or MLPLANE_TOKEN'
"""  # noqa: E501 (a hint is one line)

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto

import grpc

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED

MINT = "mlplane token --role data_scientist"
# What each role may do, for a refusal that does not say which role it wanted.
ROLE_DUTIES = "data_scientist: history, upload, submit; model_approver: review queue, decisions"


class Cause(Enum):
    TOKEN_MISSING = auto()
    TOKEN_EXPIRED = auto()
    TOKEN_MALFORMED = auto()
    TOKEN_UNTRUSTED = auto()  # another stack's key or issuer, another audience
    TOKEN_NOT_YET_VALID = auto()
    TOKEN_REFUSED = auto()  # any other reason
    ROLE_REQUIRED = auto()
    UNREACHABLE = auto()  # nothing listens at the URL, or the name does not resolve
    TLS_FAILED = auto()
    SERVICE_DOWN = auto()  # the gateway answers, the service behind it does not
    STREAM_RESET = auto()  # the answer was cut off: its service stopped while answering
    WRONG_TARGET = auto()  # something answers, but not the gateway
    EVALUATION_SET_TOO_LARGE = auto()
    EVALUATION_SET_NOT_PARQUET = auto()
    VALIDATION_NOT_PASSED = auto()  # approval refused: the report is not PASSED
    VALIDATION_TIMEOUT = auto()  # the client's own: no verdict within the wait


@dataclass(frozen=True)
class Diagnosis:
    """Why a call failed, with what the hint needs to name."""

    cause: Cause
    url: str = ""
    roles: tuple[str, ...] = ()
    model_id: str = ""
    version: str = ""


@dataclass(frozen=True)
class Wording:
    """How the reader passes a token (`jwt_option`), a URL, a CA, an evaluation
    set and how long to wait for a report, and how they read a report
    (`report`, formatted with `model_id` and `version`; `any_report` when they
    are unknown)."""

    jwt_option: str
    url_option: str
    ca_option: str
    evaluation_option: str
    wait_option: str
    report: str
    any_report: str


SDK = Wording(
    jwt_option="token=",
    url_option="url=",
    ca_option="root_certificates= or MLPLANE_CA_FILE",
    evaluation_option="evaluation_set=",
    wait_option="timeout=",
    report='get_validation_report("{model_id}", {version})',
    any_report="get_validation_report(model_id, version)",
)
CLI = Wording(
    jwt_option="--token",
    url_option="--url",
    ca_option="MLPLANE_CA_FILE",
    evaluation_option="--evaluation-set",
    wait_option="--wait-timeout",
    report="mlplane validation show {model_id} {version}",
    any_report="mlplane validation show MODEL_ID VERSION",
)

_BY_REASON = {
    "TOKEN_MISSING": Cause.TOKEN_MISSING,
    "TOKEN_EXPIRED": Cause.TOKEN_EXPIRED,
    "TOKEN_MALFORMED": Cause.TOKEN_MALFORMED,
    "TOKEN_INVALID": Cause.TOKEN_UNTRUSTED,
    "TOKEN_SIGNATURE": Cause.TOKEN_UNTRUSTED,
    "TOKEN_ISSUER": Cause.TOKEN_UNTRUSTED,
    "TOKEN_AUDIENCE": Cause.TOKEN_UNTRUSTED,
    "TOKEN_KEY_UNKNOWN": Cause.TOKEN_UNTRUSTED,
    "TOKEN_ALGORITHM_REJECTED": Cause.TOKEN_UNTRUSTED,
    "TOKEN_NOT_YET_VALID": Cause.TOKEN_NOT_YET_VALID,
    "ROLE_REQUIRED": Cause.ROLE_REQUIRED,
    # The gateway's word for a service behind it that does not answer.
    "SERVICE_UNAVAILABLE": Cause.SERVICE_DOWN,
    # The client's own (errors.py): a stream reset mid-answer, no status from a service.
    "STREAM_RESET": Cause.STREAM_RESET,
    "EVALUATION_SET_TOO_LARGE": Cause.EVALUATION_SET_TOO_LARGE,
    "EVALUATION_SET_NOT_PARQUET": Cause.EVALUATION_SET_NOT_PARQUET,
    "VALIDATION_NOT_PASSED": Cause.VALIDATION_NOT_PASSED,
}

# Envoy jwt_authn's texts (and the services' own, should a reason be lost on the way).
_TOKEN_TEXTS = [
    (re.compile(r"jwt is missing|missing bearer token|^no token", re.I), Cause.TOKEN_MISSING),
    (re.compile(r"jwt is expired|token has expired", re.I), Cause.TOKEN_EXPIRED),
    (re.compile(r"not yet valid|not valid yet", re.I), Cause.TOKEN_NOT_YET_VALID),
    (
        re.compile(r"invalid json|not in the form of|well-formed|bearer <token>|base64", re.I),
        Cause.TOKEN_MALFORMED,
    ),
    (
        re.compile(r"verification fails|issuer|audience|jwks|signature|algorithm", re.I),
        Cause.TOKEN_UNTRUSTED,
    ),
]
_ROLE_TEXT = re.compile(r"\brequires role ([a-z_]+(?: or [a-z_]+)*)", re.I)
# gRPC core's connection failures ("failed to connect to all addresses; … Connection
# refused", "errors resolving host:port", "DNS resolution failed") and a TLS mismatch.
_TLS_TEXT = re.compile(r"(ssl|tls) handshake failed|ssl_error|certificate verify failed", re.I)
_CONNECT_TEXT = re.compile(
    r"failed to connect|connection refused|errors resolving|dns resolution failed"
    r"|name resolution|no address|connect failed|socket closed|connection reset",
    re.I,
)
# Envoy's reply when the service behind a route does not answer.
_UPSTREAM_TEXT = re.compile(r"no healthy upstream|upstream connect error", re.I)
# Something that speaks HTTP but not this API: another server, or one service's port.
_NOT_GATEWAY_TEXT = re.compile(r"received http2 header with status|method not found", re.I)


def diagnose(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    metadata: Mapping[str, str],
    *,
    url: str,
    token_sent: bool | None = None,
) -> Diagnosis | None:
    """The cause of a failed call, or None when the error says enough itself.

    `url` is where the call went; `token_sent` whether it carried a token
    (None: unknown).
    """
    cause = _BY_REASON.get(reason)
    if cause is None and reason.startswith("TOKEN_"):
        cause = Cause.TOKEN_REFUSED
    if cause is None and not reason:
        cause = _cause_from_text(code, message, token_sent)
    if cause is None:
        return None
    if cause is Cause.ROLE_REQUIRED:
        return Diagnosis(cause, url, _roles(metadata, message))
    if cause is Cause.VALIDATION_NOT_PASSED:
        return Diagnosis(
            cause, url, model_id=metadata.get("modelId", ""), version=metadata.get("version", "")
        )
    return Diagnosis(cause, url)


def _cause_from_text(code: grpc.StatusCode, message: str, token_sent: bool | None) -> Cause | None:
    if code == UNAUTHENTICATED:
        if token_sent is False:
            return Cause.TOKEN_MISSING
        for pattern, cause in _TOKEN_TEXTS:
            if pattern.search(message):
                return cause
        return Cause.TOKEN_REFUSED
    if code == PERMISSION_DENIED and (message.startswith("RBAC:") or _ROLE_TEXT.search(message)):
        return Cause.ROLE_REQUIRED
    if code == UNAVAILABLE:
        if _TLS_TEXT.search(message):
            return Cause.TLS_FAILED
        if _UPSTREAM_TEXT.search(message):
            return Cause.SERVICE_DOWN
        if _CONNECT_TEXT.search(message):
            return Cause.UNREACHABLE
    if code == UNIMPLEMENTED and _NOT_GATEWAY_TEXT.search(message):
        return Cause.WRONG_TARGET
    return None


def _roles(metadata: Mapping[str, str], message: str) -> tuple[str, ...]:
    required = metadata.get("required", "")
    if not required and (match := _ROLE_TEXT.search(message)):
        required = match[1].replace(" or ", ",")
    return tuple(r.strip() for r in required.split(",") if r.strip())


def render(diagnosis: Diagnosis, wording: Wording) -> str:
    """The hint, one line, for the SDK (`SDK`) or the CLI (`CLI`)."""
    w, url = wording, diagnosis.url or "the URL"
    match diagnosis.cause:
        case Cause.TOKEN_MISSING:
            return f"pass {w.jwt_option} or set MLPLANE_TOKEN (a dev stack mints one with `{MINT}`)"
        case Cause.TOKEN_EXPIRED:
            return (
                f"mint a new one (a dev stack: `{MINT}`) "
                f"and pass it as {w.jwt_option} or MLPLANE_TOKEN"
            )
        case Cause.TOKEN_MALFORMED:
            return (
                f"{w.jwt_option} / MLPLANE_TOKEN must be the JWT alone (header.payload.signature), "
                "as `mlplane token` prints it"
            )
        case Cause.TOKEN_UNTRUSTED:
            return (
                f"{url} does not trust this token (another stack's key or issuer, or another "
                f"audience): mint one for it (a dev stack: `{MINT}` where it runs)"
            )
        case Cause.TOKEN_NOT_YET_VALID:
            return "the token is not valid yet: check this machine's clock, or mint a new one"
        case Cause.TOKEN_REFUSED:
            return (
                f"the token was refused: mint a new one (a dev stack: `{MINT}`) "
                f"and pass it as {w.jwt_option} or MLPLANE_TOKEN"
            )
        case Cause.ROLE_REQUIRED:
            if diagnosis.roles:
                return (
                    f"this needs a token with role {' or '.join(diagnosis.roles)} "
                    f"(a dev stack mints one with `mlplane token --role {diagnosis.roles[0]}`)"
                )
            return (
                f"your token lacks the role this call needs ({ROLE_DUTIES}); "
                "a dev stack mints one with `mlplane token --role ROLE`"
            )
        case Cause.UNREACHABLE:
            return (
                f"nothing answers at {url}: start the stack (`make up`) "
                f"or point {w.url_option} / MLPLANE_URL at the gateway"
            )
        case Cause.TLS_FAILED:
            return (
                f"TLS handshake with {url} failed: a plaintext gateway takes http://host:port; "
                f"for a private CA set {w.ca_option}"
            )
        case Cause.SERVICE_DOWN:
            return (
                f"the gateway at {url} answers but the service behind it does not: "
                "is the whole stack running (`make up`)?"
            )
        case Cause.STREAM_RESET:
            return (
                f"the connection to the service behind {url} was cut while it answered (it "
                "stopped or restarted): a read can be sent again; a write may have taken "
                "effect, so look before you send it again"
            )
        case Cause.WRONG_TARGET:
            return (
                f"{url} is not the mlplane gateway (which serves every call): "
                f"point {w.url_option} / MLPLANE_URL at it (default localhost:8080)"
            )
        case Cause.EVALUATION_SET_TOO_LARGE:
            return (
                f"an evaluation set is at most 64 MiB of Parquet: pass a sample of the "
                f"held-out rows as {w.evaluation_option}"
            )
        case Cause.EVALUATION_SET_NOT_PARQUET:
            return (
                f"{w.evaluation_option} takes a Parquet file: the model's input columns and a "
                "label column, e.g. DataFrame.to_parquet(path, index=False)"
            )
        case Cause.VALIDATION_NOT_PASSED:
            return (
                "a version can be approved only once its validation has PASSED: "
                f"see its report with `{_report_call(diagnosis, w)}`"
            )
        case Cause.VALIDATION_TIMEOUT:
            return (
                f"the validation worker has not finished yet: wait longer ({w.wait_option}), "
                f"or look at the report with `{_report_call(diagnosis, w)}`"
            )


def _report_call(diagnosis: Diagnosis, w: Wording) -> str:
    if diagnosis.model_id and diagnosis.version:
        return w.report.format(model_id=diagnosis.model_id, version=diagnosis.version)
    return w.any_report
