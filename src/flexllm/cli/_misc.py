"""``flexllm mock`` (the built-in mock server in the foreground) and ``flexllm version``."""

from __future__ import annotations

import platform
import sys
from typing import Annotated, Optional

import typer

from ._common import print_json
from ._options import examples

__all__ = ("register",)


def mock(
    port: Annotated[int, typer.Option("-p", "--port", min=0, max=65535,
                                      help="Port (0: any free port).")] = 8001,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default; "
                                      "0.0.0.0 exposes it to the network).")] = "127.0.0.1",
    delay: Annotated[str, typer.Option("-d", "--delay",
                                       help="Seconds before answering: '0.5' or '1-5'.")] = "0",
    error_rate: Annotated[float, typer.Option("--error-rate", min=0.0, max=1.0,
                                              help="Share of requests that fail (429/500/503).")] = 0.0,
    error_statuses: Annotated[str, typer.Option(
        "--error-statuses", help="Statuses --error-rate picks from, comma-separated.")] = "429,500,503",
    response_length: Annotated[str, typer.Option(
        "-l", "--response-length", help="Answer length in words: '24' or '10-200'.")] = "24",
    stream_chunks: Annotated[int, typer.Option("--stream-chunks", min=1,
                                               help="Pieces a streamed answer is cut into.")] = 8,
    chunk_delay: Annotated[str, typer.Option("--chunk-delay",
                                             help="Seconds between stream pieces.")] = "0",
    model: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "-m", "--model", help="Model name in answers (default: echo the request's).")] = None,
    thinking: Annotated[bool, typer.Option("--thinking", help="Always include reasoning.")] = False,
    require_api_key: Annotated[bool, typer.Option(
        "--require-api-key", help="Answer 401 to requests without a key.")] = False,
    seed: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--seed", help="Seed of the random delays and errors.")] = None,
    rpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--rpm", min=0.001, help="Requests per minute admitted; more get a 429 in each "
        "dialect's form (limit headers on every answer).")] = None,
    tpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--tpm", min=0.001, help="Tokens per minute admitted (OpenAI counts max_tokens).")] = None,
    input_tpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--input-tpm", min=0.001, help="Input tokens per minute admitted.")] = None,
    output_tpm: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--output-tpm", min=0.001, help="Output tokens per minute admitted.")] = None,
    time_scale: Annotated[float, typer.Option(
        "--time-scale", min=0.001, help="Run the quota's minute this many times faster "
        "(10: a minute lasts 6 s).")] = 1.0,
) -> None:
    """Run the mock LLM server (OpenAI, Claude and Gemini dialects) until Ctrl+C."""
    from ..mock import MockOptions, run_mock

    options = MockOptions(
        host=host, port=port, delay=delay, error_rate=error_rate, error_statuses=error_statuses,
        response_length=response_length, stream_chunks=stream_chunks, chunk_delay=chunk_delay,
        model=model, thinking=thinking, require_api_key=require_api_key, seed=seed,
        rpm=rpm, tpm=tpm, input_tpm=input_tpm, output_tpm=output_tpm, time_scale=time_scale,
    )

    def echo(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    run_mock(options, echo=echo)


def version(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print the flexllm version."""
    from .. import __version__

    if as_json:
        print_json({"name": "flexllm", "version": __version__,
                    "python": platform.python_version(), "platform": sys.platform})
    else:
        typer.echo(f"flexllm {__version__}")


def register(app: typer.Typer) -> None:
    app.command(epilog=examples(
        "flexllm mock",
        "flexllm mock -p 8080 -d 1-5",
        "flexllm mock --error-rate 0.1",
        "flexllm mock --rpm 450 --tpm 24000",
    ))(mock)
    app.command(epilog=examples("flexllm version", "flexllm version --json"))(version)
