"""Which event loop runs this code, without importing (or asking) either library."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ("native_loop",)


def native_loop() -> Any:
    """The running loop's own object: trio's token, or the asyncio loop; None outside both.

    Trio is asked first: trio in guest mode runs inside an asyncio loop, and its tasks are
    trio's. Neither library is imported here (a trio program never loads asyncio), and each
    question is one C call, where anyio's (sniffio, then ``asyncio.current_task()``) is a few.
    """
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    aio = sys.modules.get("asyncio")
    return aio._get_running_loop() if aio is not None else None
