"""Pages: signed tokens, and a page that stops early rather than outgrow a message."""

from __future__ import annotations

import pytest
from google.protobuf.wrappers_pb2 import StringValue

from services.common.errors import ServiceError
from services.common.pagination import Page, PageTokens, page_of, page_size


def wrap(value: str) -> StringValue:
    return StringValue(value=value)


def _page(values: list[str], size: int) -> Page[str]:
    return page_of(values, size, lambda v: f"after:{v}")


def test_a_page_of_small_items_is_cut_by_count() -> None:
    messages, token = _page(["a", "b", "c"], 2).fit(wrap)
    assert [m.value for m in messages] == ["a", "b"]
    assert token == "after:b"


def test_the_last_page_has_no_token() -> None:
    messages, token = _page(["a", "b"], 2).fit(wrap)
    assert [m.value for m in messages] == ["a", "b"]
    assert token == ""
    assert _page([], 5).fit(wrap) == ([], "")


def test_a_page_stops_before_its_messages_outgrow_the_budget() -> None:
    big = ["x" * 400, "y" * 400, "z" * 400]
    messages, token = _page(big, 10).fit(wrap, budget=1000)
    assert [m.value[0] for m in messages] == ["x", "y"]
    assert token == "after:" + "y" * 400  # the next page starts at z


def test_one_item_larger_than_the_budget_still_makes_progress() -> None:
    messages, token = _page(["x" * 5000, "y"], 10).fit(wrap, budget=1000)
    assert len(messages) == 1
    assert token == "after:" + "x" * 5000


def test_page_size_defaults_and_caps() -> None:
    assert page_size(0) == 50
    assert page_size(0, default=100) == 100
    assert page_size(5000) == 1000
    with pytest.raises(ServiceError):
        page_size(-1)


def test_tokens_are_bound_to_their_query() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.encode("pump-003", {"t": "demo", "s": 50})
    assert tokens.decode(token, {"t": "demo", "s": 50}) == "pump-003"
    with pytest.raises(ServiceError) as other:
        tokens.decode(token, {"t": "other", "s": 50})
    assert other.value.reason == "PAGE_TOKEN_MISMATCH"
    with pytest.raises(ServiceError) as forged:
        PageTokens(b"j" * 32).decode(token, {"t": "demo", "s": 50})
    assert forged.value.reason == "INVALID_PAGE_TOKEN"
    assert forged.value.metadata == {"field": "pageToken"}
