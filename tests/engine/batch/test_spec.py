"""BatchSpec: one public batch call's options as one frozen value, checked when the call is made.

The pool binds its batch options by the client's own signature and carries ``distribute``
as a field of the spec: it is never a generation parameter, so it never reaches a request.
"""

from __future__ import annotations

import json

import attrs
import pytest

from flexllm import LLMClientPool, UsageError
from flexllm._batch import BatchSpec
from flexllm_core import HttpRequest, HttpResponse
from flexllm_transports import MemoryTransport

from ..clients.helpers import ok

pytestmark = pytest.mark.anyio

ITEMS = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]


def test_spec_is_frozen_and_keeps_its_own_params() -> None:
    params = {"temperature": 0.5}
    spec = BatchSpec(output_jsonl="out.jsonl", params=params)
    params["temperature"] = 1.0
    assert spec.params == {"temperature": 0.5}
    assert spec.distribute is True and spec.on_changed == "error"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.budget = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value", "match"), [
    ("on_changed", "sometimes", "on_changed must be 'error' or 'rerun'"),
    ("distribute", "yes", "distribute must be True or False"),
])
def test_spec_refuses_bad_options(field: str, value: object, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        BatchSpec(**{field: value})  # type: ignore[arg-type]


def pool_and_bodies() -> tuple[LLMClientPool, list[dict[str, object]]]:
    bodies: list[dict[str, object]] = []

    def handler(req: HttpRequest) -> HttpResponse:
        bodies.append(json.loads(req.body))
        return ok(text="fine")

    transport = MemoryTransport(handler)
    pool = LLMClientPool([{"base_url": "http://a.test/v1", "model": "m", "api_key": "k"},
                          {"base_url": "http://b.test/v1", "model": "m", "api_key": "k"}],
                         transport=transport)
    return pool, bodies


@pytest.mark.parametrize("distribute", [True, False])
async def test_distribute_is_an_option_never_a_request_field(distribute: bool) -> None:
    pool, bodies = pool_and_bodies()
    async with pool:
        results = await pool.chat_completions_batch(ITEMS, distribute=distribute,
                                                    temperature=0.25, show_progress=False)
        streamed = [item async for item in pool.iter_chat_completions_batch(
            ITEMS, distribute=distribute, use_cache=False, top_k=3)]
    assert list(results) == ["fine"] * 4 and len(streamed) == 4
    assert len(bodies) == 8
    assert all("distribute" not in body for body in bodies)
    assert [b.get("temperature") for b in bodies[:4]] == [0.25] * 4
    assert [b.get("top_k") for b in bodies[4:]] == [3] * 4


async def test_bad_pool_options_are_refused_before_anything_is_sent() -> None:
    pool, bodies = pool_and_bodies()
    async with pool:
        with pytest.raises(UsageError, match="distribute must be True or False"):
            await pool.chat_completions_batch(ITEMS, distribute="no", show_progress=False)
        with pytest.raises(UsageError, match="on_changed"):
            await pool.chat_completions_batch(ITEMS, on_changed="never", show_progress=False)
        with pytest.raises(UsageError, match="metadata_list has 1 entries for 4 items"):
            await pool.chat_completions_batch(ITEMS, metadata_list=[{}], show_progress=False)
        with pytest.raises(TypeError):
            await pool.chat_completions_batch(ITEMS, "positional", show_progress=False)
    assert bodies == []
