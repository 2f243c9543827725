"""flexllm_transports: how bytes move. No provider knowledge here.

``AnyioTransport`` is the default (HTTP/1.1 on anyio streams, asyncio and trio);
``HttpxTransport`` covers proxies and HTTP/2; ``default_transport`` picks between them.
``MemoryTransport`` and ``ReplayTransport`` (also in ``flexllm_transports.testing``)
answer without a network.
"""

from __future__ import annotations

from ._httpx import HttpxTransport as HttpxTransport, default_transport as default_transport
from ._lean import AnyioTransport as AnyioTransport
from ._protocol import (
    StreamResponse as StreamResponse,
    Timeouts as Timeouts,
    Transport as Transport,
)
from .testing import MemoryTransport as MemoryTransport, ReplayTransport as ReplayTransport

__all__ = (
    "AnyioTransport",
    "HttpxTransport",
    "MemoryTransport",
    "ReplayTransport",
    "StreamResponse",
    "Timeouts",
    "Transport",
    "default_transport",
)
