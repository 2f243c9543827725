"""The response cache, its stores and the lease that lets one caller fetch while others wait.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from .._public import publish
from .lease import Fill as Fill
from .store import (
    ResponseCache as ResponseCache,
    ResponseCacheConfig as ResponseCacheConfig,
    open_response_cache as open_response_cache,
)

publish(globals())
