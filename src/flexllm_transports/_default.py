"""Which transport flexllm uses unless given one: the lean one, or httpx for proxies/HTTP/2.

``HttpxTransport`` is imported only when it is chosen (httpx takes a tenth of a second to
import, which every CLI command would pay), and the environment's proxy settings are read
only when some ``*_proxy`` variable is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._lean import AnyioTransport
from ._protocol import Timeouts, Transport
from ._request import route_for

__all__ = ("default_transport", "proxy_for")

_DEFAULT_TIMEOUTS = Timeouts()


def proxy_for(url: str | None) -> str | None:
    """The proxy the environment sets for ``url`` (or for any URL when None), honouring
    NO_PROXY; None when requests to it go direct."""
    import urllib.request  # imports the email package: only when a proxy may be set

    proxies = urllib.request.getproxies_environment()
    if url is None:
        return proxies.get("https") or proxies.get("http") or proxies.get("all")
    route = route_for(url)
    found = proxies.get(route.scheme) or proxies.get("all")
    if found is None:
        return None
    # proxy_bypass_environment reads NO_PROXY; it is public but missing from typeshed.
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if bypass(route.host, proxies):
        return None
    return found


def default_transport(
    proxy: str | None = None,
    *,
    base_url: str | None = None,
    timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    http2: bool = False,
    trust_env: bool = True,
    **lean_options: Any,
) -> Transport:
    """The transport flexllm uses unless given one.

    AnyioTransport, unless a proxy is configured (the ``proxy`` argument, or the
    environment's HTTP(S)_PROXY / ALL_PROXY for ``base_url``, honouring NO_PROXY) or
    HTTP/2 is asked for: then HttpxTransport, which speaks both.

    Args:
        lean_options: passed to :class:`AnyioTransport` (e.g. ``max_connections_per_host``).
    """
    env_proxy = proxy_for(base_url) if trust_env and _any_proxy_env() else None
    if proxy or env_proxy or http2:
        from ._httpx import HttpxTransport

        return HttpxTransport(
            proxy=proxy, http2=http2, trust_env=trust_env, timeouts=timeouts
        )
    return AnyioTransport(timeouts=timeouts, **lean_options)


def _any_proxy_env() -> bool:
    return any(key.lower().endswith("_proxy") for key in os.environ)
