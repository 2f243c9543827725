"""flexllm options are never request parameters: one table, and the 0.17 batch keywords.

Keywords a call does not know become body fields (``build_request``'s ``**extra``), so an
option spelled for another version of flexllm would be sent to the provider, which either
ignores it or answers 400. :data:`FLEXLLM_OPTIONS` lists every option name of flexllm (this
version and 0.17.10) with where it belongs now; ``build_request`` refuses them before
anything is sent. :func:`take_legacy_batch_options` turns the batch keywords of 0.17.10
into this version's spelling, or refuses them naming the replacement.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import attrs

from flexllm_core import UsageError

from .input import InputLine

__all__ = (
    "FLEXLLM_OPTIONS",
    "LegacyBatch",
    "pop_distribute",
    "reject_flexllm_options",
    "take_legacy_batch_options",
)

_BATCH = "a batch option: pass it to chat_completions_batch / iter_chat_completions_batch"
_CLIENT = "a client option: pass it to LLMClient(...) / LLMClientPool(...)"

#: Option name -> where it belongs now. ``build_request`` refuses these as body fields.
FLEXLLM_OPTIONS: Mapping[str, str] = {
    # batch options (this version and 0.17)
    "output_jsonl": _BATCH,
    "show_progress": _BATCH,
    "track_cost": _BATCH,
    "return_cost_report": _BATCH,
    "budget": _BATCH,
    "metadata_list": _BATCH,
    "fsync_every": _BATCH,
    "fsync_interval": _BATCH,
    "on_changed": _BATCH,
    "retry_invalid": _BATCH,
    "max_reasks": "a call option of chat_completions and the batch methods (with a schema "
                  "as response_format)",
    "return_summary": "a chat_completions_batch option (0.17): read results.success_count, "
                      "failed_count, cached_count, elapsed and cost instead",
    "params_list": "a chat_completions_batch option (0.17): one dict of request parameters "
                   "per item",
    "save_input": "a 0.17 batch option: checkpoint records hold a hash of each request, "
                  "never its input; drop it",
    "flush_interval": "a 0.17 batch option: records are written as each item finishes; "
                      "use fsync_interval= for fsync durability",
    "save_raw": "a 0.17 batch option: use return_raw=True",
    "batch_size": "a 0.17 iter_chat_completions_batch option: items are yielded one by one",
    "distribute": "an LLMClientPool batch option",
    "preprocess_msg": "a 0.17 option: use MllmClient, which inlines image files and URLs",
    # per-call options
    "return_usage": "a call option of chat_completions",
    "return_raw": "a call option of chat_completions",
    "return_events": "a call option of chat_completions_stream",
    "use_cache": "a call option of chat_completions and the batch methods",
    "raise_on_error": "a 0.17 option: errors are always raised as typed exceptions",
    "prefix": "a 0.17 option: end messages with {'role': 'assistant', 'content': prefix}",
    "include_prefix": "a 0.17 option: the answer is the model's continuation only",
    "url": "a 0.17 option: set base_url on the client",
    "extra_headers": _CLIENT,
    "timeout": "a client option (seconds per attempt); chat_completions and streams take "
               "timeout= per call",
    "cost_tracker": "a 0.17 client option: pass budget= (USD) to the batch call; its cost "
                    "is results.cost (or return_cost_report=True)",
    "use_selection": "a 0.17 processor option that is not carried",
    "n_predictions": "a 0.17 processor option that is not carried",
    "selector_fn": "a 0.17 processor option that is not carried",
    "return_image_files": "an MllmFolderProcessor.call_folder_images option",
    # client options (this version and 0.17). Not "provider" or "reasoning": OpenRouter
    # takes both as body fields.
    "base_url": _CLIENT,
    "api_key": _CLIENT,
    "cache": _CLIENT,
    "concurrency_limit": _CLIENT,
    "max_qps": _CLIENT,
    "retry_times": _CLIENT,
    "retry_delay": _CLIENT,
    "proxy": _CLIENT,
    "transport": _CLIENT,
    "endpoints": "an LLMClientPool option",
    "fallback": "an LLMClientPool option",
    "load_balance": "an LLMClientPool option",
    "failure_threshold": "an LLMClientPool option",
    "recovery_time": "an LLMClientPool option",
    "total_concurrency_limit": "a 0.17 pool option: give each endpoint its concurrency_limit",
    "total_max_qps": "a 0.17 pool option: give each endpoint its max_qps",
    "max_fallback_attempts": "a 0.17 pool option: LLMClientPool tries every endpoint",
    "api_version": _CLIENT,
    "use_vertex_ai": _CLIENT,
    "project_id": _CLIENT,
    "location": _CLIENT,
    "credentials": "a 0.17 Gemini option: Vertex AI uses Application Default Credentials",
    "cache_image": "a 0.17 media-cache option that is not carried",
    "cache_dir": "a 0.17 media-cache option: use ResponseCacheConfig(cache_dir=...) for "
                 "the response cache",
    "missing_local_media": "a 0.17 option: MllmClient raises UsageError for a missing file",
    "vision": "a 0.17 client/config option: MllmClient sends images, LLMClient sends what "
              "it is given",
    "video": "a 0.17 client/config option that is not carried",
    "system": "a config/CLI option: put {'role': 'system', 'content': ...} first in messages",
    "user_template": "a 0.17 config/CLI option: format the prompt before the call",
    "reasoning_adapter": "a 0.17 reasoning option: pass thinking=",
    "reasoning_capabilities": "a 0.17 reasoning option: pass thinking=",
}


#: 0.17 options whose value here is the only behaviour: dropped with a DeprecationWarning.
_NO_OPS: Mapping[str, tuple[object, str]] = {
    "raise_on_error": (True, "errors are always raised as typed exceptions; drop it"),
}


def reject_flexllm_options(extra: MutableMapping[str, object]) -> None:
    """Refuse a flexllm option passed where request parameters are collected.

    A 0.17 option that asks for what is now the only behaviour (``raise_on_error=True``)
    is removed from ``extra`` with a DeprecationWarning instead.

    Raises:
        UsageError: naming the option and where it belongs.
    """
    for name, (value, why) in _NO_OPS.items():
        if name in extra and extra[name] is value:
            del extra[name]
            warnings.warn(f"{name}={value!r} is a flexllm 0.17 option; {why}",
                          DeprecationWarning, stacklevel=4)
    for name in extra:
        hint = FLEXLLM_OPTIONS.get(name)
        if hint is not None:
            raise UsageError(
                f"{name}: a flexllm option, not a request parameter ({hint}); to send a body "
                f"field of that name anyway, pass extra_body={{{name!r}: ...}}"
            )


def _deprecated(old: str, new: str) -> None:
    # stacklevel 4: _deprecated -> take_legacy_batch_options -> batch method -> caller.
    warnings.warn(f"{old} is a flexllm 0.17 option; {new}", DeprecationWarning, stacklevel=4)


@attrs.frozen
class LegacyBatch:
    """What a 0.17 batch call asked for that shapes the return value."""

    return_summary: bool = False

    def shape(self, results: Any, report: Any | None) -> Any:
        """``(results, summary)`` or ``(results, summary, report)`` as 0.17 returned them."""
        if not self.return_summary:
            return results if report is None else (results, report)
        summary = batch_summary(results)
        return (results, summary) if report is None else (results, summary, report)


def batch_summary(results: Any) -> str:
    """The one-line summary 0.17's ``return_summary`` returned, from a BatchResult."""
    text = (f"{len(results)} items: {results.success_count} succeeded, "
            f"{results.failed_count} failed, {results.cached_count} from cache, "
            f"{results.elapsed:.2f}s")
    if results.cost is not None:
        text += f", ${results.cost.total_cost:.6f}"
    return text


