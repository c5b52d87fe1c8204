"""One-shot: carry code written for the flat ``core/`` (before issue 13) over to its sub-packages.

The map below is the whole regrouping (also in ``docs/architecture.md``). Run from the repository
root, on a tree that already has the new layout (e.g. after merging a branch cut before it):

    python tools/relayout_imports.py                # imports, file and test paths (src tests
                                                    # benchmarks)
    python tools/relayout_imports.py --prose PATH.. # also dotted mentions (``core.stream_ids``)
    ruff check --fix --select I . && ruff format .  # sort and wrap the rewritten imports

What it rewrites:

* ``from elastic_connector.core.<old> import names``: to the new module; outside ``core/``, to the
  package itself when the package exports every name (``from elastic_connector.core.sightings
  import Alert, aggregate``). Inside ``core/`` always the exact module (no import cycles through
  a package ``__init__``).
* ``from elastic_connector.core import <old module>``: ``from <package> import <module> as <old
  name>``, so the code using it is unchanged.
* ``from tests.core.<old> import``, ``tests/core/<old file>``, ``core/<old>.py``: the new places.
* with ``--prose``: ``core.<old>`` and ``elastic_connector.core.<old>`` in any text, where the
  old name is not still valid (``core.pattern.parse`` stays: the package exports ``parse``).

``--git-mv`` performs the moves themselves (once, on a tree that still has the flat layout).
Idempotent. Delete once every branch cut before the regrouping is merged.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

CORE: Final = "elastic_connector.core"
CORE_DIR: Final = Path("src/elastic_connector/core")

# Old module (under elastic_connector.core) -> new module (under elastic_connector.core).
MODULES: Final = {
    "pattern": "pattern.parser",
    "pattern_ast": "pattern.tree",
    "indicators": "indicators.document",
    "ecs": "indicators.ecs",
    "confidence": "indicators.confidence",
    "indicator_types": "indicators.observable_types",
    "exact_values": "indicators.exact_values",
    "field_handlers": "indicators.field_handlers",
    "found_values": "indicators.found_values",
    "observable_parts": "indicators.observable_parts",
    "path_rules": "indicators.path_rules",
    "value_forms": "indicators.value_forms",
    "stix_documents": "stix_mode",
    "sse": "stream.sse",
    "stream_frames": "stream.frames",
    "stream_ids": "stream.ids",
    "stream_position": "stream.position",
    "stream_progress": "stream.progress",
    "alerts": "sightings.alerts",
    "sightings": "sightings.aggregation",
    "config": "config.model",
    "config_aliases": "config.aliases",
    "config_docs": "config.docs",
    "config_export": "config.export",
    "config_loading": "config.load",
    "config_options": "config.options",
    "config_pycti": "config.pycti_view",
    "config_values": "config.values",
    "es_privileges": "elastic.privileges",
    "progress": "monitoring.progress",
    "repeat_limit": "monitoring.repeat_limit",
    "lookup_rows": "elastic.lookup_rows",
    "dead_letters": "elastic.dead_letters",
    "config_catalog": "config.catalog",
    "observable_types": "config.observable_types",
}

# Old test file (under tests/core) -> new one.
TESTS: Final = {
    "alert_strategies.py": "sightings/alert_strategies.py",
    "test_alerts.py": "sightings/test_alerts.py",
    "test_sightings.py": "sightings/test_aggregation.py",
    "test_updated_alerts.py": "sightings/test_updated_alerts.py",
    "test_config.py": "config/test_load.py",
    "test_config_aliases.py": "config/test_aliases.py",
    "test_config_docs.py": "config/test_docs.py",
    "test_config_properties.py": "config/test_properties.py",
    "test_config_pycti.py": "config/test_pycti_view.py",
    "es_field_checks.py": "indicators/es_field_checks.py",
    "indicator_strategies.py": "indicators/indicator_strategies.py",
    "test_ecs.py": "indicators/test_ecs.py",
    "test_ecs_elasticsearch.py": "indicators/test_ecs_elasticsearch.py",
    "test_indicators.py": "indicators/test_mapping.py",
    "test_indicators_properties.py": "indicators/test_mapping_properties.py",
    "pattern_strategies.py": "pattern/pattern_strategies.py",
    "test_pattern.py": "pattern/test_parser.py",
    "test_pattern_differential.py": "pattern/test_differential.py",
    "data/stix_spec_patterns.txt": "pattern/data/stix_spec_patterns.txt",
    "test_sse.py": "stream/test_sse.py",
    "test_stream_ids.py": "stream/test_ids.py",
    "test_stream_position.py": "stream/test_position.py",
    "test_stream_progress.py": "stream/test_progress.py",
    "test_stix_documents.py": "test_stix_mode.py",
}

PACKAGES: Final = sorted({new.split(".")[0] for new in MODULES.values() if "." in new})
SKIP: Final = {Path("docs/architecture.md"), Path("tools/relayout_imports.py")}
TEXT_SUFFIXES: Final = {".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini", ""}


def exports(package: str) -> frozenset[str]:
    """The names a new package's ``__init__`` lists in ``__all__``."""
    init = CORE_DIR / package / "__init__.py"
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return frozenset(str(name) for name in value)
    return frozenset()


def children(package: str) -> frozenset[str]:
    return frozenset(
        new.split(".", 1)[1] for new in MODULES.values() if new.startswith(package + ".")
    )


def _names(node: ast.ImportFrom) -> str:
    return ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names)


def _from(module: str, names: str, indent: str) -> str:
    return f"{indent}from {module} import {names}"


