"""The DEBUG story of each request: one line per attempt, on the ``flexllm.request`` logger.

A line names the endpoint (provider, host and port: never the path, query or userinfo of
the URL, so no credential), the model, the attempt number, the outcome (HTTP status, or
the error class and status) and its latency; a failed attempt's line says what happens
next: the retry delay chosen and why (the server's ``Retry-After`` or the backoff), or why
the request gives up. Prompts, answers and error messages (which may quote the prompt) are
logged only when ``FLEXLLM_LOG_CONTENT=1``.

Cheap when DEBUG is off: the request path asks :meth:`AttemptLog.enabled` once per request
and builds nothing else.
"""

from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlsplit

from flexllm_core import ChatRequest, ChatResult, FlexLLMError, GiveUp, RetryDecision, RetryPolicy

__all__ = ("AttemptLog", "log_content")

log = logging.getLogger("flexllm.request")

#: Characters of a prompt, answer or error message shown with FLEXLLM_LOG_CONTENT=1.
_CONTENT_CHARS = 500


def log_content() -> bool:
    """True when the user asked for message content in the logs (``FLEXLLM_LOG_CONTENT=1``)."""
    return os.environ.get("FLEXLLM_LOG_CONTENT") == "1"


def _clip(text: str) -> str:
    return text if len(text) <= _CONTENT_CHARS else text[:_CONTENT_CHARS] + "…"


def _last_message(req: ChatRequest) -> str:
    content = req.messages[-1].get("content") if req.messages else None
    return _clip(content if isinstance(content, str) else repr(content))


class AttemptLog:
    """Writes the attempt lines of one endpoint."""

    class Told:
        """One attempt's context, made only when DEBUG is on."""

        __slots__ = ("attempt", "req", "started")

        def __init__(self, req: ChatRequest, attempt: int, started: float) -> None:
            self.req = req
            self.attempt = attempt
            self.started = started

    def __init__(self, provider: str, base_url: str, policy: RetryPolicy) -> None:
        parts = urlsplit(base_url)
        try:
            port = parts.port
        except ValueError:
            port = None
        host = parts.hostname or "?"
        self.where = f"{provider} {host}" + (f":{port}" if port is not None else "")
        self._policy = policy

    @staticmethod
    def enabled() -> bool:
        return log.isEnabledFor(logging.DEBUG)

    def _line(self, told: Told, outcome: str, then: str) -> None:
        log.debug("%s model=%s attempt %d: %s in %.3fs%s", self.where, told.req.model,
                  told.attempt, outcome, time.monotonic() - told.started, then)

    def answered(self, told: Told, status: int, result: ChatResult) -> None:
        then = ""
        if log_content():
            then = f" prompt={_last_message(told.req)!r} answer={_clip(result.text)!r}"
        self._line(told, str(status), then)

    def failed(self, told: Told, error: FlexLLMError, decision: RetryDecision | None) -> None:
        status = getattr(error, "status", None)
        outcome = type(error).__name__ + (f" {status}" if isinstance(status, int) else "")
        if decision is None:
            then = "; not retried: part of the answer was already streamed"
        elif isinstance(decision, GiveUp):
            then = f"; giving up: {decision.reason}"
        else:
            hint = getattr(error, "retry_after", None)
            why = (f"the server asked for {hint:g}s" if isinstance(hint, (int, float))
                   else f"backoff after attempt {told.attempt} of {self._policy.max_attempts}")
            then = f"; retry in {decision.delay:.2f}s ({why})"
        if log_content():
            then += f" error={_clip(str(error))!r} prompt={_last_message(told.req)!r}"
        self._line(told, outcome, then)
