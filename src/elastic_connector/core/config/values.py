"""Value parsers and checks for the settings: raw YAML/JSON/env value -> typed value, or why not.

A parser is chosen from a settings field's type (``base_parser``); the option registry
(``options``) adds each option's own checks on top (ranges, URLs, index names...). Kept
apart from the registry so each rule can be read on its own, next to the message it gives.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import ipaddress
import math
import re
import types
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias, get_args

from returns.result import Failure, Result, Success

from elastic_connector.core.config.model import NO_RECOVER, Secret
from elastic_connector.core.config.observable_types import (
    OPENCTI_OBSERVABLE_TYPES,
    canonical_observable_type,
)
from elastic_connector.core.policy.tlp import Tlp

# ---------------------------------------------------------------------------------------------
# Value parsers: raw YAML/JSON/env value -> typed value, or a message saying what is wrong.
# Messages start with the offending value (never for secrets) and read after "<source> <path>: ".

Parse: TypeAlias = Callable[[object], Result[object, str]]
"""A parser or check: the (typed) value, or a message saying what is wrong with it."""

_TRUE_WORDS: Final = frozenset({"true", "yes", "1"})
_FALSE_WORDS: Final = frozenset({"false", "no", "0"})
_INT_TEXT: Final = re.compile(r"[+-]?[0-9]{1,30}")
_FLOAT_TEXT: Final = re.compile(
    r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?"
)
_INT_LIMIT: Final = 2**63


def kind_of(raw: object) -> str:
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


def show(raw: object) -> str:
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
    return kind_of(raw)


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
    return Failure(f"must be a string, got {kind_of(raw)}")


def _parse_secret(raw: object) -> Result[object, str]:
    if not isinstance(raw, str):
        return Failure(f"must be a string, got {kind_of(raw)}")
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
    return Failure(f"{show(raw)} is not a boolean (true/false, yes/no, 1/0)")


def _parse_int(raw: object) -> Result[object, str]:
    value: int
    if isinstance(raw, bool):
        return Failure(f"must be an integer, got {kind_of(raw)}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INT_TEXT.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        return Failure(f"{show(raw)} is not an integer")
    if not -_INT_LIMIT < value < _INT_LIMIT:
        return Failure(f"{show(raw)} is out of range")
    return Success(value)


def _parse_float(raw: object) -> Result[object, str]:
    value: float
    if isinstance(raw, bool):
        return Failure(f"must be a number, got {kind_of(raw)}")
    if isinstance(raw, (int, float)):
        try:
            value = float(raw)
        except OverflowError:
            return Failure(f"{show(raw)} is out of range")
    elif isinstance(raw, str) and _FLOAT_TEXT.fullmatch(raw.strip()):
        value = float(raw.strip())
    else:
        return Failure(f"{show(raw)} is not a number")
    if not math.isfinite(value):
        return Failure(f"{show(raw)} is not a finite number")
    return Success(value)


def _parse_str_list(raw: object) -> Result[object, str]:
    items: list[str] = []
    if isinstance(raw, str):
        items = raw.split(",")
    elif isinstance(raw, (list, tuple)):
        for position, item in enumerate(raw, start=1):
            if not isinstance(item, str):
                return Failure(f"item {position} must be a string, got {kind_of(item)}")
            items.append(item)
    else:
        return Failure(f"must be a list of strings or a comma-separated string, got {kind_of(raw)}")
    cleaned = tuple(item.strip() for item in items if item.strip())
    if not cleaned:
        return Failure("must not be empty")
    return Success(cleaned)


def _enum_parser(cls: type[enum.Enum]) -> Parse:
    names = {str(member.value).lower(): member for member in cls}

    def parse(raw: object) -> Result[object, str]:
        if isinstance(raw, str) and raw.strip().lower() in names:
            return Success(names[raw.strip().lower()])
        return Failure(f"{show(raw)} is not one of {', '.join(str(m.value) for m in cls)}")

    return parse


_TLP_CHOICES: Final = (
    "TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED (TLP:WHITE = TLP:CLEAR)"
)


def _parse_tlp(raw: object) -> Result[object, str]:
    level = Tlp.parse(raw) if isinstance(raw, str) else None
    if level is None:
        return Failure(f"{show(raw)} is not one of {_TLP_CHOICES}")
    # TLP 1.0 WHITE and TLP 2.0 CLEAR are one level; settings use the current name.
    return Success(Tlp.CLEAR if level is Tlp.WHITE else level)


def base_parser(annotation: object) -> tuple[Parse, str, bool]:
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


def greater_than_zero(value: object) -> Result[object, str]:
    """A number > 0 (intervals, timeouts, sizes)."""
    if isinstance(value, (int, float)) and value > 0:
        return Success(value)
    return Failure(f"{show(value)} must be greater than 0")


def not_negative(value: object) -> Result[object, str]:
    """A number >= 0."""
    if isinstance(value, (int, float)) and value >= 0:
        return Success(value)
    return Failure(f"{show(value)} must not be negative")


def between(low: int, high: int) -> Parse:
    """A check that an integer lies in ``low..high`` (inclusive)."""

    def check(value: object) -> Result[object, str]:
        if isinstance(value, int) and low <= value <= high:
            return Success(value)
        return Failure(f"{show(value)} is not between {low} and {high}")

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


def url(value: object) -> Result[object, str]:
    """An http(s) URL without credentials, query or fragment."""
    if isinstance(value, str):
        problem = _url_problem(value, http_needs_port=False)
        if problem is None:
            return Success(value)
        return Failure(f"{show(value)} {problem}")
    return Failure(f"must be a URL, got {kind_of(value)}")


_BARE_HOST: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s/:@\[\]?#]+)(?::([0-9]{1,5}))?")
DEFAULT_ELASTICSEARCH_PORT: Final = 9200


def bare_host_url(text: str) -> str | None:
    """``host[:port]`` written without a scheme, as the URL it stands for; None for anything else.

    The earlier connector (elasticsearch-py 7, as Beats do) read ``localhost:9200`` as
    ``http://localhost:9200`` and a missing port as 9200: the same value reaches the same server.
    """
    match = _BARE_HOST.fullmatch(text)
    if match is None:
        return None
    return f"http://{match[1]}:{match[2] or DEFAULT_ELASTICSEARCH_PORT}"


def elasticsearch_hosts(value: object) -> Result[object, str]:
    """Elasticsearch URLs, each as ``url`` and with a port when http; every bad one is named.

    ``host[:port]`` without a scheme is read as the earlier connector read it (``bare_host_url``).
    """
    if not isinstance(value, tuple):
        return Failure(f"must be a list of URLs, got {kind_of(value)}")
    value = tuple(bare_host_url(str(host)) or host for host in value)
    problems = []
    for position, host in enumerate(value, start=1):
        problem = _url_problem(str(host), http_needs_port=True)
        if problem is not None:
            problems.append(
                f"{show(host)} {problem}"
                if len(value) == 1
                else f"item {position} {show(host)} {problem}"
            )
    if problems:
        return Failure("; ".join(problems))
    return Success(value)


def connector_id(value: object) -> Result[object, str]:
    """A UUID, as OpenCTI requires for a connector id."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return Failure(f"{show(value)} is not a UUID (generate one with `uuidgen`)")
    # Kept as written (not normalised): pycti reads CONNECTOR_ID itself and must see the same id.
    return Success(value)


