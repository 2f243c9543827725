"""Cost tracking and the hard budget: reserve the worst case before sending, settle after.

The original checked its budget after the money was spent, per endpoint, so a pool spent
65x its budget. Here one :class:`CostTracker` is shared by every worker of a run (and every
endpoint of a pool). Before a request starts, its worst-case cost (prompt tokens counted
locally, plus ``max_tokens`` or :data:`DEFAULT_RESERVED_OUTPUT` at the output price) is
reserved; the answer's real cost replaces the reservation. A reservation that would take
spent + reserved past the budget is refused, so no request starts that could pass it.
Everything runs on the event loop thread; no locks needed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import attrs

from flexllm_core import (
    ChatRequest,
    ModelPrice,
    PricingTable,
    Usage,
    UsageError,
    cost_of,
    count_tokens_detailed,
)

from .._redis.budget import SharedBudget

__all__ = (
    "DEFAULT_RESERVED_OUTPUT",
    "CostReport",
    "CostTracker",
    "ModelCost",
    "Reservation",
)

log = logging.getLogger("flexllm.cost")

#: Output tokens reserved for a request without ``max_tokens`` when a budget is set.
DEFAULT_RESERVED_OUTPUT = 4096
#: Prompt-size margin when tokens are estimated (no exact tokenizer for that model).
_ESTIMATE_MARGIN = 1.5




@attrs.frozen(kw_only=True)
class ModelCost:
    """One model's share of a run."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    #: USD; None when the model's price is unknown.
    cost: float | None = 0.0


@attrs.frozen(kw_only=True)
class CostReport:
    """What a run spent (and what the response cache saved)."""

    #: USD of answers with a known price (unknown-price answers are NOT counted as free:
    #: see ``unknown_price_models``).
    total_cost: float = 0.0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    total_cached_tokens: int = 0
    #: Answers paid for (requests that returned an answer).
    requests: int = 0
    cache_hits: int = 0
    #: USD the cache hits would have cost.
    saved_cost: float = 0.0
    by_model: dict[str, ModelCost] = attrs.field(factory=dict)
    unknown_price_models: tuple[str, ...] = ()
    budget: float | None = None
    #: True when items were left unsent to stay within the budget.
    budget_exceeded: bool = False

    @property
    def request_count(self) -> int:
        return self.requests

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.total_output_tokens

    @property
    def avg_cost_per_request(self) -> float:
        return self.total_cost / self.requests if self.requests else 0.0

    def summary(self) -> str:
        lines = [
            f"cost ${self.total_cost:.6f} for {self.requests} requests "
            f"({self.total_input_tokens} input, {self.total_output_tokens} output, "
            f"{self.total_cached_tokens} cached tokens)",
        ]
        if self.cache_hits:
            lines.append(f"cache: {self.cache_hits} hits saved ${self.saved_cost:.6f}")
        for name, m in sorted(self.by_model.items()):
            price = "unknown price" if m.cost is None else f"${m.cost:.6f}"
            lines.append(f"  {name}: {m.requests} requests, {price}")
        if self.unknown_price_models:
            lines.append("unknown prices (not counted): " + ", ".join(self.unknown_price_models))
        if self.budget is not None:
            state = "exceeded: items left unsent" if self.budget_exceeded else "kept"
            lines.append(f"budget ${self.budget:.6f} {state}")
        return "\n".join(lines)


@attrs.frozen(kw_only=True)
class Reservation:
    model: str
    amount: float


@attrs.define
class _Acc:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = 0.0


