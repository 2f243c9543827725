"""One request on any event loop: endpoints, routing, limits, loops and the sync driver.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from .._public import publish
from .auth import vertex_auth as vertex_auth, vertex_token_source as vertex_token_source
from .endpoint import (
    Endpoint as Endpoint,
    EndpointStatistics as EndpointStatistics,
    RetryNotice as RetryNotice,
    TokenSource as TokenSource,
)
from .gates import ConcurrencyLimiter as ConcurrencyLimiter
from .outage import Outage as Outage
from .pool_stats import (
    PoolEndpointStatistics as PoolEndpointStatistics,
    PoolStatistics as PoolStatistics,
)
from .quota import EndpointQuota as EndpointQuota
from .router import PoolRouter as PoolRouter
from .stream_items import EventMode as EventMode, stream_items as stream_items
from .sync import SyncDriver as SyncDriver

publish(globals())
