"""Token counting and cost estimates as the seeds import them (``from flexllm import ...``).

The core does the counting and the arithmetic; here the prices default to the user's
current table (``flexllm pricing --update`` wins over the shipped one), which the core,
doing no file I/O, cannot read itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexllm_core import (
    JSONValue,
    PricingTable,
    count_tokens as count_tokens,
    estimate_batch_cost as _core_batch_cost,
    estimate_cost as _core_cost,
)

from .pricing import current_pricing

__all__ = ("count_tokens", "estimate_batch_cost", "estimate_cost")


def estimate_cost(
    tokens: int, model: str, is_input: bool = True, *, pricing: PricingTable | None = None
) -> float | None:
    """USD for ``tokens`` input (or output) tokens of ``model``; None when its price is unknown."""
    return _core_cost(tokens, model, is_input, pricing=pricing or current_pricing())


def estimate_batch_cost(
    messages_list: Sequence[str | Sequence[JSONValue]],
    model: str,
    output_tokens_per_request: int = 500,
    *,
    pricing: PricingTable | None = None,
) -> float | None:
    """Estimated USD for a batch: counted prompts plus ``output_tokens_per_request`` each.

    Pass your ``max_tokens`` for a worst case. None when the price is unknown (never 0).
    """
    return _core_batch_cost(messages_list, model, output_tokens_per_request,
                            pricing=pricing or current_pricing())
