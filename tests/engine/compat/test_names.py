"""Every public name of flexllm 0.17.10 resolves here, or says why not and what to use.

The list is ``flexllm.__all__`` of the 0.17.10 wheel, got with
``pip download flexllm==0.17.10 --no-deps`` and read from ``flexllm/__init__.py`` inside it
(47 names). Each is listed below with what it must be here; the expectations are written
out in this test, not read from the compat tables they check.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import flexllm
import flexllm_core
from flexllm import (
    AllEndpointsFailedError,
    ChatResult,
    ConnectError,
    LLMClient,
    LLMClientPool,
    ProviderError,
    RateLimitError,
    RequestTimeout,
    ResponseFormatError,
    ServerError,
    UsageError,
)

#: 0.17.10's ``flexllm.__all__``, in its order.
FLEXLLM_0_17_10_ALL = (
    "Reasoning", "ReasoningCapabilities", "ModelCapabilities", "TokenBudget",
    "LLMClientBase", "LLMRequestError", "LLMHTTPError", "LLMConnectionError",
    "LLMTimeoutError", "LLMResponseError", "BatchResult", "LegacyResponseWarning",
    "MllmClient", "MllmTableProcessor", "MllmFolderProcessor", "OpenAIClient",
    "GeminiClient", "ClaudeClient", "LLMClient", "ChatCompletionResult", "ToolCall",
    "TranscriptionResult", "segments_to_srt", "segments_to_vtt", "count_tokens",
    "count_messages_tokens", "estimate_cost", "estimate_batch_cost", "messages_hash",
    "MODEL_PRICING", "ResponseCache", "ResponseCacheConfig", "CostTracker",
    "CostTrackerConfig", "CostReport", "BudgetExceededError", "ProviderRouter",
    "ProviderConfig", "create_router_from_urls", "LLMClientPool", "EndpointConfig",
    "ChainOfThoughtClient", "Step", "LinearStep", "extract_code_snippets", "parse_to_code",
    "parse_to_obj",
)

#: Same name, same meaning: part of this version's ``__all__``.
SAME = {
    "BatchResult", "MllmClient", "OpenAIClient", "GeminiClient", "ClaudeClient", "LLMClient",
    "ToolCall", "count_tokens", "estimate_cost", "estimate_batch_cost", "ResponseCacheConfig",
    "CostReport", "BudgetExceededError", "LLMClientPool",
}
#: Old spelling -> a word the DeprecationWarning must name (the new spelling).
RENAMED = {
    "ChatCompletionResult": "ChatResult", "LLMClientBase": "LLMClient",
    "LLMRequestError": "ProviderError", "LLMHTTPError": "ProviderError",
    "LLMConnectionError": "TransportError", "LLMTimeoutError": "RequestTimeout",
    "LLMResponseError": "ResponseFormatError", "CostTracker": "budget=",
    "CostTrackerConfig": "budget=", "EndpointConfig": "endpoints=",
    "count_messages_tokens": "count_tokens", "messages_hash": "request_hash",
    "MODEL_PRICING": "default_pricing", "ResponseCache": "ResponseCacheConfig",
    "LegacyResponseWarning": "never warns",
}
#: Kept features with no other spelling: resolve silently, outside ``__all__``.
KEPT = {"MllmTableProcessor", "MllmFolderProcessor", "extract_code_snippets", "parse_to_code",
        "parse_to_obj"}
#: Deliberately not carried -> a word the AttributeError must name (what to use).
NOT_CARRIED = {
    "Reasoning": "thinking=", "ReasoningCapabilities": "thinking=",
    "ModelCapabilities": "thinking=", "TokenBudget": "thinking=",
    "TranscriptionResult": "audio API", "segments_to_srt": "subtitle",
    "segments_to_vtt": "subtitle", "ProviderRouter": "LLMClientPool",
    "ProviderConfig": "LLMClientPool", "create_router_from_urls": "LLMClientPool",
    "ChainOfThoughtClient": "chat_completions", "Step": "chat_completions",
    "LinearStep": "chat_completions",
}


def test_the_list_is_complete_and_each_name_has_one_expectation() -> None:
    assert len(FLEXLLM_0_17_10_ALL) == len(set(FLEXLLM_0_17_10_ALL)) == 47
    groups = [SAME, set(RENAMED), KEPT, set(NOT_CARRIED)]
    assert sum(len(g) for g in groups) == 47
    assert set().union(*groups) == set(FLEXLLM_0_17_10_ALL)


@pytest.mark.parametrize("name", FLEXLLM_0_17_10_ALL)
def test_each_old_name_resolves_or_says_what_to_use(name: str) -> None:
    if name in NOT_CARRIED:
        with pytest.raises(AttributeError, match="deliberately not carried") as info:
            getattr(flexllm, name)
        assert NOT_CARRIED[name] in str(info.value)
        with pytest.raises(ImportError, match="deliberately not carried"):
            exec(f"from flexllm import {name}", {})
        return
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        value = getattr(flexllm, name)
    assert value is not None
    deprecations = [str(w.message) for w in seen if w.category is DeprecationWarning]
    if name in RENAMED:
        assert deprecations, f"{name}: no DeprecationWarning"
        assert RENAMED[name] in deprecations[0]
        assert name not in flexllm.__all__
    else:
        assert deprecations == []
        assert (name in flexllm.__all__) == (name in SAME)


def test_all_stays_the_new_surface_and_star_import_has_no_old_names() -> None:
    namespace: dict[str, object] = {}
    exec("from flexllm import *", namespace)
    assert not (set(RENAMED) | KEPT | set(NOT_CARRIED)) & set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        flexllm.no_such_name  # noqa: B018


def test_importing_flexllm_imports_none_of_the_old_helpers() -> None:
    code = ("import sys, flexllm; print(sorted(m for m in sys.modules "
            "if m.startswith('flexllm._compat.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _old(name: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(flexllm, name)


@pytest.mark.parametrize(("error", "caught_by"), [
    (RateLimitError("slow down", status=429), {"LLMRequestError", "LLMHTTPError"}),
    (ServerError("down", status=500), {"LLMRequestError", "LLMHTTPError"}),
    (ConnectError("refused"), {"LLMRequestError", "LLMConnectionError"}),
    (RequestTimeout("late"), {"LLMRequestError", "LLMConnectionError", "LLMTimeoutError"}),
    (ResponseFormatError("empty"), {"LLMRequestError", "LLMResponseError"}),
    (AllEndpointsFailedError("all failed", errors={}), {"LLMRequestError"}),
    (UsageError("bad input"), set()),
])
def test_the_old_error_names_catch_the_new_errors(error: Exception, caught_by: set[str]) -> None:
    for name in ("LLMRequestError", "LLMHTTPError", "LLMConnectionError", "LLMTimeoutError",
                 "LLMResponseError"):
        family = _old(name)
        try:
            raise error
        except family:  # type: ignore[misc]
            caught = True
        except Exception:
            caught = False
        assert caught == (name in caught_by), name
        assert isinstance(error, family) == caught  # type: ignore[arg-type]


def test_the_old_error_names_can_be_raised_and_subclassed_as_0_17_did() -> None:
    http = _old("LLMHTTPError")
    err = http("HTTP 500: boom", status_code=500, response_data={"error": "boom"},  # type: ignore[operator]
               request_id="req-1", retryable=True)
    assert isinstance(err, ProviderError) and err.status == 500 and err.retryable
    with pytest.warns(DeprecationWarning, match="use .status"):
        assert err.status_code == 500
    with pytest.warns(DeprecationWarning, match="use .body"):
        assert err.response_data == {"error": "boom"}
    assert err.request_id == "req-1"
    timeout = _old("LLMTimeoutError")("late")  # type: ignore[operator]
    assert isinstance(timeout, RequestTimeout) and timeout.status_code is None

    class GatewayError(http):  # type: ignore[misc, valid-type]
        pass

    with pytest.raises(_old("LLMRequestError")):  # type: ignore[call-overload]
        raise GatewayError("blocked", status=403)


def test_client_base_and_chat_completion_result_are_the_new_types() -> None:
    base = _old("LLMClientBase")
    assert issubclass(LLMClient, base) and issubclass(LLMClientPool, base)  # type: ignore[arg-type]
    assert not issubclass(str, base)  # type: ignore[arg-type]
    # What 0.17's chat() returned, as chat() returns it here; its new spelling is ChatResult.
    legacy_result = _old("ChatCompletionResult")
    assert legacy_result is not ChatResult and legacy_result.__name__ == "ChatCompletionResult"
    assert legacy_result("hi").content == "hi"  # type: ignore[operator]


def test_parse_helpers_read_code_blocks_as_0_17_did() -> None:
    parse_to_obj, parse_to_code, extract = (
        _old("parse_to_obj"), _old("parse_to_code"), _old("extract_code_snippets"))
    text = 'Here:\n```python\nprint(1)\n```\nand\n```json\n{"a": true, "b": [1, 2]}\n```'
    assert extract(text) == [  # type: ignore[operator]
        {"language": "python", "code": "print(1)"},
        {"language": "json", "code": '{"a": true, "b": [1, 2]}'}]
    assert parse_to_obj(text) == {"a": True, "b": [1, 2]}  # type: ignore[operator]
    assert parse_to_obj("```\n{'x': (1, 2)}\n```") == {"x": (1, 2)}  # type: ignore[operator]
    assert parse_to_code(text) == '{"a": true, "b": [1, 2]}'  # type: ignore[operator]
    assert parse_to_obj("no code here") is None  # type: ignore[operator]
    assert extract("a {b: 1} c", strict=False) == [  # type: ignore[operator]
        {"language": "unknown", "code": "{b: 1}"}]
    with pytest.raises(ValueError, match="not a Python literal or JSON"):
        parse_to_obj("```\n{not: valid\n```")  # type: ignore[operator]


def test_cost_tracker_with_budget_counts_and_stops_at_the_limit() -> None:
    config_cls, tracker_cls = _old("CostTrackerConfig"), _old("CostTracker")
    warned: list[tuple[float, float]] = []
    config = config_cls.with_budget(  # type: ignore[attr-defined]
        limit=0.001, warning=0.0005, on_warning=lambda c, t: warned.append((c, t)))
    tracker = tracker_cls(config)  # type: ignore[operator]
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    first = tracker.record(usage, "gpt-4o-mini")  # 1000 * 0.15 + 500 * 0.6 per 1M = $0.00045
    assert first == pytest.approx(0.00045)
    tracker.record(usage, "gpt-4o-mini")
    assert warned and warned[0][1] == 0.0005
    with pytest.raises(flexllm.BudgetExceededError):
        tracker.record(usage, "gpt-4o-mini")
    report = tracker.get_report()
    assert report.request_count == 3 and report.total_input_tokens == 3000
    with pytest.raises(UsageError, match="budget_limit"):
        config_cls.with_budget(limit=-1)  # type: ignore[attr-defined]


def test_token_and_pricing_helpers() -> None:
    msgs = [[{"role": "user", "content": "hello world"}], [{"role": "user", "content": "hi"}]]
    count = _old("count_messages_tokens")(msgs, "gpt-4o")  # type: ignore[operator]
    assert count == sum(flexllm.count_tokens(m, "gpt-4o") for m in msgs)
    messages_hash = _old("messages_hash")
    a = messages_hash(msgs[0], model="gpt-4o", temperature=0.5)  # type: ignore[operator]
    assert a == messages_hash(msgs[0], model="gpt-4o", temperature=0.5)  # type: ignore[operator]
    assert a != messages_hash(msgs[0], model="gpt-4o", temperature=0.7)  # type: ignore[operator]
    assert a != messages_hash(msgs[1], model="gpt-4o", temperature=0.5)  # type: ignore[operator]
    pricing = _old("MODEL_PRICING")
    price = flexllm_core.default_pricing().lookup("gpt-4o")
    assert price is not None
    assert pricing["gpt-4o"] == {"input": price.input / 1e6, "output": price.output / 1e6}  # type: ignore[index]


def test_endpoint_config_is_an_endpoint_the_pool_takes() -> None:
    endpoint_config = _old("EndpointConfig")
    ep = endpoint_config(base_url="http://127.0.0.1:9/v1", api_key="sk-SECRET-1", model="m",  # type: ignore[operator]
                         concurrency_limit=3, extra={"timeout": 5})
    assert ep.base_url == "http://127.0.0.1:9/v1" and ep.concurrency_limit == 3
    assert "SECRET" not in repr(ep)
    pool = LLMClientPool(endpoints=[ep, dict(ep)])
    try:
        assert len(pool.statistics().endpoints) == 2
    finally:
        pool.close()
    with pytest.raises(UsageError, match="unknown field"):
        LLMClientPool(endpoints=[endpoint_config(base_url="http://x/v1", model="m",  # type: ignore[operator]
                                                 extra={"nonsense": 1})])
    with pytest.raises(UsageError, match="thinking="):
        endpoint_config(base_url="http://x/v1", model="m", reasoning="high")  # type: ignore[operator]


def test_a_client_option_of_0_17_names_its_replacement() -> None:
    with pytest.raises(UsageError, match=r"cost_tracker: .*budget="):
        LLMClient(base_url="http://127.0.0.1:9/v1", model="m", cost_tracker=True)
