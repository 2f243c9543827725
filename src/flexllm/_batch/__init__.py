"""Checkpointed batches: input, preparation, the run, its records and checkpoint file.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from .input import BatchInput as BatchInput, JSONLFile as JSONLFile
from .legacy import (
    FLEXLLM_OPTIONS as FLEXLLM_OPTIONS,
    LegacyBatch as LegacyBatch,
    reject_flexllm_options as reject_flexllm_options,
    single_endpoint_params as single_endpoint_params,
    take_legacy_batch_options as take_legacy_batch_options,
)
from .prepare import (
    BatchMethods as BatchMethods,
    BatchResult as BatchResult,
    _check_metadata as _check_metadata,
    make_fast_hash as make_fast_hash,
    make_preparer as make_preparer,
    open_run as open_run,
)
from .run import BatchRun as BatchRun
from .types import BatchItem as BatchItem, ItemSource as ItemSource
