"""Endpoint URLs: checked once when a client is built, and shown only with secrets removed.

A ``base_url`` may carry credentials (``http://user:secret@host/v1``) or a key in its query;
:func:`redact_url` is the one way a URL is rendered in a repr, an error or a log line, so
neither reaches a message. :func:`check_url` refuses a URL the transport could only fail on
later (or look up in DNS), naming the argument and showing the value redacted.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ._errors import UsageError

__all__ = ("check_url", "redact_url")

#: Characters a host never has; whitespace and controls are checked over the whole URL.
_BAD_HOST = re.compile(r"[\s<>\"{}|\\^`]")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` and query replaced by ``***``; works on broken URLs.

    ``http://u:s@host:8/v1?key=k`` -> ``http://***@host:8/v1?***``. The host and path are
    kept as written, so an error about them still shows what the user typed.
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    # A password may hold an unescaped "/": everything up to the last "@" before the query
    # is taken as userinfo (a path with an "@" is over-redacted, never leaked).
    before_query = min((i for i in (rest.find("?"), rest.find("#")) if i != -1), default=len(rest))
    at_sign = rest.rfind("@", 0, before_query)
    userinfo = at_sign != -1
    rest = rest[at_sign + 1:]
    authority_end = min((i for i in (rest.find(m) for m in "/?#") if i != -1), default=len(rest))
    authority, tail = rest[:authority_end], rest[authority_end:]
    if userinfo:
        authority = "***@" + authority
    tail = tail.partition("#")[0]
    path, qmark, _query = tail.partition("?")
    shown = authority + path + ("?***" if qmark else "")
    return f"{scheme}://{shown}" if sep else shown


def check_url(name: str, value: object, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """``value`` stripped, when it is a usable absolute URL with one of ``schemes``.

    Raises:
        UsageError: not a string, whitespace inside, no or another scheme, no host, a port
            that is not a number in 1-65535; the message names ``name`` and shows the value
            through :func:`redact_url`.
    """
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string URL, got {type(value).__name__}")
    text = value.strip()
    shown = redact_url(text)
    allowed = " or ".join(f"{s}://" for s in schemes)
    example = f"{schemes[0]}://localhost:8000/v1" if "http" in schemes else f"{schemes[0]}://host:1080"
    space = _SPACE.search(text)
    if space:
        what = "a space" if space.group() == " " else f"the character {space.group()!r}"
        raise UsageError(f"{name} must not contain whitespace or control characters; "
                         f"{shown!r} has {what}")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # an unbalanced [ of an IPv6 literal
        raise UsageError(f"{name} is not a valid URL ({exc}): {shown!r}") from None
    if parts.scheme.lower() not in schemes:
        got = f"scheme {parts.scheme!r}" if "://" in text else "no scheme"
        raise UsageError(f"{name} must be an {allowed} URL with a host, like {example}; "
                         f"got {got}: {shown!r}")
    host = parts.hostname
    if not host:
        raise UsageError(f"{name} must be an {allowed} URL with a host, like {example}; "
                         f"got no host: {shown!r}")
    if _BAD_HOST.search(host):
        raise UsageError(f"{name} has an invalid host {host!r}: {shown!r}")
    try:
        port = parts.port
    except ValueError:
        if "@" in shown.partition("?")[0] and "@" not in parts.netloc:
            # ``http://u:pa/ss@host``: the parser took "u" for the host and "pa" for the port.
            raise UsageError(f"{name} has credentials with a '/', '?' or '#' in them; write "
                             f"them %-encoded (%2F, %3F, %23): {shown!r}") from None
        port_text = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
        raise UsageError(f"{name} must have a port that is a number in 1-65535, "
                         f"got {port_text!r}: {shown!r}") from None
    if port == 0:
        raise UsageError(f"{name} must have a port that is a number in 1-65535, got '0': {shown!r}")
    return text