class CostTracker:
    """Running totals for one batch run (shared by all its workers and endpoints)."""

    def __init__(self, *, pricing: PricingTable, budget: float | None = None,
                 warn_unknown: bool = True, shared: SharedBudget | None = None) -> None:
        """``pricing``: the table, read by the caller (:func:`current_pricing` reads a file,
        so callers on an event loop do it in a worker thread; a constructor does no I/O).
        ``warn_unknown``: log once per model whose price is unknown (off when the user
        asked for no cost report: the record's cost is then just null)."""
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, (int, float))
            or not math.isfinite(budget) or budget < 0
        ):
            raise UsageError(f"budget must be a number of USD >= 0, got {budget!r}")
        self.budget = None if budget is None else float(budget)
        self._pricing = pricing
        self._prices: dict[str, ModelPrice | None] = {}
        self._spent = 0.0
        self._reserved = 0.0
        self._saved = 0.0
        self._hits = 0
        self._by_model: dict[str, _Acc] = {}
        self._unknown: set[str] = set()
        self._across: tuple[str, ...] = ()
        #: Log once per model whose price is unknown (settable until the run starts).
        self.warn_unknown = warn_unknown
        self.budget_exceeded = False
        #: The budget shared with other processes in Redis (see :mod:`flexllm._redis.budget`):
        #: the batch's budget gate reserves there too.
        self.shared = shared if self.budget is not None else None

    def _lookup(self, model: str) -> ModelPrice | None:
        # Name normalisation runs regexes: remember the answer per spelling.
        try:
            return self._prices[model]
        except KeyError:
            price = self._prices[model] = self._pricing.lookup(model)
            return price

    @property
    def spent(self) -> float:
        return self._spent

    @property
    def reserved(self) -> float:
        return self._reserved

    def check_prices(self, models: Iterable[str]) -> None:
        """With a budget, every model must have a price: unknown is not free.

        Raises:
            UsageError: naming the models without a price.
        """
        if self.budget is None:
            return
        missing = sorted({m for m in models if self._lookup(m) is None})
        if missing:
            raise UsageError(
                f"budget= needs a price for {', '.join(missing)}, which the pricing table does "
                "not know; add it to the pricing table or run without a budget"
            )

    def worst_case(self, request: ChatRequest) -> float:
        """USD upper bound of one request: counted prompt plus max output.

        With :meth:`reserve_across` set (a pool of several models), at the dearest input
        and output prices among them, the prompt counted with an estimate's margin.
        """
        models = self._across or (request.model,)
        prices = [self._lookup(m) for m in models]
        unknown = [m for m, p in zip(models, prices, strict=True) if p is None]
        if unknown:
            raise UsageError(f"no price for model {unknown[0]!r}; a budget cannot be enforced")
        counted = count_tokens_detailed(list(request.messages), request.model)
        prompt = counted.tokens
        if request.tools:
            prompt += sum(len(str(t)) for t in request.tools) // 2  # generous chars/token
        if not counted.exact or len(models) > 1:  # another model's tokenizer may count more
            prompt = math.ceil(prompt * _ESTIMATE_MARGIN)
        output = request.max_tokens if request.max_tokens is not None else DEFAULT_RESERVED_OUTPUT
        # A prompt may be written to the provider's cache (Claude: 1.25x input).
        input_price = max(max(p.input, p.cache_write or 0.0) for p in prices if p is not None)
        output_price = max(p.output for p in prices if p is not None)
        return (prompt * input_price + output * output_price) / 1_000_000

    def reserve_across(self, models: Iterable[str]) -> None:
        """Reserve every request at the dearest of ``models`` (a pool whose endpoints serve
        different models: which one answers is decided after the reservation)."""
        across = tuple(sorted(set(models)))
        self._across = across if len(across) > 1 else ()

    def reserve(self, request: ChatRequest, amount: float | None = None) -> Reservation | None:
        """Reserve the worst case (``amount`` when already computed); None when it does not
        fit next to the current reservations (see :meth:`could_fit`)."""
        if self.budget is None:
            return Reservation(model=request.model, amount=0.0)
        if amount is None:
            amount = self.worst_case(request)
        if self._spent + self._reserved + amount > self.budget:
            return None
        self._reserved += amount
        return Reservation(model=request.model, amount=amount)

    def could_fit(self, amount: float) -> bool:
        """Whether a reservation of ``amount`` would fit once every one in flight is settled."""
        if self.budget is None:
            return True
        return self._reserved > 0.0 and self._spent + amount <= self.budget

    def release(self, reservation: Reservation) -> None:
        """The request failed or was cancelled: give the reservation back."""
        self._reserved = max(0.0, self._reserved - reservation.amount)

    def settle(self, reservation: Reservation | None, model: str, usage: Usage | None,
               *, requested: str | None = None, batch: bool = False) -> float | None:
        """Record an answer; returns its USD cost (None when the price is unknown).

        ``model`` is the one the server reported; when the table does not know that name
        (a gateway's alias), the ``requested`` model's price is used, so a budget still
        counts the answer. ``batch``: answered through the provider's batch API, at its
        batch price.
        """
        if reservation is not None:
            self.release(reservation)
        acc = self._by_model.setdefault(model, _Acc())
        acc.requests += 1
        if usage is None:
            return None
        acc.input_tokens += usage.prompt_tokens
        acc.output_tokens += usage.completion_tokens
        acc.cached_tokens += usage.cached_tokens or 0
        price = self._lookup(model)
        if price is None and requested is not None and requested != model:
            price = self._lookup(requested)
        if price is None:
            if model not in self._unknown:
                self._unknown.add(model)
                if self.warn_unknown:
                    log.warning("no price known for model %r: its cost is reported as unknown",
                                model)
            acc.cost = None
            return None
        cost = cost_of(usage, price, batch=batch)
        self._spent += cost
        if acc.cost is not None:
            acc.cost += cost
        return cost

    def cache_hit(self, model: str, usage: Usage | None) -> None:
        """A cached answer: free, but counted with what it would have cost."""
        self._hits += 1
        price = self._lookup(model)
        if usage is not None and price is not None:
            self._saved += cost_of(usage, price)

    def cost_of(self, model: str, usage: Usage | None) -> float | None:
        price = self._lookup(model)
        if usage is None or price is None:
            return None
        return cost_of(usage, price)

    def report(self) -> CostReport:
        by_model = {
            name: ModelCost(requests=a.requests, input_tokens=a.input_tokens,
                            output_tokens=a.output_tokens, cached_tokens=a.cached_tokens,
                            cost=a.cost)
            for name, a in self._by_model.items()
        }
        return CostReport(
            total_cost=self._spent,
            total_input_tokens=sum(a.input_tokens for a in self._by_model.values()),
            total_output_tokens=sum(a.output_tokens for a in self._by_model.values()),
            total_cached_tokens=sum(a.cached_tokens for a in self._by_model.values()),
            requests=sum(a.requests for a in self._by_model.values()),
            cache_hits=self._hits,
            saved_cost=self._saved,
            by_model=by_model,
            unknown_price_models=tuple(sorted(self._unknown)),
            budget=self.budget,
            budget_exceeded=self.budget_exceeded,
        )