def _per_item(raw: object, params: Mapping[str, Any], index: int) -> object:
    """An item with its own request parameters, as a JSONL line carries them."""
    if isinstance(raw, str):
        fields: dict[str, Any] = {"messages": [{"role": "user", "content": raw}]}
    elif isinstance(raw, Mapping) and "messages" in raw:
        fields = dict(raw)
    elif isinstance(raw, (list, tuple)):
        fields = {"messages": list(raw)}
    else:
        return raw  # the preparer names what is wrong with it
    gen = dict(params)
    if "user_template" in gen:
        raise UsageError(f"params_list[{index}].user_template: format the prompt before the call")
    system = gen.pop("system", None)
    if system is not None:
        if not isinstance(system, str):
            raise UsageError(f"params_list[{index}].system: expected a string")
        messages = fields["messages"]
        if not any(isinstance(m, Mapping) and m.get("role") == "system" for m in messages):
            fields["messages"] = [{"role": "system", "content": system}, *messages]
    reject_flexllm_options(dict.fromkeys(gen))
    return InputLine(fields, line=index + 1, params=gen)


def _with_params_list(items: object, params_list: object) -> list[object]:
    if not isinstance(params_list, Sequence) or isinstance(params_list, (str, bytes)):
        raise UsageError("params_list must be a list with one dict (or None) per item")
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise UsageError("params_list needs messages_list as a list (a JSONL path or an "
                         "iterable carries its parameters per line instead)")
    if len(items) != len(params_list):
        raise UsageError(f"params_list has {len(params_list)} entries for {len(items)} items; "
                         "they must match")
    out: list[object] = []
    for index, (raw, params) in enumerate(zip(items, params_list, strict=True)):
        if params is not None and not isinstance(params, Mapping):
            raise UsageError(f"params_list[{index}]: expected a dict or None, "
                             f"got {type(params).__name__}")
        out.append(_per_item(raw, params, index) if params else raw)
    return out


