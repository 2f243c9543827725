"""The mock's provider batch jobs: its own clock, its files, and the faults a test asks for.

A job holds its rows as each API sent them; it ends ``complete_after`` mock-clock seconds
after its create (never, with ``pending_forever``), and only then are its results made,
each row answered through the same codec path as an online request. The clock runs with
real time plus whatever a test adds with :meth:`BatchClock.advance`, so a test moves a job
to its end without sleeping. The wire shapes of each API live in :mod:`._batch_routes`.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections.abc import Callable

import attrs

from flexllm_core import ChatRequest, ChatResult, UsageError

__all__ = ("BatchClock", "BatchOptions", "MockBatches", "MockJob", "RowFate")


def _positions(value: object) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise UsageError(f"batch row positions: expected whole numbers, got {value!r}") from None
    if any(v < 0 for v in out):
        raise UsageError(f"batch row positions: must be >= 0, got {value!r}")
    return out


def _fraction(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"batch {attribute.name}: expected a fraction in [0, 1], got {value!r}")


def _seconds(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise UsageError(f"batch {attribute.name}: must be >= 0 seconds, got {value!r}")


@attrs.frozen(kw_only=True)
class BatchOptions:
    """How the mock's batch APIs behave (``MockOptions.batch``)."""

    #: Mock-clock seconds from create to the end of a job (0: ended at the first look).
    complete_after: float = attrs.field(default=0.0, converter=float, validator=_seconds)
    #: A job never leaves the pending state (a stuck provider queue).
    pending_forever: bool = False
    #: Fraction of each job's rows, the last ones, that expire: the job ends ``expired``
    #: with the others answered.
    expire_fraction: float = attrs.field(default=0.0, converter=float, validator=_fraction)
    #: Positions (0-based, in the job) of rows that appear in neither output nor error file.
    drop_rows: tuple[int, ...] = attrs.field(default=(), converter=_positions)
    #: Positions of rows that fail as an invalid request (400, not retryable).
    error_rows: tuple[int, ...] = attrs.field(default=(), converter=_positions)
    #: Results come back in a shuffled order (seeded by ``MockOptions.seed``).
    shuffle: bool = False
    #: The first N creates are accepted (the job exists and runs) but answered 500: a
    #: client that crashed or gave up after create must find its job by tag.
    fail_creates: int = attrs.field(default=0, converter=int)


class RowFate:
    """What happens to one row when its job ends."""

    ANSWERED = "answered"
    INVALID = "invalid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DROPPED = "dropped"


@attrs.define(eq=False)
class MockJob:
    """One job: its rows as ``(custom_id, request or parse error)`` and its life."""

    id: str
    #: Route dialect: "openai" | "claude" | "gemini".
    api: str
    model: str
    tag: str | None
    rows: list[tuple[str, ChatRequest | str]]
    created: float
    input_file: str | None = None
    #: The job failed validation at create (OpenAI ``failed``): these are the reasons.
    invalid: list[str] = attrs.field(factory=list)
    cancelled_at: float | None = None
    #: Made at the end: ``(custom_id, fate, result)`` in the order they are returned.
    results: list[tuple[str, str, ChatResult | str | None]] | None = None
    #: Files of the results, once written (OpenAI output/error, Gemini responses).
    output_file: str | None = None
    error_file: str | None = None
    ended: float | None = None


class BatchClock:
    """Real time plus an offset a test moves forward (``server.batch_clock.advance(3600)``).
    Safe to advance from the test's thread: one float is replaced."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._wall0 = time.time()
        self._offset = 0.0

    def now(self) -> float:
        """Seconds since the server started, on the mock clock."""
        return time.monotonic() - self._start + self._offset

    def unix(self, moment: float | None = None) -> float:
        """The Unix time of a mock-clock moment (``now()`` when None)."""
        return self._wall0 + (self.now() if moment is None else moment)

    def advance(self, seconds: float) -> None:
        if not seconds >= 0:
            raise UsageError(f"advance: seconds must be >= 0, got {seconds!r}")
        self._offset += seconds


#: Answers a row's request: the codec-neutral result the online path would give.
Answer = Callable[[ChatRequest, str], ChatResult]


class MockBatches:
    """Every job and file the mock holds, across the three APIs."""

    def __init__(self, options: BatchOptions, *, seed: int | None = None, clock: BatchClock | None = None) -> None:
        self.options = options
        self.clock = clock or BatchClock()
        self.rng = random.Random(seed)
        self.jobs: dict[str, MockJob] = {}
        self.files: dict[str, tuple[str, bytes]] = {}
        self.creates = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):06d}"

    def add_file(self, prefix: str, name: str, content: bytes) -> str:
        file_id = self.new_id(prefix)
        self.files[file_id] = (name, content)
        return file_id

    def add_job(self, job: MockJob) -> bool:
        """Store ``job``; return False when this create must be answered 500 anyway."""
        self.jobs[job.id] = job
        self.creates += 1
        return self.creates > self.options.fail_creates

    def listed(self, api: str) -> list[MockJob]:
        """The ``api``'s jobs, newest first (as every provider lists them)."""
        return sorted((j for j in self.jobs.values() if j.api == api), key=lambda j: (-j.created, j.id))

    # -- life of a job -----------------------------------------------------------------

    def phase(self, job: MockJob) -> str:
        """``pending`` | ``running`` | ``ended`` | ``failed`` | ``cancelled`` at the clock's now."""
        if job.invalid:
            return "failed"
        if job.results is not None:
            return "cancelled" if job.cancelled_at is not None else "ended"
        if job.cancelled_at is not None:
            return "cancelled"
        if self.options.pending_forever:
            return "pending"
        return "ended" if self.clock.now() >= job.created + self.options.complete_after else "running"

    def finish(self, job: MockJob, answer: Answer) -> bool:
        """Make the results of a job whose time has come (or that was cancelled); True
        once it has results."""
        if job.results is not None:
            return True
        phase = self.phase(job)
        if phase not in ("ended", "cancelled"):
            return False
        n = len(job.rows)
        expired_from = n - math.ceil(n * self.options.expire_fraction)
        results: list[tuple[str, str, ChatResult | str | None]] = []
        for pos, (custom_id, req) in enumerate(job.rows):
            if phase == "cancelled":
                results.append((custom_id, RowFate.CANCELLED, None))
            elif pos in self.options.drop_rows:
                continue
            elif pos >= expired_from:
                results.append((custom_id, RowFate.EXPIRED, None))
            elif isinstance(req, str) or pos in self.options.error_rows:
                why = req if isinstance(req, str) else "injected invalid request (flexllm mock batch)"
                results.append((custom_id, RowFate.INVALID, why))
            else:
                results.append((custom_id, RowFate.ANSWERED, answer(req, job.model)))
        if self.options.shuffle:
            self.rng.shuffle(results)
        job.results = results
        job.ended = self.clock.now()
        return True

    def expired(self, job: MockJob) -> bool:
        return job.results is not None and any(f == RowFate.EXPIRED for _, f, _ in job.results)

    def cancel(self, job: MockJob) -> None:
        if job.results is None and job.cancelled_at is None and not job.invalid:
            job.cancelled_at = self.clock.now()
