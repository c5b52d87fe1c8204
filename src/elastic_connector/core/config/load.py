"""Building a ``Config`` from its sources, and the errors that say why it could not be built.

Layers (later wins): built-in defaults < YAML file < environment variables <
``CONNECTOR_JSON_CONFIG``. The shell reads each source into a ``Layer``; merging and validation
here are pure. Validation reports every invalid value at once, naming the layer it came from and
its path; secret values never appear in any error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec
from returns.result import Failure, Result, Success

from elastic_connector.core.config.aliases import ALIASES, RETIRED, Alias, Retired
from elastic_connector.core.config.model import (
    OFFLINE_CONNECTOR_ID,
    OFFLINE_OPENCTI_TOKEN,
    OFFLINE_OPENCTI_URL,
    Config,
    Secret,
)
from elastic_connector.core.config.options import OPTIONS, PARSERS, Option
from elastic_connector.core.config.values import bare_host_url, kind_of, show

# ---------------------------------------------------------------------------------------------
# Errors and sources

SOURCE_DEFAULTS: Final = "defaults"
SOURCE_DERIVED: Final = "derived"
"""The origin of a value another setting decides (hosts, with cloud.id)."""
SOURCE_OFFLINE: Final = "offline"
"""The origin of the placeholders of the offline commands."""
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
_BY_ENV: Final[Mapping[str, Option]] = {option.env_var: option for option in OPTIONS}
_ALIAS_BY_PATH: Final[Mapping[str, Alias]] = {a.yaml_path: a for a in ALIASES if a.yaml_path}
_ALIAS_BY_ENV: Final[Mapping[str, Alias]] = {a.env_var: a for a in ALIASES if a.env_var}
_RETIRED_BY_PATH: Final[Mapping[str, Retired]] = {
    path: retired for retired in RETIRED for path in retired.yaml_paths
}
_RETIRED_BY_ENV: Final[Mapping[str, Retired]] = {
    name: retired for retired in RETIRED for name in retired.env_vars
}
_ENV_NAMES: Final = frozenset({*_BY_ENV, *_ALIAS_BY_ENV, *_RETIRED_BY_ENV})


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _children(paths: Iterable[str]) -> dict[str, set[str]]:
    """Section ("" for the top) -> the names directly under it."""
    children: dict[str, set[str]] = {}
    for path in paths:
        *sections, _ = path.split(".")
        for depth, name in enumerate(path.split(".")):
            children.setdefault(".".join(sections[:depth]), set()).add(name)
    return children


def _check_names() -> None:
    leaves = [*_BY_PATH, *_ALIAS_BY_PATH, *_RETIRED_BY_PATH]
    if len(set(leaves)) != len(leaves):
        raise TypeError("a YAML path is declared twice (option, alias or retired key)")
    names = [*_BY_ENV, *_ALIAS_BY_ENV, *_RETIRED_BY_ENV]
    if len(set(names)) != len(names):
        raise TypeError("an environment variable is declared twice")
    if set(leaves) & {prefix for path in leaves for prefix in _prefixes(path)}:
        raise TypeError("a section has the name of an option")


_check_names()
_ACCEPTED_SECTIONS: Final = frozenset(
    prefix for path in (*_BY_PATH, *_ALIAS_BY_PATH, *_RETIRED_BY_PATH) for prefix in _prefixes(path)
)
_OUR_CHILDREN: Final = _children(_BY_PATH)
_ALL_CHILDREN: Final = _children((*_BY_PATH, *_ALIAS_BY_PATH, *_RETIRED_BY_PATH))
_KNOWN_PATHS: Final[tuple[str, ...]] = tuple(
    sorted({".".join(o.yaml_path.split(".")[:n]) for o in OPTIONS for n in range(1, 4)} - {""})
)


def _names_under(section: str) -> set[str]:
    """What may follow ``section`` (ours; the earlier names only where we have none)."""
    return _OUR_CHILDREN.get(section) or _ALL_CHILDREN.get(section, set())


# ---------------------------------------------------------------------------------------------
# Layers


def env_layer(environ: Mapping[str, str]) -> Layer:
    """The settings found in ``environ``: one variable per option, plus the earlier connector's
    names (``aliases``); other variables are ignored.

    Values stay strings, by variable name; ``build_config`` converts them. An empty value means
    "not set".
    """
    return Layer(SOURCE_ENV, {name: environ[name] for name in sorted(_ENV_NAMES & set(environ))})


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
# Where each value came from, and what the loader has to say about the names used


class Origin(msgspec.Struct, frozen=True):
    """Where an option's effective value came from: the layer, and the name it was given under
    (a YAML path, or a variable for ``env``); ``alias_of`` is our name when that is an earlier
    one."""

    source: str
    key: str = ""
    alias_of: str = ""

    def __str__(self) -> str:
        if self.source == SOURCE_DEFAULTS:
            return "default"
        if self.source == SOURCE_DERIVED:
            return f"from {self.key}"
        if self.source == SOURCE_OFFLINE:
            return "offline placeholder"
        if self.source == SOURCE_ENV:
            where = f"env {self.key}"
        elif self.source == SOURCE_JSON:
            where = f"json {self.key}" if self.alias_of else "json"
        else:
            where = f"{self.source} {self.key}" if self.alias_of else self.source
        return f"{where}, alias of {self.alias_of}" if self.alias_of else where


_DEFAULT_ORIGIN: Final = Origin(SOURCE_DEFAULTS)


class ConfigNote(msgspec.Struct, frozen=True):
    """Something the operator should know about settings that load: an earlier name used
    (informational) or a key that is ignored (``warning``). Reads like a ``ConfigError``."""

    source: str
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.source} {self.path}: {self.message}" if self.path else self.message


class Effective(msgspec.Struct, frozen=True):
    """A valid configuration, where each value came from (by YAML path; every option has one),
    and the notes on the names used."""

    config: Config
    origins: Mapping[str, Origin]
    notes: tuple[ConfigNote, ...] = ()


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


class _Given(msgspec.Struct, frozen=True):
    """One value a layer gives an option, under the name ``key`` (``alias``: an earlier one)."""

    source: str
    key: str
    raw: object
    alias: Alias | None = None

    def origin(self) -> Origin:
        if self.alias is None:
            return Origin(self.source, self.key)
        option = _BY_PATH[self.alias.option]
        ours = option.env_var if self.source == SOURCE_ENV else option.yaml_path
        return Origin(self.source, self.key, ours)


class _Collected(msgspec.Struct):
    given: dict[str, list[_Given]]
    """Our YAML path -> the values given to it, under any of its names."""
    retired: dict[int, list[tuple[str, object]]]
    """Index in RETIRED -> the (name, value) pairs given."""


def _collect(layer: Layer, errors: list[ConfigError]) -> _Collected:
    """What a layer sets, by our YAML path; unknown keys and misplaced values -> errors."""
    found = _Collected({}, {})
    source = layer.source

    def give(path: str, key: str, raw: object, alias: Alias | None) -> None:
        found.given.setdefault(path, []).append(_Given(source, key, raw, alias))

    def retire(entry: Retired, key: str, raw: object) -> None:
        found.retired.setdefault(RETIRED.index(entry), []).append((key, raw))

    def walk(node: Mapping[object, object], prefix: str) -> None:
        section = prefix.rstrip(".")
        for key, value in node.items():
            path = f"{prefix}{key}" if isinstance(key, str) else ""
            if path in _BY_PATH:
                give(path, path, value, None)
            elif path in _ALIAS_BY_PATH:
                alias = _ALIAS_BY_PATH[path]
                give(alias.option, path, value, alias)
            elif path in _RETIRED_BY_PATH:
                retire(_RETIRED_BY_PATH[path], path, value)
            elif path in _ACCEPTED_SECTIONS:
                if value is None:
                    continue  # an empty section, e.g. only comments under `kibana:`
                if isinstance(value, Mapping):
                    walk(value, f"{path}.")
                else:
                    names = ", ".join(sorted(_names_under(path)))
                    errors.append(
                        ConfigError(
                            source, path, f"must be a mapping ({names}), got {kind_of(value)}"
                        )
                    )
            else:
                unknown, message = _unknown_key(prefix, key, _names_under(section))
                errors.append(ConfigError(source, unknown, message))

    def read_environment(values: Mapping[object, object]) -> None:
        for name, raw in values.items():
            if not isinstance(name, str):
                continue
            if name in _BY_ENV:
                give(_BY_ENV[name].yaml_path, name, raw, None)
            elif name in _ALIAS_BY_ENV:
                alias = _ALIAS_BY_ENV[name]
                give(alias.option, name, raw, alias)
            elif name in _RETIRED_BY_ENV:
                retire(_RETIRED_BY_ENV[name], name, raw)

    # Typed as a mapping, but layers are built from arbitrary YAML/JSON: check, never trust.
    values: object = layer.values
    if not isinstance(values, Mapping):
        errors.append(ConfigError(source, "", f"must be a mapping, got {kind_of(values)}"))
    elif source == SOURCE_ENV:
        read_environment(values)
    else:
        walk(values, "")
    return found


def _notes_on_names(
    source: str, collected: _Collected, errors: list[ConfigError]
) -> list[ConfigNote]:
    """One line per earlier name used, one per retired group used; retired keys' checks."""
    notes: list[ConfigNote] = []
    for givens in collected.given.values():
        for given in givens:
            if given.alias is None or _is_unset(given.raw):
                continue
            option = _BY_PATH[given.alias.option]
            ours, also = (option.env_var, option.yaml_path)
            if source != SOURCE_ENV:
                ours, also = also, ours
            notes.append(
                ConfigNote(source, given.key, f"is the earlier name of {ours} ({also}): read as it")
            )
    for index, pairs in sorted(collected.retired.items()):
        entry = RETIRED[index]
        used = [(key, raw) for key, raw in pairs if not _is_unset(raw)]
        if not used:
            continue
        if entry.check is not None:
            for key, raw in used:
                checked = entry.check(raw)
                if isinstance(checked, Failure):
                    errors.append(ConfigError(source, key, checked.failure()))
        notes.append(
            ConfigNote(
                source,
                ", ".join(key for key, _ in used),
                f"{'is' if len(used) == 1 else 'are'} not used by this connector (ignored): "
                f"{entry.replacement}",
                warning=entry.warning,
            )
        )
    return notes