# pycti turns these exact strings into booleans wherever it reads a setting.
_PYCTI_BOOLEAN_WORDS: Final = frozenset({"yes", "true", "True", "no", "false", "False"})


def not_a_pycti_boolean(value: object) -> Result[object, str]:
    """A string that pycti will not turn into a boolean (yes, True, ...)."""
    if value in _PYCTI_BOOLEAN_WORDS:
        return Failure(f"{show(value)} would be read as a boolean by pycti: choose another")
    return Success(value)


_LOG_LEVELS: Final = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
}


def log_level(value: object) -> Result[object, str]:
    """debug, info, warning or error, in any case; normalised to lower case (warn -> warning)."""
    level = _LOG_LEVELS.get(str(value).lower())
    if level is None:
        return Failure(f"{show(value)} is not one of debug, info, warning (or warn), error")
    return Success(level)


def token(value: object) -> Result[object, str]:
    """A secret without whitespace (the OpenCTI API token)."""
    if isinstance(value, Secret) and not any(char.isspace() for char in value.reveal()):
        return Success(value)
    return Failure("*** must not contain whitespace")


def _basic_pair(text: str) -> bool:
    user, colon, password = text.partition(":")
    return bool(colon and user and password)


def api_key(value: object) -> Result[object, str]:
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


def cloud_auth(value: object) -> Result[object, str]:
    """A ``user:password`` secret."""
    if isinstance(value, Secret) and _basic_pair(value.reveal()):
        return Success(value)
    return Failure("*** must be user:password")


def cloud_id(value: object) -> Result[object, str]:
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
            f"{show(value)} is not an Elastic Cloud ID (name:base64..., from the Cloud console)"
        )
    return Success(value)


def username(value: object) -> Result[object, str]:
    """A user name for HTTP basic authentication (no ``:``)."""
    if ":" in str(value):
        return Failure(f"{show(value)} must not contain ':' (HTTP basic authentication)")
    return Success(value)


_INDEX_FORBIDDEN: Final = frozenset('\\/*?"<>|,# :')


def index_name(value: object) -> Result[object, str]:
    """A name Elasticsearch accepts for an index or alias."""
    text = str(value)
    if "{now" in text:
        # The earlier connector documented `opencti-{now/d}`.
        return Failure(
            f"{show(value)} is date math (a new index each day): the connector updates and "
            "deletes each indicator's document by id, which must stay in one index or alias; "
            "write a fixed name (e.g. opencti-indicators) or leave the option unset"
        )
    if (
        text != text.lower()
        or any(char in _INDEX_FORBIDDEN for char in text)
        or text.startswith(("-", "_", "+"))
        or text in (".", "..")
        or len(text.encode()) > 255
    ):
        return Failure(
            f"{show(value)} is not a valid index name (lower case, at most 255 bytes, none of "
            '\\ / * ? " < > | , # : or space, not starting with -, _ or +)'
        )
    return Success(value)


