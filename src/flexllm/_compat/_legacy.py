"""0.17's cost, pricing, endpoint and client-base names, over this version's pieces."""

from __future__ import annotations

import math
from abc import ABCMeta
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from flexllm_core import JSONValue, Usage, UsageError, make_request, request_hash

from .._config import ENDPOINT_FIELDS
from .._cost import CostReport, CostTracker as _Tracker, current_pricing
from .._errors import BudgetExceededError

__all__ = (
    "CostTracker",
    "CostTrackerConfig",
    "EndpointConfig",
    "LLMClientBase",
    "LegacyResponseWarning",
    "count_messages_tokens",
    "messages_hash",
    "model_pricing",
)


class LLMClientBase(metaclass=ABCMeta):  # noqa: B024 - an isinstance target only
    """Anything with the client API: LLMClient (and its subclasses) or LLMClientPool."""

    @classmethod
    def __subclasshook__(cls, other: type) -> Any:
        from .._clients import LLMClient, LLMClientPool

        if cls is LLMClientBase and issubclass(other, (LLMClient, LLMClientPool)):
            return True
        return NotImplemented


class LegacyResponseWarning(FutureWarning):
    """0.17 warned with this about its old return shapes; this version never raises it."""


def _usd(name: str, value: object, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0):
        raise UsageError(f"{name} must be a number of USD >= 0, got {value!r}")
    return float(value)


@attrs.frozen
class CostTrackerConfig:
    """0.17's cost-tracking settings; here ``budget=`` on the batch call does the same."""

    enabled: bool = False
    budget_limit: float | None = None
    budget_warning: float | None = None
    on_budget_warning: Callable[[float, float], None] | None = None

    def __attrs_post_init__(self) -> None:
        _usd("budget_limit", self.budget_limit, optional=True)
        _usd("budget_warning", self.budget_warning, optional=True)

    @classmethod
    def disabled(cls) -> CostTrackerConfig:
        return cls(enabled=False)

    @classmethod
    def tracking_only(cls) -> CostTrackerConfig:
        return cls(enabled=True)

    @classmethod
    def with_budget(cls, limit: float, warning: float | None = None,
                    on_warning: Callable[[float, float], None] | None = None) -> CostTrackerConfig:
        """A hard limit (USD) and an optional warning threshold with its callback."""
        return cls(enabled=True, budget_limit=limit, budget_warning=warning,
                   on_budget_warning=on_warning)


class CostTracker:
    """0.17's running cost total: ``record(usage, model)`` and ``get_report()``.

    A batch tracks its own cost here (``results.cost``) and ``budget=`` refuses to send what
    could pass the limit; this class is for code that totals usage itself.
    """

    def __init__(self, config: CostTrackerConfig | None = None) -> None:
        self.config = config or CostTrackerConfig.tracking_only()
        self._tracker = _Tracker(pricing=current_pricing(), warn_unknown=False)
        self._warned = False

    @property
    def total_cost(self) -> float:
        return self._tracker.spent

    def record(self, usage: Usage | Mapping[str, Any], model: str) -> float:
        """Add one answer's cost (0.0 when the price is unknown) and return it.

        Raises:
            BudgetExceededError: the total passed ``config.budget_limit``.
        """
        if not isinstance(usage, Usage):
            usage = Usage.from_dict(dict(usage))
        cost = self._tracker.settle(None, model, usage) or 0.0
        spent, cfg = self._tracker.spent, self.config
        if (cfg.budget_warning is not None and not self._warned and spent >= cfg.budget_warning
                and cfg.on_budget_warning is not None):
            self._warned = True
            cfg.on_budget_warning(spent, cfg.budget_warning)
        if cfg.budget_limit is not None and spent > cfg.budget_limit:
            raise BudgetExceededError(
                f"budget exceeded: ${spent:.4f} > ${cfg.budget_limit:.4f}",
                budget=cfg.budget_limit, spent=spent)
        return cost

    def get_report(self) -> CostReport:
        return self._tracker.report()

    def reset(self) -> None:
        self._tracker = _Tracker(pricing=current_pricing(), warn_unknown=False)
        self._warned = False


class EndpointConfig(Mapping[str, Any]):
    """0.17's endpoint record; a Mapping, so ``LLMClientPool(endpoints=[...])`` takes it.

    ``extra`` keys join the endpoint's fields (the pool names any it does not know).
    """

    def __init__(self, base_url: str, api_key: str = "EMPTY", model: str | None = None,
                 provider: str = "auto", concurrency_limit: int | None = None,
                 max_qps: float | None = None, proxy: str | None = None,
                 extra: Mapping[str, Any] | None = None, reasoning: object = None,
                 reasoning_adapter: str | None = None,
                 reasoning_capabilities: object = None) -> None:
        if reasoning is not None or reasoning_adapter is not None or reasoning_capabilities:
            raise UsageError("EndpointConfig.reasoning*: not carried; pass thinking= to the call")
        fields = {"base_url": base_url, "api_key": api_key, "model": model,
                  "provider": provider, "concurrency_limit": concurrency_limit,
                  "max_qps": max_qps, "proxy": proxy, **dict(extra or {})}
        self._fields = {k: v for k, v in fields.items() if v is not None}
        self.extra = dict(extra or {})

    def __getattr__(self, name: str) -> Any:
        if name in ENDPOINT_FIELDS:
            return self._fields.get(name)
        raise AttributeError(name)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:  # never the key
        shown = {k: ("***" if k == "api_key" else v) for k, v in self._fields.items()}
        return f"EndpointConfig({shown!r})"


def count_messages_tokens(messages_list: Sequence[Sequence[JSONValue]],
                          model: str = "gpt-4o") -> int:
    """Total tokens of several message lists (``sum(count_tokens(m, model) for m in ...)``)."""
    from flexllm_core import count_tokens

    return sum(count_tokens(messages, model) for messages in messages_list)


def messages_hash(messages: Sequence[Mapping[str, JSONValue]], model: str = "",
                  **kwargs: Any) -> str:
    """The hash of a request (model, messages, parameters): ``flexllm_core.request_hash``.

    Not 0.17's md5: this version's cache and checkpoints key on the canonical request, and
    the value is only for comparing requests with each other.
    """
    known = ("tools", "tool_choice", "thinking", "temperature", "max_tokens", "top_p", "stop",
             "response_format", "seed")
    params = {k: v for k, v in kwargs.items() if k in known and v is not None}
    extra = {k: v for k, v in kwargs.items() if k not in known and v is not None}
    req = make_request(model=model or "-", messages=list(messages), extra_body=extra or None,
                       **params)
    return request_hash(req)


def model_pricing() -> dict[str, dict[str, float]]:
    """0.17's ``MODEL_PRICING``: USD per token (``input``, ``output``) by model name."""
    table = current_pricing()
    return {name: {"input": p.input / 1e6, "output": p.output / 1e6}
            for name, p in table.models.items()}
