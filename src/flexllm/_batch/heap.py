"""Keep the garbage collector's full passes short while a batch runs.

A list batch keeps every result until it returns, and the caller often holds a million
inputs: objects the collector's full passes walk again and again, each a stop of the event
loop of a hundred milliseconds or more. Frozen (``gc.freeze``), objects stay out of those
passes, and are still freed by reference counting as usual; only cyclic garbage among them
waits until they are unfrozen, at the end of the batch.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ("FREEZE_EVERY", "HeapFreezer", "frozen_heap")

#: Results collected between two freezes.
FREEZE_EVERY = 50_000


class HeapFreezer:
    """Counts the results held; freezes the heap every ``FREEZE_EVERY`` of them."""

    __slots__ = ("_freeze", "_left")

    def __init__(self, freeze: Callable[[], None] | None) -> None:
        self._freeze = freeze
        self._left = FREEZE_EVERY

    def held(self) -> None:
        """One more result is held."""
        self._left -= 1
        if self._left <= 0:
            self.freeze_now()

    def freeze_now(self) -> None:
        """Freeze what was made since the last freeze (from any thread)."""
        self._left = FREEZE_EVERY
        if self._freeze is not None:
            self._freeze()


@contextmanager
def frozen_heap() -> Iterator[HeapFreezer]:
    """Freeze what exists now and, as results pile up, what they add; unfreeze at the end.

    Left alone when the collector is off or something else froze objects already (a
    pre-fork server's own ``gc.freeze``: unfreezing would undo it).
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield HeapFreezer(None)
        return
    gc.freeze()
    try:
        yield HeapFreezer(gc.freeze)
    finally:
        gc.unfreeze()
