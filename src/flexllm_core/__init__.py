"""flexllm_core: the sans-IO protocol layer of flexllm.

Builds provider requests as :class:`HttpRequest` values and parses responses, streams and
errors into :class:`ChatResult` and typed errors. No I/O, no clock, no randomness: time and
jitter are arguments.

Names load on first use (``__getattr__`` below): a program imports the modules it uses, and
``flexllm_core._version`` (the CLI's ``--version``) costs nothing.
"""

from __future__ import annotations

import sys

#: ``typing.TYPE_CHECKING`` without importing typing; type checkers read it as True.
TYPE_CHECKING = False

#: Where each public name is defined (a module of this package).
_HOMES: dict[str, tuple[str, ...]] = {
    "._balance": (
        "Balancer", "BalanceStrategy", "EndpointHealth", "HealthState", "HealthTracker",
    ),
    "._batchapi": (
        "CANCELLED_ROW", "EXPIRED_ROW", "BatchCounts", "BatchJob", "BatchLimits", "BatchRowResult",
        "BatchState", "Chunk", "PlannedRow", "encode_jsonl", "make_custom_id", "make_job_tag",
        "matching_jobs", "parse_custom_id", "plan_chunks", "read_result_line",
    ),
    "._cache_key": (
        "cache_key", "canonical_request", "message_hasher", "request_hash", "request_keys",
    ),
    "._checkpoint": (
        "JOURNAL_PREFIX", "CheckpointFormatError", "CheckpointRecord", "ScanResult",
        "decode_record", "encode_record", "record_matches", "scan_checkpoint",
    ),
    "._errors": (
        "AuthenticationError", "BadRequestError", "ConnectError", "ContextLengthExceededError",
        "FlexLLMError", "IncompleteStreamError", "InvalidRequestError", "NotFoundError",
        "OverloadedError", "PermissionDeniedError", "ProtocolError", "ProviderError",
        "QueueWaitExceeded", "QuotaExhaustedError", "RateLimitError", "ReadError",
        "RequestTimeout", "ResponseFormatError", "ServerError", "TransportError", "UsageError",
    ),
    "._events": (
        "StreamEnd", "StreamEvent", "TextDelta", "ThinkingDelta", "ToolCallDelta", "UsageReport",
    ),
    "._json": (
        "JSONDict", "JSONValue",
    ),
    "._models": (
        "model_ids",
    ),
    "._pricing": (
        "ModelPrice", "PricingTable", "cost_of", "default_pricing", "load_pricing",
        "normalise_model_name", "parse_openrouter_models",
    ),
    "._quota": (
        "AdaptiveConcurrency", "Dimension", "LimitSnapshot", "LimitState", "OutputEstimate",
        "QuotaBuckets", "QuotaCost", "QuotaRule", "RateLimitKind", "Reservation", "Ticket",
        "parse_duration", "parse_limits", "retry_after_from_headers",
    ),
    "._ratelimit": (
        "TokenBucket",
    ),
    "._retry": (
        "GiveUp", "Retry", "RetryDecision", "RetryPolicy", "backoff_delay", "decide_retry",
    ),
    "._sse": (
        "ServerSentEvent", "SSEDecoder",
    ),
    "._structured": (
        "Closed", "CompiledSchema", "Dialect", "Dropped", "Filtered", "Invalid", "Ok", "Outcome",
        "PartialJSON", "PartialJSONError", "Refused", "SchemaError", "Truncated", "check_answer",
        "check_value", "outcome_from_dict", "outcome_to_dict", "reask_messages",
    ),
    "._surface": (
        "build_request", "compile_schema", "parse_response", "parse_stream", "parse_thoughts",
    ),
    "._thinking": (
        "ThinkingSplitter", "split_think_tags",
    ),
    "._tokens": (
        "TokenCount", "count_tokens", "count_tokens_detailed", "encoding_name_for_model",
        "estimate_batch_cost", "estimate_cost",
    ),
    "._types": (
        "ChatRequest", "ChatResult", "HttpRequest", "HttpResponse", "ProviderConfig", "ToolCall",
        "Usage",
    ),
    "._url": (
        "check_url", "redact_url",
    ),
    "._validate": (
        "make_request", "plain_messages", "validate_messages",
    ),
    ".providers": (
        "BATCH_CODECS", "CODECS", "PROVIDERS", "BatchCodec", "Codec", "StreamDecoder",
        "detect_provider", "get_batch_codec", "get_codec",
    ),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
#: Every public name, so that ``from flexllm_core import *`` still imports them all.
__all__ = tuple(_HOME)

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from ._balance import (
        Balancer as Balancer,
        BalanceStrategy as BalanceStrategy,
        EndpointHealth as EndpointHealth,
        HealthState as HealthState,
        HealthTracker as HealthTracker,
    )

    # Policies (retry, rate, cache key), pricing/tokens and checkpoint records are exported
    # from their modules below as they land.
    from ._batchapi import (
        CANCELLED_ROW as CANCELLED_ROW,
        EXPIRED_ROW as EXPIRED_ROW,
        BatchCounts as BatchCounts,
        BatchJob as BatchJob,
        BatchLimits as BatchLimits,
        BatchRowResult as BatchRowResult,
        BatchState as BatchState,
        Chunk as Chunk,
        PlannedRow as PlannedRow,
        encode_jsonl as encode_jsonl,
        make_custom_id as make_custom_id,
        make_job_tag as make_job_tag,
        matching_jobs as matching_jobs,
        parse_custom_id as parse_custom_id,
        plan_chunks as plan_chunks,
        read_result_line as read_result_line,
    )
    from ._cache_key import (
        cache_key as cache_key,
        canonical_request as canonical_request,
        message_hasher as message_hasher,
        request_hash as request_hash,
        request_keys as request_keys,
    )
    from ._checkpoint import (
        JOURNAL_PREFIX as JOURNAL_PREFIX,
        CheckpointFormatError as CheckpointFormatError,
        CheckpointRecord as CheckpointRecord,
        ScanResult as ScanResult,
        decode_record as decode_record,
        encode_record as encode_record,
        record_matches as record_matches,
        scan_checkpoint as scan_checkpoint,
    )
    from ._errors import (
        AuthenticationError as AuthenticationError,
        BadRequestError as BadRequestError,
        ConnectError as ConnectError,
        ContextLengthExceededError as ContextLengthExceededError,
        FlexLLMError as FlexLLMError,
        IncompleteStreamError as IncompleteStreamError,
        InvalidRequestError as InvalidRequestError,
        NotFoundError as NotFoundError,
        OverloadedError as OverloadedError,
        PermissionDeniedError as PermissionDeniedError,
        ProtocolError as ProtocolError,
        ProviderError as ProviderError,
        QueueWaitExceeded as QueueWaitExceeded,
        QuotaExhaustedError as QuotaExhaustedError,
        RateLimitError as RateLimitError,
        ReadError as ReadError,
        RequestTimeout as RequestTimeout,
        ResponseFormatError as ResponseFormatError,
        ServerError as ServerError,
        TransportError as TransportError,
        UsageError as UsageError,
    )
    from ._events import (
        StreamEnd as StreamEnd,
        StreamEvent as StreamEvent,
        TextDelta as TextDelta,
        ThinkingDelta as ThinkingDelta,
        ToolCallDelta as ToolCallDelta,
        UsageReport as UsageReport,
    )
    from ._json import JSONDict as JSONDict, JSONValue as JSONValue
    from ._models import model_ids as model_ids
    from ._pricing import (
        ModelPrice as ModelPrice,
        PricingTable as PricingTable,
        cost_of as cost_of,
        default_pricing as default_pricing,
        load_pricing as load_pricing,
        normalise_model_name as normalise_model_name,
        parse_openrouter_models as parse_openrouter_models,
    )
    from ._quota import (
        AdaptiveConcurrency as AdaptiveConcurrency,
        Dimension as Dimension,
        LimitSnapshot as LimitSnapshot,
        LimitState as LimitState,
        OutputEstimate as OutputEstimate,
        QuotaBuckets as QuotaBuckets,
        QuotaCost as QuotaCost,
        QuotaRule as QuotaRule,
        RateLimitKind as RateLimitKind,
        Reservation as Reservation,
        Ticket as Ticket,
        parse_duration as parse_duration,
        parse_limits as parse_limits,
        retry_after_from_headers as retry_after_from_headers,
    )
    from ._ratelimit import TokenBucket as TokenBucket
    from ._retry import (
        GiveUp as GiveUp,
        Retry as Retry,
        RetryDecision as RetryDecision,
        RetryPolicy as RetryPolicy,
        backoff_delay as backoff_delay,
        decide_retry as decide_retry,
    )
    from ._sse import ServerSentEvent as ServerSentEvent, SSEDecoder as SSEDecoder
    from ._structured import (
        Closed as Closed,
        CompiledSchema as CompiledSchema,
        Dialect as Dialect,
        Dropped as Dropped,
        Filtered as Filtered,
        Invalid as Invalid,
        Ok as Ok,
        Outcome as Outcome,
        PartialJSON as PartialJSON,
        PartialJSONError as PartialJSONError,
        Refused as Refused,
        SchemaError as SchemaError,
        Truncated as Truncated,
        check_answer as check_answer,
        check_value as check_value,
        outcome_from_dict as outcome_from_dict,
        outcome_to_dict as outcome_to_dict,
        reask_messages as reask_messages,
    )
    from ._surface import (
        build_request as build_request,
        compile_schema as compile_schema,
        parse_response as parse_response,
        parse_stream as parse_stream,
        parse_thoughts as parse_thoughts,
    )
    from ._thinking import (
        ThinkingSplitter as ThinkingSplitter,
        split_think_tags as split_think_tags,
    )
    from ._tokens import (
        TokenCount as TokenCount,
        count_tokens as count_tokens,
        count_tokens_detailed as count_tokens_detailed,
        encoding_name_for_model as encoding_name_for_model,
        estimate_batch_cost as estimate_batch_cost,
        estimate_cost as estimate_cost,
    )
    from ._types import (
        ChatRequest as ChatRequest,
        ChatResult as ChatResult,
        HttpRequest as HttpRequest,
        HttpResponse as HttpResponse,
        ProviderConfig as ProviderConfig,
        ToolCall as ToolCall,
        Usage as Usage,
    )
    from ._url import check_url as check_url, redact_url as redact_url
    from ._validate import (
        make_request as make_request,
        plain_messages as plain_messages,
        validate_messages as validate_messages,
    )
    from .providers import (
        BATCH_CODECS as BATCH_CODECS,
        CODECS as CODECS,
        PROVIDERS as PROVIDERS,
        BatchCodec as BatchCodec,
        Codec as Codec,
        StreamDecoder as StreamDecoder,
        detect_provider as detect_provider,
        get_batch_codec as get_batch_codec,
        get_codec as get_codec,
    )


del TYPE_CHECKING


def __getattr__(name: str) -> object:
    """A public name on first use. Every public name of the modules loaded so far is then
    kept as an attribute and published (below), so this runs a few times per process."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}", name=name, obj=__name__)
    import importlib

    importlib.import_module(home, __name__)
    _publish_loaded()
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


def _publish_loaded() -> None:
    """Public classes and functions name the module users import them from, not the private
    one that defines them (as httpcore does): reprs, tracebacks and pickles then read
    ``flexllm_core.X``. Done for the names of every module loaded when a name is first
    asked for, which covers whatever the engine imports from here."""
    import inspect

    namespace = globals()
    for name, home in _HOME.items():
        if name in namespace:
            continue
        module = sys.modules.get(__name__ + home)
        obj = getattr(module, name, _MISSING) if module is not None else _MISSING
        if obj is _MISSING:  # not loaded, or a module still being imported
            continue
        if (isinstance(obj, type) or inspect.isroutine(obj)) and getattr(obj, "__module__", "").startswith(
                f"{__name__}._"):
            setattr(obj, "__module__", __name__)  # noqa: B010
        namespace[name] = obj


_MISSING = object()