def take_legacy_batch_options(
    items: Any, params: dict[str, Any], *, iterating: bool
) -> tuple[Any, LegacyBatch]:
    """Remove the 0.17 batch keywords from ``params``, applying those that still work.

    ``params_list`` becomes per-item parameters; ``save_input`` and ``flush_interval`` are
    accepted with a DeprecationWarning (checkpoints hold request hashes and are written per
    item); ``return_summary`` shapes the return value. ``distribute`` stays for the pool.

    Raises:
        UsageError: an option that cannot work, or a bad value, naming the replacement.
    """
    if "return_summary" in params:
        summary = params.pop("return_summary")
        if not isinstance(summary, bool):
            raise UsageError(f"return_summary must be True or False, got {summary!r}")
        if summary and iterating:
            raise UsageError("return_summary: iter_chat_completions_batch yields BatchItems; "
                             "use chat_completions_batch for counts and cost")
        _deprecated("return_summary", "read results.success_count, failed_count, "
                    "cached_count, elapsed and cost of the returned BatchResult")
    else:
        summary = False
    if "params_list" in params:
        params_list = params.pop("params_list")
        if params_list is not None:
            items = _with_params_list(items, params_list)
    if "save_input" in params:
        value = params.pop("save_input")
        if value not in (True, False, "last"):
            raise UsageError(f"save_input must be True, False or 'last', got {value!r}")
        _deprecated("save_input", "checkpoint records hold a hash of each request (never its "
                    "input) and a resume checks it; drop save_input, or pass "
                    "on_changed='rerun' to re-send changed items")
    if "flush_interval" in params:
        value = params.pop("flush_interval")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0):
            raise UsageError(f"flush_interval must be a number of seconds > 0, got {value!r}")
        _deprecated("flush_interval", "records are written as each item finishes; pass "
                    "fsync_interval= (seconds) for fsync durability")
    if "preprocess_msg" in params:
        value = params.pop("preprocess_msg")
        if value is not False:
            raise UsageError(
                "preprocess_msg: use MllmClient, whose chat_completions and call_llm inline "
                "image files and URLs (or MllmClient.prepare_messages before a batch)")
        _deprecated("preprocess_msg=False", "drop it (it is the only behaviour)")
    for name in ("save_raw", "batch_size"):
        if name in params:
            raise UsageError(f"{name}: {FLEXLLM_OPTIONS[name]}")
    return items, LegacyBatch(return_summary=summary)


def pop_distribute(params: dict[str, Any], *, default: bool | None) -> bool:
    """Take ``distribute`` out of a batch call's keywords (it is never a request parameter).

    ``default`` is the pool's (True); None means one endpoint (0.17's LLMClient was a pool),
    where the keyword has nothing to distribute: it is accepted with a DeprecationWarning.

    Raises:
        UsageError: a value that is not a bool.
    """
    if "distribute" not in params:
        return bool(default)
    value = params.pop("distribute")
    if not isinstance(value, bool):
        raise UsageError(f"distribute must be True or False, got {value!r}")
    if default is None:
        warnings.warn("distribute is an LLMClientPool option; LLMClient has one endpoint, so "
                      "it has no effect: drop it, or use LLMClientPool(endpoints=[...])",
                      DeprecationWarning, stacklevel=5)
        return False
    return value
