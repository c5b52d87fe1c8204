"""The connector's settings: one typed, immutable ``Config``.

Layers (later wins): built-in defaults < YAML file < environment variables <
``CONNECTOR_JSON_CONFIG``. Each option has exactly one YAML path and one environment variable
(see the README table). Validation reports every invalid value at once, naming the layer it came
from and its path; secret values never appear in any repr, str or error.

The option registry (``OPTIONS``) is derived from the Struct fields below plus one description
per field (``_SPECS``): the loader, ``config.reference.yml`` and the README table all come from
it, so they cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import difflib
import enum
import ipaddress
import math
import re
import textwrap
import types
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, TypeAlias, get_args

import msgspec
from returns.result import Failure, Result, Success

from elastic_connector.core.tlp import Tlp


class Secret:
    """A string that never shows itself: ``repr``/``str`` give ``***``; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Mode(enum.Enum):
    ECS = "ecs"
    """Indicators as ECS documents, plus the alert -> sighting loop."""
    ECS_NO_SIGNALS = "ecs_no_signals"
    """Indicators as ECS documents, no sightings."""
    STIX = "stix"
    """Every STIX object indexed as streamed."""


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


DEFAULT_ECS_INDEX = "logs-ti_opencti_connector.indicator"
DEFAULT_STIX_INDEX = "opencti-stix"


class OpenCTISettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    token: Secret
    ssl_verify: bool = True
    ca_certs: str | None = None


