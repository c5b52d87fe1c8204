"""Documentation generated from the option registry: the configuration table
(``docs/config-table.md``), ``config.reference.yml`` and the migration guide's table
(``docs/migration.md``).

The docs tests compare both files with these functions, so the docs cannot drift from the code.
"""

from __future__ import annotations

import textwrap
from typing import Final

import msgspec

from elastic_connector.core.config.aliases import (
    ALIASES,
    EARLIER_KEYS,
    RETIRED,
    SAME_NAME_CHANGES,
    Alias,
    Retired,
)
from elastic_connector.core.config.export import env_text, plain_value
from elastic_connector.core.config.options import OPTIONS, Option


def _default_text(option: Option) -> str:
    if option.required:
        return "required"
    if option.default is None:
        return "unset"
    return env_text(plain_value(option.default, reveal_secrets=True))


def _earlier_names(option: Option) -> list[str]:
    """The earlier connector's names of ``option`` (``aliases``), YAML paths first."""
    names = [alias.yaml_path for alias in option.aliases if alias.yaml_path]
    return names + [alias.env_var for alias in option.aliases if alias.env_var]


def option_table_markdown() -> str:
    """The configuration table (Markdown), one row per option."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| YAML path | Environment variable | Type | Default | Secret | Description |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        default = _default_text(option)
        description = option.description
        earlier = _earlier_names(option)
        if earlier:
            description += (
                " Also read under the earlier connector's name "
                + " / ".join(f"`{name}`" for name in earlier)
                + "."
            )
        lines.append(
            f"| `{option.yaml_path}` | `{option.env_var}` | {cell(option.type_name)} | "
            f"{cell(default if default in ('required', 'unset') else f'`{default}`')} | "
            f"{'yes' if option.secret else ''} | {cell(description)} |"
        )
    return "\n".join(lines) + "\n"


_REFERENCE_HEADER: Final = """\
# elastic-connector: every configuration option, with its default and environment variable.
#
# Generated from the option registry (src/elastic_connector/core/config/options.py): do not edit by
# hand; regenerate with `UPDATE_CONFIG_DOCS=1 pytest tests/core/config/test_docs.py`.
#
# Precedence (later wins): built-in defaults < this file (`-c/--config`, default ./config.yml)
# < environment variables < CONNECTOR_JSON_CONFIG (a JSON object shaped like this file).
# An empty value means "not set here". Unknown keys are errors. Every option below is
# commented out and shows its default: uncomment the ones you change. `map` and `sightings`
# work without the options marked "required".
"""


def reference_yaml() -> str:
    """``config.reference.yml``: every option, commented out, with its default and variable."""
    lines = [_REFERENCE_HEADER.rstrip("\n")]
    opened: list[str] = []
    for option in OPTIONS:
        *sections, leaf = option.yaml_path.split(".")
        if sections != opened:
            common = 0
            while common < min(len(sections), len(opened)) and sections[common] == opened[common]:
                common += 1
            if common == 0:
                lines.append("")
            for depth in range(common, len(sections)):
                lines.append("  " * depth + f"{sections[depth]}:")
            opened = sections
        indent = "  " * len(sections)
        if sections == opened and lines[-1].lstrip().startswith("# "):
            lines.append("")
        lines.extend(
            textwrap.wrap(
                option.description,
                width=100,
                initial_indent=f"{indent}# ",
                subsequent_indent=f"{indent}# ",
            )
        )
        facts = [f"env {option.env_var}", option.type_name]
        if option.required:
            facts.append("required")
        if option.secret:
            facts.append("secret")
        earlier = _earlier_names(option)
        if earlier:
            facts.append(f"earlier name {', '.join(earlier)}")
        lines.append(f"{indent}# ({'; '.join(facts)})")
        if option.default is None:
            lines.append(f"{indent}# {leaf}:")
        else:
            default = msgspec.json.encode(plain_value(option.default, reveal_secrets=True)).decode()
            lines.append(f"{indent}# {leaf}: {default}")
    return "\n".join(lines) + "\n"


def _earlier_entry(path: str | None, variable: str | None) -> Alias | Retired | Option | None:
    """What an earlier (YAML path, variable) pair is here: an alias, a retired key, or ours."""
    for alias in ALIASES:
        if (path and alias.yaml_path == path) or (variable and alias.env_var == variable):
            return alias
    for retired in RETIRED:
        if path in retired.yaml_paths or variable in retired.env_vars:
            return retired
    for option in OPTIONS:
        if option.yaml_path == path or option.env_var == variable:
            return option
    return None


def migration_table_markdown() -> str:
    """The migration guide's table: every key the earlier connector documented, and what it is
    here (``aliases``)."""
    by_path = {option.yaml_path: option for option in OPTIONS}
    lines = [
        "| Earlier YAML key | Earlier variable | Here | Notes |",
        "|---|---|---|---|",
    ]
    for path, variable in EARLIER_KEYS:
        entry = _earlier_entry(path, variable)
        earlier_path = f"`{path}`" if path else ""
        earlier_variable = f"`{variable}`" if variable else ""
        if isinstance(entry, Alias):
            option = by_path[entry.option]
            here = f"`{option.yaml_path}` / `{option.env_var}`"
            notes = entry.meaning or "Same meaning; the earlier name is still read."
        elif isinstance(entry, Retired):
            here = "checked: must be `STREAM`" if entry.check is not None else "ignored (a warning)"
            notes = entry.replacement[0].upper() + entry.replacement[1:] + "."
        elif isinstance(entry, Option):
            here = "same" if variable in (None, entry.env_var) else f"`{entry.env_var}`"
            notes = SAME_NAME_CHANGES.get(entry.yaml_path, "")
        else:  # a key EARLIER_KEYS lists that the registry forgot: the docs test fails on it
            here, notes = "**unknown**", ""
        lines.append(f"| {earlier_path} | {earlier_variable} | {here} | {notes} |")
    return "\n".join(lines) + "\n"
