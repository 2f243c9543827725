"""The price table the engine uses: the bundled one, overlaid by the user's updated copy.

``flexllm pricing --update`` stores OpenRouter's list in ``~/.flexllm/pricing.json``; every
cost tracker then reads :func:`current_pricing`, so an update reaches batches without a
restart of anything. The bundled table stays the fallback for models the update lacks,
and a broken user file is reported once and ignored (it must never stop a batch).
Reading is blocking: the engine calls this through ``anyio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from flexllm_core import JSONValue, PricingTable, UsageError, default_pricing, load_pricing

from .._config import config_dir

__all__ = ("current_pricing", "pricing_problem", "save_user_pricing", "user_pricing_path")

log = logging.getLogger("flexllm.cost")

_lock = threading.Lock()
_cached: tuple[tuple[str, int, int], PricingTable] | None = None
_problem: str | None = None


def user_pricing_path() -> Path:
    """``~/.flexllm/pricing.json``."""
    return config_dir() / "pricing.json"


def pricing_problem() -> str | None:
    """Why the user's table was ignored by the last :func:`current_pricing`, if it was."""
    return _problem


def current_pricing() -> PricingTable:
    """The bundled table with the user's updated prices (when present) winning per model."""
    global _cached, _problem
    path = user_pricing_path()
    try:
        st = path.stat()
    except OSError:
        _problem = None
        return default_pricing()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        try:
            doc: JSONValue = json.loads(path.read_text("utf-8"))
            if not isinstance(doc, dict):
                raise UsageError("expected a JSON object")
            table = load_pricing(doc)
        except (OSError, ValueError) as exc:
            if _problem is None:
                log.warning("ignoring %s: %s; using the bundled prices", path, exc)
            _problem = f"{path}: {exc}"
            return default_pricing()
        _problem = None
        _cached = (key, table)
        return table


def save_user_pricing(doc: dict[str, JSONValue]) -> Path:
    """Write ``doc`` (a table document) to the user's pricing file, atomically.

    Raises:
        UsageError: the document is not a valid table (nothing is written then).
    """
    from .._config import atomic_write

    load_pricing(doc, include_bundled=False)  # validate before replacing a working file
    path = user_pricing_path()
    atomic_write(path, json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    return path