class ConnectorSettings(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str = "Elastic"
    scope: str = "elastic"
    mode: Mode = Mode.ECS
    log_level: str = "info"
    log_format: LogFormat = LogFormat.TEXT
    live_stream_id: str | None = "live"
    live_stream_listen_delete: bool = True
    live_stream_no_dependencies: bool = True
    live_stream_with_inferences: bool = False
    live_stream_recover_iso_date: str | None = None
    live_stream_start_timestamp: int | None = None
    max_tlp: Tlp = Tlp.AMBER_STRICT
    require_detection: bool = False
    expiry_sweep_interval: float = 3600.0
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"  # noqa: S104  (a container's metrics must be reachable)


class CloudSettings(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    auth: Secret | None = None


class ElasticsearchSettings(msgspec.Struct, frozen=True, kw_only=True):
    hosts: tuple[str, ...] = ("https://localhost:9200",)
    username: str | None = None
    password: Secret | None = None
    api_key: Secret | None = None
    """Always the encoded form (base64 of ``id:key``); ``id:key`` input is converted."""
    ca_certs: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    ssl_verify: bool = True
    index: str | None = None
    """None means the mode's default (see ``Config.index``)."""
    reduced_privileges: bool = False
    bulk_max_actions: int = 500
    bulk_max_bytes: int = 5_000_000
    bulk_flush_interval: float = 1.0
    retry_max_backoff: float = 60.0
    request_timeout: float = 30.0


class SightingsSettings(msgspec.Struct, frozen=True, kw_only=True):
    alerts_index: str = ".alerts-security.alerts-*"
    poll_interval: float = 60.0
    page_size: int = 1000
    initial_lookback: float = 86400.0
    identity_name: str = "Elastic Security"
    identity_type: str = "SecurityPlatform"
    tlp: Tlp = Tlp.AMBER
    confidence: int | None = None


class KibanaSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None = None
    space: str = "default"


class Config(msgspec.Struct, frozen=True, kw_only=True):
    opencti: OpenCTISettings
    connector: ConnectorSettings
    cloud: CloudSettings = CloudSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    """YAML ``output.elasticsearch``, environment ``ELASTICSEARCH_*``."""
    sightings: SightingsSettings = SightingsSettings()
    kibana: KibanaSettings = KibanaSettings()

    @property
    def index(self) -> str:
        """Where documents go: the configured index, else the mode's default."""
        if self.elasticsearch.index:
            return self.elasticsearch.index
        if self.connector.mode is Mode.STIX:
            return DEFAULT_STIX_INDEX
        return DEFAULT_ECS_INDEX


# ---------------------------------------------------------------------------------------------
# Errors, layers and sources

SOURCE_DEFAULTS: Final = "defaults"
SOURCE_ENV: Final = "env"
JSON_CONFIG_ENV: Final = "CONNECTOR_JSON_CONFIG"
SOURCE_JSON: Final = JSON_CONFIG_ENV

NO_RECOVER: Final = "false"
"""``connector.live_stream_recover_iso_date`` value meaning "do not replay the knowledge base on
the first start" (pycti skips ``?recover=`` when the setting is false/no/none)."""

# Offline commands (`map`, `sightings`) never contact OpenCTI; when the connection settings are
# missing they get these placeholders. `.invalid` is reserved (RFC 6761): it never resolves, so
# a placeholder reaching the network fails at once instead of talking to a real host.
OFFLINE_OPENCTI_URL: Final = "http://opencti.invalid"
OFFLINE_OPENCTI_TOKEN: Final = Secret("")
OFFLINE_CONNECTOR_ID: Final = "00000000-0000-0000-0000-000000000000"


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
# Value parsers: raw YAML/JSON/env value -> typed value, or a message saying what is wrong.
# Messages start with the offending value (never for secrets) and read after "<source> <path>: ".

_Parse: TypeAlias = Callable[[object], Result[object, str]]

_TRUE_WORDS: Final = frozenset({"true", "yes", "1"})
_FALSE_WORDS: Final = frozenset({"false", "no", "0"})
_INT_TEXT: Final = re.compile(r"[+-]?[0-9]{1,30}")
_FLOAT_TEXT: Final = re.compile(
    r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?"
)
_INT_LIMIT: Final = 2**63


def _kind(raw: object) -> str:
    """The YAML/JSON name of a value's type, for "got a ..." messages."""
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, int):
        return "an integer"
    if isinstance(raw, float):
        return "a number"
    if isinstance(raw, str):
        return "a string"
    if isinstance(raw, (list, tuple)):
        return "a list"
    if isinstance(raw, Mapping):
        return "a mapping"
    if isinstance(raw, (datetime.date, datetime.datetime)):
        return "a date"
    return f"a {type(raw).__name__}"


def _show(raw: object) -> str:
    """A short quotation of a non-secret value for an error message."""
    if isinstance(raw, str):
        text = raw if len(raw) <= 80 else raw[:77] + "..."
        return repr(_mask_userinfo(text))
    if isinstance(raw, bool) or raw is None:
        return str(raw).lower() if raw is not None else "null"
    if isinstance(raw, int):
        return repr(raw) if raw.bit_length() <= 128 else "a very large integer"
    if isinstance(raw, float):
        return repr(raw)
    return _kind(raw)


def _mask_userinfo(text: str) -> str:
    """Hide ``user:password@`` in anything that looks like a URL before it is shown."""
    if "@" not in text:
        return text
    scheme, sep, _ = text.partition("://")
    prefix = scheme + sep if sep else ""
    return prefix + "***@" + text.rsplit("@", 1)[1]


def _parse_str(raw: object) -> Result[object, str]:
    if isinstance(raw, str):
        return Success(raw.strip())
    return Failure(f"must be a string, got {_kind(raw)}")


def _parse_secret(raw: object) -> Result[object, str]:
    if not isinstance(raw, str):
        return Failure(f"must be a string, got {_kind(raw)}")
    if raw != raw.strip():
        # Kept strict rather than stripped: a secret file's trailing newline is a common cause of
        # "401 unauthorized", and silently changing a secret would hide the real value's shape.
        return Failure("*** has leading or trailing whitespace (a newline from a secret file?)")
    return Success(Secret(raw))


def _parse_bool(raw: object) -> Result[object, str]:
    if isinstance(raw, bool):
        return Success(raw)
    if isinstance(raw, int) and raw in (0, 1):
        return Success(bool(raw))
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE_WORDS:
            return Success(True)
        if word in _FALSE_WORDS:
            return Success(False)
    return Failure(f"{_show(raw)} is not a boolean (true/false, yes/no, 1/0)")


def _parse_int(raw: object) -> Result[object, str]:
    value: int
    if isinstance(raw, bool):
        return Failure(f"must be an integer, got {_kind(raw)}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INT_TEXT.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        return Failure(f"{_show(raw)} is not an integer")
    if not -_INT_LIMIT < value < _INT_LIMIT:
        return Failure(f"{_show(raw)} is out of range")
    return Success(value)


def _parse_float(raw: object) -> Result[object, str]:
    value: float
    if isinstance(raw, bool):
        return Failure(f"must be a number, got {_kind(raw)}")
    if isinstance(raw, (int, float)):
        try:
            value = float(raw)
        except OverflowError:
            return Failure(f"{_show(raw)} is out of range")
    elif isinstance(raw, str) and _FLOAT_TEXT.fullmatch(raw.strip()):
        value = float(raw.strip())
    else:
        return Failure(f"{_show(raw)} is not a number")
    if not math.isfinite(value):
        return Failure(f"{_show(raw)} is not a finite number")
    return Success(value)


def _parse_str_list(raw: object) -> Result[object, str]:
    items: list[str] = []
    if isinstance(raw, str):
        items = raw.split(",")
    elif isinstance(raw, (list, tuple)):
        for position, item in enumerate(raw, start=1):
            if not isinstance(item, str):
                return Failure(f"item {position} must be a string, got {_kind(item)}")
            items.append(item)
    else:
        return Failure(f"must be a list of strings or a comma-separated string, got {_kind(raw)}")
    cleaned = tuple(item.strip() for item in items if item.strip())
    if not cleaned:
        return Failure("must not be empty")
    return Success(cleaned)


def _enum_parser(cls: type[enum.Enum]) -> _Parse:
    names = {str(member.value).lower(): member for member in cls}

    def parse(raw: object) -> Result[object, str]:
        if isinstance(raw, str) and raw.strip().lower() in names:
            return Success(names[raw.strip().lower()])
        return Failure(f"{_show(raw)} is not one of {', '.join(str(m.value) for m in cls)}")

    return parse


_TLP_CHOICES: Final = (
    "TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED (TLP:WHITE = TLP:CLEAR)"
)


def _parse_tlp(raw: object) -> Result[object, str]:
    level = Tlp.parse(raw) if isinstance(raw, str) else None
    if level is None:
        return Failure(f"{_show(raw)} is not one of {_TLP_CHOICES}")
    # TLP 1.0 WHITE and TLP 2.0 CLEAR are one level; settings use the current name.
    return Success(Tlp.CLEAR if level is Tlp.WHITE else level)


def _base_parser(annotation: object) -> tuple[_Parse, str, bool]:
    """Parser, type name for the docs, and secrecy of a Struct field's type."""
    if isinstance(annotation, types.UnionType):
        # Only `X | None` occurs; None itself means "unset", handled before any parser runs.
        (annotation,) = (arg for arg in get_args(annotation) if arg is not type(None))
    if annotation is str:
        return _parse_str, "string", False
    if annotation is Secret:
        return _parse_secret, "string", True
    if annotation is bool:
        return _parse_bool, "boolean", False
    if annotation is int:
        return _parse_int, "integer", False
    if annotation is float:
        return _parse_float, "number", False
    if annotation == tuple[str, ...]:
        return _parse_str_list, "list of strings", False
    if annotation is Tlp:
        return _parse_tlp, "TLP level", False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = " / ".join(str(member.value) for member in annotation)
        return _enum_parser(annotation), choices, False
    raise TypeError(f"no config parser for {annotation!r}")


# ---------------------------------------------------------------------------------------------
# Refinements: checks (and normalisations) beyond the type, per option.


def _greater_than_zero(value: object) -> Result[object, str]:
    if isinstance(value, (int, float)) and value > 0:
        return Success(value)
    return Failure(f"{_show(value)} must be greater than 0")


def _not_negative(value: object) -> Result[object, str]:
    if isinstance(value, (int, float)) and value >= 0:
        return Success(value)
    return Failure(f"{_show(value)} must not be negative")


def _between(low: int, high: int) -> _Parse:
    def check(value: object) -> Result[object, str]:
        if isinstance(value, int) and low <= value <= high:
            return Success(value)
        return Failure(f"{_show(value)} is not between {low} and {high}")

    return check


_HOST_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def _url_problem(text: str, *, http_needs_port: bool) -> str | None:
    """Why ``text`` is not an http(s) URL we accept, or None."""
    if any(char.isspace() for char in text):
        return "must not contain spaces"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return "is not a valid URL (check the port: 1-65535)"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs and reprs; they have their own (secret) options.
        return "must not contain credentials: use the username/password or API key options"
    host = parts.hostname or ""
    if not host:
        return "has no host"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "has an invalid IPv6 address"
    elif not _HOST_NAME.fullmatch(host):
        return "has an invalid host name (ASCII letters, digits, '.', '-'; use punycode)"
    if port == 0:
        return "has an invalid port (1-65535)"
    if parts.query or parts.fragment:
        return "must not have a query (?...) or fragment (#...)"
    if http_needs_port and port is None and parts.scheme.lower() == "http":
        # elasticsearch-py assumes 443 for https but refuses http without a port.
        return "needs a port for http, e.g. http://localhost:9200"
    return None


def _url(value: object) -> Result[object, str]:
    if isinstance(value, str):
        problem = _url_problem(value, http_needs_port=False)
        if problem is None:
            return Success(value)
        return Failure(f"{_show(value)} {problem}")
    return Failure(f"must be a URL, got {_kind(value)}")


def _elasticsearch_hosts(value: object) -> Result[object, str]:
    if not isinstance(value, tuple):
        return Failure(f"must be a list of URLs, got {_kind(value)}")
    problems = []
    for position, host in enumerate(value, start=1):
        problem = _url_problem(str(host), http_needs_port=True)
        if problem is not None:
            problems.append(
                f"{_show(host)} {problem}"
                if len(value) == 1
                else f"item {position} {_show(host)} {problem}"
            )
    if problems:
        return Failure("; ".join(problems))
    return Success(value)


def _connector_id(value: object) -> Result[object, str]:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return Failure(f"{_show(value)} is not a UUID (generate one with `uuidgen`)")
    # Kept as written (not normalised): pycti reads CONNECTOR_ID itself and must see the same id.
    return Success(value)


# pycti turns these exact strings into booleans wherever it reads a setting.
_PYCTI_BOOLEAN_WORDS: Final = frozenset({"yes", "true", "True", "no", "false", "False"})


def _not_a_pycti_boolean(value: object) -> Result[object, str]:
    if value in _PYCTI_BOOLEAN_WORDS:
        return Failure(f"{_show(value)} would be read as a boolean by pycti: choose another")
    return Success(value)


_LOG_LEVELS: Final = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
}


def _log_level(value: object) -> Result[object, str]:
    level = _LOG_LEVELS.get(str(value).lower())
    if level is None:
        return Failure(f"{_show(value)} is not one of debug, info, warning, error")
    return Success(level)


def _token(value: object) -> Result[object, str]:
    if isinstance(value, Secret) and not any(char.isspace() for char in value.reveal()):
        return Success(value)
    return Failure("*** must not contain whitespace")


def _basic_pair(text: str) -> bool:
    user, colon, password = text.partition(":")
    return bool(colon and user and password)


def _api_key(value: object) -> Result[object, str]:
    """Accept ``id:api_key`` or its base64 encoding (what Kibana shows); keep the encoded form."""
    message = "*** is neither id:api_key nor the base64 encoded key that Kibana shows"
    if not isinstance(value, Secret):
        return Failure(message)
    text = value.reveal()
    if any(char.isspace() for char in text):
        return Failure("*** must not contain whitespace")
    if ":" in text:
        if not _basic_pair(text):
            return Failure(message)
        return Success(Secret(base64.b64encode(text.encode()).decode("ascii")))
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return Failure(message)
    if not _basic_pair(decoded) or any(
        char.isspace() or not char.isprintable() for char in decoded
    ):
        return Failure(message)
    return Success(value)


def _cloud_auth(value: object) -> Result[object, str]:
    if isinstance(value, Secret) and _basic_pair(value.reveal()):
        return Success(value)
    return Failure("*** must be user:password")


def _cloud_id(value: object) -> Result[object, str]:
    """As elasticsearch-py parses it: ``name:base64(host[:port]$es_uuid[$kibana_uuid])``."""
    text = str(value)
    _, _, encoded = text.partition(":")
    try:
        parts = binascii.a2b_base64(encoded.encode("ascii")).decode("ascii").split("$")
        host = parts[0]
        if ":" in host:
            host, _, port = host.rpartition(":")
            int(port)
        if not host or len(parts) < 2 or not parts[1]:
            raise ValueError(text)
    except (ValueError, UnicodeError, binascii.Error):
        return Failure(
            f"{_show(value)} is not an Elastic Cloud ID (name:base64..., from the Cloud console)"
        )
    return Success(value)


def _username(value: object) -> Result[object, str]:
    if ":" in str(value):
        return Failure(f"{_show(value)} must not contain ':' (HTTP basic authentication)")
    return Success(value)


_INDEX_FORBIDDEN: Final = frozenset('\\/*?"<>|,# :')


def _index_name(value: object) -> Result[object, str]:
    text = str(value)
    if (
        text != text.lower()
        or any(char in _INDEX_FORBIDDEN for char in text)
        or text.startswith(("-", "_", "+"))
        or text in (".", "..")
        or len(text.encode()) > 255
    ):
        return Failure(
            f"{_show(value)} is not a valid index name (lower case, at most 255 bytes, none of "
            '\\ / * ? " < > | , # : or space, not starting with -, _ or +)'
        )
    return Success(value)


def _kibana_space(value: object) -> Result[object, str]:
    if re.fullmatch(r"[a-z0-9_-]+", str(value)):
        return Success(value)
    return Failure(f"{_show(value)} is not a Kibana space id (lower-case letters, digits, _ and -)")


# Where-sighted identity types that pycti creates with a dedicated mutation (case-sensitive there,
# so the canonical spelling is stored) plus Individual, which the generic identityAdd accepts.
_IDENTITY_TYPES: Final = ("Organization", "System", "SecurityPlatform", "Individual")


def _identity_type(value: object) -> Result[object, str]:
    for name in _IDENTITY_TYPES:
        if str(value).lower() == name.lower():
            return Success(name)
    return Failure(f"{_show(value)} is not one of {', '.join(_IDENTITY_TYPES)}")


def _parse_recover_date(raw: object) -> Result[object, str]:
    """An ISO 8601 date/time, or false/no/none: "skip the initial replay" (as pycti reads it)."""
    if raw is False:
        return Success(NO_RECOVER)
    if isinstance(raw, datetime.datetime):  # YAML parses unquoted timestamps itself
        return Success(raw.isoformat().replace("+00:00", "Z"))
    if isinstance(raw, datetime.date):
        return Success(raw.isoformat())
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in ("false", "no", "none"):
            return Success(NO_RECOVER)
        try:
            datetime.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            # Kept as written: pycti reads this variable itself and sends it to the platform.
            return Success(text)
    return Failure(f"{_show(raw)} is not an ISO 8601 date (e.g. 2024-01-31T00:00:00Z) or false")


# ---------------------------------------------------------------------------------------------
# The option registry


class _Spec(msgspec.Struct, frozen=True):
    description: str
    type_name: str | None = None
    """Shown in the docs instead of the name derived from the field's type."""
    refine: _Parse | None = None
    """Runs on the parsed value: further checks, normalisation."""
    parse: _Parse | None = None
    """Replaces the parser derived from the field's type."""


_SECONDS: Final = "number (seconds)"

_SPECS: Final[Mapping[str, _Spec]] = {
    # opencti
    "opencti.url": _Spec("URL of the OpenCTI platform.", "URL", _url),
    "opencti.token": _Spec("API token of the OpenCTI user the connector runs as.", refine=_token),
    "opencti.ssl_verify": _Spec("Verify OpenCTI's TLS certificate."),
    "opencti.ca_certs": _Spec(
        "CA bundle (PEM file) that signs OpenCTI's certificate; unset = the system CAs.",
        "file path",
    ),
    # connector
    "connector.id": _Spec(
        "Unique id of this connector instance in OpenCTI (a UUID you generate once).",
        "UUID",
        _connector_id,
    ),
    "connector.name": _Spec("Name shown in OpenCTI's connector list.", refine=_not_a_pycti_boolean),
    "connector.scope": _Spec("Connector scope registered in OpenCTI.", refine=_not_a_pycti_boolean),
    "connector.mode": _Spec(
        "ecs: indicators as ECS documents and alerts back as sightings; ecs_no_signals: "
        "indicators only; stix: every streamed STIX object indexed as is."
    ),
    "connector.log_level": _Spec("Log level.", "debug / info / warning / error", _log_level),
    "connector.log_format": _Spec("Log line format: text, or json (one object per line)."),
    "connector.live_stream_id": _Spec(
        "OpenCTI stream to follow: the id of a live stream (Data sharing > Live streams; "
        "recommended: one filtered on indicators), or `live` for the whole live knowledge "
        "(needs the BYPASS capability).",
        refine=_not_a_pycti_boolean,
    ),
    "connector.live_stream_listen_delete": _Spec(
        "Receive delete events (and remove the documents of deleted indicators)."
    ),
    "connector.live_stream_no_dependencies": _Spec(
        "Do not receive the objects an event refers to as extra create events."
    ),
    "connector.live_stream_with_inferences": _Spec("Include inferred knowledge."),
    "connector.live_stream_recover_iso_date": _Spec(
        "First start only: replay the knowledge base up to this ISO 8601 date; unset = up to "
        "now; false = no replay, live events only.",
        "ISO date or false",
        parse=_parse_recover_date,
    ),
    "connector.live_stream_start_timestamp": _Spec(
        "First start only: stream position to start from (epoch milliseconds); unset = the "
        "beginning.",
        refine=_not_negative,
    ),
    "connector.max_tlp": _Spec(
        "Most restrictive TLP marking an indicator may carry to be exported to Elastic."
    ),
    "connector.require_detection": _Spec(
        "Export only indicators whose OpenCTI detection flag is set."
    ),
    "connector.expiry_sweep_interval": _Spec(
        "How often documents of indicators past their valid_until are removed.",
        _SECONDS,
        _greater_than_zero,
    ),
    "connector.metrics_port": _Spec(
        "Port of the Prometheus /metrics endpoint; unset = no endpoint. Leave pycti's "
        "CONNECTOR_EXPOSE_METRICS unset: pycti would serve its own metrics on this port.",
        "port",
        _between(1, 65535),
    ),
    "connector.metrics_host": _Spec("Address the metrics endpoint listens on."),
    # cloud
    "cloud.id": _Spec(
        "Elastic Cloud deployment id (Cloud console); replaces output.elasticsearch.hosts.",
        "Cloud ID",
        _cloud_id,
    ),
    "cloud.auth": _Spec(
        "user:password for the Elastic Cloud deployment (an API key is preferred).",
        "user:password",
        _cloud_auth,
    ),
    # output.elasticsearch
    "output.elasticsearch.hosts": _Spec(
        "Elasticsearch URLs (comma-separated in the environment); not with cloud.id.",
        "list of URLs",
        _elasticsearch_hosts,
    ),
    "output.elasticsearch.username": _Spec(
        "User for HTTP basic authentication (needs password).", refine=_username
    ),
    "output.elasticsearch.password": _Spec("Password of that user."),
    "output.elasticsearch.api_key": _Spec(
        "API key: id:api_key, or the base64 encoded form Kibana shows.", refine=_api_key
    ),
    "output.elasticsearch.ca_certs": _Spec(
        "CA bundle (PEM file) that signs Elasticsearch's certificate; unset = the system CAs.",
        "file path",
    ),
    "output.elasticsearch.client_cert": _Spec(
        "Client certificate (PEM) for TLS client authentication (needs client_key).", "file path"
    ),
    "output.elasticsearch.client_key": _Spec("Private key (PEM) of client_cert.", "file path"),
    "output.elasticsearch.ssl_verify": _Spec("Verify Elasticsearch's TLS certificate."),
    "output.elasticsearch.index": _Spec(
        f"Index or alias written to; unset = {DEFAULT_ECS_INDEX} (ecs modes) or "
        f"{DEFAULT_STIX_INDEX} (stix).",
        refine=_index_name,
    ),
    "output.elasticsearch.reduced_privileges": _Spec(
        "Do not create index templates or indices at start (they must exist); the API key then "
        "needs only write access to the index."
    ),
    "output.elasticsearch.bulk_max_actions": _Spec(
        "Documents per bulk request at most.", refine=_greater_than_zero
    ),
    "output.elasticsearch.bulk_max_bytes": _Spec(
        "Bytes per bulk request at most.", refine=_greater_than_zero
    ),
    "output.elasticsearch.bulk_flush_interval": _Spec(
        "Longest time a document waits for its bulk request.", _SECONDS, _greater_than_zero
    ),
    "output.elasticsearch.retry_max_backoff": _Spec(
        "Longest wait between retries of a failed request (exponential backoff with jitter).",
        _SECONDS,
        _greater_than_zero,
    ),
    "output.elasticsearch.request_timeout": _Spec(
        "Timeout of one Elasticsearch request.", _SECONDS, _greater_than_zero
    ),
    # sightings
    "sightings.alerts_index": _Spec(
        "Index pattern of the Elastic Security alerts read for indicator matches."
    ),
    "sightings.poll_interval": _Spec(
        "Time between two polls of the alerts index.", _SECONDS, _greater_than_zero
    ),
    "sightings.page_size": _Spec("Alerts read per search page.", refine=_between(1, 10_000)),
    "sightings.initial_lookback": _Spec(
        "First start only: how far back alerts are read.", _SECONDS, _not_negative
    ),
    "sightings.identity_name": _Spec(
        "OpenCTI identity recorded as where indicators were sighted (created if missing)."
    ),
    "sightings.identity_type": _Spec(
        "Entity type of that identity (SecurityPlatform needs OpenCTI 6.9+).",
        " / ".join(_IDENTITY_TYPES),
        _identity_type,
    ),
    "sightings.tlp": _Spec("TLP marking of the sightings created in OpenCTI."),
    "sightings.confidence": _Spec(
        "Confidence (0-100) of created sightings; unset = the OpenCTI user's default.",
        refine=_between(0, 100),
    ),
    # kibana
    "kibana.url": _Spec("Kibana URL, for the commands that talk to Kibana.", "URL", _url),
    "kibana.space": _Spec("Kibana space of the detection rules and alerts.", refine=_kibana_space),
}

# The Config attribute `elasticsearch` lives under `output:` in YAML (Beats-style); every other
# section's YAML key and environment prefix is its attribute name.
_YAML_PREFIX: Final[Mapping[str, str]] = {"elasticsearch": "output.elasticsearch"}


class Option(msgspec.Struct, frozen=True, kw_only=True):
    """One setting: its YAML path, environment variable, type, default and description."""

    section: str
    """Attribute of ``Config`` holding it (``elasticsearch``)."""
    name: str
    """Attribute of that section (``api_key``)."""
    yaml_path: str
    env_var: str
    type_name: str
    required: bool
    default: object
    """The typed default; None when required or unset by default."""
    secret: bool
    description: str


def _build_registry() -> tuple[tuple[Option, ...], Mapping[str, _Parse]]:
    options: list[Option] = []
    parsers: dict[str, _Parse] = {}
    for section in msgspec.structs.fields(Config):
        section_type = section.type
        if not (isinstance(section_type, type) and issubclass(section_type, msgspec.Struct)):
            raise TypeError(f"Config.{section.name} is not a settings Struct")
        prefix = _YAML_PREFIX.get(section.name, section.name)
        for field in msgspec.structs.fields(section_type):
            path = f"{prefix}.{field.name}"
            spec = _SPECS[path]  # a field without a description fails here, at import
            parse, type_name, secret = _base_parser(field.type)
            parsers[path] = _refined(spec.parse or parse, spec.refine)
            required = field.default is msgspec.NODEFAULT
            options.append(
                Option(
                    section=section.name,
                    name=field.name,
                    yaml_path=path,
                    env_var=f"{section.name}_{field.name}".upper(),
                    type_name=spec.type_name or type_name,
                    required=required,
                    default=None if required else field.default,
                    secret=secret,
                    description=spec.description,
                )
            )
    stale = set(_SPECS) - set(parsers)
    if stale:
        raise TypeError(f"config descriptions without a field: {sorted(stale)}")
    return tuple(options), parsers


def _refined(parse: _Parse, refine: _Parse | None) -> _Parse:
    if refine is None:
        return parse
    then = refine

    def parse_and_refine(raw: object) -> Result[object, str]:
        return parse(raw).bind(then)

    return parse_and_refine


_REGISTRY: Final = _build_registry()
OPTIONS: Final[tuple[Option, ...]] = _REGISTRY[0]
"""Every setting, in the order of the YAML reference."""
_PARSERS: Final[Mapping[str, _Parse]] = _REGISTRY[1]

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

PYCTI_ENV_VARS: Final[tuple[str, ...]] = (
    "OPENCTI_URL",
    "OPENCTI_TOKEN",
    "OPENCTI_SSL_VERIFY",
    "CONNECTOR_ID",
    "CONNECTOR_NAME",
    "CONNECTOR_SCOPE",
    "CONNECTOR_LOG_LEVEL",
    "CONNECTOR_LIVE_STREAM_ID",
    "CONNECTOR_LIVE_STREAM_LISTEN_DELETE",
    "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES",
    "CONNECTOR_LIVE_STREAM_WITH_INFERENCES",
    "CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE",
    "CONNECTOR_LIVE_STREAM_START_TIMESTAMP",
)
"""Our settings whose environment variables pycti also reads on its own (env wins over its
config dict): ``pycti_environment`` gives the values they must hold."""


# ---------------------------------------------------------------------------------------------
# Layers


def env_layer(environ: Mapping[str, str]) -> Layer:
    """The settings found in ``environ`` (one variable per option; other variables are ignored).

    Values stay strings; ``build_config`` converts them. An empty value means "not set".
    """
    values: dict[str, object] = {}
    for option in OPTIONS:
        if option.env_var in environ:
            _put(values, option.yaml_path, environ[option.env_var])
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
                    f'must be a JSON object like {{"opencti": {{...}}}}, got {_kind(document)}',
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
                    f"must be a mapping (opencti:, connector:, ...), got {_kind(document)}",
                ),
            )
        )
    return Success(Layer(source, document))


