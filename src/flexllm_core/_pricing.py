"""Model prices and the cost of a :class:`Usage`.

The bundled table (``pricing.json`` package data, USD per 1M tokens) is parsed here; the
engine may pass a user's updated table as a mapping (it does the file reading, the core
only parses). Lookups normalise model names, because users and providers spell the same
model many ways: ``anthropic/claude-3.5-sonnet``, ``claude-3-5-sonnet-20241022``,
``claude-3-5-sonnet@20240620`` (Vertex), ``us.anthropic.claude-sonnet-4-20250514-v1:0``
(Bedrock), ``models/gemini-2.0-flash-001``, ``gpt-4o-2024-08-06``, ``qwen-plus-latest``.
An unknown model returns None: callers must count it as unknown, never as free (the
original treated it as $0, which made budgets silently ineffective).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator, Mapping

import attrs

from ._errors import ResponseFormatError, UsageError
from ._json import JSONDict, JSONValue
from ._types import Usage

__all__ = (
    "ModelPrice",
    "PricingTable",
    "cost_of",
    "default_pricing",
    "load_pricing",
    "normalise_model_name",
    "parse_openrouter_models",
)

_PER = 1_000_000.0


@attrs.frozen(kw_only=True)
class ModelPrice:
    """Prices of one model in USD per 1M tokens."""

    #: A prompt token.
    input: float
    #: A completion token (reasoning tokens included, as providers bill them).
    output: float
    #: A prompt token served from the provider's prompt cache; None = no discount known.
    cached_input: float | None = None
    #: A prompt token written to the provider's prompt cache; None = billed as input.
    cache_write: float | None = None
    #: The provider batch API's price as a fraction of these (0.5: half price, as OpenAI,
    #: Anthropic and Gemini bill batches); None = no batch discount known.
    batch_factor: float | None = None
    #: Explicit batch prices, when the provider lists them apart (wins over the factor).
    batch: ModelPrice | None = None

    def batch_price(self) -> ModelPrice:
        """What a row run through the provider's batch API costs: the explicit batch prices,
        else every price times ``batch_factor``, else the online price (no discount known:
        a budget must not count on one)."""
        if self.batch is not None:
            return self.batch
        f = self.batch_factor
        if f is None:
            return self
        return ModelPrice(
            input=self.input * f, output=self.output * f,
            cached_input=None if self.cached_input is None else self.cached_input * f,
            cache_write=None if self.cache_write is None else self.cache_write * f)

    def to_dict(self) -> JSONDict:
        out: JSONDict = {"input": self.input, "output": self.output}
        if self.cached_input is not None:
            out["cached_input"] = self.cached_input
        if self.cache_write is not None:
            out["cache_write"] = self.cache_write
        if self.batch is not None:
            out["batch"] = self.batch.to_dict()
        elif self.batch_factor is not None:
            out["batch"] = self.batch_factor
        return out


# Suffixes that name a snapshot or a packaging of a model rather than another model.
# Tried one at a time, re-scanning after each strip, and only after an exact match failed,
# so a differently priced snapshot (gpt-4o-2024-05-13) can still have its own entry.
_SUFFIXES = tuple(
    re.compile(p)
    for p in (
        r"@[\w.-]*$",  # Vertex AI: claude-3-5-sonnet@20240620
        r":[\w.-]*$",  # OpenRouter variants (:free, :thinking), Bedrock revisions (:0)
        r"-v\d+$",  # Bedrock: ...-v1
        r"-\d{4}-\d{2}-\d{2}$",  # OpenAI: gpt-4o-2024-08-06
        r"-\d{8}$",  # Anthropic: claude-sonnet-4-20250514
        r"-latest$",
        r"-preview(?:-\d{2}-\d{2,4})?$",  # Gemini: gemini-2.5-flash-preview-05-20
        r"-exp(?:-\d{2}-\d{2}|-\d{4})?$",  # Gemini: gemini-2.0-flash-exp
        r"-\d{3,4}$",  # gemini-2.0-flash-001, gpt-4-0613, qwen3-...-2507
    )
)
# Bedrock model ids: "anthropic.claude-...", with an optional cross-region "us." prefix.
_VENDOR_DOT = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")


def normalise_model_name(model: str) -> str:
    """Lower-case, without provider/path prefixes (``openai/``, ``models/``, Bedrock's vendor)."""
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1]
    return _VENDOR_DOT.sub("", name)


