"""A task group's errors as the caller should see them: the one real error as itself.

A batch owns a task group; an error in one of its workers (or in the caller's own block) would
otherwise reach the caller wrapped in an ``ExceptionGroup`` of one, and a bug every worker
hits at once (a wrong argument to the loop's connect) in a group of as many copies.
"""

from __future__ import annotations

import sys
from typing import NoReturn

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = ("raise_as_itself",)


def raise_as_itself(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise the one real error inside a task group's ``group`` as itself, keeping the error's
    own context rather than the group. Copies of one error (same type, same arguments) count
    as one, with a note saying how many tasks hit it; different errors stay the group."""
    errors = _leaves(group)
    error = errors[0]
    if any(type(e) is not type(error) or e.args != error.args for e in errors[1:]):
        raise group
    if len(errors) > 1 and hasattr(error, "add_note"):
        error.add_note(f"({len(errors) - 1} more task(s) failed with the same error)")
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context
        del error


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
