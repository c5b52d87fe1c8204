"""Building a ``Config`` from its sources, and the errors that say why it could not be built.

Layers (later wins): built-in defaults < YAML file < environment variables <
``CONNECTOR_JSON_CONFIG``. The shell reads each source into a ``Layer``; merging and validation
here are pure. Validation reports every invalid value at once, naming the layer it came from and
its path; secret values never appear in any error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from elastic_connector.core.config import (
    OFFLINE_CONNECTOR_ID,
    OFFLINE_OPENCTI_TOKEN,
    OFFLINE_OPENCTI_URL,
    Config,
    Secret,
)
from elastic_connector.core.config_options import OPTIONS, PARSERS, Option, put_at_path
from elastic_connector.core.config_values import kind_of, show

# ---------------------------------------------------------------------------------------------
# Errors and sources

SOURCE_DEFAULTS: Final = "defaults"
SOURCE_ENV: Final = "env"
JSON_CONFIG_ENV: Final = "CONNECTOR_JSON_CONFIG"
SOURCE_JSON: Final = JSON_CONFIG_ENV


def file_source(path: str) -> str:
    """The ``source`` that names a YAML file in errors: ``file <path>``."""
    return f"file {path}"


class ConfigError(msgspec.Struct, frozen=True):
    """One problem with the settings: the layer it came from, the option, what is wrong.

    ``source`` is ``defaults``, ``file <path>``, ``env`` or ``CONNECTOR_JSON_CONFIG``; ``path``
    is the YAML path (``output.elasticsearch.hosts``), or the variable name for ``env``, or empty
    for a problem with a whole layer. ``message`` never contains a secret value.
    """

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.source} {self.path}: {self.message}"
        return f"{self.source}: {self.message}"


class Layer(msgspec.Struct, frozen=True):
    """Raw settings from one source, nested like the YAML file: ``{"opencti": {"url": ...}}``."""

    source: str
    values: Mapping[str, object]


# ---------------------------------------------------------------------------------------------
# The registry, indexed for the loader

_BY_PATH: Final[Mapping[str, Option]] = {option.yaml_path: option for option in OPTIONS}

# The YAML shape: section keys -> nested dicts, option names -> the Option.
_Tree: TypeAlias = dict[str, "_Tree | Option"]


def _build_tree() -> _Tree:
    tree: _Tree = {}
    for option in OPTIONS:
        node = tree
        *sections, leaf = option.yaml_path.split(".")
        for key in sections:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise TypeError(f"{option.yaml_path}: a section has the name of an option")
            node = child
        node[leaf] = option
    return tree


_TREE: Final = _build_tree()
_KNOWN_PATHS: Final[tuple[str, ...]] = tuple(
    sorted({".".join(o.yaml_path.split(".")[:n]) for o in OPTIONS for n in range(1, 4)} - {""})
)


# ---------------------------------------------------------------------------------------------
# Layers


def env_layer(environ: Mapping[str, str]) -> Layer:
    """The settings found in ``environ`` (one variable per option; other variables are ignored).

    Values stay strings; ``build_config`` converts them. An empty value means "not set".
    """
    values: dict[str, object] = {}
    for option in OPTIONS:
        if option.env_var in environ:
            put_at_path(values, option.yaml_path, environ[option.env_var])
    return Layer(SOURCE_ENV, values)


def json_layer(text: str) -> Result[Layer, tuple[ConfigError, ...]]:
    """The ``CONNECTOR_JSON_CONFIG`` layer: a JSON object shaped like the YAML file.

    Empty text is an empty layer. The error for invalid JSON gives the position, never the text.
    """
    if not text.strip():
        return Success(Layer(SOURCE_JSON, {}))
    try:
        document = msgspec.json.decode(text)
    except msgspec.DecodeError as error:
        return Failure((ConfigError(SOURCE_JSON, "", f"is not valid JSON: {error}"),))
    except RecursionError:
        return Failure((ConfigError(SOURCE_JSON, "", "is nested too deeply"),))
    if not isinstance(document, dict):
        return Failure(
            (
                ConfigError(
                    SOURCE_JSON,
                    "",
                    f'must be a JSON object like {{"opencti": {{...}}}}, got {kind_of(document)}',
                ),
            )
        )
    return Success(Layer(SOURCE_JSON, document))


def file_layer(path: str, document: object) -> Result[Layer, tuple[ConfigError, ...]]:
    """The layer of a parsed YAML file; an empty file (``None``) is an empty layer."""
    source = file_source(path)
    if document is None:
        return Success(Layer(source, {}))
    if not isinstance(document, Mapping):
        return Failure(
            (
                ConfigError(
                    source,
                    "",
                    f"must be a mapping (opencti:, connector:, ...), got {kind_of(document)}",
                ),
            )
        )
    return Success(Layer(source, document))


# ---------------------------------------------------------------------------------------------
# Building the Config


def _is_unset(raw: object) -> bool:
    """None, blank strings and empty lists mean "not set here": lower layers apply."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, (list, tuple)):
        return len(raw) == 0
    return False


