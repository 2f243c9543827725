"""Value types of the batch runner: what goes in (lanes, options) and what comes out (items)."""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from flexllm_core import ChatRequest, ChatResult, JSONDict, JSONValue, UsageError

from .._cache import Fill, ResponseCache
from .._cost import CostTracker
from .._engine import Outage
from .checkpoint import Durability

if TYPE_CHECKING:
    from .._structured import Schema
    from .structured import StructuredBatch

__all__ = (
    "BatchItem",
    "BatchOptions",
    "BatchSpec",
    "Finished",
    "ItemSource",
    "Lane",
    "Prepared",
)


class ItemSource(enum.Enum):
    """Where a batch item's answer came from."""

    #: Answered by a request sent in this run (or failed trying).
    SENT = "sent"
    #: Answered from the response cache: no request, no cost.
    CACHE = "cache"
    #: Finished in an earlier run, read back from the checkpoint.
    CHECKPOINT = "checkpoint"
    #: Not sent (the budget would have been exceeded, or the item itself is invalid).
    NOT_SENT = "not_sent"


@attrs.frozen(kw_only=True)
class BatchItem:
    """One input's outcome; ``result`` on success, ``error`` on failure, never both."""

    #: Position of the item in the input.
    index: int
    result: ChatResult | None = None
    #: The error of a failed or unsent item (a FlexLLMError subclass).
    error: Exception | None = None
    #: The per-item metadata given with the input, carried through.
    metadata: JSONDict | None = None
    source: ItemSource = ItemSource.SENT
    #: Seconds from send to answer (None when nothing was sent).
    latency: float | None = None
    #: USD of this answer (0 for a cache hit, None when the price is unknown).
    cost: float | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def text(self) -> str | None:
        """The answer text, or None for a failed item."""
        return None if self.result is None else self.result.text

    @property
    def cached(self) -> bool:
        return self.source is ItemSource.CACHE


@attrs.frozen
class Finished:
    """A finished item on its way from a worker, through the writer, to the consumer."""

    item: BatchItem
    #: Its checkpoint record (None: no checkpoint, or nothing to record for it).
    line: bytes | None
    #: The worker holds a consumer token for it, which the consumer gives back.
    took_token: bool
    #: Its answer's cache entry, stored by the writer in the hop that writes ``line``.
    fill: Fill | None = None


class Lane(Protocol):
    """Somewhere requests can be sent: one client, or one endpoint of a pool.

    The runner starts ``concurrency`` workers per lane; all lanes pull from one queue, so a
    faster lane does more of the work.
    """

    @property
    def concurrency(self) -> int: ...

    def complete(self, request: ChatRequest) -> Awaitable[ChatResult]:
        """Send one request (with the lane's own retries and limits) and return its answer.

        Raise a FlexLLMError to fail the item, or :class:`RequeueItem` to hand it to
        another lane.
        """
        ...

    def outage(self) -> Outage | None:
        """None while items may start on this lane; else its endpoint is down: wait and
        look again, or (``given_up``) leave the items not sent."""
        ...


@attrs.frozen(kw_only=True)
class Prepared:
    """An input item turned into a validated request."""

    index: int
    request: ChatRequest
    metadata: JSONDict | None = None
    #: Its cache key's lookup, made ahead with its neighbours' (see :mod:`.claims`).
    fill: Fill | None = None
    #: Its request hash (for its record), computed with the cache key.
    request_hash: str | None = None


def _on_changed(_inst: object, _attr: object, value: str) -> None:
    if value not in ("error", "rerun"):
        raise UsageError(f"on_changed must be 'error' or 'rerun', got {value!r}")


