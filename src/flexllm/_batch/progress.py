"""The batch progress display: a bar on a terminal, a plain periodic line otherwise.

The runner only bumps integer counters on :class:`BatchCounters` (cheap, on the event loop);
a separate daemon thread reads them and draws, so writing to stderr never blocks the loop.
``rich`` draws the bar when it is installed (the ``[cli]`` extra) and stderr is a terminal;
otherwise a small renderer prints one line every few seconds (every ``interval`` on a TTY).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import attrs

__all__ = ("BatchCounters", "ProgressDisplay", "format_line")


@attrs.define
class BatchCounters:
    """Live totals of one run, written by the runner, read by the display."""

    total: int | None = None
    done: int = 0
    errors: int = 0
    cache_hits: int = 0
    restored: int = 0
    not_sent: int = 0
    #: Rows left with the provider's batch API (``batch_wait=False``): not errors.
    pending: int = 0
    retries: int = 0
    cost: float | None = None
    started: float = attrs.field(factory=time.monotonic)
    #: The provider quota requests are waiting for right now, if any (read by the display).
    paced_by: Callable[[], str | None] | None = None
    #: What the run is waiting on, shown as it is (provider batch jobs still open).
    status: Callable[[], str | None] | None = None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_line(c: BatchCounters, now: float) -> str:
    """One status line: done/total, rate, ETA, errors, retries, cache hits, cost."""
    elapsed = max(now - c.started, 1e-9)
    live = c.done - c.restored
    rate = live / elapsed
    parts = [f"{c.done}/{c.total}" if c.total is not None else f"{c.done}/?"]
    if c.total:
        parts[0] += f" ({100.0 * c.done / c.total:.1f}%)"
    parts.append(f"{rate:.1f}/s")
    if c.total is not None and rate > 0:
        parts.append(f"ETA {_duration(max(c.total - c.done, 0) / rate)}")
    parts.append(f"elapsed {_duration(elapsed)}")
    if c.errors:
        parts.append(f"errors {c.errors}")
    if c.retries:
        parts.append(f"retries {c.retries}")
    if c.cache_hits:
        parts.append(f"cache {c.cache_hits}")
    if c.restored:
        parts.append(f"resumed {c.restored}")
    if c.not_sent:
        parts.append(f"not sent {c.not_sent}")
    if c.pending:
        parts.append(f"at the provider {c.pending}")
    if c.cost is not None:
        parts.append(f"${c.cost:.4f}")
    paced = None if c.paced_by is None else c.paced_by()
    if paced is not None:
        parts.append("paced by a 429's retry-after" if paced == "cooldown"
                     else f"paced by the {paced.replace('_', ' ')} quota")
    status = None if c.status is None else c.status()
    if status:
        parts.append(status)
    return "  ".join(parts)


class ProgressDisplay:
    """Draws ``counters`` from a daemon thread until :meth:`stop`."""

    def __init__(self, counters: BatchCounters, *, stream: TextIO | None = None,
                 interval: float | None = None, use_rich: bool | None = None) -> None:
        self.counters = counters
        self._stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._tty = tty
        self._interval = interval if interval is not None else (0.2 if tty else 5.0)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._use_rich = tty if use_rich is None else use_rich

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="flexllm-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Draw the final state and end the thread (blocking: call from a worker thread)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        if self._use_rich:
            try:
                self._run_rich()
                return
            except ImportError:
                pass
        self._run_plain()

    def _run_plain(self) -> None:
        end = "\r" if self._tty else "\n"
        while not self._stopped.wait(self._interval):
            self._write(format_line(self.counters, time.monotonic()) + end)
        self._write(format_line(self.counters, time.monotonic()) + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            self._stopped.set()  # stderr closed: stop drawing, never fail the batch

    def _run_rich(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        c = self.counters
        console = Console(file=self._stream)
        with Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.fields[info]}"), console=console, transient=False) as bar:
            task = bar.add_task("batch", total=c.total, info="")
            while True:
                stopped = self._stopped.wait(self._interval)
                info = format_line(c, time.monotonic()).split("  ", 1)[-1]
                bar.update(task, completed=c.done, total=c.total, info=info)
                if stopped:
                    break
