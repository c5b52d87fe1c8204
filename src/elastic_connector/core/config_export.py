"""A ``Config`` written back out: as YAML-shaped data, or as environment variables.

Both load back (``config_loading``) to an equal Config when secrets are revealed; by default
every secret is written as ``***``.
"""

from __future__ import annotations

import enum

from elastic_connector.core.config import Config, Secret
from elastic_connector.core.config_options import OPTIONS, put_at_path
from elastic_connector.core.tlp import Tlp


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
