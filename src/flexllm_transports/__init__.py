"""flexllm_transports: how bytes move. No provider knowledge here."""

from __future__ import annotations

from ._lean import AnyioTransport as AnyioTransport
from ._protocol import StreamResponse as StreamResponse
from ._protocol import Timeouts as Timeouts
from ._protocol import Transport as Transport

__all__ = (
    "AnyioTransport",
    "StreamResponse",
    "Timeouts",
    "Transport",
)
