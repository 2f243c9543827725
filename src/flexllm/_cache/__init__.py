"""The response cache and the coalescer for identical in-flight requests.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from .store import (
    ResponseCache as ResponseCache,
    ResponseCacheConfig as ResponseCacheConfig,
    open_response_cache as open_response_cache,
)
