"""The mock's HTTP/1.1 parsing: both parsers, any split, pipelining, keep-alive rules."""

from __future__ import annotations

import pytest

from flexllm.mock._http import HttpParseError, RawRequest, chunk, make_parser, response_bytes

PARSERS = ["httptools", "h11"]

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
POST = (
    b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Authorization: Bearer k\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
CHUNKED = (
    b"POST /v1/messages HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)
GET_CLOSE = b"GET /v1/models HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
GET_10 = b"GET /v1/models HTTP/1.0\r\n\r\n"


def _feed_split(kind: str, data: bytes, cut: int) -> list[RawRequest]:
    parser = make_parser(kind)
    return parser.feed(data[:cut]) + parser.feed(data[cut:])


@pytest.mark.parametrize("kind", PARSERS)
def test_request_parsed_the_same_at_every_split(kind: str) -> None:
    whole = make_parser(kind).feed(POST)
    (req,) = whole
    assert req.method == "POST"
    assert req.path == "/v1/chat/completions"
    assert req.query == "x=1"
    assert req.header("authorization") == "Bearer k"
    assert req.header("content-type") == "application/json"
    assert req.body == BODY
    assert req.keep_alive
    for cut in range(len(POST) + 1):
        assert _feed_split(kind, POST, cut) == whole


@pytest.mark.parametrize("kind", PARSERS)
def test_chunked_body_and_pipelined_requests(kind: str) -> None:
    parser = make_parser(kind)
    reqs = parser.feed(CHUNKED + POST + GET_CLOSE)
    assert [r.path for r in reqs] == ["/v1/messages", "/v1/chat/completions", "/v1/models"]
    assert reqs[0].body == b"hello world"
    assert [r.keep_alive for r in reqs] == [True, True, False]


@pytest.mark.parametrize("kind", PARSERS)
def test_http_10_closes_by_default(kind: str) -> None:
    (req,) = make_parser(kind).feed(GET_10)
    assert not req.keep_alive


@pytest.mark.parametrize("kind", PARSERS)
def test_garbage_raises_parse_error(kind: str) -> None:
    with pytest.raises(HttpParseError):
        make_parser(kind).feed(b"NOT HTTP AT ALL\r\n\r\n")


@pytest.mark.parametrize("kind", PARSERS)
def test_expect_100_continue_is_flagged(kind: str) -> None:
    parser = make_parser(kind)
    head = b"POST /v1/messages HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    assert parser.feed(head) == []
    assert parser.continue_pending
    (req,) = parser.feed(b"{}")
    assert req.body == b"{}"


def test_response_bytes_and_chunks() -> None:
    raw = response_bytes(429, [("retry-after", "1")], b"{}", keep_alive=False)
    assert raw == (b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 2\r\n"
                   b"connection: close\r\n\r\n{}")
    assert response_bytes(529, [], b"", keep_alive=True).startswith(b"HTTP/1.1 529 Overloaded\r\n")
    assert chunk(b"data: x\n\n") == b"9\r\ndata: x\n\n\r\n"
    assert chunk(b"") == b"0\r\n\r\n"
