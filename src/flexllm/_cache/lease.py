"""One caller fetches, the others wait: a lease per missing cache key.

Four processes running the same prompts on one cache directory used to send every prompt
that missed in two of them at once (610 requests for 500 prompts). Now the first caller to
miss a key puts a lease on it (the store's atomic insert-if-absent, with an
expiry, so it wins only where there is no answer); the others, in any process, find the
lease and wait for the answer, which replaces it, instead of sending.

- Bounded: nobody waits longer than ``config.lease`` seconds; then it sends itself.
- A dead holder never blocks the rest: the lease expires ``lease`` seconds after it was taken
  (a SIGKILLed process cannot release it; expiry does).
- The holder always lets go: storing its answer and releasing the lease are one thread hop;
  a failure releases without storing, so one waiter takes over and nothing bad is cached.
- Callers of the same process wait on an event set when the holder lets go; callers of other
  processes poll the store (reads only) with a growing interval.

A lease's token starts with ``LEASE_MARK`` and names the holder (pid and random bits): a
holder whose lease expired and was taken over cannot release the new holder's lease (an
answer it stores late only replaces the other's lease, or an equal answer).
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from flexllm_core import ChatResult

from .._lowlevel import new_event

if TYPE_CHECKING:
    from .store import ResponseCache

__all__ = ("LEASE_MARK", "Fill")

log = logging.getLogger("flexllm.cache")

#: A lease token starts with this (JSON never does): a store reads a leased key back as it.
LEASE_MARK = "\x00lease:"
#: First and longest pause between two looks at a key another process is fetching.
_FIRST_POLL = 0.01
_MAX_POLL = 0.2


class Fill:
    """The outcome of looking a key up: ``hit``, or the duty to send and :meth:`keep`.

    Use as ``async with cache.filling(key) as fill``; see
    :meth:`~flexllm._cache.store.ResponseCache.filling`.
    """

    __slots__ = ("_cache", "_event", "_handed_over", "_kept", "_looked", "_thread", "_token",
                 "hit", "key")

    def __init__(self, cache: ResponseCache, key: str) -> None:
        self._cache = cache
        self.key = key
        #: The cached answer (possibly written by another caller while this one waited).
        self.hit: ChatResult | None = None
        self._token: str | None = None
        #: Set when this holder lets go; made only once a caller on its loop waits for it.
        self._event: anyio.Event | None = None
        self._thread = 0  # the holder's event loop's thread
        self._kept: ChatResult | None = None
        self._handed_over = False
        self._looked = False  # the key was claimed already (see :meth:`claimed`)

    @classmethod
    def claimed(cls, cache: ResponseCache, key: str, got: ChatResult | str | None) -> Fill:
        """A Fill for a key already looked up in a group (a batch claims its next items'
        keys in one store call: :meth:`ResponseCache.claim_blocking`), on the event loop.

        ``got`` is the key's outcome there: its answer (``hit``), or a lease token ("" when
        leases are off): entering returns at once. None (another caller holds the key):
        entering waits for it, as a Fill not claimed ahead does.
        """
        fill = cls(cache, key)
        fill._looked = fill._took(got, None)
        return fill

    def _took(self, got: ChatResult | str | None, started: float | None) -> bool:
        """Settle a look at the key (``started``: when this caller began waiting, if it
        did): True when it holds the answer or the lease now, False while another holds it."""
        cache, key = self._cache, self.key
        if isinstance(got, str):
            if got:
                self._token = got
                self._thread = threading.get_ident()
                cache.held[key] = self
            cache.count(hit=False, waited=started is not None)
            return True
        if got is None:
            return False
        self.hit = got
        cache.count(hit=True, waited=started is not None)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("cache hit %s…%s", key[:12], "" if started is None else
                      f" after waiting {anyio.current_time() - started:.2f} s for another caller")
        return True

    def keep(self, result: ChatResult) -> ChatResult:
        """Store ``result`` when the block ends (pass successful answers only); return it."""
        self._kept = result
        return result

    def hand_over(self, result: ChatResult) -> None:
        """Keep ``result``, but let the caller store it later in a thread hop it makes anyway
        (a batch's checkpoint writer): :meth:`store_now` there, then :meth:`stored` back on
        the loop. Until then the lease stays held and this process's waiters keep waiting.
        """
        self._kept = result
        self._handed_over = True

    @staticmethod
    def store_now(fills: list[Fill]) -> None:
        """In a worker thread: store the handed-over answers (each replaces its lease)."""
        by_cache: dict[int, list[Fill]] = {}
        for fill in fills:
            by_cache.setdefault(id(fill._cache), []).append(fill)
        for group in by_cache.values():
            group[0]._cache.store_blocking([(f.key, f._kept) for f in group if f._kept is not None])

    def stored(self, ok: bool) -> None:
        """On the loop, after :meth:`store_now` (``ok``) or its failure: let the waiters look."""
        if ok:
            self._cache.count_store()
        self._wake()

    async def __aenter__(self) -> Fill:
        if self._looked:
            return self
        cache, key = self._cache, self.key
        seconds = cache.config.lease
        started: float | None = None
        poll = _FIRST_POLL
        while True:
            local = cache.held.get(key)
            if local is not None and local._thread != threading.get_ident():
                local = None  # held on another event loop: poll the store like other processes
            if local is None and self._took(await cache.claim(key), started):
                return self
            now = anyio.current_time()
            if started is None:
                started = now
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("cache key %s… is being fetched by another caller; waiting up to %g s",
                              key[:12], seconds)
            left = started + seconds - now
            if left <= 0:
                log.info("cache key %s…: waited %g s for another caller's answer; sending the "
                         "request here", key[:12], seconds)
                cache.count(hit=False, waited=True, gave_up=True)
                return self
            if local is not None:
                if local._event is None:
                    local._event = new_event()
                with anyio.move_on_after(left):
                    await local._event.wait()
            else:
                await anyio.sleep(min(poll, left))
                poll = min(poll * 2, _MAX_POLL)

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token = self._token
        if token is None and self._kept is None:
            return
        if self._handed_over:
            if et is None:
                return  # stored by whoever it was handed to
            self._handed_over = False  # the block failed after all: store it here
        cache = self._cache
        try:
            await cache.finish(self.key, token, self._kept)
        except Exception as error:
            if self._kept is not None:
                raise
            # The lease expires on its own; the caller's own error matters more.
            log.warning("cache: could not release the lease on %s… (%s); it expires in %g s",
                        self.key[:12], error, cache.config.lease)
        finally:
            self._wake()

    async def let_go(self) -> None:
        """Leave a Fill entered (or claimed ahead) without an answer: its item will not be
        sent; its lease, if it holds one, goes back and a waiter takes over."""
        await self.__aexit__(None, None, None)

    def give_up(self) -> tuple[str, str] | None:
        """A claimed Fill that will not be entered (its item was never sent): stop holding
        its key here; the (key, token) of the lease the caller must release, if any."""
        token = self._token
        self._wake()
        self._token = None
        return None if not token else (self.key, token)

    def _wake(self) -> None:
        if self._token is None:
            return
        cache = self._cache
        if cache.held.get(self.key) is self:
            del cache.held[self.key]
        if self._event is not None:
            self._event.set()
