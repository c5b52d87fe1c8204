"""Read the settings sources and hand them to ``core.config.load``.

Sources, lowest precedence first: the YAML file (``-c/--config``, default ``./config.yml``), the
environment, and ``CONNECTOR_JSON_CONFIG`` (a JSON object shaped like the YAML file). This
module only does the reading; merging and validation are pure (``build_config``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Final

import msgspec
import yaml
from returns.result import Failure, Result, Success

from elastic_connector.core.config import Config
from elastic_connector.core.config.load import (
    JSON_CONFIG_ENV,
    ConfigError,
    Effective,
    Layer,
    build_effective,
    env_layer,
    file_layer,
    file_source,
    json_layer,
    misspelled_env_vars,
)

DEFAULT_CONFIG_PATH: Final = Path("config.yml")
"""Read when no ``-c/--config`` is given; unlike an explicit path, it may be missing."""


def load_config(
    config_path: Path | None, environ: Mapping[str, str], *, offline: bool = False
) -> Result[Config, tuple[ConfigError, ...]]:
    """The effective ``Config`` from the file, ``environ`` and ``CONNECTOR_JSON_CONFIG``.

    ``config_path`` None means ``./config.yml`` if it exists. A file or JSON document that
    cannot be read is reported alone (other errors would be guesses without it); otherwise every
    invalid setting is reported at once. ``offline``: see ``core.config.load.build_config``.
    """
    return load_effective(config_path, environ, offline=offline).map(lambda found: found.config)


def load_effective(
    config_path: Path | None, environ: Mapping[str, str], *, offline: bool = False
) -> Result[Effective, tuple[ConfigError, ...]]:
    """``load_config``, with where each value came from and the notes on the names used."""
    file_result = read_config_file(config_path)
    json_result = json_layer(environ.get(JSON_CONFIG_ENV, ""))
    if isinstance(file_result, Success) and isinstance(json_result, Success):
        layers = [*file_result.unwrap(), env_layer(environ), json_result.unwrap()]
        # A misspelt variable is silently ignored otherwise (CONNECTOR_MIN_SCOR=50 would turn
        # the filter off): every command warns, not only `check`.
        hints = misspelled_env_vars(environ)
        return build_effective(layers, offline=offline).map(
            lambda effective: msgspec.structs.replace(effective, notes=(*effective.notes, *hints))
        )
    return Failure((*_problems(file_result), *_problems(json_result)))


def _problems(result: Result[object, tuple[ConfigError, ...]]) -> tuple[ConfigError, ...]:
    return result.failure() if isinstance(result, Failure) else ()


def read_config_file(
    config_path: Path | None,
) -> Result[tuple[Layer, ...], tuple[ConfigError, ...]]:
    """The YAML file's layer: none when the default file is absent, an error when any other
    problem occurs (explicit file missing, unreadable, not UTF-8, invalid YAML, not a mapping).
    """
    path = config_path if config_path is not None else DEFAULT_CONFIG_PATH
    source = file_source(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if config_path is None:
            return Success(())
        return Failure((ConfigError(source, "", "does not exist"),))
    except UnicodeDecodeError as error:
        return Failure((ConfigError(source, "", f"is not UTF-8 text (byte {error.start})"),))
    except OSError as error:
        return Failure((ConfigError(source, "", f"cannot be read: {error.strerror or error}"),))
    parsed = parse_yaml(text)
    if isinstance(parsed, Failure):
        return Failure((ConfigError(source, "", parsed.failure()),))
    return file_layer(str(path), parsed.unwrap()).map(lambda layer: (layer,))


def parse_yaml(text: str) -> Result[object, str]:
    """``text`` as YAML data (safe tags only), or why not.

    The message gives the problem and its line/column but never the offending line: PyYAML's own
    message quotes it, and that line may hold a token or password.
    """
    try:
        document: object = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as error:
        parts = [
            f"{what} (line {mark.line + 1}, column {mark.column + 1})"
            for what, mark in (
                (error.context, error.context_mark),
                (error.problem, error.problem_mark),
            )
            if what and mark
        ]
        return Failure(f"is not valid YAML: {': '.join(parts) or 'syntax error'}")
    except yaml.YAMLError:
        return Failure("is not valid YAML")
    except (ValueError, RecursionError) as error:
        # PyYAML lets these through: integers over Python's digit limit, absurd nesting.
        return Failure(f"is not usable YAML: {type(error).__name__}")
    return Success(document)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys, which PyYAML would silently collapse
    (the last one winning): a repeated ``token:`` or ``ssl_verify:`` must not go unnoticed.
    """

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, object]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue  # merge keys (`<<: *base`) may legitimately be overridden
            key = (key_node.tag, str(key_node.value))
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {str(key_node.value)!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)
