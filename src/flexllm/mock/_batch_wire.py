"""Small wire helpers of the mock's batch APIs: JSON and JSONL bodies, multipart uploads
(OpenAI's form-data, Gemini's related), RFC 3339 times."""

from __future__ import annotations

import datetime
import json
import re

from flexllm_core import JSONDict

from ._http import RawRequest

__all__ = ("BadRequest", "json_body", "jsonl", "multipart_parts", "rfc3339")


class BadRequest(Exception):
    """Answered with ``status`` and the message, in the route's dialect."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_body(body: bytes) -> JSONDict:
    try:
        value = json.loads(body)
    except ValueError:
        raise BadRequest(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return value


def jsonl(lines: list[JSONDict]) -> bytes:
    return b"".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for line in lines)


def multipart_parts(request: RawRequest) -> list[tuple[dict[str, str], bytes]]:
    ctype = request.header("content-type") or ""
    match = re.search(r'boundary="?([^";]+)"?', ctype)
    if not ctype.startswith("multipart/") or match is None:
        raise BadRequest(400, "expected a multipart body")
    parts = []
    for raw in request.body.split(b"--" + match[1].encode())[1:]:
        if raw.startswith(b"--"):
            break
        head, _, content = raw.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content.removesuffix(b"\r\n")))
    return parts


def rfc3339(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).isoformat().replace("+00:00", "Z")
