"""Developer sessions. `nox` (tests, typecheck, lint) is what CI runs and what the README's test
command runs; `nox -s tests -- -m "not slow"` is the quick loop."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "tests_compiled", "typecheck", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Every test: unit, property, integration, end-to-end and reliability (starts noida-db
    itself). Tests marked `real_cluster` run only with ELASTICSEARCH_TEST_URL set."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        # Four workers on two cores: most tests wait on noida-db, the stand-in or a daemon
        # subprocess, so the suite takes under half its serial time (TEST_WORKERS=0: serial).
        "-n",
        os.environ.get("TEST_WORKERS", "4"),
        "--cov",
        "--cov-report=term-missing:skip-covered",
        *session.posargs,
    )
    if not session.posargs:
        # The pure core is held to >= 95 % branch coverage by its own tests.
        session.run("coverage", "report", "--include=*/elastic_connector/core/*", "--fail-under=95")


@nox.session
def tests_compiled(session: nox.Session) -> None:
    """The core's tests on the compiled build (a wheel, as `pip install .` makes it where a C
    compiler is; `tests` runs everything on the editable, pure build)."""
    session.env["ELASTIC_CONNECTOR_BUILD"] = "compiled"
    session.install(".[test]")
    session.run(
        "python", "-c", "import elastic_connector.core as c, sys; sys.exit(not c.compiled())"
    )
    session.chdir(session.create_tmp())  # import the installed package, not ./src
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        f"{session.invoked_from}/tests/core",
        f"--rootdir={session.invoked_from}",
        *session.posargs,
    )


@nox.session
def reliability(session: nox.Session) -> None:
    """Only the long fault-injection tests (outages, kill -9, stream drops); `tests` runs them
    too."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src, tests and benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput benchmarks; prints a table and writes benchmarks/results/latest.json."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)
