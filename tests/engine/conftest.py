"""Fixtures shared by every engine test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

#: Where blocking on an event loop is the contract, not a bug (file suffix -> functions).
ALLOWED = {
    # The *_sync methods block their caller until the answer is in, by definition, even when
    # that caller is a running loop (the Jupyter case they exist for).
    "flexllm/_engine/sync.py": {"call", "close", "_ensure"},
    # MockServer's thread mode (``with MockServer()``, start/stop) waits for its own thread:
    # it is the mock's synchronous API; ``async with MockServer()`` is the one that does not.
    "flexllm/mock/_server.py": {"start", "stop"},
    # A module import reads files once per process. The engine imports httpx, diskcache and
    # the like on first use (start-up time), so whether it happens inside a test's loop
    # depends on which test ran first.
    "<frozen importlib._bootstrap>": {"_find_and_load"},
}


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any blocking call (file, socket, sleep, lock) that flexllm's code makes on an
    asyncio event loop, in the test's loop or a ``*_sync`` or mock-server loop thread, as
    anyio's own suite does. blockbuster knows asyncio only: the trio runs are not watched.
    Blocking calls made by the tests themselves are not checked."""
    with blockbuster_ctx(["flexllm", "flexllm_core", "flexllm_transports"]) as bb:
        for function in bb.functions.values():
            for path, names in ALLOWED.items():
                function.can_block_in(path, names)
        yield bb
