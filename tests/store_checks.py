"""Checks every response-cache store must pass (disk, memory, Redis), run by their tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def check_claim_many(store: Any, pause: Callable[[float], None]) -> None:
    """A store's one-step claim: each key's value, or None where the caller's token went in
    as the lease (no answer, no live lease); a key given twice is leased once."""
    store.set_many([("answered", '{"text":"a"}')])
    assert store.add_many([("held", "\x00lease:other")], 60) == [True]
    assert store.add_many([("short", "\x00lease:dead")], 0.05) == [True]
    pause(0.1)  # "short"'s lease has expired: its key is free
    got = store.claim_many([("answered", "t1"), ("held", "t2"), ("new", "t3"), ("new", "t4"),
                            ("short", "t5")], 60)
    assert list(got) == ['{"text":"a"}', "\x00lease:other", None, "t3", None]
    assert store.get("new") == "t3" and store.get("short") == "t5"
    assert store.add_many([("new", "t6")], 60) == [False]  # leased: nobody else gets it
    store.set_many([("new", '{"text":"n"}')])  # the answer replaces the lease
    assert store.get("new") == '{"text":"n"}'
    assert list(store.claim_many([], 60)) == []
