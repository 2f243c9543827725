"""Vertex AI bearer tokens: a fixed token, or google-auth's Application Default Credentials.

Auth is an engine concern: the client and the pool both hand a token source to their
endpoints, so it lives here rather than beside the provider-named clients.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from typing import Any

import anyio.to_thread

from flexllm_core import AuthenticationError, FlexLLMError, UsageError

from .._config import ClientSettings
from .stats import TokenSource

__all__ = ("GoogleAuthToken", "StaticToken", "vertex_auth", "vertex_token_source")

#: Environment variable holding a ready Google OAuth access token (e.g. from
#: ``gcloud auth print-access-token``).
TOKEN_ENV = "GOOGLE_OAUTH_ACCESS_TOKEN"
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: Refresh this many seconds before the token's announced expiry.
_REFRESH_MARGIN = 300.0


class StaticToken:
    """A token that does not change (given, or from the environment)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(***)"

    async def token(self) -> str:
        return self._token


class GoogleAuthToken:
    """Application Default Credentials via google-auth; refreshed in a worker thread.

    google-auth's refresh is a blocking HTTP call, so it runs through
    ``anyio.to_thread``; a threading lock keeps concurrent callers (and the sync loop's
    thread) from refreshing twice.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._token: str | None = None
        self._valid_until = 0.0

    def __repr__(self) -> str:
        return "GoogleAuthToken(***)"

    def _refresh_blocking(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._valid_until:
                return self._token
            import google.auth
            import google.auth.transport.requests

            if self._credentials is None:
                self._credentials, _project = google.auth.default(scopes=list(_SCOPES))
            creds = self._credentials
            creds.refresh(google.auth.transport.requests.Request())
            token = creds.token
            if not isinstance(token, str) or not token:
                raise UsageError("google-auth returned no access token for Vertex AI")
            lifetime = 3600.0
            expiry = getattr(creds, "expiry", None)
            if expiry is not None:
                import datetime

                now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                lifetime = (expiry.replace(tzinfo=None) - now).total_seconds()
            self._token = token
            self._valid_until = time.monotonic() + max(lifetime - _REFRESH_MARGIN, 0.0)
            return token

    async def token(self) -> str:
        token = self._token
        if token is not None and time.monotonic() < self._valid_until:
            return token
        try:
            return await anyio.to_thread.run_sync(self._refresh_blocking)
        except FlexLLMError:
            raise
        except Exception as exc:  # google-auth's own errors: no credentials, refresh refused
            raise AuthenticationError(
                f"Vertex AI: could not get an access token from google-auth: "
                f"{type(exc).__name__}: {exc}",
                provider="gemini",
            ) from None


def vertex_token_source() -> TokenSource:
    """The bearer-token source for Vertex AI when no ``api_key`` was given.

    Raises:
        UsageError: no token in the environment and google-auth is not installed.
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return StaticToken(token)
    try:
        found = importlib.util.find_spec("google.auth") is not None
    except ImportError:  # no "google" namespace package at all
        found = False
    except ValueError:  # already imported without a spec (a stand-in module)
        found = "google.auth" in sys.modules
    if not found:
        raise UsageError(
            f"Vertex AI needs a bearer token: pass api_key=, set {TOKEN_ENV}, "
            "or install google-auth (pip install 'flexllm[google]')"
        )
    return GoogleAuthToken()


def vertex_auth(settings: ClientSettings, *, explicit_key: str | None) -> TokenSource | None:
    """The one Vertex AI auth rule of the client and the pool (the README's).

    An explicit ``api_key`` is the bearer token as given (None returned: the key is used);
    else ``GOOGLE_OAUTH_ACCESS_TOKEN``, else google-auth's default credentials. A key from
    the environment (``FLEXLLM_API_KEY``) is never sent as a Vertex bearer token.
    """
    if not settings.use_vertex_ai or explicit_key is not None:
        return None
    return vertex_token_source()
