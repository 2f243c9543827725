"""Developer sessions: `nox -s tests lint typecheck layers`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "layers"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite; every async test runs on asyncio and on trio."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[all,distributed]", "mypy")
    session.run("mypy", "--strict", "src")


@nox.session
def layers(session: nox.Session) -> None:
    """Fail when the core imports I/O, clocks or randomness, or a layer imports upward."""
    session.install("-e", ".", "import-linter")
    session.run("lint-imports")