def _put(values: dict[str, object], path: str, value: object) -> None:
    *sections, leaf = path.split(".")
    node = values
    for key in sections:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):  # only this function fills `values`: cannot happen
            raise TypeError(path)
        node = child
    node[leaf] = value


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
        return prefix + _show(key), "unknown option (keys must be strings)"
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
                        f"must be a mapping ({', '.join(sorted(sub))}), got {_kind(value)}",
                    )
                )

    # Typed as a mapping, but layers are built from arbitrary YAML/JSON: check, never trust.
    values: object = layer.values
    if isinstance(values, Mapping):
        walk(values, _TREE, "")
    else:
        errors.append(ConfigError(layer.source, "", f"must be a mapping, got {_kind(values)}"))
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
            parsed = _PARSERS[path](raw)
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


# ---------------------------------------------------------------------------------------------
# Rendering a Config back: YAML mapping, environment, pycti


def _plain(value: object, *, reveal_secrets: bool) -> object:
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
        _put(mapping, option.yaml_path, _plain(value, reveal_secrets=reveal_secrets))
    return mapping


def _env_text(plain: object) -> str:
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
        text = _env_text(_plain(value, reveal_secrets=reveal_secrets))
        if text:
            env[option.env_var] = text
    return env


def _pycti_ssl_verify(settings: OpenCTISettings) -> bool | str:
    # pycti hands ssl_verify to requests as `verify`, which also takes a CA bundle path.
    if settings.ssl_verify and settings.ca_certs:
        return settings.ca_certs
    return settings.ssl_verify


