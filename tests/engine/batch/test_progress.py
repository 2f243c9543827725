"""The progress display: a plain periodic line when the stream is not a terminal."""

from __future__ import annotations

import io

import pytest

from flexllm._batch.progress import BatchCounters, ProgressDisplay, format_line
from flexllm._batch.run import BatchRun
from flexllm._batch.types import BatchOptions

from .helpers import ScriptedLane, messages, prepare

pytestmark = pytest.mark.anyio


def test_line_shows_every_counter() -> None:
    c = BatchCounters(total=200, done=50, errors=2, cache_hits=5, restored=10, not_sent=1,
                      retries=3, cost=0.125, started=100.0)
    line = format_line(c, now=110.0)
    for part in ("50/200 (25.0%)", "4.0/s", "ETA 37s", "errors 2", "retries 3", "cache 5",
                 "resumed 10", "not sent 1", "$0.1250"):
        assert part in line, (part, line)
    assert format_line(BatchCounters(done=3, started=0.0), now=1.0).startswith("3/?")


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    counters = BatchCounters(total=10)
    display = ProgressDisplay(counters, stream=stream, interval=0.001)
    display.start()
    counters.done = 10
    display.stop()
    lines = stream.getvalue().splitlines()
    assert lines and lines[-1].startswith("10/10 (100.0%)")
    assert "\r" not in stream.getvalue()


async def test_batch_counts_what_the_bar_shows() -> None:
    lane = ScriptedLane(fail={"q1"})
    async with BatchRun(messages(6), [lane], prepare, BatchOptions(track_cost=True)) as run:
        [i async for i in run]
    c = run.counters
    assert (c.total, c.done, c.errors) == (6, 6, 1)
    assert c.cost is not None and c.cost > 0