def rewrite_import(node: ast.ImportFrom, indent: str, in_core: bool) -> list[str] | None:
    """The lines replacing one ``from ... import`` statement, or None to leave it."""
    module = node.module or ""
    if node.level or not module:
        return None
    if module == CORE:
        kept: list[str] = []
        lines: list[str] = []
        for alias in node.names:
            new = MODULES.get(alias.name)
            if new is None:
                kept.append(
                    alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
                )
                continue
            parent, _, leaf = new.rpartition(".")
            bound = alias.asname or alias.name
            target = f"{CORE}.{parent}" if parent else CORE
            lines.append(_from(target, leaf if leaf == bound else f"{leaf} as {bound}", indent))
        if not lines:
            return None
        return ([_from(CORE, ", ".join(kept), indent)] if kept else []) + lines
    if module.startswith(CORE + "."):
        old = module[len(CORE) + 1 :]
        new = MODULES.get(old)
        if new is None:
            return None
        package = new.split(".")[0] if "." in new else None
        names = {a.name for a in node.names}
        if old == package:  # the old module's name is now its package's
            if names <= children(package) or (
                not in_core and names <= children(package) | exports(package)
            ):
                return None  # already the new layout: the package's modules or exports
            if names & children(package):
                print(f"{module}: modules and names imported together: fix by hand")
        if not in_core and package is not None and names <= exports(package):
            target = f"{CORE}.{package}"
        else:
            target = f"{CORE}.{new}"
        if target == module:
            return None
        return [_from(target, _names(node), indent)]
    if module.startswith("tests.core."):
        old_file = module[len("tests.core.") :].replace(".", "/") + ".py"
        new_file = TESTS.get(old_file)
        if new_file is None:
            return None
        target = "tests.core." + new_file.removesuffix(".py").replace("/", ".")
        return [_from(target, _names(node), indent)]
    return None


def rewrite_imports(path: Path, text: str) -> str:
    in_core = CORE_DIR in path.parents
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, list[str]]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(CORE + ".") and alias.name[len(CORE) + 1 :] in MODULES:
                    print(f"{path}:{node.lineno}: `import {alias.name}`: fix by hand")
            continue
        if not isinstance(node, ast.ImportFrom) or node.end_lineno is None:
            continue
        indent = lines[node.lineno - 1][: node.col_offset]
        replacement = rewrite_import(node, indent, in_core)
        if replacement is None:
            continue
        statement = "".join(lines[node.lineno - 1 : node.end_lineno])
        if "#" in statement:
            print(f"{path}:{node.lineno}: comment inside a rewritten import: check it")
        edits.append((node.lineno - 1, node.end_lineno, [line + "\n" for line in replacement]))
    for start, end, new_lines in sorted(edits, reverse=True):
        lines[start:end] = new_lines
    return "".join(lines)


def _path_rules() -> list[tuple[re.Pattern[str], str]]:
    rules = [
        (re.compile(rf"(?<![\w.])core/{re.escape(old)}\.py\b"), f"core/{new.replace('.', '/')}.py")
        for old, new in MODULES.items()
    ]
    for old, new in TESTS.items():
        rules.append((re.compile(rf"\btests/core/{re.escape(old)}(?![\w/])"), f"tests/core/{new}"))
        if old.endswith(".py"):
            dotted_old = "tests.core." + old.removesuffix(".py").replace("/", ".")
            dotted_new = "tests.core." + new.removesuffix(".py").replace("/", ".")
            rules.append((re.compile(rf"(?<![\w.]){re.escape(dotted_old)}(?!\w)"), dotted_new))
    return rules


_DOTTED: Final = re.compile(
    rf"(?<![\w.])(?P<prefix>(?:elastic_connector\.)?core)\.(?P<old>{'|'.join(MODULES)})"
    r"(?![\w])(?P<rest>\.\w+)?"
)


def _dotted(match: re.Match[str]) -> str:
    old, rest = match["old"], match["rest"] or ""
    new = MODULES[old]
    # The old module's name is now its package's: still valid as it is?
    if old in PACKAGES and (not rest or rest[1:] in exports(old) or rest[1:] in children(old)):
        return match[0]
    return f"{match['prefix']}.{new}{rest}"


def rewrite_text(text: str, prose: bool) -> str:
    for pattern, replacement in _path_rules():
        text = pattern.sub(replacement, text)
    if prose:
        text = _DOTTED.sub(_dotted, text)
    return text


def git_mv() -> None:
    moves = [
        (CORE_DIR / f"{old}.py", CORE_DIR / (new.replace(".", "/") + ".py"))
        for old, new in MODULES.items()
    ]
    moves += [(Path("tests/core") / old, Path("tests/core") / new) for old, new in TESTS.items()]
    for source, target in moves:
        if not source.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "mv", str(source), str(target)], check=True)  # noqa: S603, S607


def files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        root = Path(name)
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            if (
                path.is_file()
                and path not in SKIP
                and path.suffix in TEXT_SUFFIXES
                and not any(
                    part.startswith(".") or part.endswith(".egg-info") for part in path.parts
                )
            ):
                found.append(path)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-mv", action="store_true", help="perform the moves (once)")
    parser.add_argument("--prose", action="store_true", help="also rewrite dotted mentions")
    parser.add_argument("paths", nargs="*", default=["src", "tests", "benchmarks"])
    args = parser.parse_args(argv)
    if args.git_mv:
        git_mv()
    for path in files(args.paths):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = rewrite_imports(path, text) if path.suffix == ".py" else text
        new = rewrite_text(new, args.prose)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
