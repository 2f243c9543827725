"""The budget gate: a request is sent only with a reservation that keeps the run in budget.

Before a worker sends, it reserves the request's worst-case cost with the run's
:class:`CostTracker`. When the reservation does not fit, the worker waits for an answer in
flight to settle (its real cost is usually far below its worst case) and tries again; when
even an empty pipeline could not fit it, the run halts: no further request is sent, and
every remaining item comes out as not sent.

With a budget shared in Redis (``budget_url`` on the client), a reservation that fits here
is reserved there as well; there, answers in flight are other processes' too, so a worker
that must wait for them looks again after a short pause (their settles send no event here).
"""

from __future__ import annotations

import enum
import logging

import anyio
import anyio.lowlevel
import anyio.to_thread

from flexllm_core import ChatRequest, Usage

from .._cost import CostTracker, Reservation
from .._errors import BudgetExceededError
from .._redis.connect import RedisUnavailable
from .types import BatchItem, ItemSource, Prepared

__all__ = ("BudgetGate", "Halt")

log = logging.getLogger("flexllm.cost")

#: Seconds a worker waits for other processes' reservations to settle in a shared budget.
SHARED_PATIENCE = 30.0


class Halt(enum.Enum):
    """Why a run stopped sending before its input ran out."""

    #: The next request could pass the budget even with nothing else in flight.
    BUDGET = "budget"
    #: The budget shared in Redis cannot be reached: nothing more is sent unchecked.
    SHARED_UNREACHABLE = "shared budget unreachable"


class BudgetGate:
    """Reservations against the run's tracker, and the halt they may lead to."""

    def __init__(self, tracker: CostTracker) -> None:
        self.tracker = tracker
        #: Set once the run stops sending; never cleared.
        self.halted: Halt | None = None
        self._settled = anyio.Event()  # an answer came back: a reservation may now fit
        self._warm: set[str] = set()  # models whose tokenizer has been loaded
        self._warm_lock = anyio.Lock()

    async def reserve(self, request: ChatRequest) -> Reservation | None:
        """A reservation for ``request``, waiting for answers in flight if need be.

        Returns None when the run has halted (the request must not be sent).
        """
        tracker = self.tracker
        if self.halted is not None:
            return None
        amount = 0.0
        if tracker.budget is not None:
            model = request.model
            if model not in self._warm:
                # The first count for a model loads its tokenizer files: one thread does it.
                async with self._warm_lock:
                    if model not in self._warm:
                        await anyio.to_thread.run_sync(tracker.worst_case, request)
                        self._warm.add(model)
            amount = tracker.worst_case(request)
        reservation = tracker.reserve(request, amount)
        while reservation is None:
            if self.halted is not None or not tracker.could_fit(amount):
                self._halt()
                return None
            if self._settled.is_set():
                self._settled = anyio.Event()
            await self._settled.wait()  # an answer in flight may free part of its reservation
            reservation = tracker.reserve(request, amount)
        if tracker.shared is not None:
            return await self._reserve_shared(reservation)
        return reservation

    def _halt(self) -> None:
        """Even with every request in flight settled, the next one could pass the budget."""
        self.halted = Halt.BUDGET
        self.tracker.budget_exceeded = True
        self._settled.set()  # workers waiting for a settle see the halt

    async def _reserve_shared(self, reservation: Reservation) -> Reservation | None:
        """Reserve in Redis too; None (halted) when it cannot fit there. A reservation the
        other processes hold longer than :data:`SHARED_PATIENCE` (one that crashed holds
        its own until the key expires) halts the run too: stopping early is safe, passing
        the budget is not."""
        shared = self.tracker.shared
        assert shared is not None
        pause, waited, got = 0.01, 0.0, shared.LATER
        try:
            while True:
                with anyio.CancelScope(shield=True):  # the answer says what Redis holds
                    try:
                        got = await shared.reserve(reservation.amount)
                    except RedisUnavailable as exc:
                        if self.halted is None:
                            log.warning("shared budget: %s; no further request is sent (a "
                                        "re-run sends what is left)", exc)
                            self.halted = Halt.SHARED_UNREACHABLE
                        break
                if got != shared.LATER or self.halted is not None or waited > SHARED_PATIENCE:
                    break
                with anyio.move_on_after(pause):
                    if self._settled.is_set():
                        self._settled = anyio.Event()
                    await self._settled.wait()
                waited += pause
                pause = min(pause * 2, 0.2)
            if got == shared.FITS:
                await anyio.lowlevel.checkpoint()  # cancelled here: given back below
        except BaseException:
            if got == shared.FITS:
                shared.settle_soon(reservation.amount, 0.0)
            self.tracker.release(reservation)
            self._settled.set()
            raise
        if got == shared.FITS and self.halted is None:
            return reservation
        if got == shared.FITS:
            shared.settle_soon(reservation.amount, 0.0)
        elif got == shared.LATER and self.halted is None:
            log.warning("shared budget: waited %.0f s for other processes' requests in flight "
                        "to settle; stopping here (a re-run sends what is left)", waited)
        self.tracker.release(reservation)
        if self.halted is None:
            self._halt()
        self._settled.set()
        return None

    def release(self, reservation: Reservation) -> None:
        """The request failed or was handed back: its reservation is freed."""
        self.tracker.release(reservation)
        if self.tracker.shared is not None:
            self.tracker.shared.settle_soon(reservation.amount, 0.0)
        self._settled.set()

    def settle(self, reservation: Reservation, model: str, usage: Usage | None, *,
               requested: str) -> float | None:
        """The request was answered: replace its reservation by its real cost."""
        cost = self.tracker.settle(reservation, model, usage, requested=requested)
        if self.tracker.shared is not None:
            # An unknown price cannot happen with a budget (checked before the run).
            self.tracker.shared.settle_soon(reservation.amount, cost or 0.0)
        self._settled.set()
        return cost

    async def flush(self) -> None:
        """Wait until the shared budget has heard of every settle (at the run's end)."""
        if self.tracker.shared is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.tracker.shared.flush)

    def not_sent(self, prepared: Prepared) -> BatchItem:
        """The outcome of an item left unsent to stay within the budget."""
        tracker = self.tracker
        budget = tracker.budget or 0.0
        why = ("the shared budget could not be reached" if self.halted is Halt.SHARED_UNREACHABLE
               else f"budget ${budget:.6f} would be exceeded")
        error = BudgetExceededError(f"not sent: {why} (spent ${tracker.spent:.6f})",
                                    budget=budget, spent=tracker.spent)
        return BatchItem(index=prepared.index, error=error, metadata=prepared.metadata,
                         source=ItemSource.NOT_SENT)
