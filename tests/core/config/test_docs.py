"""The option table (docs/config-table.md), config.reference.yml and the migration table are
generated from the option registry.

They are compared with what the registry produces now, so a new or changed option cannot be
left undocumented. Regenerate them with
``UPDATE_CONFIG_DOCS=1 pytest tests/core/config/test_docs.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from elastic_connector.core.config import OPTIONS, Option
from elastic_connector.core.config.aliases import EARLIER_KEYS
from elastic_connector.core.config.docs import (
    migration_table_markdown,
    option_table_markdown,
    reference_yaml,
)
from elastic_connector.core.config.load import build_config, file_layer

ROOT = Path(__file__).resolve().parents[3]
TABLE = ROOT / "docs" / "config-table.md"
REFERENCE = ROOT / "config.reference.yml"
MIGRATION = ROOT / "docs" / "migration.md"
_MIGRATION_BLOCK = re.compile(
    r"(<!-- BEGIN generated migration table -->\n)(.*?)(<!-- END generated migration table -->)",
    re.S,
)


def _check_generated(path: Path, generated: str) -> None:
    if os.environ.get("UPDATE_CONFIG_DOCS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == generated, (
        f"{path.name} is out of date: UPDATE_CONFIG_DOCS=1 pytest {__file__}"
    )


def test_readme_table_is_generated_from_the_registry() -> None:
    _check_generated(TABLE, option_table_markdown())


def test_reference_file_is_generated_from_the_registry() -> None:
    _check_generated(REFERENCE, reference_yaml())


def test_migration_guide_table_is_generated_from_the_registry() -> None:
    text = MIGRATION.read_text(encoding="utf-8")
    assert _MIGRATION_BLOCK.search(text), "docs/migration.md lost its generated-table markers"
    generated = _MIGRATION_BLOCK.sub(
        lambda m: m.group(1) + migration_table_markdown() + m.group(3), text
    )
    _check_generated(MIGRATION, generated)


def test_migration_table_has_every_earlier_key_and_knows_each() -> None:
    rows = migration_table_markdown().splitlines()[2:]
    assert len(rows) == len(EARLIER_KEYS)
    for row, (path, variable) in zip(rows, EARLIER_KEYS, strict=True):
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert cells[0] == (f"`{path}`" if path else "")
        assert cells[1] == (f"`{variable}`" if variable else "")
        assert cells[2], row
        assert cells[2] != "**unknown**", row


def test_readme_links_the_migration_guide() -> None:
    assert "(docs/migration.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_option_is_in_the_table_once() -> None:
    rows = [
        line for line in TABLE.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    assert [row.split("|")[1].strip() for row in rows] == [f"`{o.yaml_path}`" for o in OPTIONS]
    assert [row.split("|")[2].strip() for row in rows] == [f"`{o.env_var}`" for o in OPTIONS]


def _uncommented_reference() -> str:
    """The reference file with every option line uncommented (those after a "(env ...)" line)."""
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()
    out = []
    for previous, line in zip(["", *lines[:-1]], lines, strict=True):
        option_line = re.match(r"\s*# \(env [A-Z_]+;", previous) is not None
        out.append(line.replace("# ", "", 1) if option_line else line)
    return "\n".join(out) + "\n"


def test_every_option_is_in_the_reference_file_with_its_env_var() -> None:
    document = yaml.safe_load(_uncommented_reference())
    text = REFERENCE.read_text(encoding="utf-8")
    for option in OPTIONS:
        node = document
        for key in option.yaml_path.split("."):
            assert isinstance(node, dict)
            assert key in node, option.yaml_path
            node = node[key]
        assert f"(env {option.env_var};" in text


def test_reference_file_loads_as_is() -> None:
    document = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    config = build_config([file_layer(REFERENCE.name, document).unwrap()], offline=True)
    assert config == build_config([], offline=True)


def test_uncommented_reference_defaults_are_the_real_defaults() -> None:
    document = yaml.safe_load(_uncommented_reference())
    config = build_config([file_layer(REFERENCE.name, document).unwrap()], offline=True)
    assert config == build_config([], offline=True)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.yaml_path)
def test_every_option_is_described(option: Option) -> None:
    assert option.description.endswith(".")
    assert option.env_var == option.env_var.upper()
