"""flexllm_core: the sans-IO protocol layer of flexllm.

Builds provider requests as :class:`HttpRequest` values and parses responses, streams and
errors into :class:`ChatResult` and typed errors. No I/O, no clock, no randomness: time and
jitter are arguments.
"""

from __future__ import annotations

import inspect as _inspect

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
from ._thinking import ThinkingSplitter as ThinkingSplitter, split_think_tags as split_think_tags
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
from ._validate import make_request as make_request, validate_messages as validate_messages
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

# Public classes and functions name the module users import them from, not the private one
# that defines them (as httpcore does): reprs, tracebacks and pickles then read
# ``flexllm_core.X``. (No ``__all__`` here: star imports stay as they were.)
for _obj in list(globals().values()):
    if (isinstance(_obj, type) or _inspect.isroutine(_obj)) and getattr(_obj, "__module__", "").startswith(
            f"{__name__}._"):
        setattr(_obj, "__module__", __name__)  # noqa: B010
del _obj