@functools.lru_cache(maxsize=4096)
def _candidates(model: str) -> tuple[str, ...]:
    name = normalise_model_name(model)
    out = [name]
    while True:
        for pattern in _SUFFIXES:
            shorter = pattern.sub("", name)
            if shorter != name and shorter:
                name = shorter
                out.append(name)
                break
        else:
            return tuple(out)


@attrs.frozen(kw_only=True)
class PricingTable:
    """Prices by normalised model name, plus aliases (other spellings of the same model)."""

    models: Mapping[str, ModelPrice]
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    #: The date the prices were collected (``YYYY-MM-DD``), when known.
    updated: str | None = None

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or None when the table does not know it."""
        for name in _candidates(model):
            price = self.models.get(name)
            if price is not None:
                return price
            target = self.aliases.get(name)
            if target is not None and target in self.models:
                return self.models[target]
        return None

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.models))

    def __len__(self) -> int:
        return len(self.models)

    def to_dict(self) -> JSONDict:
        """The JSON document form (what ``pricing.json`` and a user's override file hold)."""
        return {
            "_updated": self.updated,
            "_unit": "USD per 1M tokens",
            "models": {name: self.models[name].to_dict() for name in sorted(self.models)},
            "aliases": dict(sorted(self.aliases.items())),
        }


def cost_of(usage: Usage, price: ModelPrice, *, batch: bool = False) -> float:
    """USD cost of one answer: prompt tokens read from the provider's cache at the cached
    price, those written to it at the cache-write price, the rest at input. ``batch``:
    the answer came through the provider's batch API (:meth:`ModelPrice.batch_price`)."""
    if batch:
        price = price.batch_price()
    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens or 0, 0), prompt)
    written = min(max(usage.cache_write_tokens or 0, 0), prompt - cached)
    cached_price = price.input if price.cached_input is None else price.cached_input
    write_price = price.input if price.cache_write is None else price.cache_write
    return (
        (prompt - cached - written) * price.input
        + cached * cached_price
        + written * write_price
        + max(usage.completion_tokens, 0) * price.output
    ) / _PER