def _bare_hosts(raw: object) -> list[tuple[str, str]]:
    """(as written, as read) for each Elasticsearch host given without a scheme."""
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list | tuple) else []
    pairs = []
    for item in items:
        url = bare_host_url(item.strip()) if isinstance(item, str) else None
        if url is not None:
            pairs.append((item.strip(), url))
    return pairs


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
    return build_effective(layers, offline=offline).map(lambda effective: effective.config)


def build_effective(
    layers: Sequence[Layer], *, offline: bool = False
) -> Result[Effective, tuple[ConfigError, ...]]:
    """``build_config``, plus where each value came from and the notes on the names used.

    An option may be given under its earlier name (``aliases``): it is then read exactly
    as under ours. Given under both names in one layer, the values must agree.
    """
    errors: list[ConfigError] = []
    notes: list[ConfigNote] = []
    chosen: dict[str, list[_Given]] = {}
    for layer in layers:
        collected = _collect(layer, errors)
        notes.extend(_notes_on_names(layer.source, collected, errors))
        for path, givens in collected.given.items():
            given = [item for item in givens if not _is_unset(item.raw)]
            if given:
                chosen[path] = given

    values: dict[str, object] = {}
    origins: dict[str, Origin] = {}
    for option in OPTIONS:
        path = option.yaml_path
        if path in chosen:
            picked = _pick(option, chosen[path], errors)
            if picked is not None:
                values[path], winner = picked
                origins[path] = winner.origin()
                if path == _HOSTS:
                    notes.extend(
                        ConfigNote(
                            winner.source,
                            winner.key,
                            f"{show(written)} has no scheme: read as {url} (plain HTTP, as the "
                            "earlier connector did); write https://... to use TLS",
                            warning=True,
                        )
                        for written, url in _bare_hosts(winner.raw)
                    )
                if path == _ALERTS_INDEX and str(values[path]).startswith(".siem-signals"):
                    notes.append(
                        ConfigNote(
                            winner.source,
                            winner.key,
                            f"{show(values[path])} is where Elastic 7 wrote detection alerts; "
                            "Elastic 8 and 9 write them to .alerts-security.alerts-<space>: "
                            "leave the option unset to read those (the default)",
                            warning=True,
                        )
                    )
        elif not option.required:
            values[path] = option.default
            origins[path] = _DEFAULT_ORIGIN
        elif offline and path in _OFFLINE_PLACEHOLDERS:
            values[path] = _OFFLINE_PLACEHOLDERS[path]
            origins[path] = Origin(SOURCE_OFFLINE)
        else:
            errors.append(
                ConfigError(
                    SOURCE_DEFAULTS,
                    path,
                    f"is required: set it in the config file, {option.env_var} or {SOURCE_JSON}",
                )
            )
    errors.extend(_conflicts({path: given[0] for path, given in chosen.items()}))
    if errors:
        return Failure(tuple(errors))
    if "cloud.id" in chosen:
        # With a Cloud id the hosts come from it: no default localhost to connect to by mistake.
        values[_HOSTS] = ()
        origins[_HOSTS] = Origin(SOURCE_DERIVED, "cloud.id")
    return _assemble(values).map(
        lambda config: Effective(config, origins, tuple(dict.fromkeys(notes)))
    )