def kibana_space(value: object) -> Result[object, str]:
    """A Kibana space id."""
    if re.fullmatch(r"[a-z0-9_-]+", str(value)):
        return Success(value)
    return Failure(f"{show(value)} is not a Kibana space id (lower-case letters, digits, _ and -)")


# Where-sighted identity types that pycti creates with a dedicated mutation (case-sensitive there,
# so the canonical spelling is stored) plus Individual, which the generic identityAdd accepts.
IDENTITY_TYPES: Final = ("Organization", "System", "SecurityPlatform", "Individual")


def identity_type(value: object) -> Result[object, str]:
    """One of ``IDENTITY_TYPES`` in any case; normalised to its canonical spelling."""
    for name in IDENTITY_TYPES:
        if str(value).lower() == name.lower():
            return Success(name)
    return Failure(f"{show(value)} is not one of {', '.join(IDENTITY_TYPES)}")


def parse_recover_date(raw: object) -> Result[object, str]:
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
    return Failure(f"{show(raw)} is not an ISO 8601 date (e.g. 2024-01-31T00:00:00Z) or false")


# ---------------------------------------------------------------------------------------------
# Durations and instants, in the forms the earlier connector's users write them.

_DURATION_UNITS: Final = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_TEXT: Final = re.compile(r"(?:[0-9]{1,9}(?:\.[0-9]{1,9})?(?:ms|s|m|h|d|w))+")
_DURATION_PART: Final = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)(ms|s|m|h|d|w)")


def parse_seconds(raw: object) -> Result[object, str]:
    """Seconds as a number (``90``, ``"1.5"``), or a duration like ``30s``, ``5m``, ``1h30m``,
    ``2d`` (the form of the earlier connector's ``query_interval``; ``ms`` and ``w`` too)."""
    if isinstance(raw, str):
        text = raw.strip().lower()
        if _DURATION_TEXT.fullmatch(text):
            return Success(
                sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
            )
        if not _FLOAT_TEXT.fullmatch(text):
            return Failure(f"{show(raw)} is not a number of seconds or a duration like 30s, 5m, 1h")
    return _parse_float(raw)


_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _epoch_milliseconds(moment: datetime.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)  # a date without offset is read as UTC
    # Exact integer arithmetic: timestamp() * 1000 is a float and loses the last millisecond.
    return (moment - _EPOCH) // datetime.timedelta(milliseconds=1)


def parse_start_timestamp(raw: object) -> Result[object, str]:
    """A stream position: epoch milliseconds (``1655890657402``, as a number or text) or an
    ISO 8601 date (``2022-05-22T09:17:08.520Z``; without an offset it is UTC), as the earlier
    connector documented both; stored as epoch milliseconds."""
    if isinstance(raw, datetime.datetime):  # YAML parses unquoted timestamps itself
        return Success(_epoch_milliseconds(raw))
    if isinstance(raw, datetime.date):
        return Success(_epoch_milliseconds(datetime.datetime.combine(raw, datetime.time())))
    if isinstance(raw, str) and not _INT_TEXT.fullmatch(raw.strip()):
        text = raw.strip()
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            return Failure(
                f"{show(raw)} is neither epoch milliseconds (e.g. 1655890657402) nor an ISO 8601 "
                "date (e.g. 2022-05-22T09:17:08.520Z)"
            )
        return Success(_epoch_milliseconds(moment))  # before 1970: not_negative refuses it
    return _parse_int(raw)


# ---------------------------------------------------------------------------------------------
# Export filters


def labels(value: object) -> Result[object, str]:
    """A list of labels, each kept as written, without repeats (matching ignores case)."""
    if not isinstance(value, tuple):
        return Failure(f"must be a list of labels, got {kind_of(value)}")
    seen: dict[str, str] = {}
    for label in value:
        seen.setdefault(str(label).lower(), str(label))
    return Success(tuple(seen.values()))


def observable_types(value: object) -> Result[object, str]:
    """OpenCTI observable type names (``IPv4-Addr``, ``StixFile``...) in any case, stored in
    the platform's spelling; every unknown one is named."""
    if not isinstance(value, tuple):
        return Failure(f"must be a list of observable types, got {kind_of(value)}")
    known: dict[str, None] = {}
    unknown: list[str] = []
    for name in value:
        canonical = canonical_observable_type(str(name))
        if canonical is None:
            unknown.append(show(name))
        else:
            known[canonical] = None
    if unknown:
        return Failure(
            f"{', '.join(unknown)} {'is not an' if len(unknown) == 1 else 'are not'} OpenCTI "
            f"observable type{'' if len(unknown) == 1 else 's'} (one of "
            f"{', '.join(OPENCTI_OBSERVABLE_TYPES)})"
        )
    return Success(tuple(known))
