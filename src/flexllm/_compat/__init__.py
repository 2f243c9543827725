"""Compatibility with flexllm 0.17.10: old names, old batch keywords, old helpers.

Kept apart from the engine so it can be read (and one day removed) as one piece. The engine
calls into it at two places only: ``build_request`` (:func:`reject_flexllm_options`) and the
batch methods' keywords (:func:`take_legacy_batch_options`); ``flexllm.__getattr__`` calls
:func:`resolve_legacy`. Everything else here is imported when an old name is first used.
"""

from __future__ import annotations

from ._names import resolve_legacy as resolve_legacy
from ._options import (
    FLEXLLM_OPTIONS as FLEXLLM_OPTIONS,
    LegacyBatch as LegacyBatch,
    reject_flexllm_options as reject_flexllm_options,
    single_endpoint_params as single_endpoint_params,
    take_legacy_batch_options as take_legacy_batch_options,
)

__all__ = (
    "FLEXLLM_OPTIONS",
    "LegacyBatch",
    "reject_flexllm_options",
    "resolve_legacy",
    "single_endpoint_params",
    "take_legacy_batch_options",
)