def _number(value: JSONValue, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"pricing {where}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"pricing {where}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _price(name: str, entry: JSONValue) -> ModelPrice:
    if not isinstance(entry, Mapping):
        raise UsageError(f"pricing models[{name!r}]: expected an object, got {entry!r}")
    for field in ("input", "output"):
        if field not in entry:
            raise UsageError(f"pricing models[{name!r}]: missing {field!r}")
    cached, write, batch = entry.get("cached_input"), entry.get("cache_write"), entry.get("batch")
    factor: float | None = None
    explicit: ModelPrice | None = None
    if isinstance(batch, Mapping):
        if "batch" in batch:
            raise UsageError(f"pricing models[{name!r}].batch: a batch price cannot have its own 'batch'")
        explicit = _price(f"{name}.batch", batch)
    elif batch is not None:
        factor = _number(batch, f"models[{name!r}].batch")
        if factor > 1:
            raise UsageError(f"pricing models[{name!r}].batch: a factor of the online price is "
                             f"at most 1 (0.5 = half price), got {batch!r}")
    return ModelPrice(
        input=_number(entry["input"], f"models[{name!r}].input"),
        output=_number(entry["output"], f"models[{name!r}].output"),
        cached_input=None if cached is None else _number(cached, f"models[{name!r}].cached_input"),
        cache_write=None if write is None else _number(write, f"models[{name!r}].cache_write"),
        batch_factor=factor,
        batch=explicit,
    )


def _parse(doc: Mapping[str, JSONValue]) -> tuple[dict[str, ModelPrice], dict[str, str], str | None]:
    """Accept our document form ({"models": ..., "aliases": ...}) or a flat {name: price}."""
    raw_models = doc.get("models")
    if isinstance(raw_models, Mapping):
        entries: Mapping[str, JSONValue] = raw_models
        raw_aliases = doc.get("aliases") or {}
    else:
        entries = {k: v for k, v in doc.items() if not k.startswith("_")}
        raw_aliases = {}
    if not isinstance(raw_aliases, Mapping):
        raise UsageError(f"pricing aliases: expected an object, got {raw_aliases!r}")
    models = {normalise_model_name(name): _price(name, entry) for name, entry in entries.items()}
    aliases: dict[str, str] = {}
    for alias, target in raw_aliases.items():
        if not isinstance(target, str):
            raise UsageError(f"pricing aliases[{alias!r}]: expected a model name, got {target!r}")
        aliases[normalise_model_name(alias)] = normalise_model_name(target)
    updated = doc.get("_updated")
    meta = doc.get("_meta")
    if updated is None and isinstance(meta, Mapping):  # the original flexllm's file layout
        updated = meta.get("updated_at")
    return models, aliases, updated if isinstance(updated, str) else None


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[dict[str, ModelPrice], dict[str, str], str | None]:
    import importlib.resources  # when prices are first needed: it costs ~8 ms to import

    text = importlib.resources.files("flexllm_core").joinpath("pricing.json").read_text("utf-8")
    parsed = _parse(json.loads(text))
    return parsed


def load_pricing(
    overrides: Mapping[str, JSONValue] | None = None, *, include_bundled: bool = True
) -> PricingTable:
    """The bundled table, with ``overrides`` (a user's table, already parsed) winning per model.

    An override entry without a ``batch`` field keeps the bundled entry's batch factor.

    Raises:
        UsageError: an override entry is not ``{"input": n, "output": n[, "cached_input": n,
            "cache_write": n, "batch": factor | {prices}]}``, naming the model and the field.
    """
    models: dict[str, ModelPrice] = {}
    aliases: dict[str, str] = {}
    updated: str | None = None
    if include_bundled:
        b_models, b_aliases, updated = _bundled()
        models.update(b_models)
        aliases.update(b_aliases)
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise UsageError(f"pricing overrides: expected a mapping, got {type(overrides).__name__}")
        o_models, o_aliases, o_updated = _parse(overrides)
        for name, price in o_models.items():
            old = models.get(name)
            if old is not None and price.batch is None and price.batch_factor is None:
                # New list prices (e.g. from OpenRouter, which has no batch prices) keep the
                # provider's batch discount rather than silently losing it.
                o_models[name] = attrs.evolve(price, batch_factor=old.batch_factor)
        models.update(o_models)
        aliases.update(o_aliases)
        updated = o_updated or updated
    return PricingTable(models=models, aliases=aliases, updated=updated)


@functools.lru_cache(maxsize=1)
def default_pricing() -> PricingTable:
    """The bundled table, parsed once per process."""
    return load_pricing()


def _per_million(value: JSONValue) -> float | None:
    """OpenRouter prices are strings in USD per token; None when absent or not a price."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return round(number * _PER, 6)


def parse_openrouter_models(payload: Mapping[str, JSONValue], *, updated: str | None = None) -> JSONDict:
    """Convert OpenRouter's ``GET /api/v1/models`` answer to our table document.

    Ids become the part after the vendor (``anthropic/claude-3.5-sonnet`` ->
    ``claude-3.5-sonnet``). Variant ids (``:free``, ``:thinking``, ...) and entries
    without a positive price (free or "variable" routers) are skipped. When two vendors
    serve the same name, the higher price is kept: for a budget, overestimating is the safe
    side.

    Raises:
        ResponseFormatError: the payload has no ``data`` list.
    """
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        raise ResponseFormatError("openrouter models payload has no 'data' list")
    models: dict[str, ModelPrice] = {}
    for item in data:
        if not isinstance(item, Mapping):
            continue
        model_id, pricing = item.get("id"), item.get("pricing")
        if not isinstance(model_id, str) or ":" in model_id or not isinstance(pricing, Mapping):
            continue
        prompt = _per_million(pricing.get("prompt"))
        completion = _per_million(pricing.get("completion"))
        if prompt is None or completion is None or prompt + completion <= 0:
            continue
        cache_read = _per_million(pricing.get("input_cache_read"))
        cache_write = _per_million(pricing.get("input_cache_write"))
        price = ModelPrice(input=prompt, output=completion, cached_input=cache_read or None,
                           cache_write=cache_write or None)
        name = normalise_model_name(model_id.split("/", 1)[-1])
        old = models.get(name)
        if old is None or price.input + price.output > old.input + old.output:
            models[name] = price
    return {
        "_updated": updated,
        "_unit": "USD per 1M tokens",
        "_source": "OpenRouter /api/v1/models",
        "models": {name: models[name].to_dict() for name in sorted(models)},
    }
