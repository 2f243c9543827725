"""The endpoints a provider batch run submits to: one for a client, several for a pool.

A pool's batch is split between its endpoints by share (``load_balance``'s weights; under
``fallback`` the first endpoint takes it all, the rest are spares), and a job an endpoint
refuses goes to the next one. Each job is bound to the endpoint that created it: the
journal keeps the endpoint's position and its redacted URL, and a resumed run polls there
or, when the pool no longer has that endpoint there, says so before sending anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexllm_core import UsageError

from .api import BatchAPI, BatchTarget
from .journal import JournalJob

__all__ = ("BatchEndpoints",)


class BatchEndpoints:
    """The batch APIs of a run's endpoints, in the client's order."""

    def __init__(self, targets: Sequence[BatchTarget]) -> None:
        assert targets, "a provider batch run needs an endpoint"
        self.apis = [BatchAPI(t) for t in targets]

    @property
    def online(self) -> BatchTarget:
        """Where rows go online (``mode="auto"``): every target carries the client's path."""
        return self.apis[0].target

    def failover(self, first: int) -> list[int]:
        """Endpoint positions to try for a job meant for ``first``: it, then the others in order."""
        return [first] + [i for i in range(len(self.apis)) if i != first]

    def split(self, ids: Sequence[str]) -> list[tuple[int, list[str]]]:
        """``ids`` (in input order) cut into consecutive runs, one per endpoint by share."""
        shares = [max(0.0, api.target.share) for api in self.apis]
        total = sum(shares)
        if total <= 0:
            shares, total = [1.0] + [0.0] * (len(shares) - 1), 1.0
        out: list[tuple[int, list[str]]] = []
        start, cumulative = 0, 0.0
        for i, share in enumerate(shares):
            cumulative += share
            end = len(ids) if i == len(shares) - 1 else round(len(ids) * cumulative / total)
            if end > start:
                out.append((i, list(ids[start:end])))
            start = max(start, end)
        return out

    def for_entry(self, entry: JournalJob, where: str) -> BatchAPI:
        """The API that holds ``entry``'s job (journal lines without an endpoint: the first).

        Raises:
            UsageError: the client has no endpoint at the job's position, or another one there.
        """
        name = entry.job_id or entry.tag
        if entry.endpoint >= len(self.apis):
            raise UsageError(
                f"{where}: provider batch {name} was submitted through endpoint "
                f"{entry.endpoint} ({entry.url or 'URL not recorded'}), and this client has "
                f"{len(self.apis)} endpoint(s): use the client (or pool) that submitted it")
        api = self.apis[entry.endpoint]
        if entry.url is not None and api.target.label and entry.url != api.target.label:
            raise UsageError(
                f"{where}: provider batch {name} was submitted to {entry.url}, and this "
                f"client's endpoint {entry.endpoint} is {api.target.label}: it would be looked "
                "for in the wrong place. Use the client (or pool) that submitted it, or cancel "
                "it there ('flexllm batch cancel')")
        return api
