"""Checkpointed batches: input, preparation, the run, its records and checkpoint file.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from .._public import publish
from .input import BatchInput as BatchInput, JSONLFile as JSONLFile
from .iterate import iterate_in_background as iterate_in_background
from .legacy import (
    FLEXLLM_OPTIONS as FLEXLLM_OPTIONS,
    LegacyBatch as LegacyBatch,
    pop_distribute as pop_distribute,
    reject_flexllm_options as reject_flexllm_options,
    take_legacy_batch_options as take_legacy_batch_options,
)
from .prepare import (
    BatchResult as BatchResult,
    collect_run as collect_run,
    iterate_run as iterate_run,
    make_fast_hash as make_fast_hash,
    make_preparer as make_preparer,
    open_run as open_run,
)
from .provider import (
    BatchAPISettings as BatchAPISettings,
    BatchJobStatus as BatchJobStatus,
    BatchPendingError as BatchPendingError,
    BatchTarget as BatchTarget,
    ProviderBatchRun as ProviderBatchRun,
    UnknownBatchJobError as UnknownBatchJobError,
    batch_api_settings as batch_api_settings,
    batch_jobs as batch_jobs,
    cancel_batch_jobs as cancel_batch_jobs,
)
from .run import BatchRun as BatchRun
from .structured import StructuredBatch as StructuredBatch
from .types import (
    BatchItem as BatchItem,
    BatchSpec as BatchSpec,
    ItemSource as ItemSource,
    Lane as Lane,
)

publish(globals())
