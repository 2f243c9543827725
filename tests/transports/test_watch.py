"""DeadlineWatch: a caller's task group times the requests of the tasks it covers (what a
batch run does), on asyncio and trio, against real servers on 127.0.0.1."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest
from _httpserver import echo, post, serve, silent

from flexllm_core import RequestTimeout
from flexllm_transports import AnyioTransport, DeadlineWatch, Timeouts, _lean

pytestmark = pytest.mark.anyio

LIMIT = 20




@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_a_covered_task_times_out_by_the_lent_watchdog(parser: str) -> None:
    fast = Timeouts(connect=5, read=0.2, total=30)
    with anyio.fail_after(LIMIT):
        async with serve(silent) as srv:
            transport = AnyioTransport(parser=parser, watchdog_tick=0.02)  # type: ignore[arg-type]
            errors: list[BaseException] = []
            async with anyio.create_task_group() as tg:
                watch = DeadlineWatch(tg)

                async def covered() -> None:
                    watch.cover()
                    try:
                        await transport.send(post(srv.url), timeouts=fast)
                    except RequestTimeout as exc:
                        errors.append(exc)
                    finally:
                        watch.close()  # the group ends: its watchdog stops

                tg.start_soon(covered)
            await transport.aclose()
    assert len(errors) == 1 and "read timeout" in str(errors[0])


async def test_covered_requests_take_no_cancel_scope_and_others_still_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real = anyio.CancelScope

    def counting(*args: object, **kwargs: object) -> anyio.CancelScope:
        made.append("scope")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with anyio.fail_after(LIMIT):
        async with serve(echo) as srv:
            transport = AnyioTransport(watchdog_tick=0.02)
            async with anyio.create_task_group() as tg:
                watch = DeadlineWatch(tg)
                monkeypatch.setattr(_lean.anyio, "CancelScope", counting)

                async def covered() -> None:
                    watch.cover()
                    for _ in range(5):
                        assert (await transport.send(post(srv.url))).status == 200

                async with anyio.create_task_group() as inner:
                    inner.start_soon(covered)
                covered_scopes = len(made)  # the watchdog's own scope, once
                for _ in range(5):  # not covered: timed by the pool's background watchdog
                    assert (await transport.send(post(srv.url))).status == 200
                uncovered_scopes = len(made) - covered_scopes
                watch.close()
                async with anyio.create_task_group() as inner:
                    inner.start_soon(covered)  # after close: the background watchdog too
                monkeypatch.setattr(_lean, "watch_in_background", lambda pool, tick: False)
                for _ in range(5):  # no watchdog can run: a scope per request
                    assert (await transport.send(post(srv.url))).status == 200
                monkeypatch.undo()
            await transport.aclose()
    assert covered_scopes == 1
    assert uncovered_scopes == 0
    assert len(made) == 1 + 5
