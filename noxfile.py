"""Developer sessions: `nox -s tests typecheck lint` is what CI runs."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit, property, integration and end-to-end tests (starts noida-db itself)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "--cov",
        "--cov-report=term-missing:skip-covered",
        "-m",
        "not slow and not real_cluster",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """Long fault-injection tests: outages, kill -9, stream drops."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src, tests and benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput benchmarks; prints a table and writes benchmarks/results/latest.json."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)
