"""Shared state on Redis: the response cache, the quota buckets and the budget of many processes.

Optional (``pip install 'flexllm[distributed]'``): coredis is imported only when a Redis URL is
used. coredis rather than redis-py because it runs on asyncio and trio alike (anyio);
here it runs on one asyncio loop in a daemon thread per process (:mod:`.connect`), so the
blocking cache store, the quota engine's synchronous settle calls and coroutines on either
loop all reach it the same way.

- :mod:`.cache`: the response cache's store, lease included (``ResponseCacheConfig.redis``);
- :mod:`.limits`: the RPM/TPM buckets of the quota engine, global (``limits_url=``);
- :mod:`.budget`: a batch's ``budget=``, global (``budget_url=``).
"""
