"""JSONL batch input: every line shape parsed in one place; a malformed line is a failed item
at its index (named by line number, recorded in the checkpoint) while the other lines run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from flexllm import ItemSource, LLMClient, LLMClientPool, UsageError
from flexllm._batch.input import JSONLFile, parse_line
from flexllm._errors import ChangedInputError, InvalidLineError
from flexllm.mock import MockServer

from ..pool.helpers import endpoints, servers
from .helpers import records

MODEL = "gpt-4o-mini"

GOOD_AND_BAD = """\
{"prompt": "alpha", "id": "a"}
{"prompt": "broken"

["not", "an", "object"]
{"nothing": "useful", "id": "n"}
{"custom_id": "req-5", "body": {"model": "line-model", "messages": [{"role": "user", "content": "from body"}], "max_tokens": 5}}
{"messages": [{"role": "wizard", "content": "x"}], "id": "w"}
{"custom_id": "req-8", "body": {"messages": "nope"}}
{"question": "omega", "system": "be brief"}
"""
# index: 0 alpha, 1 broken (line 2), 2 array (line 4), 3 nothing (line 5), 4 body (line 6),
#        5 wizard (line 7), 6 bad body (line 8), 7 omega (line 9)
BAD = {1: "line 2: not valid JSON", 2: "line 4: expected a JSON object, got an array",
       3: "line 5: expected 'messages'", 5: "line 7: ", 6: "line 8: an OpenAI batch line"}


# -- parsing (pure) ---------------------------------------------------------------------


def test_line_shapes_become_messages_metadata_and_params() -> None:
    p = parse_line(b'{"prompt": "hi", "system": "sys", "row": 3}', 1)
    assert p.error is None and p.line == 1
    assert p["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert p.metadata == {"row": 3} and p.params == {}
    q = parse_line('{"text": "t"}', 2, system="default")
    assert q["messages"] == [{"role": "system", "content": "default"}, {"role": "user", "content": "t"}]
    # a line's own system message wins over the default
    m = parse_line('{"messages": [{"role": "system", "content": "own"}, {"role": "user", "content": "u"}]}',
                   3, system="default")
    assert [x["content"] for x in m["messages"]] == ["own", "u"]
    b = parse_line(json.dumps({"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions",
                               "body": {"model": "x", "messages": [{"role": "user", "content": "q"}],
                                        "temperature": 0.5, "stream": True}}), 4)
    assert b.metadata == {"custom_id": "c1"} and b.params == {"model": "x", "temperature": 0.5}
    # a file saved with a UTF-8 byte order mark still reads its first line
    bom = parse_line(b'\xef\xbb\xbf{"prompt": "first"}', 1)
    assert bom.error is None and bom["messages"] == [{"role": "user", "content": "first"}]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{oops", "line 7: not valid JSON (Expecting property name enclosed in double quotes "
                   "at column 2)"),
        (b'{"prompt": "cut short"\n', "line 7: not valid JSON (Expecting ',' delimiter at the end "
                                       "of the line)"),
        (b"\xff\xfe{}", "line 7: not valid JSON"),
        (b'"just a string"', "line 7: expected a JSON object, got a string"),
        (b"42", "line 7: expected a JSON object, got a number"),
        (b'[{"role": "user", "content": "a bare chat"}]',
         'line 7: expected a JSON object, got an array (write a message list as {"messages": [...]})'),
        (b'{"messages": []}', "line 7: 'messages' must be a non-empty list"),
        (b'{"messages": "hi"}', "line 7: 'messages' must be a non-empty list"),
        (b'{"prompt": ""}', "line 7: 'prompt' must be a non-empty string"),
        (b'{"question": 5}', "line 7: 'question' must be a non-empty string"),
        (b'{"prompt": "x", "system": 1}', "line 7: 'system' must be a string"),
        (b'{"custom_id": "c", "body": {"input": "x"}}', "line 7: an OpenAI batch line needs"),
        (b'{"custom_id": "c", "url": "/v1/embeddings", "body": {"messages": []}}',
         "line 7: OpenAI batch url '/v1/embeddings'"),
        (b'{"other": 1}', "line 7: expected 'messages', 'prompt'"),
    ],
)
def test_malformed_lines_say_where_and_what(raw: bytes, why: str) -> None:
    line = parse_line(raw, 7)
    assert line.error is not None and line.error.startswith(why), line.error
    with pytest.raises(InvalidLineError, match=r"^line 7: ") as caught:
        line.prepare(lambda *a, **k: None, {}, 0)
    assert caught.value.line == 7


# -- through the library's public batch path --------------------------------------------


@pytest.mark.anyio
async def test_an_array_line_is_a_bad_line_and_is_not_sent(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('[{"role": "user", "content": "a bare chat"}]\n{"prompt": "an object"}\n')
    server = MockServer()
    async with server as url, LLMClient(base_url=url, model=MODEL, api_key="sk-test") as client:
        results = await client.chat_completions_batch(str(src), output_jsonl=str(tmp_path / "o.jsonl"),
                                                      show_progress=False)
        assert list(results.errors) == [0]
        assert isinstance(results.errors[0], InvalidLineError)
        assert str(results.errors[0]).startswith("line 1: expected a JSON object, got an array")
        assert results[1].startswith("Mock answer to: an object")
        assert server.stats.requests == 1  # the object line only


def _by_index(path: Path) -> dict[int, list[dict[str, object]]]:
    out: dict[int, list[dict[str, object]]] = {}
    for rec in records(path):
        out.setdefault(int(rec["index"]), []).append(rec)  # type: ignore[call-overload]
    return out


@pytest.mark.anyio
async def test_malformed_lines_fail_at_their_index_and_the_rest_run(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(GOOD_AND_BAD)
    out = tmp_path / "out.jsonl"
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="sk-test") as client:
        results = await client.chat_completions_batch(str(src), output_jsonl=str(out),
                                                      show_progress=False)
        assert len(results) == 8
        assert sorted(results.errors) == sorted(BAD)
        for index, why in BAD.items():
            error = results.errors[index]
            assert isinstance(error, InvalidLineError) and str(error).startswith(why), error
            assert results.items[index].source is ItemSource.NOT_SENT
        assert results[0].startswith("Mock answer to: alpha")
        assert results.items[0].metadata == {"id": "a"}
        assert results[4] is not None and results[4].startswith("Mock answer to: from body")
        assert results.items[4].metadata == {"custom_id": "req-5"}
        assert results.items[6].metadata == {"custom_id": "req-8"}
        assert results[7].startswith("Mock answer to: omega")
        assert "messages[0]" in str(results.errors[5]) or "role" in str(results.errors[5])

        # every bad line is in the checkpoint as a failed record, at its index, once
        recs = _by_index(out)
        assert sorted(recs) == list(range(8))
        assert all(len(v) == 1 for v in recs.values())
        for index, why in BAD.items():
            (rec,) = recs[index]
            assert rec["status"] == "error" and str(rec["error"]).startswith(why)
            assert rec["error_type"] == "InvalidLineError"
        assert recs[3][0]["metadata"] == {"nothing": "useful", "id": "n"}
        assert recs[6][0]["metadata"] == {"custom_id": "req-8"}
        assert recs[4][0]["extra"]["model"] == "line-model"  # type: ignore[index]

        # a re-run sends nothing for finished lines and records each bad line exactly once more
        again = await client.chat_completions_batch(str(src), output_jsonl=str(out),
                                                    show_progress=False)
        assert sorted(again.errors) == sorted(BAD)
        assert {i.index for i in again.items if i.source is ItemSource.CHECKPOINT} == {0, 4, 7}
        counts = Counter(int(r["index"]) for r in records(out))  # type: ignore[call-overload]
        assert counts == {**{i: 1 for i in (0, 4, 7)}, **{i: 2 for i in BAD}}

        # fixing a line sends just that line
        src.write_text(GOOD_AND_BAD.replace('{"prompt": "broken"\n', '{"prompt": "fixed"}\n'))
        fixed = await client.chat_completions_batch(str(src), output_jsonl=str(out),
                                                    show_progress=False)
        assert fixed[1].startswith("Mock answer to: fixed")
        assert [i.index for i in fixed.items if i.source is ItemSource.SENT] == [1]
        assert client.statistics().requests == 4


@pytest.mark.anyio
async def test_a_bad_line_is_on_disk_before_it_is_yielded(tmp_path: Path) -> None:
    """Written like any failed item as the run goes, not at its end: a killed run keeps it."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "x"}\n{bad\n' + '{"prompt": "y"}\n' * 30)
    out = tmp_path / "out.jsonl"
    seen = None
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="sk-test",
                                              concurrency_limit=2) as client:
        async for item in client.iter_chat_completions_batch(str(src), output_jsonl=str(out)):
            if item.index == 1:
                assert isinstance(item.error, InvalidLineError)
                seen = _by_index(out).get(1)
    assert seen is not None and len(seen) == 1
    assert seen[0]["status"] == "error" and str(seen[0]["error"]).startswith("line 2: not valid JSON")


