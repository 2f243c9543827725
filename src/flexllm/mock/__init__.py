"""A mock LLM server for tests, demos and benchmarks (``flexllm mock``).

A real HTTP/1.1 server on anyio (asyncio or trio) speaking the OpenAI, Claude and Gemini
dialects through the core's own codecs, with configurable delays, errors and answer sizes::

    from flexllm.mock import MockServer

    with MockServer(delay="0.1-0.3", error_rate=0.1) as url:
        client = LLMClient(base_url=url, model="mock-model", api_key="x")
"""

from __future__ import annotations

from ._app import ROUTES as ROUTES
from ._app import Route as Route
from ._content import ANSWER_PREFIX as ANSWER_PREFIX
from ._content import THINKING_PREFIX as THINKING_PREFIX
from ._options import MockOptions as MockOptions
from ._options import MockStats as MockStats
from ._options import parse_range as parse_range
from ._server import MockServer as MockServer
from ._server import run_mock as run_mock
from ._server import serve_mock as serve_mock

__all__ = (
    "ANSWER_PREFIX",
    "ROUTES",
    "THINKING_PREFIX",
    "MockOptions",
    "MockServer",
    "MockStats",
    "Route",
    "parse_range",
    "run_mock",
    "serve_mock",
)
