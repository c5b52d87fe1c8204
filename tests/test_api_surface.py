"""The library's compatibility promise: the names ``elastic_connector`` exports and their
signatures are pinned here. A change that fails this test changes the promise: adding a keyword
with a default, a field or a result type is allowed (update the pins, and docs/library.md);
renaming or removing is not. Importing the library loads neither pycti nor the Elasticsearch
client, and it uses only the core."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import elastic_connector
from elastic_connector import api
from elastic_connector.core.config import Config

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "src" / "elastic_connector" / "api"
CONSUMER = ROOT / "tests" / "test_api_consumer.py"

_STIX = "bytes | str | Mapping[str, object] | Sequence[Mapping[str, object]]"
_CONFIG = "config: 'Config | Mapping[str, object] | None' = None"

FUNCTIONS = {
    "alerts_to_sightings": f"(alerts: '{_STIX}', *, {_CONFIG}) -> 'SightingsResult'",
    "bundle_to_actions": f"(bundle: '{_STIX}', *, now: 'datetime', {_CONFIG}) -> 'MapResult'",
    "indicator_to_ecs": (
        "(indicator: 'bytes | str | Mapping[str, object]', *, now: 'datetime', "
        f"{_CONFIG}, related: 'Iterable[Mapping[str, object]]' = ()) -> 'Outcome | InputError'"
    ),
    "iter_bundle_actions": (
        f"(bundle: '{_STIX}', *, now: 'datetime', {_CONFIG}) -> 'Iterator[Outcome | InputError]'"
    ),
    "make_config": "(settings: 'Mapping[str, object] | None' = None) -> 'Config | InputError'",
    "parse_pattern": "(text: 'str') -> 'ParsedPattern | InvalidPattern'",
}

_M, _P, _S, _F = (
    f"elastic_connector.api.{m}." for m in ("mapping", "patterns", "sightings", "failures")
)
CLASSES = {
    "Deleted": (
        "(*, index: str, id: str, stix_id: str = '', code: str, reason: str)",
        "bulk_lines code id index outcome reason stix_id to_dict",
    ),
    "Exported": (
        "(*, index: str, id: str, stix_id: str = '', source: bytes)",
        "bulk_lines document fields id index outcome source stix_id to_dict",
    ),
    "InputError": (
        "(reason: str, problems: tuple[str, ...] = ())",
        "problems reason to_dict",
    ),
    "InvalidPattern": (
        "(*, message: str, position: int, expected: tuple[str, ...] = (), found: str = '')",
        "expected found message position to_dict",
    ),
    "MapResult": (
        f"(*, outcomes: tuple[{_M}Exported | {_M}Withheld | {_M}Deleted | {_M}Skipped, ...], "
        f"error: {_F}InputError | None = None)",
        "bulk deleted error exported outcomes skipped to_dict withheld",
    ),
    "ParsedPattern": (
        f"(*, pattern: str, comparisons: tuple[{_P}PatternComparison, ...])",
        "comparisons pattern to_dict",
    ),
    "PatternComparison": (
        "(*, observation: int, path: str, operator: str, value: str | None, negated: bool = False)",
        "negated observation operator path to_dict value",
    ),
    "Sighting": (
        "(*, indicator_id: str, count: int, first_seen: datetime.datetime, "
        "last_seen: datetime.datetime, alert_ids: tuple[str, ...], rules: tuple[str, ...], "
        "suppressed_of: str | None = None)",
        "alert_ids count first_seen indicator_id last_seen rules suppressed_of to_dict",
    ),
    "SightingsResult": (
        f"(*, sightings: tuple[{_S}Sighting, ...], skipped: tuple[{_S}SkippedAlert, ...] = (), "
        f"error: {_F}InputError | None = None)",
        "error sightings skipped to_dict",
    ),
    "Skipped": (
        "(*, id: str, code: str, reason: str)",
        "bulk_lines code id outcome reason to_dict",
    ),
    "SkippedAlert": (
        "(*, unit: Literal['line', 'hit', 'item'], position: int, reason: str)",
        "position reason to_dict unit",
    ),
    "Withheld": (
        "(*, index: str, id: str, stix_id: str = '', code: str, reason: str, subject: str = '')",
        "bulk_lines code id index outcome reason stix_id subject to_dict",
    ),
}

OTHER = {"Config", "Outcome"}


def test_the_exported_names_are_the_pinned_ones() -> None:
    assert sorted(elastic_connector.__all__) == sorted([*FUNCTIONS, *CLASSES, *OTHER])
    assert elastic_connector.__all__ == api.__all__
    for name in elastic_connector.__all__:
        assert getattr(elastic_connector, name) is getattr(api, name), name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_function_keeps_its_signature(name: str) -> None:
    function = getattr(elastic_connector, name)
    assert str(inspect.signature(function)) == FUNCTIONS[name]
    assert inspect.getdoc(function), f"{name} has no docstring"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_result_type_keeps_its_fields_and_methods(name: str) -> None:
    cls = getattr(elastic_connector, name)
    signature, attributes = CLASSES[name]
    assert str(inspect.signature(cls)) == signature
    assert sorted(a for a in dir(cls) if not a.startswith("_")) == sorted(attributes.split())
    assert inspect.getdoc(cls), f"{name} has no docstring"
    assert cls.__struct_config__.frozen, f"{name} is not immutable"


def test_the_other_names_are_what_they_say() -> None:
    assert elastic_connector.Config is Config  # the settings; their fields: docs/config-table.md
    outcomes = (api.Exported, api.Withheld, api.Deleted, api.Skipped)
    assert typing.get_args(elastic_connector.Outcome) == outcomes
    assert [cls.outcome for cls in outcomes] == ["exported", "withheld", "deleted", "skipped"]


def test_importing_the_library_or_its_commands_loads_no_client_thread_or_logging() -> None:
    code = (
        "import sys\n"
        "import elastic_connector, elastic_connector.api\n"
        "import elastic_connector.api.mapping, elastic_connector.api.sightings\n"
        "import elastic_connector.map_command, elastic_connector.sightings_command\n"
        "bad = {'pycti', 'elasticsearch', 'elastic_transport', 'urllib3', 'yaml', 'threading',\n"
        "       'logging', 'socket', 'elastic_connector.shell'}\n"
        "print(sorted(bad & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


def _imported(path: Path) -> list[ast.ImportFrom | ast.Import]:
    return [
        node
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


def test_the_library_uses_only_the_core() -> None:
    modules = sorted(API.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        for node in _imported(module):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                assert name is not None, f"{module.name}: no relative imports"
                if name.startswith("elastic_connector"):
                    assert name.startswith(("elastic_connector.core", "elastic_connector.api")), (
                        name
                    )
                else:
                    pure = sys.stdlib_module_names | {"msgspec", "returns"}
                    assert name.split(".")[0] in pure, f"{module.name} imports {name}"


def test_the_typed_consumer_uses_only_public_names() -> None:
    for node in _imported(CONSUMER):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("elastic_connector"):
            assert node.module == "elastic_connector"
            assert {a.name for a in node.names} <= set(elastic_connector.__all__)
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("elastic_connector") for a in node.names)
