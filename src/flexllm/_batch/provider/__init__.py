"""``mode="batch_api"``: a batch call run through the provider's own batch API (half price).

Other subpackages import these names from here (or from ``flexllm._batch``).
"""

from __future__ import annotations

from .api import BatchTarget as BatchTarget
from .manage import (
    BatchJobStatus as BatchJobStatus,
    batch_jobs as batch_jobs,
    cancel_batch_jobs as cancel_batch_jobs,
)
from .run import (
    BatchAPISettings as BatchAPISettings,
    BatchPendingError as BatchPendingError,
    ProviderBatchRun as ProviderBatchRun,
)
from .settings import batch_api_settings as batch_api_settings
from .submit import UnknownBatchJobError as UnknownBatchJobError
