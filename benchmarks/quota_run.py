"""What the two quota benchmarks share: the run's arguments and its quota-bound ideal."""

from __future__ import annotations

import argparse


def quota_arguments(description: str) -> argparse.ArgumentParser:
    """The quota-bound run both benchmarks make (the issue's: 2000 items, 60,000 TPM, 10 s minute)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rpm", type=float, default=10000)
    parser.add_argument("--tpm", type=float, default=60000)
    parser.add_argument("--prompt-words", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--time-scale", type=float, default=6.0)
    parser.add_argument("--backends", default="asyncio,trio")
    return parser


def ideal(args: argparse.Namespace) -> float:
    """The quota-bound wall time of a continuous bucket: ``(total cost - one minute's burst) /
    rate`` for the tightest limit, plus one answer's delay."""
    window = 60.0 / args.time_scale
    cost = args.prompt_words + args.max_tokens
    worst = 0.0
    for total, limit in ((args.items, args.rpm), (args.items * cost, args.tpm)):
        worst = max(worst, max(total - limit, 0) / (limit / window))
    return worst + args.delay


def header(args: argparse.Namespace, best: float) -> str:
    return (f"{args.items} items, {args.rpm:g} RPM / {args.tpm:g} TPM, minute = "
            f"{60 / args.time_scale:g}s, ideal {best:.1f}s\n")
