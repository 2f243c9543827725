"""``flexllm_core._json.loads``: json.loads's values and errors, with or without orjson."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from flexllm_core import _json

LOADERS: dict[str, Callable[[Any], Any]] = {"stdlib": _json._stdlib_loads, "orjson": _json._fast_loads}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(params=sorted(LOADERS))
def loads(request: pytest.FixtureRequest) -> Callable[[Any], Any]:
    if request.param == "orjson":
        pytest.importorskip("orjson")
    return LOADERS[request.param]


def test_the_module_picks_orjson_when_installed() -> None:
    expected = _json._stdlib_loads if _json.orjson is None else _json._fast_loads
    assert _json.loads is expected
    assert _json._dumps is (_json._stdlib_dumps if _json.orjson is None else _json._fast_dumps)


@settings(max_examples=200, deadline=None)
@given(value=json_values, ascii_only=st.booleans(), pad=st.sampled_from(["", " ", "\n"]))
def test_same_values_as_json(value: Any, ascii_only: bool, pad: str) -> None:
    text = pad + json.dumps(value, ensure_ascii=ascii_only) + pad
    for load in LOADERS.values():
        if load is _json._fast_loads and _json.orjson is None:
            continue
        assert load(text) == json.loads(text)
        assert load(text.encode()) == json.loads(text.encode())


@pytest.mark.parametrize("text", ["NaN", "[Infinity, -Infinity]", str(2**70), '{"a": 1, "a": 2}',
                                  str(2**64), str(-(2**63) - 1), '{"id": -9223372036854775809}',
                                  str(2**64 - 1), str(-(2**63)), '{"n": [18446744073709551616]}',
                                  '{"t": "x-12345678901234567890", "n": -12345678901234567890}'])
def test_what_orjson_refuses_still_decodes_as_json_does(loads: Callable[[Any], Any], text: str) -> None:
    got, want = loads(text), json.loads(text)
    if text == "NaN":
        assert math.isnan(got)
    else:
        assert got == want and type(got) is type(want)  # an int stays an int, exact


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "[1,]", "\"unterminated", b"\xff"])
def test_invalid_json_raises_jsons_own_error(loads: Callable[[Any], Any], text: str | bytes) -> None:
    with pytest.raises(ValueError) as got:
        loads(text)
    with pytest.raises(ValueError) as want:
        json.loads(text)
    assert type(got.value) is type(want.value) and str(got.value) == str(want.value)


# -- request bodies ----------------------------------------------------------------------

DUMPERS: dict[str, Callable[[Any], bytes]] = {"stdlib": _json._stdlib_dumps, "orjson": _json._fast_dumps}


@pytest.fixture(params=sorted(DUMPERS))
def dumps(request: pytest.FixtureRequest) -> Callable[[Any], bytes]:
    if request.param == "orjson":
        pytest.importorskip("orjson")
    return DUMPERS[request.param]


finite_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(), lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=finite_json)
def test_a_body_is_the_same_document_either_way(value: Any) -> None:
    for name, dump in DUMPERS.items():
        if name == "orjson" and _json.orjson is None:
            continue
        data = dump(value)
        assert json.loads(data) == value
        assert data == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() or (
            name == "orjson")  # orjson may spell a float shorter (1e-5 for 1e-05)


@pytest.mark.parametrize("value", [
    {"t": float("nan")}, {"t": [1.0, float("inf")]}, {"x": object()}, {"d": __import__("datetime").date(2026, 1, 1)},
    {"s": "lone \ud800 surrogate"}, {"b": b"bytes"},
])
def test_what_json_cannot_hold_is_a_usage_error_before_sending(
        dumps: Callable[[Any], bytes], value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flexllm_core import UsageError

    monkeypatch.setattr(_json, "_dumps", dumps)
    with pytest.raises(UsageError, match="request body is not JSON-serialisable"):
        _json.dumps_body(value)


def test_big_integers_and_odd_keys_go_through_json(dumps: Callable[[Any], bytes]) -> None:
    value = {"big": 2**70, "neg": -(2**64), 1: "int key", "u": "日本語 ✓", "n": None}
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
    assert "日本語".encode() in dumps(value)  # UTF-8 kept, not \\u escapes


@pytest.mark.parametrize("provider", ["openai", "claude", "gemini"])
def test_every_codec_refuses_a_nan_body_before_sending(provider: str) -> None:
    from flexllm_core import ChatRequest, ProviderConfig, UsageError, get_codec

    bad = ChatRequest(model="m", messages=({"role": "user", "content": "x"},),
                      extra_body={"weight": float("nan")})
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        get_codec(provider).build_request(bad, ProviderConfig(base_url="http://127.0.0.1:1/v1",
                                                              api_key="k"))
