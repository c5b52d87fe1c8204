"""The core's layout explains itself: every package says what it holds and what it exports, and
``docs/architecture.md`` names every package."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "src" / "elastic_connector" / "core"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

PACKAGES = sorted(p.parent for p in CORE.rglob("__init__.py") if p.parent != CORE)


def _dotted(directory: Path) -> str:
    return ".".join(("elastic_connector", *directory.relative_to(CORE.parent).parts))


def _all(init: Path) -> list[str] | None:
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return [str(name) for name in ast.literal_eval(node.value)]
    return None


def test_the_core_has_its_packages() -> None:
    assert {p.name for p in PACKAGES} >= {"config", "indicators", "pattern", "sightings", "stream"}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_package_names_each_of_its_modules_in_its_docstring(package: Path) -> None:
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert docstring, f"{package.name}/__init__.py has no docstring"
    for module in sorted(package.glob("*.py")):
        if module.name != "__init__.py":
            assert f"``{module.stem}``" in docstring, f"{package.name}: {module.stem} not described"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_package_exports_what_its_all_lists_and_its_docstring_names(package: Path) -> None:
    names = _all(package / "__init__.py")
    assert names, f"{package.name}/__init__.py has no __all__"
    module = importlib.import_module(_dotted(package))
    docstring = module.__doc__ or ""
    for name in names:
        assert hasattr(module, name), f"{package.name} lists {name} but has no such name"
        assert f"``{name}``" in docstring, f"{package.name}: export {name} not in the docstring"


def test_the_architecture_document_names_every_package() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    packages = [*PACKAGES, CORE, CORE.parent / "shell", CORE.parent / "demo"]
    for package in packages:
        path = package.relative_to(CORE.parent).as_posix()  # core/pattern, shell, ...
        assert re.search(rf"`{re.escape(path)}/`", text), f"docs/architecture.md lacks {path}/"


def test_the_core_names_each_module_at_its_top() -> None:
    docstring = ast.get_docstring(ast.parse((CORE / "__init__.py").read_text(encoding="utf-8")))
    assert docstring
    for module in sorted(CORE.glob("*.py")):
        if module.name != "__init__.py":
            assert f"``{module.stem}``" in docstring, f"core: {module.stem} not described"


_CORE_NAME = re.compile(r"`{1,2}(core(?:\.[A-Za-z_]\w*)+)")


def _resolves(dotted: str) -> bool:
    parts = f"elastic_connector.{dotted}".split(".")
    for cut in range(len(parts), 1, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_core_name_the_docs_and_the_code_quote_exists() -> None:
    """A name quoted as ``core.x.y`` in a document or a docstring still names something after a
    module moved (the module map in docs/architecture.md is the only place old names stay)."""
    pages = [*ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md"]
    sources = list(ROOT.joinpath("src").rglob("*.py"))
    stale = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in [*pages, *sources]
        for name in _CORE_NAME.findall(path.read_text(encoding="utf-8"))
        if not _resolves(name)
    )
    assert not stale, "\n".join(stale)
