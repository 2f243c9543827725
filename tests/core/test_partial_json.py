"""The incremental JSON parser: any split of a document gives the same value and the same
closed items, in the same order, as the whole document at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from flexllm_core import Closed, PartialJSON, PartialJSONError

_scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=5),
    max_leaves=30,
)


def _dump(value: Any, indent: int | None, ascii_only: bool) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ascii_only)


def _feed_all(text: str, cuts: list[int], depth: int | None) -> tuple[Any, list[Closed]]:
    parser = PartialJSON(depth=depth)
    events: list[Closed] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += parser.feed(text[start:cut])
        start = cut
    events += parser.feed(text[start:])
    return parser.close(), events


@settings(max_examples=300, deadline=None)
@given(value=_values, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans(),
       data=st.data(), depth=st.sampled_from([None, 1, 2]))
def test_any_split_gives_the_same_value_and_the_same_closed_items(
        value: Any, indent: int | None, ascii_only: bool, data: st.DataObject, depth: int | None) -> None:
    text = _dump(value, indent, ascii_only)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    whole_value, whole_events = _feed_all(text, [], depth)
    split_value, split_events = _feed_all(text, cuts, depth)
    expected = json.loads(text)
    assert whole_value == expected and split_value == expected
    assert split_events == whole_events
    assert all(depth is None or 1 <= len(e.path) <= depth for e in whole_events)


def test_fields_and_items_are_reported_as_they_close() -> None:
    parser = PartialJSON()
    assert parser.feed('{"title": "Re') == []
    assert parser.feed('port", "rows": [{"a": 1}, ') == [
        Closed(("title",), "Report"), Closed(("rows", 0), {"a": 1})]
    assert parser.value == {"title": "Report", "rows": [{"a": 1}]}  # live view, rows still open
    assert parser.feed('{"a": 2}') == [Closed(("rows", 1), {"a": 2})]
    assert not parser.done
    assert parser.feed("]}") == [Closed(("rows",), [{"a": 1}, {"a": 2}])]
    assert parser.done and parser.close() == {"title": "Report", "rows": [{"a": 1}, {"a": 2}]}


def test_one_character_at_a_time_with_escapes() -> None:
    text = '{"k\\"ey": "a\\u00e9\\ud83d\\ude00\\\\b\\n", "n": -1.5e3, "t": [true, false, null, 0]}'
    parser = PartialJSON(depth=None)
    for ch in text:
        parser.feed(ch)
    assert parser.close() == json.loads(text)


def test_a_top_level_number_ends_with_the_input() -> None:
    parser = PartialJSON()
    parser.feed("12")
    parser.feed("3")
    assert parser.close() == 123


@pytest.mark.parametrize("text", [
    '{"a": 1,}', '{"a" 1}', "[1 2]", '{"a": tru}', '{"a": 01}', '{"a": "x\ny"}', "[1]]", "{]",
    '{"a": 1} x', "nul", '"\\x"',
])
def test_not_json_is_an_error(text: str) -> None:
    parser = PartialJSON()
    with pytest.raises(PartialJSONError):
        parser.feed(text)
        parser.close()
    with pytest.raises(ValueError):
        json.loads(text)  # the same verdict as the standard parser


@pytest.mark.parametrize("text", ['{"a": [1, 2', '{"a": "x', '{"a"', "", "[", '{"a": 1'])
def test_an_unfinished_document_fails_at_close(text: str) -> None:
    parser = PartialJSON()
    parser.feed(text)
    with pytest.raises(PartialJSONError, match="incomplete JSON"):
        parser.close()


def test_an_error_is_sticky() -> None:
    parser = PartialJSON()
    with pytest.raises(PartialJSONError):
        parser.feed("[1,,")
    with pytest.raises(PartialJSONError):
        parser.feed("2]")
