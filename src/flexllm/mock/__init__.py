"""A mock LLM server for tests, demos and benchmarks (``flexllm mock``).

A real HTTP/1.1 server on anyio (asyncio or trio) speaking the OpenAI, Claude and Gemini
dialects through the core's own codecs, with configurable delays, errors and answer sizes::

    from flexllm.mock import MockServer

    with MockServer(delay="0.1-0.3", error_rate=0.1) as url:
        client = LLMClient(base_url=url, model="mock-model", api_key="x")
"""

from __future__ import annotations

from ._app import ROUTES as ROUTES, Route as Route
from ._batches import (
    BatchClock as BatchClock,
    BatchOptions as BatchOptions,
    MockBatches as MockBatches,
)
from ._content import ANSWER_PREFIX as ANSWER_PREFIX, THINKING_PREFIX as THINKING_PREFIX
from ._options import MockOptions as MockOptions, MockStats as MockStats, parse_range as parse_range
from ._server import MockServer as MockServer, run_mock as run_mock, serve_mock as serve_mock

__all__ = (
    "ANSWER_PREFIX",
    "ROUTES",
    "BatchClock",
    "BatchOptions",
    "MockBatches",
    "THINKING_PREFIX",
    "MockOptions",
    "MockServer",
    "MockStats",
    "Route",
    "parse_range",
    "run_mock",
    "serve_mock",
)

# Public names say they are flexllm.mock's, not their private module's (as in flexllm).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(f"{__name__}."):
        setattr(_obj, "__module__", __name__)  # noqa: B010
del _name, _obj
