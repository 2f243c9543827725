"""Reasoning written inline as ``<think>...</think>`` in the answer text.

Models served without a reasoning parser (Qwen3, DeepSeek-R1, QwQ on vLLM/SGLang/Ollama)
put their chain of thought in ``content``. Two shapes occur:

* ``<think>thought</think>answer``: the model wrote both tags.
* ``thought</think>answer``: the chat template already put ``<think>`` in the prompt
  (DeepSeek-R1-0528, Qwen3-*-Thinking-2507), so only the closing tag reaches us.

Rules, shared by :func:`split_think_tags` and :class:`ThinkingSplitter` so a stream and a
whole body give the same answer: only the first block counts (later tags are literal text);
an opening tag with no closing tag (the answer was cut by ``max_tokens``) makes the rest
thought; the thought is stripped of surrounding whitespace, the answer after the block of
leading whitespace, and whitespace alone before ``<think>`` is dropped.
"""

from __future__ import annotations

import enum

import attrs

from ._events import TextDelta, ThinkingDelta

__all__ = ("CLOSE_TAG", "OPEN_TAG", "ThinkingSplitter", "split_think_tags")

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
#: The longest proper prefix of a tag that may sit at the end of a piece.
_WINDOW = len(CLOSE_TAG) - 1


def split_think_tags(text: str) -> tuple[str | None, str]:
    """Split ``text`` into ``(thought, answer)``; ``thought`` is None when there is none.

    >>> split_think_tags("<think>\\n2+2 is 4\\n</think>\\n\\nIt is 4.")
    ('2+2 is 4', 'It is 4.')
    >>> split_think_tags("2+2 is 4</think>It is 4.")
    ('2+2 is 4', 'It is 4.')
    """
    close = text.find(CLOSE_TAG)
    opening = text.find(OPEN_TAG)
    if opening != -1 and (close == -1 or opening < close):
        before = text[:opening]
        rest = text[opening + len(OPEN_TAG):]
        end = rest.find(CLOSE_TAG)
        thought, after = (rest, "") if end == -1 else (rest[:end], rest[end + len(CLOSE_TAG):])
    elif close != -1:
        before, thought, after = "", text[:close], text[close + len(CLOSE_TAG):]
    else:
        return None, text
    if not before.strip():
        before = ""
    thought = thought.strip()
    return (thought or None), before + after.lstrip()


