"""A chaos run, small: every fault of :class:`FaultProxy` in front of a real mock, on both loops.

The invariants of issue 10, checked from the outside: no wrong answer, no empty answer taken for
one, no stream returned short without an error, one success per index after a resume.
``benchmarks/chaos.py`` runs the same scenario at size and prints its figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .chaos import run_chaos
from .fault_proxy import FAULTS

pytestmark = pytest.mark.anyio

ITEMS, STREAMS = 60, 30


async def test_under_faults_every_answer_is_right_or_a_visible_failure(tmp_path: Path) -> None:
    # One retry only: with three, every item of this small run gets through on the first pass
    # and the resume would have nothing to show.
    figures = await run_chaos(tmp_path, items=ITEMS, streams=STREAMS, seed=1, retries=1)
    assert figures.must_be_zero() == dict.fromkeys(figures.must_be_zero(), 0), figures.index_problems
    assert set(figures.faults) == {"ok", *FAULTS}  # the seed hits every fault
    assert figures.answered + figures.failed == ITEMS
    assert figures.failed > 0  # some items ran out of retries: the resume has work to do
    # The resume sent exactly the failed items (each once unless faulted again), and finished them.
    assert figures.mock_requests_resume >= figures.failed - figures.failed_after_resume
    assert figures.answered_after_resume + figures.failed_after_resume == ITEMS
    assert figures.failed_after_resume < figures.failed
    raised = sum(figures.streams_raised.values())
    assert figures.streams_complete + raised == STREAMS
    assert set(figures.streams_raised) <= {"IncompleteStreamError", "ReadError", "RequestTimeout",
                                           "ResponseFormatError", "ServerError", "RateLimitError"}
