"""Canonical hashes of a request: the response-cache key and the checkpoint's request hash.

Both hash one canonical JSON encoding (sorted keys, compact separators, UTF-8 kept, a
whole-number ``temperature``/``top_p`` written as an int so ``1`` and ``1.0`` agree). The
field list is taken from :class:`ChatRequest` itself, so a generation parameter added later
is covered without anyone remembering to add it here; only ``stream`` is left out, because
a streamed and a non-streamed answer to the same request are the same answer. The API key is not an input:
:class:`ProviderConfig` is never passed in, so it cannot leak into a key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import operator
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._errors import UsageError
from ._json import JSONDict, JSONValue
from ._types import ChatRequest

__all__ = (
    "CACHE_KEY_VERSION",
    "cache_key",
    "canonical_request",
    "message_hasher",
    "request_hash",
    "request_keys",
)

#: Bumped when the canonical form changes, so old cache entries simply stop matching.
CACHE_KEY_VERSION = 1

#: ChatRequest fields that do not change the answer.
_NOT_IN_KEY = frozenset({"stream"})


def _canon(value: JSONValue, where: str) -> JSONValue:
    """Mappings to dicts and tuples to lists; a UsageError naming the first non-JSON value."""
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{where}: {value!r} is not a JSON number")
        return value
    if isinstance(value, Mapping):
        out: JSONDict = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{where}: key {key!r} is not a string")
            out[key] = _canon(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canon(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise UsageError(f"{where}: {type(value).__name__} is not JSON-serialisable")


_KEY_FIELDS = tuple(f.name for f in attrs.fields(ChatRequest) if f.name not in _NOT_IN_KEY)
_get_key_fields = operator.attrgetter(*_KEY_FIELDS)
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _params(req: ChatRequest) -> JSONDict:
    params: JSONDict = dict(zip(_KEY_FIELDS, _get_key_fields(req), strict=True))
    for name, value in params.items():
        # temperature=1 and temperature=1.0 are the same request.
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            params[name] = int(value)
    return params


def _dumps(payload: JSONDict) -> bytes:
    # Fast path: the C encoder takes tuples and dicts as they are. When it refuses
    # (NaN, bytes, a Mapping that is not a dict), the Python walk either converts the
    # value to the same JSON or names the field at fault.
    try:
        text = _ENCODER.encode(payload)
    except (TypeError, ValueError):
        text = _ENCODER.encode({key: _canon(value, key) for key, value in payload.items()})
    return text.encode("utf-8")


@functools.lru_cache(maxsize=256)
def _normalise_base_url(base_url: str) -> str:
    """Scheme and host are case-insensitive, a trailing slash is noise; the path is kept.

    Credentials (``user:secret@``) are dropped: like the API key, they choose who pays, not
    what is answered, and :func:`canonical_request` is shown when debugging a cache miss.
    """
    text = base_url.strip()
    parts = urlsplit(text)
    path = parts.path.rstrip("/")
    host = parts.netloc.rpartition("@")[2].lower()
    return urlunsplit((parts.scheme.lower(), host, path, parts.query, ""))


def canonical_request(provider: str, base_url: str, req: ChatRequest) -> bytes:
    """The exact bytes :func:`cache_key` hashes; exposed for debugging a cache miss."""
    payload: JSONDict = {
        "v": CACHE_KEY_VERSION,
        "provider": provider.strip().lower(),
        "base_url": _normalise_base_url(base_url),
        **_params(req),
    }
    return _dumps(payload)


def cache_key(provider: str, base_url: str, req: ChatRequest) -> str:
    """The response-cache key: sha256 hex of the canonical request.

    Covers provider, base_url (normalised), model, messages and every generation
    parameter; never the API key or extra headers.
    """
    return hashlib.sha256(canonical_request(provider, base_url, req)).hexdigest()


def request_hash(req: ChatRequest) -> str:
    """A short hash of what the answer depends on (model, messages, parameters).

    Stored in each checkpoint record, so a re-run detects an input that was edited or
    moved. Provider and base_url are left out: moving a job to another endpoint serving
    the same model does not invalidate finished work. 16 hex digits (64 bits) is plenty
    for a per-index comparison. The canonical JSON of ``{"v": ..., **fields}`` is joined
    from the pieces :func:`request_keys` uses (a batch's shared fields are remembered).
    """
    text = "{" + ",".join([piece(req) for piece in _HASH_PIECES]) + "}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _part(req: ChatRequest, names: tuple[str, ...]) -> str:
    """The canonical JSON of ``names`` of ``req``, without its braces."""
    group: JSONDict = {n: CACHE_KEY_VERSION if n == "v" else getattr(req, n) for n in names}
    for name, value in group.items():
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            group[name] = int(value)  # as _params does
    return _dumps(group).decode("utf-8")[1:-1]


#: The factory of each request field whose default is made by one (``extra_body``: dict).
_FIELD_DEFAULTS = {f.name: getattr(f.default, "factory", None) for f in attrs.fields(ChatRequest)
                   if isinstance(f.default, attrs.Factory)}  # type: ignore[arg-type]


class _Fields:
    """A run of adjacent names (in key order) whose text is remembered by their values: a
    batch's requests share everything but their messages, so after the first item these
    cost a dictionary lookup. Values that cannot be hashed (a dict, a list) are encoded."""

    __slots__ = ("_dicts", "_get", "_memo", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        fields = [n for n in names if n != "v"]
        self._get = operator.attrgetter(*fields, "__class__")  # never a bare value
        self._memo: dict[tuple[object, ...], str] = {}
        #: A field whose default is an empty dict (extra_body): hashed as a marker when empty.
        self._dicts = any(_FIELD_DEFAULTS.get(n) is dict for n in fields)

    def __call__(self, req: ChatRequest) -> str:
        values = self._get(req)
        types = tuple(map(type, values))  # 1 and True hash alike but encode apart
        if self._dicts:  # the type tells an empty dict's marker from the value it stands for
            values = tuple([None if t is dict and not v else v
                            for v, t in zip(values, types, strict=True)])
        try:
            key = (*values, *types)
            text = self._memo.get(key)
        except TypeError:  # an unhashable value: encoded
            return _part(req, self.names)
        if text is None:
            text = _part(req, self.names)
            if len(self._memo) >= 64:
                self._memo.clear()
            self._memo[key] = text
        return text


def _messages(req: ChatRequest) -> str:
    # Plain messages ({"content": str, "role": str}, a batch's usual item) are joined by
    # hand: the same text the encoder writes (keys sorted, compact, UTF-8 kept), without
    # its walk; anything else goes through the encoder.
    parts: list[str] = []
    for m in req.messages:
        if type(m) is not dict or len(m) != 2:
            break
        content, role = m.get("content"), m.get("role")
        if type(content) is not str or type(role) is not str:
            break
        parts.append('{"content":' + _encode_str(content) + ',"role":' + _encode_str(role) + "}")
    else:
        return '"messages":[' + ",".join(parts) + "]"
    try:
        return '"messages":' + _ENCODER.encode(req.messages)
    except (TypeError, ValueError):  # the slow path names what JSON cannot hold
        return _part(req, ("messages",))


def _pieces() -> list[Callable[[ChatRequest], str] | str]:
    """The canonical request in key order: runs of plain fields (remembered), the messages,
    and the two names only the cache key has ("base_url", "provider")."""
    out: list[Callable[[ChatRequest], str] | str] = []
    run: list[str] = []
    for name in sorted((*_KEY_FIELDS, "v", "base_url", "provider")):
        if name in ("base_url", "provider", "messages"):
            if run:
                out.append(_Fields(tuple(run)))
                run = []
            out.append(_messages if name == "messages" else name)
        else:
            run.append(name)
    if run:
        out.append(_Fields(tuple(run)))
    return out


_PIECES = _pieces()
_HASH_PIECES: tuple[Callable[[ChatRequest], str], ...] = tuple(
    p for p in _PIECES if not isinstance(p, str))
#: Where "base_url" and "provider" go among the request's pieces (key order).
_AT_BASE = _PIECES.index("base_url")
_AT_PROVIDER = _PIECES.index("provider") - 1


@functools.lru_cache(maxsize=64)
def _scope(provider: str, base_url: str) -> tuple[str, str]:
    """The "base_url" and "provider" pieces (a client has one of each)."""
    return ('"base_url":' + _ENCODER.encode(_normalise_base_url(base_url)),
            '"provider":' + _ENCODER.encode(provider.strip().lower()))


def request_keys(provider: str, base_url: str, req: ChatRequest) -> tuple[str, str]:
    """``(cache_key(provider, base_url, req), request_hash(req))`` from one encoding.

    A batch with a cache and a checkpoint needs both for every item, and the request is
    most of either encoding: it is encoded once, in key-sorted pieces that join (with or
    without ``base_url`` and ``provider`` between them) into exactly the bytes each hashes.
    """
    texts = [piece(req) for piece in _HASH_PIECES]
    base, name = _scope(provider, base_url)
    keyed = [*texts[:_AT_BASE], base, *texts[_AT_BASE:_AT_PROVIDER], name, *texts[_AT_PROVIDER:]]
    return (hashlib.sha256(("{" + ",".join(keyed) + "}").encode("utf-8")).hexdigest(),
            hashlib.sha256(("{" + ",".join(texts) + "}").encode("utf-8")).hexdigest()[:16])


#: Roles whose plain-text messages :func:`make_request` keeps exactly as given.
_PLAIN_ROLES = ("system", "developer", "user", "assistant")
_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # what _ENCODER uses for str
_MARKER = "\x00flexllm-messages\x00"


def _none(_messages: object) -> None:
    return None


def message_hasher(template: ChatRequest) -> Callable[[object], str | None]:
    """``request_hash`` of ``template`` with its messages swapped for others, without building
    a request: the function returns None unless the messages are a non-empty list of plain
    ``{"role", "content": str}`` dicts (then the caller builds the request and hashes that).

    Resuming a million finished items must not mean validating a million requests again.
    The canonical JSON around the messages is the same for every item, so it is split once
    at the messages and only each item's messages are encoded (key order "content" <
    "role"). The caller checks that its request builder keeps such messages as given
    (compare with :func:`request_hash` on one), e.g. that it adds no system prompt.

    Raises:
        UsageError: ``template`` cannot be hashed (as :func:`request_hash` would).
    """
    payload: JSONDict = {"v": CACHE_KEY_VERSION, **_params(template), "messages": _MARKER}
    framed = _dumps(payload).decode("utf-8")
    token = _ENCODER.encode(_MARKER)
    if framed.count(token) != 1:  # the marker also appears in a parameter: no shortcut
        return _none
    head, tail = framed.split(token)
    roles = {r: f',"role":{_ENCODER.encode(r)}}}' for r in _PLAIN_ROLES}
    one_tail = "]" + tail
    enc = _encode_str
    # The hash state after the common head, copied per item: the head (~230 bytes) is
    # hashed once, not a million times.
    many_head = hashlib.sha256((head + "[").encode("utf-8"))
    one_head = hashlib.sha256((head + '[{"content":').encode("utf-8"))

    def many(messages: list[object]) -> str | None:
        parts: list[str] = []
        for m in messages:
            if type(m) is not dict or len(m) != 2:
                return None
            content = m.get("content")
            role = roles.get(m.get("role"))  # type: ignore[arg-type]
            if type(content) is not str or role is None:
                return None
            parts += ('{"content":', enc(content), role, ",")
        parts[-1] = "]"
        parts.append(tail)
        state = many_head.copy()
        state.update("".join(parts).encode("utf-8"))
        return state.hexdigest()[:16]

    def hasher(messages: object) -> str | None:
        if type(messages) is not list or not messages:
            return None
        try:
            if len(messages) != 1:
                return many(messages)
            # The common case (one message), in as few steps as possible.
            m = messages[0]
            if type(m) is not dict or len(m) != 2:
                return None
            content = m.get("content")
            role = roles.get(m.get("role"))  # type: ignore[arg-type]
            if type(content) is not str or role is None:
                return None
            state = one_head.copy()
            state.update((enc(content) + role + one_tail).encode("utf-8"))
            return state.hexdigest()[:16]
        except (TypeError, ValueError):  # an unhashable role; a lone surrogate (not UTF-8)
            return None

    return hasher
