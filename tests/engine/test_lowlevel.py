"""The backend lookup done once per loop kind (``flexllm._lowlevel``) hands out what anyio's
own calls would, on both loops, and sees a loop change."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest
import trio

from flexllm._lowlevel import backend, cancel_scope, checkpoint_if_cancelled, native_loop, new_event

pytestmark = pytest.mark.anyio


async def test_the_backend_is_the_running_loops() -> None:
    assert backend() is anyio.lowlevel.current_token().backend_class
    assert native_loop() is anyio.lowlevel.current_token().native_token
    assert native_loop() is native_loop()


async def test_an_event_wakes_its_waiter() -> None:
    event = new_event()
    assert isinstance(event, anyio.Event)
    got: list[str] = []

    async def waiter() -> None:
        await event.wait()
        got.append("woken")

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.01)
        assert got == []
        event.set()
    assert got == ["woken"]


async def test_a_shielded_scope_holds_off_its_outer_cancel() -> None:
    with anyio.CancelScope() as outer:
        outer.cancel()
        with cancel_scope(shield=True) as inner:
            assert isinstance(inner, anyio.CancelScope) and inner.shield
            await anyio.sleep(0)  # not cancelled here
            reached = True
        await anyio.sleep(1)  # cancelled here
    assert reached and outer.cancelled_caught


async def test_checkpoint_if_cancelled_raises_only_when_cancelled() -> None:
    await checkpoint_if_cancelled()  # no cancel: returns
    with anyio.CancelScope() as scope:
        scope.cancel()
        await checkpoint_if_cancelled()
        pytest.fail("not cancelled")
    assert scope.cancelled_caught


def test_no_loop_no_backend() -> None:
    with pytest.raises(RuntimeError):
        native_loop()
    with pytest.raises(RuntimeError):
        new_event()


def test_loops_of_both_kinds_in_turn_each_get_their_own_backend() -> None:
    """One process running asyncio, then trio, then asyncio again (a script, a test run)."""
    seen: list[tuple[type, object]] = []

    async def look() -> None:
        seen.append((backend(), native_loop()))
        assert backend() is anyio.lowlevel.current_token().backend_class
        event = new_event()
        event.set()
        await event.wait()

    asyncio.run(look())
    trio.run(look)
    asyncio.run(look())
    (a1, loop1), (t, token), (a2, loop2) = seen
    assert a1 is a2 and a1 is not t
    assert loop1 is not loop2 and isinstance(token, trio.lowlevel.TrioToken)
