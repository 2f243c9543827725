"""What a request costs against a provider's token limits, before and after sending.

Providers count differently, so each codec carries a :class:`QuotaRule` (``codec.QUOTA_RULE``)
and nothing here names a provider:

* OpenAI counts a request's ``max_tokens`` toward TPM at admission ("the maximum of your
  max_tokens and the estimated number of tokens based on the character count",
  https://platform.openai.com/docs/guides/rate-limits): a large ``max_tokens`` costs quota
  even when the answer is short.
* Anthropic counts output tokens as they are produced (``max_tokens`` is not counted toward
  OTPM) and input as ``input_tokens + cache_creation_input_tokens``: cache reads do not
  count toward ITPM (https://docs.anthropic.com/en/api/rate-limits).
* Gemini's TPM counts input tokens.
"""

from __future__ import annotations

import attrs

from .._types import Usage
from ._buckets import QuotaCost

__all__ = ("OutputEstimate", "QuotaRule")


@attrs.frozen(kw_only=True)
class QuotaRule:
    """How one provider counts a request against its token limits."""

    #: Reserve ``max_tokens`` for the output (it is what the provider counts at admission).
    output_at_max_tokens: bool = False
    #: Prompt-cache reads count toward the input limit.
    cache_reads_count: bool = True
    #: The provider's plain token limit (TPM) counts output tokens too.
    tokens_count_output: bool = True

    def _cost(self, input_tokens: float, output_tokens: float) -> QuotaCost:
        total = input_tokens + (output_tokens if self.tokens_count_output else 0.0)
        return QuotaCost(requests=1.0, tokens=total, input_tokens=input_tokens,
                         output_tokens=output_tokens)

    def estimate(
        self, *, input_tokens: int, max_tokens: int | None, expected_output: int | None = None
    ) -> QuotaCost:
        """The reservation for a request before it is sent.

        Args:
            input_tokens: counted prompt tokens (messages, system, tools).
            max_tokens: the request's output cap, or None when it sets none.
            expected_output: the output expected (e.g. :class:`OutputEstimate`), used where
                the provider counts output as produced; falls back to ``max_tokens``, then 0.
        """
        if self.output_at_max_tokens and max_tokens is not None:
            output = max_tokens
        elif expected_output is not None:
            output = expected_output if max_tokens is None else min(expected_output, max_tokens)
        else:
            output = max_tokens or 0
        return self._cost(float(max(input_tokens, 0)), float(max(output, 0)))

    def charged(self, usage: Usage, reserved: QuotaCost | None = None) -> QuotaCost:
        """What an answer cost the quota, from its reported usage (for ``settle``).

        Where the provider counts ``max_tokens`` at admission, the output it counted is the
        reserved one (or more, if the answer was longer): a short answer refunds nothing.
        """
        prompt = usage.prompt_tokens
        if not self.cache_reads_count:
            prompt -= usage.cached_tokens or 0
        output = float(max(usage.completion_tokens, 0))
        if self.output_at_max_tokens and reserved is not None:
            output = max(output, reserved.output_tokens)
        return self._cost(float(max(prompt, 0)), output)


@attrs.define
class OutputEstimate:
    """A moving average of output lengths seen, for rules that count output as produced.

    Until an answer is seen it guesses ``max_tokens // 4`` (or ``default``): reserving the
    full cap would pace a run at a fraction of its quota until the first refunds arrive.
    """

    #: Weight of each new observation.
    alpha: float = 0.1
    #: The guess with no observation and no max_tokens.
    default: int = 256
    average: float | None = None

    def observe(self, output_tokens: int) -> None:
        if self.average is None:
            self.average = float(output_tokens)
        else:
            self.average += self.alpha * (output_tokens - self.average)

    def expected(self, max_tokens: int | None) -> int:
        if self.average is not None:
            guess = round(self.average)
        else:
            guess = max_tokens // 4 if max_tokens else self.default
        return guess if max_tokens is None else min(guess, max_tokens)
