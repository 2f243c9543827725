"""Finding out that an endpoint is down, in seconds rather than minutes.

A server that dies mid-batch used to cost every remaining item its whole retry schedule.
Connection failures (refused, DNS, TLS: :class:`ConnectError`) seen many times in a row,
with no answer between, mean the endpoint is down. The :class:`OutageWatch` of an endpoint
feeds them to the core's :class:`~flexllm_core.HealthTracker`; while it is down:

* only one attempt at a time reaches the network, as the probe, once per ``recovery`` seconds;
  the others fail at once without being sent (and back off as usual);
* a batch starts no new item on it (:meth:`OutageWatch.outage` says so, see ``Lane.outage``);
* once the outage has lasted one request's whole retry budget, the endpoint is given up on:
  attempts that are not a due probe fail at once and are not retried, and a batch marks
  every item it has not started as not sent, with a ConnectError naming the endpoint.

Any answer from the server (an error status too) means it is up. Timeouts and resets say
nothing either way: a server under load is not a dead one.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import attrs

from flexllm_core import (
    ConnectError,
    FlexLLMError,
    HealthState,
    HealthTracker,
    ProviderError,
    QuotaExhaustedError,
    ResponseFormatError,
    RetryPolicy,
    backoff_delay,
)

__all__ = ("Outage", "OutageWatch")

#: Connection failures in a row (no answer between) that mean the endpoint is down.
THRESHOLD = 5
#: The longest a paused batch worker sleeps before looking again.
_CHECK_EVERY = 0.5


@attrs.frozen(kw_only=True)
class Outage:
    """An endpoint out of service, as a batch worker sees it before starting an item."""

    #: Why the endpoint is out (a ConnectError, or a QuotaExhaustedError).
    error: FlexLLMError
    #: True once the endpoint is given up on: mark items not sent. False: wait and look again.
    given_up: bool
    #: Seconds worth waiting before looking again (while not given up).
    check_in: float

    def not_sent(self) -> FlexLLMError:
        """The error of an item left unsent because of this outage (a re-run sends it)."""
        message = f"not sent: {self.error}; a re-run sends it"
        if isinstance(self.error, QuotaExhaustedError):
            return QuotaExhaustedError(message, kind=self.error.kind, status=self.error.status,
                                       error_type=self.error.error_type,
                                       provider=self.error.provider)
        return ConnectError(message)


class OutageWatch:
    """The outage state of one endpoint, shared by every loop that uses it."""

    __slots__ = ("_give_up_after", "_health", "_label", "_lock")

    def __init__(self, base_url: str, policy: RetryPolicy, *, threshold: int = THRESHOLD) -> None:
        self._label = _host(base_url)
        self._health = HealthTracker(failure_threshold=threshold,
                                     recovery_time=float(policy.base_delay))
        #: One request's whole retry budget: after this long down, the endpoint is given up.
        self._give_up_after = sum(backoff_delay(policy, n, jitter=1.0)
                                  for n in range(1, policy.max_attempts))
        # The sync portal's loop and a caller's loop may share the endpoint.
        self._lock = threading.Lock()

    # -- around each attempt ---------------------------------------------------------------

    def admit(self) -> ConnectError | None:
        """Before an attempt: None to send it (maybe as the probe), or the error that fails
        it unsent while the endpoint is down."""
        if self._health.state is HealthState.HEALTHY:  # the common case, without the lock
            return None
        with self._lock:
            now = time.monotonic()
            if self._health.usable(now):
                self._health.take()
                return None
            return self._error()

    def observe(self, outcome: FlexLLMError | None) -> None:
        """After an attempt that was admitted: what it says about the endpoint (None: an
        answer came back)."""
        with self._lock:
            if outcome is None or isinstance(outcome, (ProviderError, ResponseFormatError)):
                self._health.success()  # the server answered: it is up
            elif isinstance(outcome, ConnectError):
                self._health.failure(time.monotonic())
            else:
                self._health.release()  # a timeout or a reset: no verdict

    def abandon(self) -> None:
        """An admitted attempt ended without an outcome (cancelled, or it never went)."""
        with self._lock:
            self._health.release()

    def given_up(self) -> bool:
        """The endpoint has been down longer than one request's retry budget."""
        if self._health.state is HealthState.HEALTHY:
            return False
        with self._lock:
            down = self._health.outage(time.monotonic())
        return down is not None and down >= self._give_up_after

    def give_up_in(self) -> float | None:
        """Seconds until the endpoint is given up on; None while it is up."""
        with self._lock:
            down = self._health.outage(time.monotonic())
        return None if down is None else max(0.0, self._give_up_after - down)

    # -- for a batch -----------------------------------------------------------------------

    def outage(self) -> Outage | None:
        """None while a batch may start items here (up, or a probe is due); else the outage."""
        if self._health.state is HealthState.HEALTHY:
            return None
        with self._lock:
            now = time.monotonic()
            health = self._health
            if health.usable(now):
                return None  # a probe is due: an item may go and be it
            down = health.outage(now) or 0.0
            left = self._give_up_after - down
            wait = health.probe_in(now)
            check_in = min(_CHECK_EVERY, max(left, 0.0), _CHECK_EVERY if wait is None else wait)
            return Outage(error=self._error(), given_up=left <= 0, check_in=check_in)

    def _error(self) -> ConnectError:
        failures = self._health.snapshot().consecutive_failures
        return ConnectError(
            f"{self._label} is down ({failures} connection attempts in a row failed)")


def _host(base_url: str) -> str:
    """``host:port`` of a URL: no scheme, path, query or credentials."""
    parts = urlsplit(base_url)
    host = parts.hostname or "the endpoint"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host