def pycti_config(config: Config) -> dict[str, dict[str, object]]:
    """The config dict for ``OpenCTIConnectorHelper`` (unset options are left to pycti).

    pycti lets its environment variables (``PYCTI_ENV_VARS``) override this dict: the caller
    must also make the environment agree, e.g. with ``pycti_environment``.
    """
    connector = config.connector
    recover: object = connector.live_stream_recover_iso_date
    if recover == NO_RECOVER:
        recover = False
    entries: dict[str, object] = {
        "id": connector.id,
        "type": "STREAM",
        "name": connector.name,
        "scope": connector.scope,
        "log_level": connector.log_level,
        "live_stream_id": connector.live_stream_id,
        "live_stream_listen_delete": connector.live_stream_listen_delete,
        "live_stream_no_dependencies": connector.live_stream_no_dependencies,
        "live_stream_with_inferences": connector.live_stream_with_inferences,
        "live_stream_recover_iso_date": recover,
        "live_stream_start_timestamp": connector.live_stream_start_timestamp,
    }
    return {
        "opencti": {
            "url": config.opencti.url,
            "token": config.opencti.token.reveal(),
            "ssl_verify": _pycti_ssl_verify(config.opencti),
        },
        "connector": {key: value for key, value in entries.items() if value is not None},
    }