@pytest.mark.anyio
async def test_a_call_level_mistake_is_misuse_not_a_bad_line(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    async with MockServer() as url, LLMClient(base_url=url, api_key="sk-test") as client:
        with pytest.raises(UsageError, match="model") as caught:
            await client.chat_completions_batch(str(src), show_progress=False)
        assert not isinstance(caught.value, InvalidLineError)
        assert client.statistics().requests == 0
        # ... but a line naming its own model runs
        src.write_text('{"custom_id": "1", "body": {"model": "m", "messages": [{"role": "user", "content": "q"}]}}\n')
        results = await client.chat_completions_batch(str(src), show_progress=False)
        assert results.ok and results[0].startswith("Mock answer to: q")


@pytest.mark.anyio
async def test_a_finished_line_now_malformed_is_a_changed_input(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    out = str(tmp_path / "out.jsonl")
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="sk-test") as client:
        assert (await client.chat_completions_batch(str(src), output_jsonl=out, show_progress=False)).ok
        src.write_text('{"prompt": "a"}\n{"prompt": \n')
        with pytest.raises(ChangedInputError, match="index 1"):
            await client.chat_completions_batch(str(src), output_jsonl=out, show_progress=False)
        assert client.statistics().requests == 2


@pytest.mark.anyio
async def test_system_default_and_metadata_list_with_a_jsonl_file(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "a", "k": 1}\n{"prompt": "b", "system": "own"}\n{bad\n')
    async with MockServer() as url, LLMClient(base_url=url, model=MODEL, api_key="sk-test") as client:
        results = await client.chat_completions_batch(
            JSONLFile(src, system="be terse"), metadata_list=[{"m": 0}, None, {"m": 2}],
            show_progress=False, return_usage=True)
    assert results.items[0].metadata == {"k": 1, "m": 0}
    assert results.items[1].metadata is None
    assert isinstance(results.errors[2], InvalidLineError)
    assert results.success_count == 2


@pytest.mark.anyio
async def test_a_pool_batch_reads_the_same_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"prompt": "p{i}"}}\n' for i in range(10)) + "[1, 2]\n")
    out = tmp_path / "out.jsonl"
    with servers({}, {}) as group:
        async with LLMClientPool(endpoints(group), concurrency_limit=2) as pool:
            results = await pool.chat_completions_batch(str(src), output_jsonl=str(out),
                                                         show_progress=False)
    assert results.success_count == 10 and list(results.errors) == [10]
    assert str(results.errors[10]).startswith("line 11: expected a JSON object")
    assert all(s.stats.completions > 0 for s in group)
    assert _by_index(out)[10][0]["status"] == "error"


def test_the_pre_pass_vouches_only_for_plain_items_built_with_the_calls_parameters() -> None:
    """A JSONL line is always prepared in the pre-pass: its own parameters were not in the
    probe (a line's bad temperature is found before anything is sent)."""
    from flexllm import LLMClient
    from flexllm._batch.prepare import make_plain_check

    client = LLMClient(base_url="http://127.0.0.1:1/v1", model="m", api_key="k")
    plain = make_plain_check(client.build_request, {}, None)
    assert plain is not None
    msgs = [{"role": "user", "content": "hi"}]
    assert plain(msgs) and plain("a bare prompt") and plain({"messages": msgs, "tag": 1})
    assert not plain([{"role": "user", "content": "hi", "name": "ann"}]) and not plain([])
    line = parse_line('{"messages": [{"role": "user", "content": "hi"}], "temperature": -1}', 1)
    assert not plain(line)
    assert make_plain_check(client.build_request, {"temperature": -1.0}, None) is None
    assert make_plain_check(client.build_request, {}, [{"a": 1}]) is None
