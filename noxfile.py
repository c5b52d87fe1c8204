"""Developer sessions. `nox` (tests, tests_pure, typecheck, lint) is what CI runs and what the
README's test command runs; `nox -s tests -- -m "not slow"` is the quick loop.

The package has two builds (``setup.py``): the core compiled with mypyc, which ``pip install .``
gives wherever a C compiler is, and the same modules as plain Python. ``tests`` runs every test
on the compiled build, installed from a wheel as users install it; ``tests_pure`` runs the
core's tests on the pure build, where coverage can see the core."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "tests_pure", "typecheck", "lint"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).resolve().parent
# Four workers on two cores: most tests wait on noida-db, the stand-in or a daemon subprocess,
# so the suite takes under half its serial time (TEST_WORKERS=0: serial).
WORKERS = os.environ.get("TEST_WORKERS", "4")
# What `tests_pure` runs: the core's tests, and the tests of what is the core behind a thin layer
# (the library, the offline commands, the files generated from the core's tables). Together they
# hold the core to its coverage gate.
PURE_BUILD_TESTS = (
    "tests/core",
    "tests/test_api.py",
    "tests/test_map_command.py",
    "tests/test_sightings_command.py",
    "tests/test_config_command.py",
    "tests/test_catalog_files.py",
    "tests/test_privileges_docs.py",
)


def _install(session: nox.Session, build: str, *, editable: bool) -> None:
    """Installs the package with its test extras as ``build`` (``compiled`` fails the install
    when the core cannot be compiled) and checks that the installed core is that build."""
    session.env["ELASTIC_CONNECTOR_BUILD"] = build
    session.install(*(["-e"] if editable else []), ".[test]")
    if build in {"compiled", "pure"}:
        check = "c.compiled()" if build == "compiled" else "not c.compiled()"
        code = f"import sys, elastic_connector.core as c; {check} or sys.exit('not {build}')"
        session.run("python", "-c", code)


def _pytest_args(session: nox.Session, *default: str) -> list[str]:
    """The session's arguments, with test paths (as typed, relative to where nox was invoked)
    made absolute, since pytest may run elsewhere; the ``default`` paths when none names one."""
    invoked = Path(session.invoked_from)
    args: list[str] = []
    named_path = False
    for arg in session.posargs:
        if not arg.startswith("-") and (invoked / arg.partition("::")[0]).exists():
            arg = str(invoked / arg)  # noqa: PLW2901 - the same argument, made absolute
            named_path = True
        args.append(arg)
    return args if named_path else [*args, *(str(ROOT / path) for path in default)]


def _suite_on_the_wheel(session: nox.Session, *marks: str) -> None:
    """The suite on the compiled wheel, run from a scratch directory so that the installed
    package is imported (never ./src) and no test leans on the working directory. Coverage of
    the shell, demo and api (the compiled core cannot be traced; ``tests_pure`` covers it)."""
    _install(session, "compiled", editable=False)
    scratch = Path(session.create_tmp()).resolve()
    session.chdir(scratch)
    session.run(
        "pytest",
        f"--rootdir={ROOT}",
        "-n",
        WORKERS,
        "--cov",
        f"--cov-config={ROOT / 'pyproject.toml'}",
        "--cov-report=",
        *marks,
        *_pytest_args(session, "tests"),
    )
    session.chdir(ROOT)  # the report names the files as src/ holds them
    session.run(
        "coverage",
        "report",
        f"--data-file={scratch / '.coverage'}",
        "--omit=*/elastic_connector/core/*",
        "--show-missing",
        "--skip-covered",
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Every test (unit, property, integration, end-to-end and reliability; starts noida-db
    itself) on the build users get: the compiled wheel. Tests marked `real_cluster` run only with
    ELASTICSEARCH_TEST_URL set."""
    _suite_on_the_wheel(session)


@nox.session
def tests_pure(session: nox.Session) -> None:
    """The core's tests (with the library's and the offline commands') on the pure build, the
    editable install, as a machine without a C compiler runs it; and the core held to >= 95 %
    branch coverage by them."""
    _install(session, "pure", editable=True)
    session.run(
        "pytest",
        "-n",
        WORKERS,
        "--cov=elastic_connector.core",
        "--cov-report=term-missing:skip-covered",
        *_pytest_args(session, *PURE_BUILD_TESTS),
    )
    if not session.posargs:
        session.run("coverage", "report", "--include=*/elastic_connector/core/*", "--fail-under=95")


@nox.session
def reliability(session: nox.Session) -> None:
    """Only the long fault-injection tests (outages, kill -9, stream drops), on the compiled
    wheel; `tests` runs them too."""
    _suite_on_the_wheel(session, "-m", "slow")


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
    """Throughput benchmarks of the build users get, the compiled wheel (ELASTIC_CONNECTOR_BUILD=
    pure nox -s bench: the pure one); prints a table, with the build measured, and writes
    benchmarks/results/latest.json."""
    _install(session, os.environ.get("ELASTIC_CONNECTOR_BUILD", "compiled"), editable=False)
    # From the repository root: `benchmarks` is imported from there, the package from the wheel
    # (src/ is not on the path).
    session.run("python", "-m", "benchmarks", *session.posargs)
