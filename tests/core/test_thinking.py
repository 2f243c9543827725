"""<think> tags: the whole-text splitter and the streaming splitter agree at any cut."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings, strategies as st

from flexllm_core import TextDelta, ThinkingDelta, ThinkingSplitter, split_think_tags


@pytest.mark.parametrize(
    ("text", "thought", "answer"),
    [
        ("<think>\n2+2 is 4.\n</think>\n\nIt is 4.", "2+2 is 4.", "It is 4."),
        # Qwen3-Thinking-2507 / DeepSeek-R1-0528: the template put <think> in the prompt.
        ("Let me add.\n2+2=4\n</think>\n\nFour.", "Let me add.\n2+2=4", "Four."),
        ("plain answer", None, "plain answer"),
        ("  plain answer with spaces\n", None, "  plain answer with spaces\n"),
        ("", None, ""),
        # Qwen3 with enable_thinking=false still emits an empty block.
        ("<think>\n\n</think>\n\nHi!", None, "Hi!"),
        # Cut by max_tokens while thinking: everything after <think> is thought.
        ("<think>\nStill thinking about", "Still thinking about", ""),
        ("\n\n<think>x</think>y", "x", "y"),
        ("Sure. <think>hmm</think> Done.", "hmm", "Sure. Done."),
        # Only the first block counts; later tags are literal.
        ("<think>a</think>b<think>c</think>", "a", "b<think>c</think>"),
        ("<think>a</think>", "a", ""),
        ("</think>answer", None, "answer"),
        ("<thinking>not our tag</thinking>", None, "<thinking>not our tag</thinking>"),
        ("<think>Unicode 思考 🤔</think>答案", "Unicode 思考 🤔", "答案"),
    ],
)
def test_split_think_tags(text: str, thought: str | None, answer: str) -> None:
    assert split_think_tags(text) == (thought, answer)


def run_splitter(pieces: list[str]) -> tuple[str, str, ThinkingSplitter, list[object]]:
    splitter = ThinkingSplitter()
    events: list[object] = []
    for piece in pieces:
        events.extend(splitter.feed(piece))
    events.extend(splitter.close())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thought = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    return text, thought, splitter, events


def cut(text: str, points: list[int]) -> list[str]:
    bounds = sorted({p % (len(text) + 1) for p in points} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


SAMPLES = [
    "<think>\n2+2 is 4.\n</think>\n\nIt is 4.",
    "<think>a</think>b<think>c</think>",
    "\n\n<think>x</think>y",
    "Sure. <think>hmm</think> Done.",
    "<think>\nStill thinking about",
    "plain < text with <t and </ that are not tags",
    "ends with partial <thi",
    "<think>ends inside with partial </thi",
    "<think>  \n  </think>  \n",
    "   ",
    "<think>a  b\n\n</think>\n\n  c  d  ",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_splitter_char_by_char_matches_split(text: str) -> None:
    thought, answer = split_think_tags(text)
    for pieces in ([text], list(text)):
        got_text, got_thought, splitter, _ = run_splitter(pieces)
        assert not splitter.closing_only
        assert got_text == answer
        assert got_thought == (thought or "")


tag_text = st.lists(
    st.sampled_from(["<think>", "</think>", "<", "</", "<th", "think>", "a", "b c", " ", "\n", "思"]),
    max_size=12,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=tag_text, points=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
@example(text="x</think>y", points=[1, 3])
def test_splitter_any_cut_agrees_with_split(text: str, points: list[int]) -> None:
    thought, answer = split_think_tags(text)
    whole_text, whole_thought, _, _ = run_splitter([text])
    got_text, got_thought, splitter, events = run_splitter(cut(text, points))
    # Whatever the cut, the deltas concatenate to the same strings ...
    assert (got_text, got_thought) == (whole_text, whole_thought)
    assert all(e.text for e in events)  # type: ignore[attr-defined]
    if not splitter.closing_only:
        # ... and equal the whole-text split, except for the one undecidable shape.
        assert (got_thought, got_text) == (thought or "", answer)


def test_closing_only_is_flagged_and_text_after_is_answer() -> None:
    got_text, got_thought, splitter, _ = run_splitter(["Reasoning here", "</thi", "nk>\n\nAnswer"])
    assert splitter.closing_only
    assert got_thought == ""
    # The undecidable part went out as text before the tag arrived; the answer follows.
    assert got_text == "Reasoning hereAnswer"


def test_holds_back_partial_tag_then_releases_it() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("Hello <th") == [TextDelta(text="Hello ")]
    assert splitter.feed("ere") == [TextDelta(text="<there")]
    assert splitter.close() == []


def test_thinking_deltas_stream_before_the_closing_tag() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("<think>\n") == []
    assert splitter.feed("step one\n") == [ThinkingDelta(text="step one")]
    assert splitter.feed("step two") == [ThinkingDelta(text="\nstep two")]
    assert splitter.feed("\n</think>\n\n") == []
    assert splitter.feed("Answer") == [TextDelta(text="Answer")]


def test_leading_whitespace_only_stream_is_kept_when_no_tag_follows() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("\n") == []
    assert splitter.feed("Hi") == [TextDelta(text="\nHi")]


def test_feed_after_close_raises_and_close_is_idempotent() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("<think>a </th") == [ThinkingDelta(text="a")]
    assert splitter.close() == [ThinkingDelta(text=" </th")]
    assert splitter.close() == []
    with pytest.raises(RuntimeError, match="after close"):
        splitter.feed("more")
