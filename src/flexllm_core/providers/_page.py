"""What an error body that is not JSON says, for all three codecs alike.

A proxy or CDN in front of the provider answers with its own page: nginx's "502 Bad
Gateway", Cloudflare's 520/522/524 pages (whose title, ``api.example.com | 524: A timeout
occurred``, sits behind a few hundred bytes of conditional comments and styles). The
page's ``<title>`` names the fault; without one, its first words, markup removed.
"""

from __future__ import annotations

import re

__all__ = ("non_json_message", "page_summary")

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HIDDEN = re.compile(r"<!--.*?-->|<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_LIMIT = 200


def page_summary(text: str) -> str:
    """One line saying what a non-JSON body is: its HTML title, else its first words."""
    title = _TITLE.search(text)
    if title and title.group(1).strip():
        return " ".join(title.group(1).split())[:_LIMIT]
    flat = " ".join(_TAGS.sub(" ", _HIDDEN.sub(" ", text)).split())
    return flat[:_LIMIT] + ("..." if len(flat) > _LIMIT else "")


def non_json_message(status: int | None, text: str) -> str:
    """The error message for a body that is not JSON (an empty one included)."""
    where = f"HTTP {status}" if status is not None else "the server"
    summary = page_summary(text)
    if not summary:
        return f"{where} answered with an empty body"
    return f"{where} answered with a non-JSON body (a proxy or gateway page?): {summary}"