def _where(option: Option, source: str) -> str:
    return option.env_var if source == SOURCE_ENV else option.yaml_path


def _unknown_key(prefix: str, key: object, siblings: Iterable[str]) -> tuple[str, str]:
    """Path and message for a key that is not an option, with a "did you mean" when one is close."""
    if not isinstance(key, str):
        return prefix + show(key), "unknown option (keys must be strings)"
    names = sorted(siblings)
    close = difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.6)
    if close:
        return prefix + key, f"unknown option; did you mean {prefix}{close[0]}?"
    elsewhere = [
        path
        for path in _KNOWN_PATHS
        if difflib.SequenceMatcher(None, key.lower(), path.rsplit(".", 1)[-1]).ratio() >= 0.8
    ]
    if elsewhere:
        return prefix + key, f"unknown option; did you mean {' or '.join(elsewhere[:3])}?"
    return prefix + key, f"unknown option; expected one of: {', '.join(names)}"


def _collect(layer: Layer, errors: list[ConfigError]) -> dict[str, object]:
    """The option values a layer sets, by YAML path; unknown keys and misplaced values -> errors."""
    found: dict[str, object] = {}

    def walk(node: Mapping[object, object], tree: _Tree, prefix: str) -> None:
        for key, value in node.items():
            if not isinstance(key, str) or key not in tree:
                path, message = _unknown_key(prefix, key, tree)
                errors.append(ConfigError(layer.source, path, message))
                continue
            sub = tree[key]
            if isinstance(sub, Option):
                found[sub.yaml_path] = value
            elif value is None:
                continue  # an empty section, e.g. only comments under `kibana:`
            elif isinstance(value, Mapping):
                walk(value, sub, f"{prefix}{key}.")
            else:
                errors.append(
                    ConfigError(
                        layer.source,
                        prefix + key,
                        f"must be a mapping ({', '.join(sorted(sub))}), got {kind_of(value)}",
                    )
                )

    # Typed as a mapping, but layers are built from arbitrary YAML/JSON: check, never trust.
    values: object = layer.values
    if isinstance(values, Mapping):
        walk(values, _TREE, "")
    else:
        errors.append(ConfigError(layer.source, "", f"must be a mapping, got {kind_of(values)}"))
    return found


def build_config(
    layers: Sequence[Layer], *, offline: bool = False
) -> Result[Config, tuple[ConfigError, ...]]:
    """Merge ``layers`` (lowest precedence first) over the defaults and validate the result.

    For each option the highest layer that sets it (not null, not blank) wins; only that value
    is validated, so a file may hold a placeholder that the environment overrides. Unknown keys
    in any layer are errors. Every problem is reported, each naming its source and path.
    ``offline`` (for the commands that never reach OpenCTI) lets opencti.url, opencti.token and
    connector.id be missing: they then hold the inert ``OFFLINE_*`` placeholders.
    """
    errors: list[ConfigError] = []
    chosen: dict[str, tuple[str, object]] = {}
    for layer in layers:
        for path, raw in _collect(layer, errors).items():
            if not _is_unset(raw):
                chosen[path] = (layer.source, raw)

    values: dict[str, object] = {}
    for option in OPTIONS:
        path = option.yaml_path
        if path in chosen:
            source, raw = chosen[path]
            parsed = PARSERS[path](raw)
            if isinstance(parsed, Success):
                values[path] = parsed.unwrap()
            else:
                errors.append(ConfigError(source, _where(option, source), parsed.failure()))
        elif not option.required:
            values[path] = option.default
        elif offline and path in _OFFLINE_PLACEHOLDERS:
            values[path] = _OFFLINE_PLACEHOLDERS[path]
        else:
            errors.append(
                ConfigError(
                    SOURCE_DEFAULTS,
                    path,
                    f"is required: set it in the config file, {option.env_var} or {SOURCE_JSON}",
                )
            )
    errors.extend(_conflicts({path: source for path, (source, _) in chosen.items()}))
    if errors:
        return Failure(tuple(errors))
    if "cloud.id" in chosen:
        # With a Cloud id the hosts come from it: no default localhost to connect to by mistake.
        values["output.elasticsearch.hosts"] = ()
    return _assemble(values)


_OFFLINE_PLACEHOLDERS: Final[Mapping[str, object]] = {
    "opencti.url": OFFLINE_OPENCTI_URL,
    "opencti.token": OFFLINE_OPENCTI_TOKEN,
    "connector.id": OFFLINE_CONNECTOR_ID,
}