def _partial_tag_len(buf: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``buf`` that could still grow into one of ``tags``.

    Tags hold ``<`` only as their first character, so only the last ``<`` near the end
    can start such a suffix: one ``rfind`` instead of trying every length.
    """
    start = buf.rfind("<", max(0, len(buf) - _WINDOW))
    if start == -1:
        return 0
    tail = buf[start:]
    return len(tail) if any(t.startswith(tail) for t in tags) else 0


class _State(enum.Enum):
    #: No tag seen yet: text is answer, unless a tag shows it was not.
    BEFORE = "before"
    #: Inside ``<think>``: text is thought until ``</think>``.
    INSIDE = "inside"
    #: After the block: everything is answer, later tags included.
    AFTER = "after"


@attrs.define
class ThinkingSplitter:
    """Incremental :func:`split_think_tags` for streamed text cut at any character.

    ``feed`` returns the deltas that are certain so far; text that may be the start of a
    tag (``"<thi"``) or whitespace that may turn out to be trimmed is held back until the
    next piece (or :meth:`close`) decides it.

    One case cannot be decided while streaming: a closing tag with no opening tag means
    the text before it was thought, but that text has already been sent as
    :class:`TextDelta` (waiting for a tag that may never come would hold the whole answer
    back). ``closing_only`` then becomes True; the final result of a stream decoder uses
    :func:`split_think_tags` on the whole text and so still gets it right.
    """

    _state: _State = attrs.field(default=_State.BEFORE, init=False)
    _buf: str = attrs.field(default="", init=False)
    _text_started: bool = attrs.field(default=False, init=False)
    _thought_started: bool = attrs.field(default=False, init=False)
    _answer_started: bool = attrs.field(default=False, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    #: True once a ``</think>`` arrived without a ``<think>`` before it.
    closing_only: bool = attrs.field(default=False, init=False)

    def feed(self, text: str) -> list[TextDelta | ThinkingDelta]:
        """Consume a piece of answer text; return the deltas it makes certain."""
        if self._closed:
            raise RuntimeError("can't feed text after close()")
        if text and not self._buf and (
            self._answer_started if self._state is _State.AFTER
            else self._state is _State.BEFORE and self._text_started and "<" not in text
        ):
            # Answer text with nothing held back and no tag to look for: what the general
            # path below would return, without its searches (most pieces of most streams).
            return [TextDelta(text=text)]
        self._buf += text
        out: list[TextDelta | ThinkingDelta] = []
        self._run(out, final=False)
        return out

    def close(self) -> list[TextDelta | ThinkingDelta]:
        """End of text: release whatever was held back."""
        if self._closed:
            return []
        out: list[TextDelta | ThinkingDelta] = []
        self._run(out, final=True)
        self._closed = True
        return out

    def _run(self, out: list[TextDelta | ThinkingDelta], *, final: bool) -> None:
        while True:
            if self._state is _State.BEFORE:
                moved = self._before(out, final)
            elif self._state is _State.INSIDE:
                moved = self._inside(out, final)
            else:
                self._after(out)
                moved = False
            if not moved:
                return

    def _text(self, out: list[TextDelta | ThinkingDelta], text: str) -> None:
        if text:
            out.append(TextDelta(text=text))
            self._text_started = True

    def _thought(self, out: list[TextDelta | ThinkingDelta], text: str) -> None:
        if text:
            out.append(ThinkingDelta(text=text))
            self._thought_started = True

    def _before(self, out: list[TextDelta | ThinkingDelta], final: bool) -> bool:
        buf = self._buf
        opening, close = buf.find(OPEN_TAG), buf.find(CLOSE_TAG)
        if opening != -1 and (close == -1 or opening < close):
            pre = buf[:opening]
            if self._text_started or pre.strip():
                self._text(out, pre)
            self._buf = buf[opening + len(OPEN_TAG):]
            self._state = _State.INSIDE
            return True
        if close != -1:
            pre = buf[:close]
            if self._text_started or pre.strip():
                self._text(out, pre)
            self._buf = buf[close + len(CLOSE_TAG):]
            self._state = _State.AFTER
            self.closing_only = True
            return True
        if final:
            self._text(out, buf)
            self._buf = ""
            return False
        keep = _partial_tag_len(buf, (OPEN_TAG, CLOSE_TAG))
        safe = buf[: len(buf) - keep]
        if not self._text_started and not safe.strip():
            return False  # only whitespace so far: it is dropped if a <think> follows
        self._text(out, safe)
        self._buf = buf[len(safe):]
        return False

    def _inside(self, out: list[TextDelta | ThinkingDelta], final: bool) -> bool:
        buf = self._buf
        close = buf.find(CLOSE_TAG)
        if close != -1 or final:
            thought = buf[:close] if close != -1 else buf
            if not self._thought_started:
                thought = thought.lstrip()
            self._thought(out, thought.rstrip())
            if close == -1:
                self._buf = ""
                return False
            self._buf = buf[close + len(CLOSE_TAG):]
            self._state = _State.AFTER
            return True
        keep = _partial_tag_len(buf, (CLOSE_TAG,))
        safe = buf[: len(buf) - keep]
        core = safe.rstrip()  # trailing whitespace waits: it is trimmed if the tag follows
        head = core if self._thought_started else core.lstrip()
        self._thought(out, head)
        self._buf = buf[len(core):]
        return False

    def _after(self, out: list[TextDelta | ThinkingDelta]) -> None:
        if not self._answer_started:
            self._buf = self._buf.lstrip()  # the blank lines after </think> are layout
            self._answer_started = bool(self._buf)
        self._text(out, self._buf)
        self._buf = ""
