"""One request, attempt by attempt: the loops of :meth:`Endpoint.complete` and
:meth:`Endpoint.stream`.

Kept apart from :mod:`.endpoint` for size; both work on the endpoint's own state (limits,
quota, outage watch, statistics, attempt log), as do an attempt's quota admission and its
report to adaptive concurrency (:func:`.gates.follow_overload`). A stream also yields its events as they
arrive, and a failure is retried only while no piece of the answer has been shown.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import attrs

from flexllm_core import (
    ChatRequest,
    ChatResult,
    FlexLLMError,
    HttpRequest,
    IncompleteStreamError,
    RateLimitError,
    Reservation,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)

from .gates import follow_overload

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .loops import LoopState
    from .quota import EndpointQuota

__all__ = ("NO_OUTCOME", "complete_attempts", "stream_attempts", "wall_now")

#: An attempt that ended before telling anything about the endpoint (cancelled, say).
NO_OUTCOME = FlexLLMError("no outcome")
#: Events that show part of an answer to the reader; after one, a failure is not retried.
_ANSWER_EVENTS = (TextDelta, ThinkingDelta, ToolCallDelta)


def _shows_answer(events: list[StreamEvent]) -> bool:
    return any(isinstance(e, _ANSWER_EVENTS) for e in events)


def _produced(decoder: Any) -> int:
    """Output tokens a stream left mid-body had produced: its usage if one came, else its
    text so far at four characters a token."""
    try:
        result = decoder.close()
    except IncompleteStreamError as exc:
        result = exc.partial
    except FlexLLMError:
        return 0
    if result is None:
        return 0
    if result.usage is not None and result.usage.completion_tokens:
        return int(result.usage.completion_tokens)
    return (len(result.text) + len(result.thinking or "")) // 4 + 1


async def _admit(ep: Endpoint, quota: EndpointQuota, req: ChatRequest
                 ) -> tuple[HttpRequest, LoopState, Reservation]:
    """``ep._begin`` after the quota's wait (which holds no slot); the reservation is given
    back if the attempt does not start."""
    ticket = await quota.admit(req)
    try:
        http, state = await ep._begin(req)
    except BaseException:
        quota.cancel(ticket)
        raise
    try:
        await quota.hold(ticket)
    except BaseException:
        state.limiter.release()
        raise  # hold gave the reservation back
    quota.sent(ticket)
    return http, state, ticket


async def _hold(quota: EndpointQuota, state: LoopState) -> None:
    """Wait out a cooldown started while this attempt queued for its slot."""
    try:
        await quota.hold(None)
    except BaseException:
        state.limiter.release()
        raise


def wall_now() -> float:
    # Wall-clock time, only to read HTTP-date Retry-After headers.
    return time.time()


async def stream_attempts(ep: Endpoint, req: ChatRequest, timeout: float | None
                          ) -> AsyncGenerator[list[StreamEvent] | ChatResult, None]:
    """The body of :meth:`Endpoint.stream` (see there)."""
    if not req.stream:
        req = attrs.evolve(req, stream=True)
    timeouts = (
        ep._stream_timeouts if timeout is None else ep._make_timeouts(timeout, stream=True)
    )
    ep._requests += 1
    attempt = 0
    debug = ep._log.enabled()
    told = None
    try:
        while True:
            attempt += 1
            told = None
            error = ep._refused()
            if error is None:
                outcome: FlexLLMError | None = NO_OUTCOME
                yielded = False
                try:
                    quota, ticket = ep._quota, None
                    if quota is None:
                        http, state = await ep._begin(req)
                        if (late := ep._quota) is not None:  # a 429 came meanwhile
                            await _hold(late, state)
                    else:
                        http, state, ticket = await _admit(ep, quota, req)
                    aimd = None if ep._aimd is None else ep._aimd.acquire()
                    try:
                        started = time.monotonic()
                        if debug:
                            told = ep._log.Told(req, attempt, started)
                        try:
                            async with state.transport.stream(http, timeouts=timeouts) as resp:
                                outcome = None  # an answer came: the endpoint is up
                                if resp.status >= 400:
                                    body = await resp.aread()
                                    raise ep._codec.parse_error(resp.status, resp.headers, body, now=wall_now())
                                decoder = ep._codec.stream_decoder()
                                # Until a piece of the answer shows, events without one
                                # (Claude's message_start usage) are held back, so a cut
                                # there is still a stream cut before its first token.
                                held: list[StreamEvent] = []
                                async for chunk in resp.aiter_bytes():
                                    events = decoder.feed(chunk)
                                    if events and not yielded:
                                        held += events
                                        events = []
                                        if _shows_answer(held):
                                            events, held = held, []
                                    if events:
                                        yielded = True
                                        yield events
                                events = held + decoder.flush()
                                if events and (yielded or _shows_answer(events)):
                                    yielded = True
                                    yield events
                                    events = []
                                result = decoder.close()
                                if events:
                                    yield events  # a whole answer that showed no piece
                        except FlexLLMError as exc:
                            if outcome is NO_OUTCOME:
                                outcome = exc
                            error = ep._failed(exc)
                            if isinstance(error, RateLimitError) and not yielded:
                                error = ep._rate_limited(error, resp.headers, ticket)
                            elif quota is not None and ticket is not None:
                                quota.failed(ticket)
                            ticket = None
                            if yielded:
                                if told is not None:
                                    ep._log.failed(told, error, None)
                                raise error from None
                        else:
                            if quota is not None:
                                quota.answered(ticket, result, resp.headers)
                            ticket = None
                            ep._succeeded(started)
                            if told is not None:
                                ep._log.answered(told, resp.status, result)
                            yield result
                            return
                    finally:
                        if quota is not None and ticket is not None:
                            # Left mid-body (the caller stopped reading, or a cancellation):
                            # the prompt and what was produced count, the rest goes back.
                            quota.abandoned(ticket, _produced(decoder) if yielded else 0)
                        if aimd is not None or error is not None:
                            ep._aimd = follow_overload(ep._aimd, ep._concurrency, state.limiter, error, aimd)
                        state.limiter.release()
                finally:
                    ep._observe(outcome)
            await ep._back_off(attempt, error, told)
    except FlexLLMError:
        ep._errors += 1
        raise


async def complete_attempts(ep: Endpoint, req: ChatRequest, timeout: float | None) -> ChatResult:
    """The body of :meth:`Endpoint.complete` (see there)."""
    timeouts = ep._timeouts if timeout is None else ep._make_timeouts(timeout, stream=False)
    ep._requests += 1
    attempt = 0
    debug = ep._log.enabled()
    told = None
    try:
        while True:
            attempt += 1
            told = None
            error = ep._refused()
            if error is None:
                outcome: FlexLLMError | None = NO_OUTCOME
                try:
                    quota, ticket = ep._quota, None
                    if quota is None:
                        http, state = await ep._begin(req)
                        if (late := ep._quota) is not None:  # a 429 came meanwhile
                            await _hold(late, state)
                    else:
                        http, state, ticket = await _admit(ep, quota, req)
                    aimd = None if ep._aimd is None else ep._aimd.acquire()
                    try:
                        started = time.monotonic()
                        if debug:
                            told = ep._log.Told(req, attempt, started)
                        try:
                            resp = await state.transport.send(http, timeouts=timeouts)
                            result = ep._parse(resp)
                        except FlexLLMError as exc:
                            outcome = exc
                            error = ep._failed(exc)
                            if isinstance(error, RateLimitError):
                                error = ep._rate_limited(error, resp.headers, ticket)
                            elif quota is not None and ticket is not None:
                                quota.failed(ticket)
                            ticket = None
                        else:
                            outcome = None
                            if quota is not None:
                                quota.answered(ticket, result, resp.headers)
                            ticket = None
                            ep._succeeded(started)
                            if told is not None:
                                ep._log.answered(told, resp.status, result)
                            return result
                    finally:
                        if quota is not None and ticket is not None:
                            quota.failed(ticket)  # cancelled in flight: it may have counted
                        if aimd is not None or error is not None:
                            ep._aimd = follow_overload(ep._aimd, ep._concurrency, state.limiter, error, aimd)
                        state.limiter.release()
                finally:
                    ep._observe(outcome)
            await ep._back_off(attempt, error, told)
    except FlexLLMError:
        ep._errors += 1
        raise
