"""The package's build: the pure core compiled with mypyc where it can be, the same modules as
plain Python everywhere else. Metadata lives in ``pyproject.toml``; this file only decides
which extension modules a wheel carries.

``ELASTIC_CONNECTOR_BUILD`` chooses:

- ``auto`` (default): compile when building a wheel (``pip install .``, ``pip wheel .``); if
  mypyc or the C compiler fails, the wheel holds the pure modules instead and the install
  succeeds (a warning says so);
- ``compiled``: compile, and fail the build if that is not possible (the Dockerfile's build
  stage, and the ``tests``, ``reliability`` and ``bench`` nox sessions, which install the wheel);
- ``pure``: never compile.

Editable installs (``pip install -e .``, the README's developer set-up, the ``tests_pure`` and
``typecheck`` nox sessions) are pure unless ``ELASTIC_CONNECTOR_BUILD=compiled``: an edit to a
core module takes effect at once, and coverage can see the core.
``elastic_connector.core.compiled()`` tells which build is running.

A core module is compiled unless it defines a msgspec ``Struct`` or a class with keyword
arguments: mypyc builds classes without their keywords (msgspec's ``frozen=True``...) and with
annotations reduced to the classes it knows (``list[msgspec.Raw]`` becomes ``list``), and msgspec
reads a Struct's options and field types from exactly those. So the modules that define the
document, setting and input types stay interpreted (the planning code keeps its Structs in
modules of their own for this: ``core.plans``, ``core.policy.settings``,
``core.indicators.mapping_context``; ``tests/core/test_compiled_build.py`` checks the compiled
build). Compiled functions check their arguments' annotated types when called from Python: a
public core function that promises to refuse any value takes ``object``.
"""

from __future__ import annotations

import ast
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
CORE = Path("src", "elastic_connector", "core")
BUILD = os.environ.get("ELASTIC_CONNECTOR_BUILD", "auto").strip().lower() or "auto"
# Commands that produce a wheel or an installed tree: only they need the C code.
BUILDING = {"bdist_wheel", "build", "build_ext", "install"}


def _warn(message: str) -> None:
    print(f"elastic-connector build: {message}", file=sys.stderr)


def compiled_modules() -> list[str]:
    """The core's modules mypyc can compile (paths relative to this file), sorted. Package
    ``__init__`` modules only re-export, and keep their docstrings (which compiled modules
    lose) for ``help()`` and the layout tests."""
    chosen = []
    for path in sorted((HERE / CORE).rglob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if not any(isinstance(n, ast.ClassDef) and _stays_interpreted(n) for n in ast.walk(tree)):
            chosen.append(path.relative_to(HERE).as_posix())
    return chosen


def _stays_interpreted(node: ast.ClassDef) -> bool:
    """A class mypyc would change: one with keywords (mypyc drops them) or a msgspec Struct
    (mypyc reduces its annotations to plain classes, ``list`` for ``list[msgspec.Raw]``, and
    msgspec reads the fields' types from them)."""
    return bool(node.keywords) or any(
        ast.unparse(base).rpartition(".")[2] == "Struct" for base in node.bases
    )


class OptionalBuildExt(build_ext):
    """Builds the compiled core, or (``auto``) leaves the wheel pure when that fails: no
    half-built core, since every compiled module needs the shared mypyc library."""

    def run(self) -> None:
        self._remove_stale_outputs()
        try:
            super().run()
        except Exception as error:
            if BUILD == "compiled":
                raise
            _warn(f"compiling the core failed ({error}); installing the pure modules")
            self._remove_outputs()

    def _remove_stale_outputs(self) -> None:
        """An earlier build's extension modules this one does not make (a module that stays
        interpreted now): left in the build directory, they would go into the wheel, and be
        imported instead of the module's Python."""
        current = {Path(self.get_ext_fullpath(ext.name)).resolve() for ext in self.extensions}
        for suffix in EXTENSION_SUFFIXES:
            for path in Path(self.build_lib).rglob(f"*{suffix}"):
                if path.resolve() not in current:
                    path.unlink()

    def _remove_outputs(self) -> None:
        for ext in self.extensions:
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
        self.extensions = []


def extensions() -> list[object]:
    if BUILD not in {"auto", "compiled", "pure"}:
        raise SystemExit(f"ELASTIC_CONNECTOR_BUILD must be auto, compiled or pure, not {BUILD!r}")
    if BUILD == "pure":
        return []
    if BUILD == "auto" and not BUILDING & set(sys.argv[1:]):
        # Metadata queries, sdists and editable installs (``editable_wheel``) stay pure.
        return []
    try:
        from mypyc.build import mypycify

        paths = [str(CORE.as_posix())]
        return list(
            mypycify(
                ["--strict", "--python-version", "3.11", *paths],
                only_compile_paths=compiled_modules(),
                opt_level="3",
                debug_level="0",
                group_name="elastic_connector_core",
            )
        )
    except (Exception, SystemExit) as error:
        if BUILD == "compiled":
            raise
        _warn(f"mypyc is not usable here ({error!r}); installing the pure modules")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