@attrs.frozen(kw_only=True)
class BatchOptions:
    """How a run treats its checkpoint, cache, cost and display."""

    output_jsonl: str | os.PathLike[str] | None = None
    durability: Durability = attrs.field(factory=Durability)
    #: An input whose request no longer matches its checkpoint record: raise a UsageError
    #: before sending anything ("error"), or send it again and append a new record ("rerun").
    on_changed: Literal["error", "rerun"] = attrs.field(default="error", validator=_on_changed)
    cache: ResponseCache | None = None
    #: A request's cache key and request hash, from one encoding (the client passes the
    #: core's request_keys with its provider and base_url).
    cache_keys: Callable[[ChatRequest], tuple[str, str]] | None = None
    #: Shared cost tracker (and budget); one is made when None.
    tracker: CostTracker | None = None
    track_cost: bool = False
    show_progress: bool = False
    #: Keep the provider's raw JSON (``ChatResult.data``) in each item and record
    #: (``return_raw``); without it an item's result has ``data == {}``.
    keep_raw: bool = False
    #: Removes secrets from error messages before they reach the checkpoint.
    redact: Callable[[str], str] = str
    #: Total retries so far (shown in the progress bar).
    retries: Callable[[], int] | None = None
    #: A cheap way to the request hash of a raw input item (None when it cannot tell).
    #: Used only to confirm an unchanged finished item quickly on resume: a value equal
    #: to the recorded hash means unchanged; anything else falls back to the full check.
    fast_hash: Callable[[object], str | None] | None = None
    #: True for a raw item that certainly prepares without error (plain text messages, see
    #: :func:`.prepare.make_plain_check`): the pre-pass skips building its request.
    plain: Callable[[object], bool] | None = None
    #: Unix time for records' ``created_at``.
    clock: Callable[[], float] = time.time
    #: Restored records are read back in groups of this many per thread call.
    restore_chunk: int = 512
    #: A schema asked for (``response_format=Model``): answers judged, outcomes recorded.
    structured: StructuredBatch | None = None
    #: Resume: re-ask finished items whose structured outcome was invalid or truncated.
    retry_invalid: bool = False


def _mode(_inst: object, _attr: object, value: str) -> None:
    if value not in ("online", "batch_api", "auto"):
        raise UsageError(f"mode must be 'online', 'batch_api' or 'auto', got {value!r}")


def _is_bool(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"{attr.name} must be True or False, got {value!r}")


@attrs.frozen(kw_only=True)
class BatchSpec:
    """One public batch call's options, checked once when the call is made.

    The clients build it in ``chat_completions_batch`` / ``iter_chat_completions_batch``
    and hand it to :func:`~flexllm._batch.prepare.open_run`; nothing re-spells the options
    on the way down. ``params`` are the generation parameters only (model, temperature,
    tools, extra body fields): never a batch option.
    """

    #: The checkpoint file (JSON lines, one per finished item); None: no checkpoint.
    output_jsonl: str | os.PathLike[str] | None = None
    show_progress: bool = False
    #: Show the running cost in the progress bar.
    track_cost: bool = False
    #: ``chat_completions_batch`` returns ``(results, CostReport)``.
    return_cost_report: bool = False
    #: USD hard limit; items that could pass it are not sent.
    budget: float | None = None
    #: One dict (or None) per item, merged into its metadata and its record.
    metadata_list: Sequence[JSONDict | None] | None = None
    fsync_every: int | None = None
    fsync_interval: float | None = None
    on_changed: Literal["error", "rerun"] = attrs.field(default="error", validator=_on_changed)
    #: Read and write the client's response cache.
    use_cache: bool = True
    #: Results are ChatResults rather than answer texts.
    return_usage: bool = False
    #: Keep the provider's raw JSON (results are ChatResults).
    return_raw: bool = False
    #: Pool only. True: every endpoint pulls from one shared queue up to its own
    #: concurrency; False: each item goes where the load-balancing strategy sends it.
    distribute: bool = attrs.field(default=True, validator=_is_bool)
    #: Generation parameters for every item's request.
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    #: ``response_format`` as a schema (taken out of ``params``); None: no schema.
    schema: Schema | None = None
    #: Re-asks per item after an answer that is not of the schema.
    max_reasks: int = 1
    #: Resume: re-ask items recorded as invalid or truncated.
    retry_invalid: bool = attrs.field(default=False, validator=_is_bool)
    #: "online": requests sent one by one; "batch_api": through the provider's batch API
    #: (half price, results within hours; see :mod:`flexllm._batch.provider`); "auto": the
    #: batch API, and online for what is left at the deadline.
    mode: Literal["online", "batch_api", "auto"] = attrs.field(default="online", validator=_mode)
    #: How a "batch_api" run polls and resubmits (a BatchAPISettings; None: the defaults).
    batch_api: Any = None


#: What the runner writes as a record's ``extra`` (besides thinking and tool calls).
ExtraJSON = dict[str, JSONValue]
