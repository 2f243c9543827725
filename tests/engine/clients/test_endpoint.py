"""The request path (Endpoint) over an in-memory transport: retries, limits, streams.

No timing assertions: retries are checked by what the handler saw and by the delay the
engine scheduled (RetryNotice), limits by counting requests in flight.
"""

from __future__ import annotations

import anyio
import pytest

from flexllm import (
    AuthenticationError,
    BadRequestError,
    ChatResult,
    ConnectError,
    ContextLengthExceededError,
    Endpoint,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ReadError,
    RetryNotice,
    ServerError,
    TextDelta,
)
from flexllm._engine.gates import ConcurrencyLimiter, RateLimiter
from flexllm_core import HttpRequest, HttpResponse, ProviderConfig, RetryPolicy, make_request
from flexllm_transports import MemoryTransport
from flexllm_transports.testing import ChunkedResponse

from .helpers import error, frames, ok, prompt

pytestmark = pytest.mark.anyio


def endpoint(transport: MemoryTransport, *, retries: int = 3, delay: float = 0.0,
             concurrency: int = 10, max_qps: float | None = None) -> Endpoint:
    return Endpoint(
        provider="openai",
        config=ProviderConfig(base_url="http://llm.test/v1", api_key="k"),
        transport=transport,
        concurrency_limit=concurrency,
        max_qps=max_qps,
        retry=RetryPolicy.from_retry_times(retries, retry_delay=delay),
        timeout=5,
    )


def request(text: str = "hello", stream: bool = False):  # type: ignore[no-untyped-def]
    return make_request(model="m", messages=[{"role": "user", "content": text}], stream=stream)


async def test_answer_is_parsed() -> None:
    ep = endpoint(MemoryTransport.from_responses([ok(text="fine")]))
    result = await ep.complete(request())
    assert result.text == "fine"
    assert result.usage is not None and result.usage.total_tokens == 5
    stats = ep.statistics()
    assert (stats.requests, stats.successes, stats.attempts, stats.retries) == (1, 1, 1, 0)
    assert stats.latency is not None and stats.in_flight == 0


@pytest.mark.parametrize("status", [500, 502, 503, 529, 429])
async def test_retryable_status_is_retried(status: int) -> None:
    transport = MemoryTransport.from_responses([error(status), error(status), ok(text="after")])
    ep = endpoint(transport)
    assert (await ep.complete(request())).text == "after"
    assert len(transport.requests) == 3
    assert ep.statistics().retries == 2


@pytest.mark.parametrize("exc", [ConnectError("refused"), ReadError("reset by peer")])
async def test_transport_failure_is_retried(exc: Exception) -> None:
    transport = MemoryTransport.from_responses([exc, ok(text="after")])
    assert (await endpoint(transport).complete(request())).text == "after"
    assert len(transport.requests) == 2


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (error(400), BadRequestError),
        (error(401), AuthenticationError),
        (error(403), PermissionDeniedError),
        (error(404), NotFoundError),
        (error(400, "This model's maximum context length is 8192 tokens"), ContextLengthExceededError),
    ],
)
async def test_non_retryable_raises_at_once(answer: HttpResponse, cls: type[Exception]) -> None:
    transport = MemoryTransport.from_responses([answer, ok()])
    ep = endpoint(transport)
    with pytest.raises(cls):
        await ep.complete(request())
    assert len(transport.requests) == 1
    stats = ep.statistics()
    assert (stats.errors, stats.retries) == (1, 0)
    assert stats.last_error is not None and cls.__name__ in stats.last_error


async def test_gives_up_after_retry_times() -> None:
    transport = MemoryTransport.from_responses([error(503)] * 5)
    ep = endpoint(transport, retries=2)
    with pytest.raises(OverloadedError):
        await ep.complete(request())
    assert len(transport.requests) == 3


async def test_retry_after_is_honoured() -> None:
    answers = [error(429, headers=(("retry-after", "0.2"),)), ok()]
    ep = endpoint(MemoryTransport.from_responses(answers), delay=0.0)
    notices: list[RetryNotice] = []
    ep.on_retry = notices.append
    await ep.complete(request())
    assert len(notices) == 1
    # The provider asked for 0.2 s: never earlier, even though retry_delay is 0.
    assert notices[0].delay >= 0.2
    assert "RateLimitError" in notices[0].error


async def test_slot_is_released_while_waiting_to_retry() -> None:
    """With one slot, a request sleeping out a 503 lets the next request through (a 429
    holds every request back instead: see test_quota.py)."""
    seen: list[str] = []

    def handler(req: HttpRequest) -> HttpResponse:
        text = prompt(req)
        seen.append(text)
        if text == "A" and seen.count("A") == 1:
            return error(503, headers=(("retry-after", "0.3"),))
        return ok(text=text)

    ep = endpoint(MemoryTransport(handler), concurrency=1)
    results: dict[str, str] = {}

    async def run(text: str) -> None:
        results[text] = (await ep.complete(request(text))).text

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "A")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run, "B")
    assert seen == ["A", "B", "A"]
    assert results == {"A": "A", "B": "B"}


