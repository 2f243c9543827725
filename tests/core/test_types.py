"""Usage as a dict and back: the spelt-out to_dict is attrs.asdict, field for field."""

from __future__ import annotations

import attrs
from hypothesis import given, strategies as st

from flexllm_core import Usage

counts = st.none() | st.integers(0, 10**9)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9), counts, counts, counts)
def test_usage_to_dict_is_asdict_and_round_trips(prompt: int, completion: int, total: int,
                                                 reasoning: int | None, cached: int | None,
                                                 written: int | None) -> None:
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total,
                  reasoning_tokens=reasoning, cached_tokens=cached, cache_write_tokens=written)
    as_dict = usage.to_dict()
    assert as_dict == attrs.asdict(usage) and list(as_dict) == [f.name for f in attrs.fields(Usage)]
    assert Usage.from_dict(as_dict) == usage
    assert Usage.from_dict({k: v for k, v in as_dict.items() if v is not None}) == usage