def _conflicts(given: Mapping[str, str]) -> list[ConfigError]:
    """Settings valid alone but not together (``given``: path -> source, for each one set)."""
    errors: list[ConfigError] = []

    def error(path: str, message: str) -> None:
        errors.append(ConfigError(given[path], _where(_BY_PATH[path], given[path]), message))

    def needs(path: str, partner: str) -> None:
        if path in given and partner not in given:
            error(path, f"is set but {_named(partner)} is not: set both or neither")

    es = "output.elasticsearch."
    if "cloud.id" in given and f"{es}hosts" in given:
        error(f"{es}hosts", f"cannot be combined with {_named('cloud.id')}: remove one")
    if "cloud.auth" in given and "cloud.id" not in given:
        error("cloud.auth", f"is set but {_named('cloud.id')} is not")
    needs(f"{es}username", f"{es}password")
    needs(f"{es}password", f"{es}username")
    needs(f"{es}client_cert", f"{es}client_key")
    needs(f"{es}client_key", f"{es}client_cert")
    methods = [path for path in (f"{es}api_key", f"{es}username", "cloud.auth") if path in given]
    for path in methods[1:]:
        error(path, f"cannot be combined with {_named(methods[0])}: authenticate one way")
    return errors


def _named(path: str) -> str:
    return f"{path} ({_BY_PATH[path].env_var})"


def _keep_secret(target: type, value: object) -> object:
    if target is Secret and isinstance(value, Secret):
        return value
    raise NotImplementedError


def _assemble(values: Mapping[str, object]) -> Result[Config, tuple[ConfigError, ...]]:
    nested: dict[str, dict[str, object]] = {}
    for option in OPTIONS:
        nested.setdefault(option.section, {})[option.name] = values[option.yaml_path]
    try:
        return Success(msgspec.convert(nested, Config, dec_hook=_keep_secret))
    except msgspec.ValidationError as error:  # a parser/field type mismatch: a bug, still no crash
        return Failure((ConfigError(SOURCE_DEFAULTS, "", f"internal error: {error}"),))


# ---------------------------------------------------------------------------------------------
# Warnings about the environment

# Environment variables pycti reads that are not settings of ours: never reported as typos.
_PYCTI_ONLY_ENV: Final = frozenset(
    {
        "CONNECTOR_AUTO",
        "CONNECTOR_AUTO_CREATE_SERVICE_ACCOUNT",
        "CONNECTOR_AUTO_CREATE_SERVICE_ACCOUNT_CONFIDENCE_LEVEL",
        "CONNECTOR_AUTO_UPDATE",
        "CONNECTOR_CONFIDENCE_LEVEL",
        "CONNECTOR_DURATION_PERIOD",
        "CONNECTOR_ENRICHMENT_RESOLUTION",
        "CONNECTOR_EXPOSE_METRICS",
        "CONNECTOR_LISTEN_PROTOCOL",
        "CONNECTOR_LISTEN_PROTOCOL_API_PATH",
        "CONNECTOR_LISTEN_PROTOCOL_API_PORT",
        "CONNECTOR_LISTEN_PROTOCOL_API_SSL",
        "CONNECTOR_LISTEN_PROTOCOL_API_URI",
        "CONNECTOR_METRICS_NAMESPACE",
        "CONNECTOR_METRICS_SUBSYSTEM",
        "CONNECTOR_ONLY_CONTEXTUAL",
        "CONNECTOR_QUEUE_PROTOCOL",
        "CONNECTOR_QUEUE_THRESHOLD",
        "CONNECTOR_RUN_AND_TERMINATE",
        "CONNECTOR_SEND_TO_DIRECTORY",
        "CONNECTOR_SEND_TO_DIRECTORY_PATH",
        "CONNECTOR_SEND_TO_DIRECTORY_RETENTION",
        "CONNECTOR_SEND_TO_QUEUE",
        "CONNECTOR_SEND_TO_S3",
        "CONNECTOR_SEND_TO_S3_BUCKET",
        "CONNECTOR_SEND_TO_S3_FOLDER",
        "CONNECTOR_SEND_TO_S3_RETENTION",
        "CONNECTOR_TYPE",
        "CONNECTOR_UPDATE_EXISTING_DATA",
        "CONNECTOR_VALIDATE_BEFORE_IMPORT",
        "CONNECTOR_XTM_ONE_INTENT",
        "OPENCTI_CUSTOM_HEADERS",
        "OPENCTI_JSON_LOGGING",
        "OPENCTI_MISSING_REF_RETRY_EXPONENTIAL",
        "OPENCTI_MISSING_REF_RETRY_FACTOR",
        "OPENCTI_MISSING_REF_RETRY_INITIAL_DELAY",
        JSON_CONFIG_ENV,
    }
)


def misspelled_env_vars(environ: Mapping[str, str]) -> tuple[ConfigError, ...]:
    """Variables that look like a misspelt setting (``CONNECTOR_MAX_TPL``), for warnings.

    Not errors: the environment is shared with other software. Only names with one of our
    prefixes, close to one of our variables and not read by pycti, are reported.
    """
    ours = {option.env_var for option in OPTIONS}
    prefixes = tuple(sorted({f"{option.section.upper()}_" for option in OPTIONS}))
    hints = []
    for name in sorted(environ):
        if name in ours or name in _PYCTI_ONLY_ENV or not name.startswith(prefixes):
            continue
        close = difflib.get_close_matches(name, ours, n=1, cutoff=0.85)
        if close:
            hints.append(
                ConfigError(
                    SOURCE_ENV, name, f"is not a setting (ignored); did you mean {close[0]}?"
                )
            )
    return tuple(hints)