_HOSTS: Final = "output.elasticsearch.hosts"
_ALERTS_INDEX: Final = "sightings.alerts_index"


def _pick(
    option: Option, given: list[_Given], errors: list[ConfigError]
) -> tuple[object, _Given] | None:
    """The value of ``option`` in the layer that sets it (under one name or several), or None
    after recording why it is invalid."""
    parse = PARSERS[option.yaml_path]
    given = sorted(given, key=lambda item: item.alias is not None)  # ours first
    parsed: list[tuple[object, _Given]] = []
    for item in given:
        result = parse(item.raw)
        if isinstance(result, Success):
            parsed.append((result.unwrap(), item))
        else:
            errors.append(ConfigError(item.source, item.key, result.failure()))
    if len(parsed) < len(given):
        return None
    first_value = parsed[0][0]
    for value, item in parsed[1:]:
        if value != first_value:
            names = " and ".join(dict.fromkeys(other.key for other in given))
            errors.append(
                ConfigError(
                    item.source,
                    item.key,
                    f"is set more than once ({names}) with different values: keep one",
                )
            )
            return None
    ours = [pair for pair in parsed if pair[1].alias is None]
    return ours[0] if ours else parsed[0]


_OFFLINE_PLACEHOLDERS: Final[Mapping[str, object]] = {
    "opencti.url": OFFLINE_OPENCTI_URL,
    "opencti.token": OFFLINE_OPENCTI_TOKEN,
    "connector.id": OFFLINE_CONNECTOR_ID,
}


