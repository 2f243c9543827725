"""flexllm_transports: how bytes move. No provider knowledge here.

``AnyioTransport`` is the default (HTTP/1.1 on anyio streams, asyncio and trio);
``HttpxTransport`` covers proxies and HTTP/2; ``default_transport`` picks between them.
``MemoryTransport`` and ``ReplayTransport`` (also in ``flexllm_transports.testing``)
answer without a network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._default import default_transport as default_transport
from ._lean import AnyioTransport as AnyioTransport
from ._native import native_loop as native_loop
from ._protocol import (
    StreamResponse as StreamResponse,
    Timeouts as Timeouts,
    Transport as Transport,
)
from ._watch import DeadlineWatch as DeadlineWatch

__all__ = (
    "AnyioTransport",
    "DeadlineWatch",
    "HttpxTransport",
    "MemoryTransport",
    "ReplayTransport",
    "StreamResponse",
    "Timeouts",
    "Transport",
    "default_transport",
    "native_loop",
)

# Public names say they are flexllm_transports', not their private module's (as in flexllm).
for _name in __all__:
    _obj = globals().get(_name)
    if getattr(_obj, "__module__", "").startswith(f"{__name__}._"):
        setattr(_obj, "__module__", __name__)  # noqa: B010
del _name, _obj

if TYPE_CHECKING:
    from ._httpx import HttpxTransport as HttpxTransport
    from .testing import MemoryTransport as MemoryTransport, ReplayTransport as ReplayTransport


def __getattr__(name: str) -> Any:
    # HttpxTransport on first use: importing httpx costs a tenth of a second; the testing
    # transports are for tests.
    if name == "HttpxTransport":
        from ._httpx import HttpxTransport

        HttpxTransport.__module__ = __name__
        return HttpxTransport
    if name in ("MemoryTransport", "ReplayTransport"):
        from . import testing

        value = getattr(testing, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flexllm_transports' has no attribute {name!r}")
