"""Shared test configuration: every ``@pytest.mark.anyio`` test runs on asyncio and trio."""

from __future__ import annotations

import pytest

from redis_server import redis_server, redis_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