def _conflicts(given: Mapping[str, _Given]) -> list[ConfigError]:
    """Settings valid alone but not together (``given``: path -> how it was set, for each one)."""
    errors: list[ConfigError] = []

    def error(path: str, message: str) -> None:
        errors.append(ConfigError(given[path].source, given[path].key, message))

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


def misspelled_env_vars(environ: Mapping[str, str]) -> tuple[ConfigNote, ...]:
    """Variables that look like a misspelt setting (``CONNECTOR_MAX_TPL``), as warnings.

    Not errors: the environment is shared with other software. Only names with one of our
    prefixes, close to one of our variables (or the earlier connector's) and not read by pycti,
    are reported.
    """
    ours = set(_ENV_NAMES)
    prefixes = tuple(sorted({f"{option.section.upper()}_" for option in OPTIONS}))
    hints = []
    for name in sorted(environ):
        if name in ours or name in _PYCTI_ONLY_ENV or not name.startswith(prefixes):
            continue
        close = difflib.get_close_matches(name, ours, n=1, cutoff=0.85)
        if close:
            hints.append(
                ConfigNote(
                    SOURCE_ENV,
                    name,
                    f"is not a setting (ignored); did you mean {close[0]}?",
                    warning=True,
                )
            )
    return tuple(hints)
