"""Property: whatever text a browser form carries, its metadata is either accepted or
refused with a 400 that names a field; nothing else (no 500) ever comes out."""

from __future__ import annotations

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.errors import ServiceError
from services.common.validation import RequestValidator
from services.models.metadata import FORM_FIELDS, UploadMetadata, parse_form_metadata

VALIDATOR = RequestValidator()

# JSON-ish fragments people paste into metrics/labels, and raw text of any kind.
_JSONISH = st.one_of(
    st.text(max_size=200),
    st.builds(lambda d: "{" + d + "}", st.text(max_size=100)),
    st.builds(lambda n: '{"auc": ' + n + "}", st.from_regex(r"-?[0-9]{1,600}(\.[0-9]{0,5})?")),
    st.builds(
        lambda n: '{"auc": ' + n + "}", st.sampled_from(["NaN", "Infinity", "1e999", "true"])
    ),
    st.builds(
        lambda k, v: '{"' + k + '": "' + v + '"}', st.text(max_size=80), st.text(max_size=300)
    ),
)
_FIELDS = st.dictionaries(
    st.one_of(st.sampled_from(FORM_FIELDS), st.text(max_size=20)),
    st.one_of(_JSONISH, st.text(max_size=5000)),
    max_size=7,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FIELDS)
def test_any_form_is_accepted_or_a_named_400(fields: dict[str, str]) -> None:
    refusal: ServiceError | None = None
    try:
        parsed = parse_form_metadata(fields, VALIDATOR)
    except ServiceError as error:
        refusal = error
    if refusal is not None:
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "field" in refusal.metadata, refusal
        assert len(refusal.message) < 2000
        return
    assert isinstance(parsed, UploadMetadata)
    assert len(parsed.description) <= 4096
    assert len(parsed.labels) <= 64
    assert len(parsed.metrics) <= 256
