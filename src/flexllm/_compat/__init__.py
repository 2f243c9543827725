"""Compatibility with flexllm 0.17.10: old names, old batch keywords, old helpers.

Kept apart from the engine so it can be read (and one day removed) as one piece, above the
clients it wraps: only ``flexllm.__getattr__`` calls into it (:func:`resolve_legacy`), and
each old name's module is imported when that name is first used. The old batch keywords and
the table of option names never sent to a provider are the batch's own concern
(``flexllm._batch.legacy``).
"""

from __future__ import annotations

from ._names import resolve_legacy as resolve_legacy

__all__ = ("resolve_legacy",)
