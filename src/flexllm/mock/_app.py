"""What the mock answers: routing, auth, injected failures, delays, and the codecs.

Every chat body is decoded and encoded by the core's own codecs
(``flexllm_core.get_codec(name)``), from the server side, so the mock speaks exactly the
dialect the client's codecs expect. The route table below is the only place here that
names a provider, and only as data.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import anyio
import attrs

from flexllm_core import ChatRequest, ChatResult, JSONDict, QuotaCost, get_codec

from ._batch_routes import BatchRoutes
from ._batches import MockBatches
from ._content import build_result
from ._http import RawRequest, chunk, response_bytes, response_head
from ._options import MockOptions, MockStats
from ._quota import MockQuota
from ._structured import schema_of, structured_result

__all__ = ("ROUTES", "MockApp", "Route", "Send")

#: Writes bytes to the client.
Send = Callable[[bytes], Awaitable[None]]

DEFAULT_MODEL = "mock-model"


#: Builds a non-chat JSON answer from the model name and the path's match.
InfoBody = Callable[[str, "re.Match[str]"], JSONDict]


def _model_entry(model: str) -> JSONDict:
    # One entry both the OpenAI and the Anthropic SDK accept for GET /v1/models.
    return {
        "id": model,
        "object": "model",
        "type": "model",
        "created": 0,
        "created_at": "1970-01-01T00:00:00Z",
        "display_name": model,
        "owned_by": "flexllm-mock",
    }


def _model_list(model: str, _match: re.Match[str]) -> JSONDict:
    return {
        "object": "list",
        "data": [_model_entry(model)],
        "has_more": False,
        "first_id": model,
        "last_id": model,
    }


def _model_one(model: str, match: re.Match[str]) -> JSONDict:
    return _model_entry(match["model"] or model)


def _google_model_list(model: str, _match: re.Match[str]) -> JSONDict:
    return {
        "models": [
            {
                "name": f"models/{model}",
                "displayName": model,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            }
        ]
    }


def _health(_model: str, _match: re.Match[str]) -> JSONDict:
    return {"status": "ok"}


@attrs.frozen(kw_only=True)
class Route:
    """One endpoint: which requests it takes and which codec speaks its dialect."""

    method: str
    pattern: re.Pattern[str]
    #: Codec name for ``flexllm_core.get_codec``: the dialect of answers and errors.
    provider: str
    #: None for a chat endpoint (answered through the codec); else the JSON it returns.
    info: InfoBody | None = None


def _route(method: str, pattern: str, provider: str, info: InfoBody | None = None) -> Route:
    return Route(method=method, pattern=re.compile(pattern), provider=provider, info=info)


#: Path pattern -> dialect. Streaming is decided by the codec (``stream: true`` in the body,
#: or Gemini's ``:streamGenerateContent`` in the path).
ROUTES: tuple[Route, ...] = (
    _route("POST", r"^(?:/v1)?/chat/completions$", "openai"),
    _route("POST", r"^(?:/v1)?/messages$", "claude"),
    _route("POST", r"^/(?:v1beta|v1|v1alpha)/models/[^/]+:(?:streamG|g)enerateContent$", "gemini"),
    _route("GET", r"^/v1/models/?$", "openai", _model_list),
    _route("GET", r"^/v1/models/(?P<model>[^/:]+)$", "openai", _model_one),
    _route("GET", r"^/(?:v1beta|v1alpha)/models/?$", "gemini", _google_model_list),
    _route("GET", r"^/(?:health)?$", "openai", _health),
)
#: Dialect of errors on paths no route matches.
FALLBACK_PROVIDER = "openai"

_JSON = [("content-type", "application/json")]
_SSE = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
#: Statuses after which a well-behaved client should wait: they announce Retry-After.
_RETRY_AFTER_STATUSES = frozenset({429, 503, 529})
_KEY_HEADERS = ("x-api-key", "x-goog-api-key", "api-key")


def _dumps(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@attrs.frozen
class _Answer:
    """A rendered answer: a JSON body, or chunk-encoded SSE frames, and its quota cost."""

    body: bytes | None
    frames: tuple[bytes, ...]
    #: What the answer costs under its dialect's rule (the mock knows the output up front).
    cost: QuotaCost


#: Answers kept for repeated identical requests (benchmarks send the same body many times).
_MEMO_ENTRIES = 1024
_MEMO_MAX_BODY = 64 * 1024
_LAST_CHUNK = chunk(b"")


class MockApp:
    """Turns one parsed request into response bytes; holds the server's mutable state."""

    def __init__(self, options: MockOptions, stats: MockStats, *, batches: MockBatches | None = None) -> None:
        self.options = options
        self.stats = stats
        self.rng = random.Random(options.seed)
        self._script_pos: dict[str, int] = {}
        #: ``replies`` entries that were None (served normally), for the script position.
        self._served_normally = 0
        #: Entries of the ``structured`` fault script used so far.
        self._structured_pos = 0
        self._memo: OrderedDict[tuple[str, bytes], _Answer] = OrderedDict()
        self.quota = MockQuota(options)
        #: The provider batch APIs (files, jobs, results) on their own clock.
        self.batches = batches or MockBatches(options.batch, seed=options.seed)
        self._batch_routes = BatchRoutes(self.batches, self._batch_answer, options.model)

    def _batch_answer(self, req: ChatRequest, model: str) -> ChatResult:
        opts = self.options
        return build_result(req, model=opts.model or req.model or model or DEFAULT_MODEL,
                            length=opts.response_length, seed=opts.seed, thinking=opts.thinking)

    async def handle(self, request: RawRequest, send: Send) -> bool:
        """Answer ``request`` through ``send``; return False if the connection must close."""
        stats = self.stats
        stats.requests += 1
        path = request.path
        stats.by_path[path] = stats.by_path.get(path, 0) + 1
        keep = request.keep_alive
        batch = self._batch_routes.match(request.method, path)
        if batch is not None:
            if not self._authorized(request):
                stats.unauthorized += 1
                msg = "missing or invalid API key (flexllm mock, require_api_key)"
                await send(self._error(batch[0].provider, 401, msg, keep))
                return keep
            status, body, ctype = self._batch_routes.handle(batch[0], request, batch[1])
            await send(response_bytes(status, [("content-type", ctype)], body, keep_alive=keep))
            return keep
        route, match, allowed = self._match(request.method, path)
        if route is None:
            stats.rejected += 1
            status = 405 if allowed else 404
            msg = f"{request.method} {path}: " + ("method not allowed" if allowed else "no such endpoint")
            await send(self._error(FALLBACK_PROVIDER, status, msg, keep))
            return keep
        if not self._authorized(request):
            stats.unauthorized += 1
            msg = "missing or invalid API key (flexllm mock, require_api_key)"
            await send(self._error(route.provider, 401, msg, keep))
            return keep
        if route.info is not None:
            assert match is not None
            body = _dumps(route.info(self.options.model or DEFAULT_MODEL, match))
            await send(response_bytes(200, _JSON, body, keep_alive=keep))
            return keep
        return await self._chat(route, request, send)

    def _match(self, method: str, path: str) -> tuple[Route | None, re.Match[str] | None, bool]:
        allowed = False
        for route in ROUTES:
            match = route.pattern.match(path)
            if match:
                if route.method == method:
                    return route, match, True
                allowed = True
        return None, None, allowed

    def _authorized(self, request: RawRequest) -> bool:
        wanted = self.options.require_api_key
        if wanted is False:
            return True
        keys = [v for k, v in request.headers if k in _KEY_HEADERS]
        auth = request.header("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            keys.append(token.strip() if scheme.lower() == "bearer" else "")
        for pair in request.query.split("&"):
            name, _, value = pair.partition("=")
            if name == "key":
                keys.append(value)
        if wanted is True:
            return any(keys)
        return wanted in keys

    def _error(
        self, provider: str, status: int, message: str, keep: bool, *, retry_after: bool = False
    ) -> bytes:
        body = _dumps(get_codec(provider).render_error(status, message))
        headers = list(_JSON)
        if retry_after:
            seconds = self.options.retry_after
            headers.append(("retry-after", f"{seconds:g}" if seconds != int(seconds) else str(int(seconds))))
            headers.append(("retry-after-ms", str(int(seconds * 1000))))
        return response_bytes(status, headers, body, keep_alive=keep)

    def _injected_status(self, path: str) -> int | None:
        for prefix, script in self.options.errors:
            if path.startswith(prefix):
                pos = self._script_pos.get(prefix, 0)
                if pos < len(script):
                    self._script_pos[prefix] = pos + 1
                    status = script[pos]
                    return None if status in (0, 200) else status
                break
        rate = self.options.error_rate
        if rate and self.rng.random() < rate:
            return self.rng.choice(self.options.error_statuses)
        return None

    async def _sleep_range(self, bounds: tuple[float, float]) -> None:
        low, high = bounds
        seconds = low if low == high else self.rng.uniform(low, high)
        if seconds > 0:
            await anyio.sleep(seconds)

    def _answer(self, route: Route, request: RawRequest) -> _Answer:
        """Decode the request and render its answer (memoised: it depends on the bytes only).

        Raises:
            ValueError, KeyError, TypeError: the body is not a valid request.
        """
        key = (request.path, request.body)
        memo = self._memo
        # A fault script answers the same bytes differently each time: no memo while it runs.
        scripted = self._structured_pos < len(self.options.structured)
        answer = None if scripted else memo.get(key)
        if answer is not None:
            memo.move_to_end(key)
            return answer
        codec = get_codec(route.provider)
        payload = json.loads(request.body)
        if not isinstance(payload, dict):
            raise ValueError("the request body must be a JSON object")
        req = codec.parse_request(request.path, payload)
        opts = self.options
        if opts.strict and req.extra_body:
            unknown = ", ".join(sorted(req.extra_body))
            raise ValueError(f"Unrecognized request argument supplied: {unknown}")
        model = opts.model or req.model or DEFAULT_MODEL
        result = build_result(
            req, model=model, length=opts.response_length, seed=opts.seed, thinking=opts.thinking
        )
        result = structured_result(req, result, self._structured_fault(req, request.body))
        usage = result.usage
        cost = QuotaCost() if usage is None else codec.QUOTA_RULE.charged(
            usage, codec.QUOTA_RULE.estimate(input_tokens=usage.prompt_tokens,
                                             max_tokens=req.max_tokens,
                                             expected_output=usage.completion_tokens))
        if req.stream:
            frames = codec.render_stream(result, model=model, chunks=opts.stream_chunks)
            answer = _Answer(body=None, frames=tuple(chunk(f) for f in frames), cost=cost)
        else:
            answer = _Answer(body=_dumps(codec.render_response(result, model=model)), frames=(),
                             cost=cost)
        if len(request.body) <= _MEMO_MAX_BODY and not scripted:
            memo[key] = answer
            if len(memo) > _MEMO_ENTRIES:
                memo.popitem(last=False)
        return answer

    def _structured_fault(self, req: ChatRequest, body: bytes) -> str:
        """The fault for a schema request: the script's next entry, else a seeded draw."""
        opts = self.options
        if schema_of(req)[0] is None:
            return "ok"
        if self._structured_pos < len(opts.structured):
            self._structured_pos += 1
            return opts.structured[self._structured_pos - 1]
        if opts.structured_fault_rate:
            digest = hashlib.blake2b(body + str(opts.seed).encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") / 2**64 < opts.structured_fault_rate:
                return opts.structured_fault
        return "ok"

    async def _chat(self, route: Route, request: RawRequest, send: Send) -> bool:
        keep = request.keep_alive
        try:
            answer = self._answer(route, request)
        except (ValueError, KeyError, TypeError) as exc:
            self.stats.rejected += 1
            await send(self._error(route.provider, 400, f"invalid request: {exc}", keep))
            return keep

        limit_headers: list[tuple[str, str]] = []
        if self.quota.enabled:
            # Admission happens on arrival, before the answer is generated, as providers do.
            codec = get_codec(route.provider)
            now = time.monotonic()
            exceeded = self.quota.admit(now, answer.cost)
            if exceeded:
                self.stats.rate_limited += 1
                snap = self.quota.snapshot(now, answer.cost, exceeded)
                headers = [*_JSON, *codec.render_limit_headers(snap, now=time.time())]
                body = _dumps(codec.render_rate_limit(snap, exceeded))
                await send(response_bytes(429, headers, body, keep_alive=keep))
                return keep
            limit_headers = codec.render_limit_headers(self.quota.snapshot(now), now=time.time())

        await self._sleep_range(self.options.delay)
        status = self._injected_status(request.path)
        if status is not None:
            self.stats.injected[status] = self.stats.injected.get(status, 0) + 1
            msg = f"injected {status} error (flexllm mock)"
            wait = status in _RETRY_AFTER_STATUSES
            await send(self._error(route.provider, status, msg, keep, retry_after=wait))
            return keep

        pos = self.stats.replies + self._served_normally
        if pos < len(self.options.replies):
            reply = self.options.replies[pos]
            if reply is None:
                self._served_normally += 1
            else:
                self.stats.replies += 1
                status, body = reply
                kind = _SSE if answer.body is None and status == 200 else _JSON
                await send(response_bytes(status, kind, body, keep_alive=keep))
                return keep
        if answer.body is not None:
            self.stats.completions += 1
            headers = [*_JSON, *limit_headers] if limit_headers else _JSON
            await send(response_bytes(200, headers, answer.body, keep_alive=keep))
            return keep
        return await self._stream(answer.frames, send, keep, limit_headers)

    async def _stream(
        self, frames: tuple[bytes, ...], send: Send, keep: bool, limit_headers: list[tuple[str, str]]
    ) -> bool:
        opts = self.options
        head = response_head(200, [*_SSE, *limit_headers], keep_alive=keep, length=None)
        cut = opts.stream_cut_after
        if cut is not None and cut < len(frames):
            # Drop the connection mid-body: a stream cut short.
            await send(head + b"".join(frames[:cut]))
            return False
        if opts.chunk_delay == (0.0, 0.0):
            # Unpaced: one write, as fast as the socket takes it (set chunk_delay to make
            # frames arrive apart, like a model generating tokens).
            await send(head + b"".join(frames) + _LAST_CHUNK)
        else:
            pending = head
            for i, frame in enumerate(frames):
                if i:
                    await self._sleep_range(opts.chunk_delay)
                await send(pending + frame)
                pending = b""
            await send(pending + _LAST_CHUNK)
        self.stats.completions += 1
        self.stats.streams += 1
        return keep
