"""Cost tracking and the hard budget (reserve the worst case, settle on the answer)."""

from __future__ import annotations

import logging

import anyio
import pytest

from flexllm._batch.run import BatchRun
from flexllm._batch.types import BatchOptions, ItemSource
from flexllm._cost.tracker import DEFAULT_RESERVED_OUTPUT, CostTracker
from flexllm._errors import BudgetExceededError
from flexllm_core import ChatRequest, ChatResult, Usage, UsageError, default_pricing, make_request

from .helpers import MODEL, ScriptedLane, messages, prepare

pytestmark = pytest.mark.anyio

#: The bundled table (CostTracker takes a table: reading one is file I/O, which callers on an
#: event loop do in a worker thread).
PRICING = default_pricing()


class MeteredLane(ScriptedLane):
    """Checks, at every request start, that what is spent plus reserved stays in budget."""

    def __init__(self, tracker: CostTracker, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.tracker = tracker
        self.worst_seen = 0.0

    async def complete(self, request: ChatRequest) -> ChatResult:
        t = self.tracker
        self.worst_seen = max(self.worst_seen, t.spent + t.reserved)
        return await super().complete(request)


async def test_budget_is_never_exceeded_with_100_in_flight() -> None:
    budget = 0.05
    tracker = CostTracker(budget=budget, pricing=PRICING)
    lane = MeteredLane(tracker, concurrency=100, delay=0.002, completion_tokens=3000)
    async with BatchRun(messages(500), [lane], prepare, BatchOptions(tracker=tracker)) as run:
        got = [i async for i in run]
    assert sorted(i.index for i in got) == list(range(500))
    assert tracker.spent <= budget
    assert lane.worst_seen <= budget + 1e-12
    finished = [i for i in got if i.ok]
    unsent = [i for i in got if i.source is ItemSource.NOT_SENT]
    assert len(finished) == len(lane.sent) > 0  # every paid answer kept
    assert len(finished) + len(unsent) == 500 and unsent
    assert all(isinstance(i.error, BudgetExceededError) and "not sent" in str(i.error) for i in unsent)
    report = tracker.report()
    assert report.budget_exceeded and run.budget_exceeded
    assert report.total_cost == pytest.approx(sum(i.cost or 0.0 for i in finished))
    # Each answer cost most of its reservation, so the run got close to the budget.
    assert report.total_cost > budget * 0.5


async def test_reservation_counts_prompt_and_max_tokens() -> None:
    tracker = CostTracker(budget=1.0, pricing=PRICING)
    price = default_pricing().lookup(MODEL)
    assert price is not None
    req = make_request(model=MODEL, messages=[{"role": "user", "content": "hello " * 100}], max_tokens=50)
    worst = tracker.worst_case(req)
    assert worst > 100 * price.input / 1e6 + 50 * price.output / 1e6 * 0.99
    unbounded = make_request(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert tracker.worst_case(unbounded) >= DEFAULT_RESERVED_OUTPUT * price.output / 1e6


def test_budget_needs_known_prices() -> None:
    tracker = CostTracker(budget=1.0, pricing=PRICING)
    with pytest.raises(UsageError, match="no-such-model-xyz"):
        tracker.check_prices(["no-such-model-xyz", MODEL])
    with pytest.raises(UsageError, match="budget"):
        CostTracker(budget=-1, pricing=PRICING)


def test_unknown_price_warns_once_and_is_not_free(caplog: pytest.LogCaptureFixture) -> None:
    tracker = CostTracker(pricing=PRICING)
    usage = Usage(prompt_tokens=10, completion_tokens=10, total_tokens=20)
    with caplog.at_level(logging.WARNING, logger="flexllm.cost"):
        assert tracker.settle(None, "my-private-model", usage) is None
        assert tracker.settle(None, "my-private-model", usage) is None
        tracker.settle(None, MODEL, usage)
    assert sum("my-private-model" in r.message for r in caplog.records) == 1
    report = tracker.report()
    assert report.unknown_price_models == ("my-private-model",)
    assert report.by_model["my-private-model"].cost is None
    assert report.by_model[MODEL].cost == pytest.approx(report.total_cost) and report.total_cost > 0
    assert report.requests == 3 and report.total_input_tokens == 30
    assert "unknown prices" in report.summary()


async def test_cost_per_item_and_report() -> None:
    async with BatchRun(messages(10), [ScriptedLane()], prepare, BatchOptions(track_cost=True)) as run:
        got = [i async for i in run]
    report = run.tracker.report()
    assert report.requests == 10 and report.total_output_tokens == 100
    assert report.total_cost == pytest.approx(sum(i.cost or 0 for i in got)) and report.total_cost > 0
    assert run.counters.cost == pytest.approx(report.total_cost)
    assert f"{report.total_cost:.6f}" in report.summary()


async def test_failed_requests_give_their_reservation_back() -> None:
    tracker = CostTracker(budget=0.01, pricing=PRICING)
    lane = ScriptedLane(concurrency=10, fail={f"q{i}" for i in range(0, 40, 2)})
    async with BatchRun(messages(40), [lane], prepare, BatchOptions(tracker=tracker)) as run:
        got = [i async for i in run]
    assert tracker.reserved == pytest.approx(0.0, abs=1e-12)
    assert sum(i.ok for i in got) == 20 and not run.budget_exceeded
    await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
@pytest.mark.parametrize("asked", ["nothing", "track_cost", "return_cost_report"])
async def test_unknown_price_warns_only_when_costs_were_asked_for(
    asked: str, caplog: pytest.LogCaptureFixture
) -> None:
    from flexllm import LLMClient
    from flexllm.mock import MockServer

    async with MockServer(model="my-private-model") as url, \
            LLMClient(base_url=url, model="my-private-model", api_key="k") as client:
        with caplog.at_level(logging.WARNING, logger="flexllm.cost"):
            got = await client.chat_completions_batch(
                [[{"role": "user", "content": f"q{i}"}] for i in range(3)],
                **({asked: True} if asked != "nothing" else {}))
    results = got[0] if asked == "return_cost_report" else got
    assert len(results) == 3 and all(isinstance(t, str) for t in results)
    warned = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warned) == (0 if asked == "nothing" else 1)


def test_an_answer_under_an_unknown_alias_is_charged_at_the_requested_price() -> None:
    # A gateway reports its own name for the model: the budget must still count the answer.
    tracker = CostTracker(budget=1.0, pricing=PRICING)
    usage = Usage(prompt_tokens=1000, completion_tokens=1000, total_tokens=2000)
    cost = tracker.settle(None, "my-gateway/alias-of-mini", usage, requested=MODEL)
    assert cost is not None and cost == tracker.cost_of(MODEL, usage) and tracker.spent == cost
    assert tracker.settle(None, "my-gateway/alias-of-mini", usage) is None  # nothing to go by


def test_reserve_across_models_takes_the_dearest_prices() -> None:
    request = make_request(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                           max_tokens=100)
    alone = CostTracker(budget=1.0, pricing=PRICING)
    pooled = CostTracker(budget=1.0, pricing=PRICING)
    pooled.reserve_across(["gpt-4o-mini", "gpt-4o"])
    dear = CostTracker(budget=1.0, pricing=PRICING)
    assert pooled.worst_case(request) >= dear.worst_case(
        make_request(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=100))
    assert pooled.worst_case(request) > alone.worst_case(request)
