"""The engine's own errors, in one module (the core's are in ``flexllm_core``).

Each error subclasses ``FlexLLMError`` (``UsageError`` for bad input), so
``except flexllm.FlexLLMError`` catches everything flexllm raises; ``RequeueItem`` is a lane's
signal to the batch runner, never seen by a user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flexllm_core import FlexLLMError, JSONDict, UsageError

from ._public import publish

__all__ = (
    "AllEndpointsFailedError",
    "BudgetExceededError",
    "ChangedInputError",
    "ConfigError",
    "InvalidLineError",
    "RecordedError",
    "RequeueItem",
)

#: Changed indices listed in a ChangedInputError message before "and N more".
_MAX_LISTED = 20


class ConfigError(UsageError):
    """The config file (or the environment it points to) is wrong: the message names the
    file, the key and what was expected."""


class InvalidLineError(UsageError):
    """A JSONL input line that cannot be sent; the message starts ``line N:``."""

    def __init__(self, message: str, *, line: int, metadata: JSONDict | None = None) -> None:
        super().__init__(message)
        self.line = line
        #: The line's metadata fields, when it was an object (kept in its record).
        self.metadata = metadata


class ChangedInputError(UsageError):
    """Inputs no longer match their checkpoint records (the list was edited or reordered)."""

    def __init__(self, path: str, indices: Sequence[int]) -> None:
        shown = ", ".join(map(str, indices[:_MAX_LISTED]))
        more = f" and {len(indices) - _MAX_LISTED} more" if len(indices) > _MAX_LISTED else ""
        super().__init__(
            f"{len(indices)} input(s) changed since they were recorded in {path!r}: index {shown}{more}. "
            "Their requests no longer match the checkpoint; restore the original input, use a "
            "new output_jsonl, or pass on_changed='rerun' to send them again"
        )
        self.indices = tuple(indices)


class BudgetExceededError(FlexLLMError):
    """An item was not sent because its worst-case cost would pass the budget."""

    def __init__(self, message: str, *, budget: float, spent: float) -> None:
        super().__init__(message)
        self.budget = budget
        self.spent = spent


class AllEndpointsFailedError(FlexLLMError):
    """Every endpoint failed this request or is out of service.

    ``errors`` maps each endpoint (``endpoints[i] <url>``, no credentials) to its last
    error (``Type: message``, keys redacted), or None when it has not failed.
    """

    def __init__(self, message: str, *, errors: Mapping[str, str | None]) -> None:
        super().__init__(message)
        self.errors = dict(errors)


class RecordedError(FlexLLMError):
    """An error read back from a checkpoint record (its original type is in ``error_type``)."""

    def __init__(self, message: str, error_type: str | None) -> None:
        super().__init__(message)
        self.error_type = error_type


class RequeueItem(Exception):
    """Raised by a lane that cannot take an item after all (e.g. its endpoint went down):
    the runner puts the item back in the shared queue for another worker."""


publish(globals())
