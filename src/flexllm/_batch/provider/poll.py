"""Polling open provider jobs: one GET per job per round, with backoff and jitter.

The wait between rounds starts at the shortest interval and grows by half each round in
which no job ended, up to the longest, each wait jittered down by up to half so many runs
do not poll in step. A round that fails with a retryable error (a 429, a 5xx, a reset) is
just tried again later; ``_MAX_FAILED_ROUNDS`` in a row end the run with that error.
"""

from __future__ import annotations

import logging
import random

import anyio

from flexllm_core import BatchJob, FlexLLMError, ProviderError, TransportError

from .submit import OpenJob

__all__ = ("Poller",)

log = logging.getLogger("flexllm.batch")

_GROWTH = 1.5
_MAX_FAILED_ROUNDS = 8


class Poller:
    """Looks at open jobs until some have ended."""

    def __init__(self, shortest: float, longest: float) -> None:
        self._shortest = shortest
        self._longest = longest
        self._wait = shortest
        self._failed = 0
        self.rounds = 0

    async def next_ended(self, jobs: list[OpenJob]) -> list[tuple[OpenJob, BatchJob]]:
        """The jobs that have reached a terminal state, with their provider state (waits
        between rounds until at least one has)."""
        while True:
            self.rounds += 1
            try:
                ended = [(job, state) for job in jobs
                         if (state := await job.api.get(job.job_id)).state.terminal]
                self._failed = 0
            except (ProviderError, TransportError) as exc:
                if isinstance(exc, ProviderError) and not exc.retryable:
                    raise
                self._failed += 1
                if self._failed >= _MAX_FAILED_ROUNDS:
                    raise
                log.warning("batch poll failed (%s); trying again", exc)
                ended = []
            except FlexLLMError:
                raise
            if ended:
                self._wait = self._shortest
                return ended
            await anyio.sleep(self._wait * (0.5 + 0.5 * random.random()))
            self._wait = min(self._longest, self._wait * _GROWTH)
