"""The unified ``thinking`` option mapped to Claude's parameters, per model generation.

Claude has two thinking modes (https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking,
.../adaptive-thinking):

- manual: ``{"type": "enabled", "budget_tokens": N}``, N >= 1024 and N < max_tokens. The
  only mode on Claude 3.7 to 4.5; deprecated but accepted on 4.6; rejected from 4.7 on.
- adaptive: ``{"type": "adaptive"}`` with ``output_config.effort``; Claude 4.6 and later.
  Newer models hide the thinking text unless ``display: "summarized"`` is asked for, and a
  caller who turns thinking on wants to read it, so it is always asked for.

Model ids whose generation cannot be read (a proxy's alias, say) get the manual mode,
which every thinking model up to 4.6 accepts.
"""

from __future__ import annotations

import enum
import re

from .._errors import UsageError
from .._json import JSONDict, JSONValue

__all__ = (
    "ADAPTIVE_MAX_TOKENS",
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_TOKENS",
    "LEVEL_BUDGETS",
    "MIN_BUDGET",
    "ThinkingMode",
    "thinking_mode",
    "thinking_params",
)

#: ``max_tokens`` when the caller gives none and thinking is off (Claude requires one).
DEFAULT_MAX_TOKENS = 4096
#: ``max_tokens`` with adaptive thinking: the model's reasoning counts against it too.
ADAPTIVE_MAX_TOKENS = 16384
#: Claude's smallest accepted ``budget_tokens``; smaller int budgets are raised to it.
MIN_BUDGET = 1024
#: ``thinking=True`` in manual mode.
DEFAULT_BUDGET = 8192
#: Effort levels in manual mode (the same ladder as Gemini 2.x budgets, floored at 1024).
LEVEL_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
#: Effort levels in adaptive mode (``output_config.effort`` has no "minimal").
_LEVEL_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


class ThinkingMode(enum.Enum):
    """Which thinking parameters a model accepts."""

    #: budget_tokens only (Claude 3.7 - 4.5, and ids we cannot read).
    MANUAL = "manual"
    #: both; adaptive preferred (Claude 4.6).
    BOTH = "both"
    #: adaptive only (Claude 4.7+, 5+, Mythos, Fable).
    ADAPTIVE = "adaptive"


# claude-opus-4-6, claude-sonnet-4-5-20250929, claude-opus-4-20250514 (4.0, not 4.20...),
# and OpenRouter's dotted anthropic/claude-sonnet-4.5
_NEW_ID = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:[-.](\d{1,2}))?(?!\d)")
# claude-3-7-sonnet-20250219, claude-3-opus-20240229, anthropic/claude-3.7-sonnet
_OLD_ID = re.compile(r"claude-(\d+)(?:[-.](\d))?-(?:opus|sonnet|haiku)")


def thinking_mode(model: str) -> ThinkingMode:
    """Read the model generation from its id (Bedrock/Vertex/proxy prefixes allowed)."""
    low = model.lower()
    if "mythos" in low or "fable" in low:
        return ThinkingMode.ADAPTIVE
    match = _NEW_ID.search(low) or _OLD_ID.search(low)
    if match is None:
        return ThinkingMode.MANUAL
    version = (int(match.group(1)), int(match.group(2) or 0))
    if version >= (4, 7):
        return ThinkingMode.ADAPTIVE
    if version == (4, 6):
        return ThinkingMode.BOTH
    return ThinkingMode.MANUAL


def _effort_for_budget(budget: int) -> str:
    return "low" if budget <= LEVEL_BUDGETS["low"] else (
        "medium" if budget <= LEVEL_BUDGETS["medium"] else "high"
    )


def thinking_params(
    option: JSONValue, model: str, max_tokens: int | None
) -> tuple[JSONDict | None, str | None, int]:
    """Return ``(thinking, effort, max_tokens)`` for the body.

    ``thinking`` is None when off (False, None or 0: Claude's default is no thinking).
    ``effort`` goes to ``output_config.effort`` (adaptive mode only). ``max_tokens`` is
    the caller's, or a default leaving the answer 4096 tokens beside the thinking budget.

    Raises:
        UsageError: an unknown option, or a budget that cannot fit under ``max_tokens``.
    """
    if option is None or option is False or (type(option) is int and option == 0):
        return None, None, DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if option is not True and not (
        (isinstance(option, str) and option in LEVEL_BUDGETS)
        or (type(option) is int and option > 0)
    ):
        raise UsageError(
            f"thinking: unknown value {option!r}; expected False, True, 'minimal', 'low', "
            "'medium', 'high' or a positive token budget"
        )
    mode = thinking_mode(model)
    explicit_budget = type(option) is int
    if mode is ThinkingMode.ADAPTIVE or (mode is ThinkingMode.BOTH and not explicit_budget):
        if option is True:
            effort = None  # the API default, "high"
        elif isinstance(option, str):
            effort = _LEVEL_EFFORT[option]
        else:
            effort = _effort_for_budget(option)
        thinking: JSONDict = {"type": "adaptive", "display": "summarized"}
        return thinking, effort, ADAPTIVE_MAX_TOKENS if max_tokens is None else max_tokens
    if option is True:
        budget = DEFAULT_BUDGET
    elif isinstance(option, str):
        budget = LEVEL_BUDGETS[option]
    else:
        budget = max(option, MIN_BUDGET)
    if max_tokens is None:
        max_tokens = budget + DEFAULT_MAX_TOKENS
    elif budget >= max_tokens:
        if explicit_budget:
            raise UsageError(
                f"thinking: a budget of {budget} tokens needs max_tokens above it "
                f"(got max_tokens={max_tokens}); Claude counts thinking within max_tokens"
            )
        # A level is a wish, max_tokens a limit: thinking gets half, the answer the rest.
        budget = max(max_tokens // 2, MIN_BUDGET)
        if budget >= max_tokens:
            raise UsageError(
                f"max_tokens={max_tokens} leaves no room for thinking: Claude needs "
                f"budget_tokens >= {MIN_BUDGET} and below max_tokens"
            )
    return {"type": "enabled", "budget_tokens": budget}, None, max_tokens
