"""The core stays pure: importable anywhere (a notebook, another tool) without side effects, and
importing nothing that does I/O, keeps time, draws randomness, logs or starts threads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "elastic_connector" / "core"

ALLOWED_ROOTS = {
    "__future__",
    "base64",
    "binascii",
    "bisect",
    "collections",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "hashlib",
    "functools",
    "ipaddress",
    "itertools",
    "json",
    "math",
    "msgspec",
    "re",
    "returns",
    "string",
    "textwrap",
    "types",
    "typing",
    "urllib",  # urllib.parse only (checked below)
    "uuid",
    "elastic_connector",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("elastic_connector", "core", *parts))


def _core_files() -> list[Path]:
    """Every module of the core, in every sub-package."""
    return sorted(CORE.rglob("*.py"))


def _imports(path: Path) -> list[str]:
    """Absolute names of what ``path`` imports; relative imports resolved against its package."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            names.append(".".join([*base, *([node.module] if node.module else [])]))
    return names


def test_every_directory_of_the_core_is_a_package_the_checks_see() -> None:
    directories = {p for p in CORE.rglob("*") if p.is_dir() and p.name != "__pycache__"}
    assert directories, "the core has its sub-packages"
    for directory in directories:
        assert (directory / "__init__.py").is_file(), f"{directory} is not a package"
    assert {p.parent for p in _core_files()} == directories | {CORE}


def test_core_modules_import_only_pure_modules() -> None:
    for path in _core_files():
        where = path.relative_to(CORE)
        for name in _imports(path):
            root = name.split(".")[0]
            assert root in ALLOWED_ROOTS, f"{where} imports {name}"
            if root == "urllib":
                assert name == "urllib.parse", f"{where} imports {name}"
            if root == "elastic_connector":
                assert name.startswith("elastic_connector.core"), f"{where} imports {name}"


def test_importing_the_core_loads_no_client_thread_or_logging_machinery() -> None:
    modules = [_module_name(p) for p in _core_files()]
    assert "elastic_connector.core.pattern.parser" in modules
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = {'pycti', 'elasticsearch', 'urllib3', 'threading', 'logging', 'socket'}\n"
        + "print(sorted(bad & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""
