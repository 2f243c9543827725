"""Keep the garbage collector's full passes short while a list batch holds its results.

A list batch keeps every result until it returns: a million items (and the caller's million
inputs) are objects the collector's full passes walk again and again, each a stop of the
event loop of a few hundred milliseconds. Frozen (``gc.freeze``), objects stay out of those
passes, and are still freed by reference counting as usual; only cyclic garbage among them
waits until they are unfrozen, at the end of the batch.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ("HeapFreezer", "frozen_heap")

#: Results collected between two freezes.
_EVERY = 50_000


class HeapFreezer:
    """Counts the results held; freezes the heap every ``_EVERY`` of them."""

    __slots__ = ("_freeze", "_left")

    def __init__(self, freeze: Callable[[], None] | None) -> None:
        self._freeze = freeze
        self._left = _EVERY

    def held(self) -> None:
        """One more result is held."""
        self._left -= 1
        if self._left <= 0:
            self._left = _EVERY
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