def pycti_environment(config: Config) -> dict[str, str | None]:
    """What each of ``PYCTI_ENV_VARS`` must hold so pycti reads our values (None: unset it).

    pycti reads these variables itself, only understands yes/true/True and no/false/False, and
    turns an empty CONNECTOR_LIVE_STREAM_START_TIMESTAMP into a crash (``int("")``).
    """
    dictionary = pycti_config(config)
    flat = {f"OPENCTI_{key.upper()}": value for key, value in dictionary["opencti"].items()}
    flat |= {f"CONNECTOR_{key.upper()}": value for key, value in dictionary["connector"].items()}
    environment: dict[str, str | None] = {}
    for name in PYCTI_ENV_VARS:
        value = flat.get(name)
        environment[name] = None if value is None else _env_text(value)
    return environment


# ---------------------------------------------------------------------------------------------
# Documentation generated from the registry (README table, config.reference.yml)


def _default_text(option: Option) -> str:
    if option.required:
        return "required"
    if option.default is None:
        return "unset"
    return _env_text(_plain(option.default, reveal_secrets=True))


def option_table_markdown() -> str:
    """The README's configuration table (Markdown), one row per option."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| YAML path | Environment variable | Type | Default | Secret | Description |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        default = _default_text(option)
        lines.append(
            f"| `{option.yaml_path}` | `{option.env_var}` | {cell(option.type_name)} | "
            f"{cell(default if default in ('required', 'unset') else f'`{default}`')} | "
            f"{'yes' if option.secret else ''} | {cell(option.description)} |"
        )
    return "\n".join(lines) + "\n"


_REFERENCE_HEADER: Final = """\
# elastic-connector: every configuration option, with its default and environment variable.
#
# Generated from the option registry (src/elastic_connector/core/config.py): do not edit by
# hand; regenerate with `UPDATE_CONFIG_DOCS=1 pytest tests/core/test_config_docs.py`.
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
        lines.append(f"{indent}# ({'; '.join(facts)})")
        if option.default is None:
            lines.append(f"{indent}# {leaf}:")
        else:
            default = msgspec.json.encode(_plain(option.default, reveal_secrets=True)).decode()
            lines.append(f"{indent}# {leaf}: {default}")
    return "\n".join(lines) + "\n"
