"""The budget gate: a request is sent only with a reservation that keeps the run in budget.

Before a worker sends, it reserves the request's worst-case cost with the run's
:class:`CostTracker`. When the reservation does not fit, the worker waits for an answer in
flight to settle (its real cost is usually far below its worst case) and tries again; when
even an empty pipeline could not fit it, the run halts: no further request is sent, and
every remaining item comes out as not sent.
"""

from __future__ import annotations

import enum

import anyio
import anyio.to_thread

from flexllm_core import ChatRequest, Usage

from .._cost import CostTracker, Reservation
from .._errors import BudgetExceededError
from .types import BatchItem, ItemSource, Prepared

__all__ = ("BudgetGate", "Halt")


class Halt(enum.Enum):
    """Why a run stopped sending before its input ran out."""

    #: The next request could pass the budget even with nothing else in flight.
    BUDGET = "budget"


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
                # Even with every request in flight settled, this one could pass the budget.
                self.halted = Halt.BUDGET
                tracker.budget_exceeded = True
                return None
            if self._settled.is_set():
                self._settled = anyio.Event()
            await self._settled.wait()  # an answer in flight may free part of its reservation
            reservation = tracker.reserve(request, amount)
        return reservation

    def release(self, reservation: Reservation) -> None:
        """The request failed or was handed back: its reservation is freed."""
        self.tracker.release(reservation)
        self._settled.set()

    def settle(self, reservation: Reservation, model: str, usage: Usage | None, *,
               requested: str) -> float | None:
        """The request was answered: replace its reservation by its real cost."""
        cost = self.tracker.settle(reservation, model, usage, requested=requested)
        self._settled.set()
        return cost

    def not_sent(self, prepared: Prepared) -> BatchItem:
        """The outcome of an item left unsent to stay within the budget."""
        tracker = self.tracker
        budget = tracker.budget or 0.0
        error = BudgetExceededError(
            f"not sent: budget ${budget:.6f} would be exceeded (spent ${tracker.spent:.6f})",
            budget=budget, spent=tracker.spent)
        return BatchItem(index=prepared.index, error=error, metadata=prepared.metadata,
                         source=ItemSource.NOT_SENT)
