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


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_core_modules_import_only_pure_modules() -> None:
    for path in sorted(CORE.glob("*.py")):
        for name in _imports(path):
            root = name.split(".")[0]
            assert root in ALLOWED_ROOTS, f"{path.name} imports {name}"
            if root == "urllib":
                assert name == "urllib.parse", f"{path.name} imports {name}"
            if root == "elastic_connector":
                assert name.startswith("elastic_connector.core"), f"{path.name} imports {name}"


def test_importing_the_core_loads_no_client_thread_or_logging_machinery() -> None:
    modules = sorted(f"elastic_connector.core.{p.stem}" for p in CORE.glob("*.py"))
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
