"""A ``Config`` written back out: as YAML-shaped data, or as environment variables; and as the
text of ``elastic-connector config`` (each value with where it came from).

Both load back (``load``) to an equal Config when secrets are revealed; by default
every secret is written as ``***``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import msgspec

from elastic_connector.core.config.model import Config, Secret
from elastic_connector.core.config.options import OPTIONS, put_at_path
from elastic_connector.core.policy.tlp import Tlp


def plain_value(value: object, *, reveal_secrets: bool) -> object:
    """A typed value as YAML/JSON data (the form the loader reads back to the same value)."""
    if isinstance(value, Secret):
        return value.reveal() if reveal_secrets else "***"
    if isinstance(value, Tlp):
        return value.label
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def config_to_mapping(config: Config, *, reveal_secrets: bool = False) -> dict[str, object]:
    """Every setting of ``config`` as a YAML-shaped mapping; secrets are ``***`` unless revealed.

    With ``reveal_secrets=True`` the mapping loads back (``file_layer`` + ``build_config``) to an
    equal Config.
    """
    mapping: dict[str, object] = {}
    for option in OPTIONS:
        value = getattr(getattr(config, option.section), option.name)
        put_at_path(mapping, option.yaml_path, plain_value(value, reveal_secrets=reveal_secrets))
    return mapping


def env_text(plain: object) -> str:
    """A plain value as environment text: true/false, comma-separated lists, "" for None."""
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, list):
        return ",".join(str(item) for item in plain)
    if plain is None:
        return ""
    return str(plain)


def config_to_env(config: Config, *, reveal_secrets: bool = False) -> dict[str, str]:
    """Every setting that has a value, as environment variables (reloads to an equal Config)."""
    env: dict[str, str] = {}
    for option in OPTIONS:
        value = getattr(getattr(config, option.section), option.name)
        text = env_text(plain_value(value, reveal_secrets=reveal_secrets))
        if text:
            env[option.env_var] = text
    return env


def _yaml_scalar(plain: object) -> str:
    # JSON is YAML: strings quoted, lists in brackets, null; it reads back to the same value.
    return msgspec.json.encode(plain).decode()


def effective_yaml(config: Config, origins: Mapping[str, object]) -> str:
    """``config`` as a YAML file, each value followed by where it came from (``# env X``);
    secrets are ``***``. ``origins``: by YAML path, anything whose ``str`` says the source."""
    lines = ["# elastic-connector: effective configuration (secrets shown as ***)"]
    opened: list[str] = []
    for option in OPTIONS:
        *sections, leaf = option.yaml_path.split(".")
        common = 0
        while common < min(len(sections), len(opened)) and sections[common] == opened[common]:
            common += 1
        for depth in range(common, len(sections)):
            lines.append("  " * depth + f"{sections[depth]}:")
        opened = sections
        value = getattr(getattr(config, option.section), option.name)
        plain = plain_value(value, reveal_secrets=False)
        origin = origins.get(option.yaml_path, "default")
        lines.append(f"{'  ' * len(sections)}{leaf}: {_yaml_scalar(plain)}  # {origin}")
    return "\n".join(lines) + "\n"


def effective_env(config: Config, origins: Mapping[str, object]) -> str:
    """``config`` as environment variables (``NAME=value``, the form of ``docker --env-file``),
    each after a comment saying where it came from; secrets are ``***``, unset options left out."""
    lines = ["# elastic-connector: effective configuration (secrets shown as ***)"]
    for option in OPTIONS:
        value = getattr(getattr(config, option.section), option.name)
        text = env_text(plain_value(value, reveal_secrets=False))
        if text:
            lines.append(f"# {origins.get(option.yaml_path, 'default')}")
            lines.append(f"{option.env_var}={text}")
    return "\n".join(lines) + "\n"