async def test_concurrency_limit_is_never_exceeded() -> None:
    in_flight = peak = 0

    async def handler(req: HttpRequest) -> HttpResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return ok(text=prompt(req))

    ep = endpoint(MemoryTransport(handler), concurrency=3)
    answers: list[str] = []

    async def run(i: int) -> None:
        answers.append((await ep.complete(request(str(i)))).text)

    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(run, i)
    assert peak == 3
    assert sorted(answers, key=int) == [str(i) for i in range(30)]
    assert ep.statistics().in_flight == 0


async def test_rate_limit_counts_starts() -> None:
    """At 4 requests/s with no burst, 0.6 s lets exactly the starts at 0, .25 and .5 through."""
    sent = 0

    def handler(req: HttpRequest) -> HttpResponse:
        nonlocal sent
        sent += 1
        return ok()

    ep = endpoint(MemoryTransport(handler), max_qps=4)
    with anyio.move_on_after(0.62):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(ep.complete, request())
    assert sent == 3


def test_rate_limiter_spacing_with_a_fake_clock() -> None:
    now = 100.0
    limiter = RateLimiter(10, clock=lambda: now)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    now += 1.0
    assert limiter.reserve() == 0.0


async def test_concurrency_limiter_hands_slots_in_order() -> None:
    limiter = ConcurrencyLimiter(1)
    order: list[int] = []
    await limiter.acquire()

    async def waiter(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        limiter.release()

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(waiter, i)
            await anyio.wait_all_tasks_blocked()
        assert limiter.waiting == 3
        limiter.release()
    assert order == [0, 1, 2]
    assert limiter.in_flight == 0


@pytest.mark.parametrize("handed_over_first", [False, True])
async def test_cancelled_waiter_passes_its_slot_on(handed_over_first: bool) -> None:
    """A waiter cancelled while queued (or just as the slot reached it) never loses the slot."""
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    got: list[str] = []
    scope = anyio.CancelScope()

    async def waiter(name: str, cancel_scope: anyio.CancelScope | None = None) -> None:
        with cancel_scope or anyio.CancelScope():
            await limiter.acquire()
            got.append(name)
            limiter.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, "first", scope)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter, "second")
        await anyio.wait_all_tasks_blocked()
        if handed_over_first:
            limiter.release()
            scope.cancel()
        else:
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            limiter.release()
    assert got[-1] == "second"
    assert limiter.in_flight == 0 and limiter.waiting == 0


# -- streams ----------------------------------------------------------------------------


async def collect(ep: Endpoint, text: str = "hello") -> tuple[list[object], ChatResult]:
    steps = [step async for step in ep.stream(request(text))]
    final = steps.pop()
    assert isinstance(final, ChatResult)
    assert all(isinstance(step, list) and step for step in steps)  # never an empty step
    return [event for step in steps for event in step], final


async def test_stream_yields_events_then_the_result() -> None:
    ep = endpoint(MemoryTransport.from_responses([frames(text="one two three four")]))
    events, final = await collect(ep)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == final.text == "one two three four"
    assert final.usage is not None and final.usage.completion_tokens == 4


async def test_stream_cut_before_first_token_is_retried() -> None:
    first = frames()[:1]  # the role frame only: no token yet
    answers = [ChunkedResponse(chunks=first, error=ReadError("reset")), frames(text="whole answer")]
    transport = MemoryTransport.from_responses(answers)
    _, final = await collect(endpoint(transport))
    assert final.text == "whole answer"
    assert len(transport.requests) == 2


async def test_stream_cut_after_first_token_raises() -> None:
    answers = [ChunkedResponse(chunks=frames()[:3], error=ReadError("reset")), frames()]
    transport = MemoryTransport.from_responses(answers)
    ep = endpoint(transport)
    seen: list[object] = []
    with pytest.raises(ReadError):
        async for step in ep.stream(request()):
            seen.extend(step if isinstance(step, list) else [step])
    assert any(isinstance(e, TextDelta) and e.text for e in seen)
    assert len(transport.requests) == 1
    assert ep.statistics().errors == 1


async def test_stream_error_status_is_retried_then_raised() -> None:
    transport = MemoryTransport.from_responses([error(500), error(500), error(500)])
    with pytest.raises(ServerError):
        await collect(endpoint(transport, retries=2))
    assert len(transport.requests) == 3


async def test_stream_non_retryable_status_raises_at_once() -> None:
    transport = MemoryTransport.from_responses([error(401), frames()])
    with pytest.raises(AuthenticationError):
        await collect(endpoint(transport))
    assert len(transport.requests) == 1


async def test_stream_concurrency_counts_open_streams() -> None:
    ep = endpoint(MemoryTransport(lambda req: frames()), concurrency=2)
    peak = 0

    async def consume() -> None:
        nonlocal peak
        async for _ in ep.stream(request()):
            peak = max(peak, ep.statistics().in_flight)
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(consume)
    assert peak == 2
    assert ep.statistics().in_flight == 0
