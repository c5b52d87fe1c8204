"""An OpenCTI indicator and its parsed STIX pattern -> one ECS threat-indicator document.

What an indicator match rule can use from a pattern is its *exact* values: ``=``, each member of
an ``IN`` set, and the network of an ``ISSUBSET`` on an address. ``!=``, ``<``, ``>``, ``LIKE``,
``MATCHES``, ``ISSUPERSET``, ``NOT ...`` and ``EXISTS`` say something about a value without
naming it, so they never produce one (the whole pattern stays in ``opencti.indicator.pattern``).

Every exact value goes to the field ``docs/ecs-mapping.md`` lists for its object path, after a
check that the value is valid for that field's Elasticsearch type: an invalid value (an IPv4
address ``'foo'``, a port above 65535, an unreadable date) is left out, so a document is never
rejected by Elasticsearch. Values are written as the pattern gives them (escapes decoded by the
parser, case kept) except where ECS prescribes a normal form: registry hives (``HKLM``), x509
serial numbers (upper case, no colons), MAC addresses (``00-00-5E-00-53-23``), and CIDR blocks
(the network address). When nothing usable is left the indicator is ``Unmappable``, with the
reason.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final, NamedTuple, TypeVar
from urllib.parse import urlsplit

import msgspec
import msgspec.structs
from returns.result import Failure, Result, Success

from elastic_connector.core import ecs
from elastic_connector.core.pattern_ast import (
    AnyIndex,
    BinaryLiteral,
    BoolLiteral,
    Comparison,
    ComparisonAnd,
    ComparisonExpression,
    ComparisonOr,
    Exists,
    FloatLiteral,
    FollowedBy,
    HexLiteral,
    IntLiteral,
    Literal,
    ObjectPath,
    Observation,
    ObservationAnd,
    ObservationExpression,
    ObservationOr,
    Op,
    Pattern,
    Qualified,
    SetLiteral,
    StringLiteral,
    TimestampLiteral,
)
from elastic_connector.core.stix import ExternalReference, Indicator
from elastic_connector.core.tlp import Tlp


class MappingContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the mapping needs besides the indicator; resolved by the caller."""

    now: datetime
    """Becomes ``@timestamp``: keeps Kibana's ``now-30d`` indicator window meaningful."""
    tlp: Tlp | None
    """Already resolved from ``object_marking_refs``."""
    feed_name: str
    """``threat.feed.name``, e.g. ``OpenCTI``."""
    opencti_url: str | None = None
    """Platform base URL: links to the indicator (``threat.indicator.reference``)."""
    provider: str | None = None
    """Name of the ``created_by_ref`` identity when known (``threat.indicator.provider``)."""


class Unmappable(msgspec.Struct, frozen=True):
    """Why an indicator yields no document; ``reason`` is for humans (logs, the map command)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


ECS_INDICATOR_TYPES: Final = frozenset(
    {
        "autonomous-system",
        "artifact",
        "directory",
        "domain-name",
        "email-addr",
        "file",
        "ipv4-addr",
        "ipv6-addr",
        "mac-addr",
        "mutex",
        "port",
        "process",
        "software",
        "url",
        "user-account",
        "windows-registry-key",
        "x509-certificate",
    }
)
"""The expected values of ``threat.indicator.type`` (ECS 8.x)."""

_OPENCTI_TYPE_ALIASES: Final = {
    "stixfile": "file",
    "hostname": "domain-name",
    "email-message": "email-addr",
}

# A tuple, not a set: membership by identity, without hashing an Enum in Python code.
_EXACT_OPS: Final = (Op.EQ, Op.IN, Op.ISSUBSET)
# isinstance() tuples built once (a ``A | B`` union would be rebuilt on every call).
_TEXT_LITERALS: Final = (StringLiteral, TimestampLiteral)
_BYTE_LITERALS: Final = (BinaryLiteral, HexLiteral)
_NEVER_VALUES: Final = (BoolLiteral, FloatLiteral, BinaryLiteral)
_COMPARISON_GROUPS: Final = (ComparisonOr, ComparisonAnd)
_OBSERVATION_GROUPS: Final = (ObservationAnd, ObservationOr, FollowedBy)
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_MAX_REASON_ITEMS: Final = 3


# --- values as their field types accept them --------------------------------------------------


_text = ecs.keyword_value
_utc = ecs.date_value
_long = ecs.long_value


_DIGITS: Final = re.compile(r"[0-9]{1,20}")


def _integer(literal: Literal, low: int, high: int) -> int | None:
    """An integer literal, or a string of decimal digits, within ``low..high``."""
    if isinstance(literal, IntLiteral):
        return _long(literal.value, low, high)
    if isinstance(literal, StringLiteral) and _DIGITS.fullmatch(literal.value):
        return _long(int(literal.value), low, high)
    return None


def _keyword(literal: Literal) -> str | None:
    """A string (or integer, as its decimal text) usable as a keyword value."""
    if isinstance(literal, StringLiteral):
        return _text(literal.value)
    if isinstance(literal, IntLiteral) and type(literal.value) is int:
        return str(literal.value)
    return None


def _date(literal: Literal) -> datetime | None:
    if isinstance(literal, _TEXT_LITERALS):
        return ecs.date_text_value(literal.value)
    return None


def _describe(literal: Literal) -> str:
    if isinstance(literal, _TEXT_LITERALS):
        text = literal.value
        shown = text if len(text) <= 60 else text[:57] + "..."
        return "'" + shown.replace("'", "\\'") + "'"
    if isinstance(literal, _BYTE_LITERALS):
        return f"{type(literal).__name__}({len(literal.value)} bytes)"
    return repr(literal.value)


# --- the accumulator --------------------------------------------------------------------------


class _Found:
    """Values collected from one pattern, deduplicated, in pattern order, per document field."""

    __slots__ = (
        "dates",
        "first_text",
        "inexact",
        "ints",
        "invalid",
        "scope",
        "stix_types",
        "strs",
        "types",
        "unsupported",
    )

    def __init__(self) -> None:
        self.strs: dict[str, dict[str, None]] = {}
        self.ints: dict[str, dict[int, None]] = {}
        self.dates: dict[str, dict[datetime, None]] = {}
        self.types: dict[str, None] = {}
        self.stix_types: dict[str, None] = {}
        self.first_text: str | None = None
        # Why parts of the pattern gave nothing (for the Unmappable reason).
        self.inexact: dict[str, None] = {}
        self.unsupported: dict[str, None] = {}
        self.invalid: list[str] = []
        # Values of the comparisons directly under one AND, for values that combine
        # (a file name and its directory make a path).
        self.scope: dict[str, list[str]] | None = None

    def text(self, field: str, value: str) -> None:
        self.strs.setdefault(field, {})[value] = None

    def number(self, field: str, value: int) -> None:
        self.ints.setdefault(field, {})[value] = None

    def moment(self, field: str, value: datetime) -> None:
        self.dates.setdefault(field, {})[value] = None

    def remember(self, key: str, value: str) -> None:
        if self.scope is not None:
            self.scope.setdefault(key, []).append(value)

    def found(self, ecs_type: str | None, stix_type: str, shown: str) -> None:
        if ecs_type is not None:
            self.types.setdefault(ecs_type, None)
        self.stix_types.setdefault(stix_type, None)
        if self.first_text is None:
            self.first_text = shown

    def s(self, field: str) -> tuple[str, ...]:
        values = self.strs.get(field)
        return tuple(values) if values else ()

    def i(self, field: str) -> tuple[int, ...]:
        values = self.ints.get(field)
        return tuple(values) if values else ()

    def d(self, field: str) -> tuple[datetime, ...]:
        values = self.dates.get(field)
        return tuple(values) if values else ()

    @property
    def empty(self) -> bool:
        return not self.stix_types


# A rule takes one literal of an exact comparison; it records the value(s) and returns None, or
# returns why the literal is not a valid value for the field.
Handler = Callable[[_Found, Literal, str], str | None]


class Rule(NamedTuple):
    handler: Handler
    ecs_type: str | None
    """The ``threat.indicator.type`` a value of this path stands for (None: no ECS type)."""
    networks: bool = False
    """Accepts ``ISSUBSET`` (address paths only)."""


# --- handlers ---------------------------------------------------------------------------------


def _into(field: str, remember: str | None = None) -> Handler:
    """A keyword field taking the value as written."""

    def handle(found: _Found, literal: Literal, _arg: str) -> str | None:
        value = _keyword(literal)
        if value is None:
            return "not a non-empty string"
        found.text(field, value)
        if remember is not None:
            found.remember(remember, value)
        return None

    return handle


def _number_into(field: str, low: int, high: int) -> Handler:
    def handle(found: _Found, literal: Literal, _arg: str) -> str | None:
        value = _integer(literal, low, high)
        if value is None:
            return f"not an integer in {low}..{high}"
        found.number(field, value)
        return None

    return handle


def _date_into(field: str) -> Handler:
    def handle(found: _Found, literal: Literal, _arg: str) -> str | None:
        value = _date(literal)
        if value is None:
            return "not an RFC 3339 timestamp"
        found.moment(field, value)
        return None

    return handle


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""Dotted-quad IPv4 exactly as ``ipaddress`` accepts it (no leading zeros), but faster."""


def _address_kind(text: str) -> tuple[str, str] | None:
    """(``ip`` | ``range``, normal text) for an address or CIDR block; None if it is neither."""
    if _IPV4.fullmatch(text):
        return ("ip", text)
    if "%" in text:  # IPv6 zone ids are not accepted by Elasticsearch's ip type
        return None
    if "/" not in text:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return None
        return ("ip", text)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if network.prefixlen == network.max_prefixlen:
        return ("ip", text.partition("/")[0])
    # The network address, as ip_range accepts it (``10.1.2.3/8`` is ``10.0.0.0/8``).
    return ("range", network.with_prefixlen)


def _address(found: _Found, literal: Literal, _arg: str) -> str | None:
    if not isinstance(literal, StringLiteral):
        return "not a string"
    kind = _address_kind(literal.value)
    if kind is None:
        return "not an IP address or CIDR block"
    if kind[0] == "ip":
        found.text("threat.indicator.ip", kind[1])
    else:
        found.text("opencti.indicator.ip_range", kind[1])
    return None


_MAC_FORMS: Final = (
    re.compile(
        r"([0-9A-Fa-f]{2})(?:([:-])[0-9A-Fa-f]{2})(?:\2[0-9A-Fa-f]{2}){4}(?:(?:\2[0-9A-Fa-f]{2}){2})?"
    ),
    re.compile(r"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"),
    re.compile(r"[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16}"),
)


def normal_mac(text: str) -> str | None:
    """ECS's MAC form: upper-case hex pairs joined by ``-``; None if ``text`` is not a MAC."""
    candidate = text.strip()
    if not any(form.fullmatch(candidate) for form in _MAC_FORMS):
        return None
    digits = re.sub(r"[^0-9A-Fa-f]", "", candidate).upper()
    return "-".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _mac(found: _Found, literal: Literal, _arg: str) -> str | None:
    if not isinstance(literal, StringLiteral):
        return "not a string"
    value = normal_mac(literal.value)
    if value is None:
        return "not a MAC address"
    found.text("opencti.observable.mac_addr.value", value)
    return None


# STIX hash names as they appear in the wild ('SHA-256', 'SHA256', 'sha256', 'SHA3-256'...),
# reduced to upper case without separators.
_HASHES: Final = {
    "MD5": "md5",
    "SHA1": "sha1",
    "SHA256": "sha256",
    "SHA384": "sha384",
    "SHA512": "sha512",
    "SHA3256": "sha3_256",
    "SHA3512": "sha3_512",
    "SSDEEP": "ssdeep",
    "TLSH": "tlsh",
}
_ECS_FILE_HASHES: Final = frozenset({"md5", "sha1", "sha256", "sha384", "sha512", "ssdeep", "tlsh"})
_HEX_DIGESTS: Final = frozenset(
    {"md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"}
)
_HEX: Final = re.compile(r"[0-9A-Fa-f]+")


def hash_algorithm(name: str) -> str | None:
    """The field name for a STIX hash key (``'SHA-256'`` -> ``sha256``); None if unknown."""
    key = name.upper().replace("-", "").replace("_", "").replace(" ", "")
    return _HASHES.get(key)


_hash_name: Final = functools.lru_cache(maxsize=256)(hash_algorithm)


def _hash(ecs_prefix: str | None, extra_prefix: str) -> Handler:
    """Hashes: ECS file hash fields when ``ecs_prefix`` is given, else (and for SHA-3) custom.

    A hex digest is written as given and, when it has upper-case letters, also in lower case:
    Elastic's sources write lower-case hex and keyword matching is case-sensitive.
    """

    # Field names per algorithm, made once (the handler runs for every hash of every pattern).
    fields = {name: f"{extra_prefix}.{name}" for name in _HASHES.values()}
    if ecs_prefix is not None:
        fields.update({name: f"{ecs_prefix}.{name}" for name in _ECS_FILE_HASHES})

    def handle(found: _Found, literal: Literal, algorithm: str) -> str | None:
        name = _hash_name(algorithm)
        if name is None:
            return f"unknown hash algorithm {algorithm[:40]!r}"
        if isinstance(literal, HexLiteral):
            value: str | None = literal.value.hex() or None
        else:
            value = _keyword(literal)
        if value is None:
            return "not a non-empty string"
        field = fields[name]
        found.text(field, value)
        if name in _HEX_DIGESTS and _HEX.fullmatch(value) and not value.islower():
            lower = value.lower()
            if lower != value:
                found.text(field, lower)
        return None

    return handle


def _file_name(found: _Found, literal: Literal, _arg: str) -> str | None:
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    found.text("threat.indicator.file.name", value)
    found.remember("file.name", value)
    return None


def _directory(found: _Found, literal: Literal, _arg: str) -> str | None:
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    found.text("threat.indicator.file.directory", value)
    found.remember("file.directory", value)
    return None


def _joined_path(directory: str, name: str) -> str | None:
    """``directory`` + separator + ``name``, with the separator the directory uses."""
    windows = "\\" in directory or re.match(r"[A-Za-z]:", directory) is not None
    separator = "\\" if windows else "/"
    if "/" in name or "\\" in name:
        return None
    return directory.rstrip("\\/") + separator + name


def _url(found: _Found, literal: Literal, _arg: str) -> str | None:
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    found.text("threat.indicator.url.full", value)
    found.text("threat.indicator.url.original", value)
    for field, part in url_parts(value):
        if field == "port":
            found.number("threat.indicator.url.port", int(part))
        else:
            found.text(f"threat.indicator.url.{field}", part)
    return None


_PORT_TEXT: Final = re.compile(r"[0-9]{1,5}")
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def url_parts(url: str) -> list[tuple[str, str]]:
    """ECS ``url.*`` parts of ``url``: (``scheme``|``domain``|``port``|``path``|``query``|
    ``fragment``|``extension``, text). Parts are cut from the text as written (nothing is
    lower-cased); a part that cannot be read is left out. Never raises."""
    scheme_text, sep, rest = url.partition("://")
    if sep and _SCHEME.fullmatch(scheme_text):
        target, scheme = "//" + rest, scheme_text
    elif url.startswith("/"):
        target, scheme = url, ""
    else:
        # No scheme (``evil.example/path``): read it as an authority and a path.
        target, scheme = "//" + url, ""
    try:
        split = urlsplit(target)
    except ValueError:
        return []
    parts: list[tuple[str, str]] = []
    if scheme:
        parts.append(("scheme", scheme))
    host_port = split.netloc.rpartition("@")[2]
    if host_port.startswith("["):
        # ECS keeps the brackets of a literal IPv6 host in url.domain.
        end = host_port.find("]")
        host, port = (host_port[: end + 1], host_port[end + 2 :]) if end > 0 else ("", "")
    else:
        host, _, port = host_port.partition(":")
    if host:
        parts.append(("domain", host))
    if _PORT_TEXT.fullmatch(port) and int(port) <= 65535:
        parts.append(("port", port))
    if split.path:
        parts.append(("path", split.path))
        last = split.path.rsplit("/", 1)[-1]
        stem, dot, extension = last.rpartition(".")
        if dot and stem and extension:
            parts.append(("extension", extension))
    if split.query:
        parts.append(("query", split.query))
    if split.fragment:
        parts.append(("fragment", split.fragment))
    return [(field, text) for field, text in parts if _text(text) is not None]


_HIVES: Final = {
    "HKEY_LOCAL_MACHINE": "HKLM",
    "HKLM": "HKLM",
    "HKEY_CURRENT_USER": "HKCU",
    "HKCU": "HKCU",
    "HKEY_USERS": "HKU",
    "HKU": "HKU",
    "HKEY_CLASSES_ROOT": "HKCR",
    "HKCR": "HKCR",
    "HKEY_CURRENT_CONFIG": "HKCC",
    "HKCC": "HKCC",
    "HKEY_PERFORMANCE_DATA": "HKPD",
    "HKPD": "HKPD",
    "HKEY_DYN_DATA": "HKDD",
    "HKDD": "HKDD",
}
# Kernel spelling of the same hives (\REGISTRY\MACHINE\SOFTWARE...).
_KERNEL_HIVES: Final = {"MACHINE": "HKLM", "USER": "HKU"}


def registry_parts(key: str) -> tuple[str | None, str]:
    """(ECS hive abbreviation or None, hive-relative key) of a registry key path."""
    trimmed = key.lstrip("\\")
    first, _, rest = trimmed.partition("\\")
    hive = _HIVES.get(first.upper())
    if hive is not None:
        return hive, rest
    if first.upper() == "REGISTRY":
        second, _, rest = rest.partition("\\")
        hive = _KERNEL_HIVES.get(second.upper())
        if hive is not None:
            return hive, rest
    return None, key


def _registry_key(found: _Found, literal: Literal, _arg: str) -> str | None:
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    hive, key = registry_parts(value)
    if hive is None:
        found.text("threat.indicator.registry.key", value)
        found.text("threat.indicator.registry.path", value)
        found.remember("registry.path", value)
        return None
    found.text("threat.indicator.registry.hive", hive)
    path = hive
    if key:
        found.text("threat.indicator.registry.key", key)
        path = f"{hive}\\{key}"
    found.text("threat.indicator.registry.path", path)
    found.remember("registry.path", path)
    return None


def _serial_number(found: _Found, literal: Literal, _arg: str) -> str | None:
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    compact = re.sub(r"[\s:]", "", value)
    # ECS: an alphanumeric serial number is written without colons, in upper case.
    if compact and compact.isalnum() and compact.isascii():
        value = compact.upper()
    found.text("threat.indicator.x509.serial_number", value)
    return None


_DN_ATTRIBUTES: Final = {
    "cn": "common_name",
    "commonname": "common_name",
    "o": "organization",
    "organizationname": "organization",
    "ou": "organizational_unit",
    "organizationalunitname": "organizational_unit",
    "c": "country",
    "countryname": "country",
    "l": "locality",
    "localityname": "locality",
    "st": "state_or_province",
    "s": "state_or_province",
    "sp": "state_or_province",
    "stateorprovincename": "state_or_province",
}


def _split_unescaped(text: str, separators: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char in separators and not quoted:
            parts.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _dn_value(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    out: list[str] = []
    pending = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            pair = value[index + 1 : index + 3]
            if len(pair) == 2 and _HEX.fullmatch(pair):
                pending.append(int(pair, 16))
                index += 3
                continue
            if pending:
                out.append(pending.decode("utf-8", "replace"))
                pending.clear()
            out.append(value[index + 1])
            index += 2
            continue
        if pending:
            out.append(pending.decode("utf-8", "replace"))
            pending.clear()
        out.append(char)
        index += 1
    if pending:
        out.append(pending.decode("utf-8", "replace"))
    return "".join(out)


def distinguished_name(text: str) -> list[tuple[str, str]] | None:
    """The (ECS x509 name field, value) pairs of a DN (``CN=a, O=b`` or ``/C=US/CN=a``), or None
    when ``text`` is not a DN. Attributes ECS has no field for are skipped."""
    stripped = text.strip()
    if stripped.startswith("/"):
        pieces = [p for p in _split_unescaped(stripped[1:], "/") if p.strip()]
    else:
        pieces = [p for p in _split_unescaped(stripped, ",;+") if p.strip()]
    if not pieces:
        return None
    pairs: list[tuple[str, str]] = []
    for piece in pieces:
        name, equals, raw = piece.partition("=")
        if not equals or not name.strip():
            return None
        field = _DN_ATTRIBUTES.get(name.strip().lower())
        value = _dn_value(raw)
        if field is not None and value and _text(value) is not None:
            pairs.append((field, value))
    return pairs


def _x509_name(role: str) -> Handler:
    def handle(found: _Found, literal: Literal, _arg: str) -> str | None:
        value = _keyword(literal)
        if value is None:
            return "not a non-empty string"
        pairs = distinguished_name(value)
        prefix = f"threat.indicator.x509.{role}"
        if pairs is None:
            found.text(f"{prefix}.common_name", value)
            return None
        found.text(f"{prefix}.distinguished_name", value)
        for field, part in pairs:
            found.text(f"{prefix}.{field}", part)
        return None

    return handle


# --- object paths -> rules --------------------------------------------------------------------

_PORT_RANGE: Final = (0, 65535)
_FILE_HASH: Final = _hash("threat.indicator.file.hash", "opencti.observable.file.hash")
_EMAIL: Final = _into("threat.indicator.email.address")
_DOMAIN: Final = _into("threat.indicator.url.domain")

RULES: Final[dict[tuple[str, str], Rule]] = {
    ("ipv4-addr", "value"): Rule(_address, "ipv4-addr", networks=True),
    ("ipv6-addr", "value"): Rule(_address, "ipv6-addr", networks=True),
    ("domain-name", "value"): Rule(_DOMAIN, "domain-name"),
    ("domain-name", "resolves_to_refs[*].value"): Rule(_address, "domain-name", networks=True),
    ("hostname", "value"): Rule(_DOMAIN, "domain-name"),
    ("url", "value"): Rule(_url, "url"),
    ("email-addr", "value"): Rule(_EMAIL, "email-addr"),
    ("email-message", "from_ref.value"): Rule(_EMAIL, "email-addr"),
    ("email-message", "sender_ref.value"): Rule(_EMAIL, "email-addr"),
    ("email-message", "subject"): Rule(_into("opencti.observable.email_message.subject"), None),
    ("file", "name"): Rule(_file_name, "file"),
    ("file", "size"): Rule(_number_into("threat.indicator.file.size", 0, _LONG_MAX), "file"),
    ("file", "mime_type"): Rule(_into("threat.indicator.file.mime_type"), "file"),
    ("file", "hashes.*"): Rule(_FILE_HASH, "file"),
    ("file", "parent_directory_ref.path"): Rule(_directory, "file"),
    ("artifact", "hashes.*"): Rule(_FILE_HASH, "artifact"),
    ("artifact", "mime_type"): Rule(_into("threat.indicator.file.mime_type"), "artifact"),
    ("directory", "path"): Rule(_directory, "directory"),
    ("windows-registry-key", "key"): Rule(_registry_key, "windows-registry-key"),
    ("windows-registry-key", "values[*].name"): Rule(
        _into("threat.indicator.registry.value", remember="registry.value"),
        "windows-registry-key",
    ),
    ("windows-registry-key", "values[*].data"): Rule(
        _into("threat.indicator.registry.data.strings"), "windows-registry-key"
    ),
    ("windows-registry-key", "values[*].data_type"): Rule(
        _into("threat.indicator.registry.data.type"), "windows-registry-key"
    ),
    ("x509-certificate", "serial_number"): Rule(_serial_number, "x509-certificate"),
    ("x509-certificate", "issuer"): Rule(_x509_name("issuer"), "x509-certificate"),
    ("x509-certificate", "subject"): Rule(_x509_name("subject"), "x509-certificate"),
    ("x509-certificate", "hashes.*"): Rule(
        _hash(None, "opencti.observable.x509_certificate.hash"), "x509-certificate"
    ),
    ("x509-certificate", "validity_not_before"): Rule(
        _date_into("threat.indicator.x509.not_before"), "x509-certificate"
    ),
    ("x509-certificate", "validity_not_after"): Rule(
        _date_into("threat.indicator.x509.not_after"), "x509-certificate"
    ),
    ("x509-certificate", "signature_algorithm"): Rule(
        _into("threat.indicator.x509.signature_algorithm"), "x509-certificate"
    ),
    ("x509-certificate", "subject_public_key_algorithm"): Rule(
        _into("threat.indicator.x509.public_key_algorithm"), "x509-certificate"
    ),
    ("x509-certificate", "subject_public_key_exponent"): Rule(
        _number_into("threat.indicator.x509.public_key_exponent", 0, _LONG_MAX),
        "x509-certificate",
    ),
    ("x509-certificate", "version"): Rule(
        _into("threat.indicator.x509.version_number"), "x509-certificate"
    ),
    ("x509-certificate", "x509_v3_extensions.subject_alternative_name"): Rule(
        _into("threat.indicator.x509.alternative_names"), "x509-certificate"
    ),
    ("autonomous-system", "number"): Rule(
        _number_into("threat.indicator.as.number", 0, 2**32 - 1), "autonomous-system"
    ),
    ("autonomous-system", "name"): Rule(
        _into("threat.indicator.as.organization.name"), "autonomous-system"
    ),
    ("mac-addr", "value"): Rule(_mac, "mac-addr"),
    ("network-traffic", "src_ref.value"): Rule(_address, "ipv4-addr", networks=True),
    ("network-traffic", "dst_ref.value"): Rule(_address, "ipv4-addr", networks=True),
    ("network-traffic", "src_port"): Rule(
        _number_into("threat.indicator.port", *_PORT_RANGE), "port"
    ),
    ("network-traffic", "dst_port"): Rule(
        _number_into("threat.indicator.port", *_PORT_RANGE), "port"
    ),
    ("network-traffic", "protocols[*]"): Rule(
        _into("opencti.observable.network_traffic.protocols"), None
    ),
    ("process", "pid"): Rule(
        _number_into("opencti.observable.process.pid", 0, _LONG_MAX), "process"
    ),
    ("process", "name"): Rule(_into("opencti.observable.process.name"), "process"),
    ("process", "image_ref.name"): Rule(_into("opencti.observable.process.name"), "process"),
    ("process", "image_ref.hashes.*"): Rule(_FILE_HASH, "process"),
    ("process", "command_line"): Rule(_into("opencti.observable.process.command_line"), "process"),
    ("process", "cwd"): Rule(_into("opencti.observable.process.cwd"), "process"),
    ("user-account", "user_id"): Rule(
        _into("opencti.observable.user_account.user_id"), "user-account"
    ),
    ("user-account", "account_login"): Rule(
        _into("opencti.observable.user_account.account_login"), "user-account"
    ),
    ("user-account", "display_name"): Rule(
        _into("opencti.observable.user_account.display_name"), "user-account"
    ),
    ("software", "name"): Rule(_into("opencti.observable.software.name"), "software"),
    ("software", "vendor"): Rule(_into("opencti.observable.software.vendor"), "software"),
    ("software", "version"): Rule(_into("opencti.observable.software.version"), "software"),
    ("software", "cpe"): Rule(_into("opencti.observable.software.cpe"), "software"),
    ("software", "swid"): Rule(_into("opencti.observable.software.swid"), "software"),
    ("mutex", "name"): Rule(_into("opencti.observable.mutex.name"), "mutex"),
    # OpenCTI's own observable types.
    ("user-agent", "value"): Rule(_into("opencti.observable.user_agent.value"), None),
    ("cryptocurrency-wallet", "value"): Rule(
        _into("opencti.observable.cryptocurrency_wallet.value"), None
    ),
    ("phone-number", "value"): Rule(_into("opencti.observable.phone_number.value"), None),
    ("bank-account", "iban"): Rule(_into("opencti.observable.bank_account.value"), None),
    ("credential", "value"): Rule(_into("opencti.observable.credential.value"), None),
    ("tracking-number", "value"): Rule(_into("opencti.observable.tracking_number.value"), None),
    ("text", "value"): Rule(_into("opencti.observable.text.value"), None),
}
"""(STIX object type, property path) -> how its exact values are mapped. List steps are
written ``[*]`` whatever the index; ``hashes.*`` stands for any hash algorithm key."""


def path_text(path: ObjectPath) -> str:
    """The path as a pattern writes it: ``file:hashes.'SHA-256'``, ``x:values[*].name``."""
    out = [path.object_type, ":"]
    for position, step in enumerate(path.steps):
        if isinstance(step, AnyIndex):
            out.append("[*]")
        elif isinstance(step, int):
            out.append(f"[{step}]")
        else:
            dot = "" if position == 0 else "."
            plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", step) is not None
            out.append(dot + (step if plain else "'" + step.replace("'", "\\'") + "'"))
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _rule_for(path: ObjectPath) -> tuple[Rule, str] | None:
    """The rule of a path and the argument it passes (the hash algorithm), if any."""
    keys: list[str] = []
    for step in path.steps:
        if isinstance(step, str):
            keys.append(step.lower())
        elif keys:
            keys[-1] += "[*]"
        else:
            return None
    object_type = path.object_type.lower()
    if len(keys) >= 2 and keys[-2] == "hashes":
        last = path.steps[-1]
        algorithm = last if isinstance(last, str) else ""
        rule = RULES.get((object_type, ".".join([*keys[:-1], "*"])))
        return (rule, algorithm) if rule is not None else None
    rule = RULES.get((object_type, ".".join(keys)))
    return (rule, "") if rule is not None else None


# --- walking the pattern ----------------------------------------------------------------------


def _comparison(found: _Found, comparison: Comparison) -> None:
    op = comparison.op
    if comparison.negated or op not in _EXACT_OPS:
        found.inexact.setdefault(("NOT " if comparison.negated else "") + op.value, None)
        return
    path = comparison.path
    match = _rule_for(path)
    if match is None:
        found.unsupported.setdefault(path_text(path), None)
        return
    rule, argument = match
    if op is Op.ISSUBSET and not rule.networks:
        found.inexact.setdefault(op.value, None)
        return
    value = comparison.value
    if isinstance(value, SetLiteral):
        if op is not Op.IN:
            found.invalid.append(f"{path_text(path)} {op.value} a set")
            return
        literals: tuple[Literal, ...] = value.values
    else:
        literals = (value,)
    handler = rule.handler
    stix_type = path.object_type.lower()
    for literal in literals:
        if isinstance(literal, _NEVER_VALUES):
            kind = type(literal).__name__.removesuffix("Literal").lower()
            problem: str | None = f"a {kind} is not a valid value"
        else:
            problem = handler(found, literal, argument)
        if problem is not None:
            found.invalid.append(f"{path_text(path)} {op.value} {_describe(literal)}: {problem}")
            continue
        ecs_type = rule.ecs_type
        if handler is _address and isinstance(literal, StringLiteral):
            ecs_type = "ipv6-addr" if ":" in literal.value else "ipv4-addr"
            if stix_type == "domain-name":
                ecs_type = "domain-name"
        found.found(ecs_type, stix_type, _shown(literal))


def _shown(literal: Literal) -> str:
    if isinstance(literal, HexLiteral):
        return literal.value.hex()
    value = literal.value
    return value if isinstance(value, str) else str(value)


def _expression(found: _Found, expression: ComparisonExpression) -> None:
    if isinstance(expression, Comparison):
        _comparison(found, expression)
    elif isinstance(expression, Exists):
        found.inexact.setdefault("EXISTS", None)
    elif isinstance(expression, _COMPARISON_GROUPS):
        for operand in expression.operands:
            _expression(found, operand)


def _observation_body(found: _Found, expression: ComparisonExpression) -> None:
    if not isinstance(expression, ComparisonAnd):
        _expression(found, expression)
        return
    # Values ANDed directly in one observation describe one object: a file name and its
    # directory combine into the file's path, a registry key and a value name into the
    # value's path.
    scope: dict[str, list[str]] = {}
    for operand in expression.operands:
        found.scope = scope if isinstance(operand, Comparison) else None
        _expression(found, operand)
    found.scope = None
    names, directories = scope.get("file.name", []), scope.get("file.directory", [])
    if len(names) == 1 and len(directories) == 1:
        joined = _joined_path(directories[0], names[0])
        if joined is not None:
            found.text("threat.indicator.file.path", joined)
    keys, values = scope.get("registry.path", []), scope.get("registry.value", [])
    if len(keys) == 1 and len(values) == 1:
        found.text("threat.indicator.registry.path", f"{keys[0]}\\{values[0]}")


def _observations(found: _Found, expression: ObservationExpression) -> None:
    if isinstance(expression, Observation):
        _observation_body(found, expression.expression)
    elif isinstance(expression, Qualified):
        _observations(found, expression.expression)
    elif isinstance(expression, _OBSERVATION_GROUPS):
        for operand in expression.operands:
            _observations(found, operand)


def _listed(items: Iterable[str]) -> str:
    listed = list(items)
    shown = ", ".join(listed[:_MAX_REASON_ITEMS])
    more = len(listed) - _MAX_REASON_ITEMS
    return shown + (f" (and {more} more)" if more > 0 else "")


def _why_nothing(found: _Found) -> Unmappable:
    parts: list[str] = []
    if found.invalid:
        parts.append("no value is valid for its field: " + _listed(found.invalid))
    if found.unsupported:
        parts.append("no field for " + _listed(found.unsupported))
    if found.inexact:
        operators = "/".join(found.inexact)
        parts.append(f"only {operators} comparisons")
    if not parts:
        parts.append("no comparison")
    return Unmappable("pattern has no exact-match value: " + "; ".join(parts))


# --- the document -----------------------------------------------------------------------------


def confidence_level(confidence: int | None) -> str:
    """STIX 2.1 appendix A None/Low/Med/High scale, as ECS ``threat.indicator.confidence``."""
    if confidence is None or type(confidence) is not int:
        return "Not Specified"
    if confidence == 0:
        return "None"
    if 1 <= confidence <= 29:
        return "Low"
    if 30 <= confidence <= 69:
        return "Medium"
    if 70 <= confidence <= 100:
        return "High"
    return "Not Specified"


def ecs_indicator_type(opencti_type: str) -> str | None:
    """OpenCTI's observable type name (``IPv4-Addr``, ``StixFile``...) as an ECS value."""
    key = opencti_type.strip().lower()
    key = _OPENCTI_TYPE_ALIASES.get(key, key)
    return key if key in ECS_INDICATOR_TYPES else None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    if not values:
        return ()
    out: dict[str, None] = {}
    for value in values:
        checked = _text(value)
        if checked is not None:
            out[checked] = None
    return tuple(out)


def _opt_text(value: str | None) -> str | None:
    if value is None:
        return None
    # Fast path for what decoded JSON holds: a plain ASCII str (empty means absent).
    if value.__class__ is str and value.isascii():
        return value or None
    return _text(value)


def _opt_date(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # Fast path for what msgspec decodes: an aware datetime already in UTC.
    if value.__class__ is datetime and value.tzinfo is UTC:
        return value
    return _utc(value)


def _opt_bool(value: bool | None) -> bool | None:
    return value if value is True or value is False else None


_V = TypeVar("_V")


def _either(value: _V | None, fallback: _V | None) -> _V | None:
    return value if value is not None else fallback


@functools.lru_cache(maxsize=1024)
def _prefixes(field: str) -> tuple[str, ...]:
    """Every dotted prefix of a field name: ``a.b.c`` gives (``a.b``, ``a``)."""
    prefixes: list[str] = []
    head = field.rpartition(".")[0]
    while head:
        prefixes.append(head)
        head = head.rpartition(".")[0]
    return tuple(prefixes)


def _groups(found: _Found) -> set[str]:
    """Every dotted prefix of the fields holding a value (``threat``, ``threat.indicator``,
    ``threat.indicator.file``...): document parts are built only where they have content."""
    groups: set[str] = set()
    for table in (found.strs, found.ints, found.dates):
        for field in table:
            groups.update(_prefixes(field))
    return groups


# --- threat.indicator parts (each built only when its group holds a value) --------------------


def _indicator_file(found: _Found, groups: set[str]) -> ecs.IndicatorFile:
    s = found.s
    file_hash = None
    if "threat.indicator.file.hash" in groups:
        file_hash = ecs.FileHash(
            md5=s("threat.indicator.file.hash.md5"),
            sha1=s("threat.indicator.file.hash.sha1"),
            sha256=s("threat.indicator.file.hash.sha256"),
            sha384=s("threat.indicator.file.hash.sha384"),
            sha512=s("threat.indicator.file.hash.sha512"),
            ssdeep=s("threat.indicator.file.hash.ssdeep"),
            tlsh=s("threat.indicator.file.hash.tlsh"),
        )
    return ecs.IndicatorFile(
        name=s("threat.indicator.file.name"),
        directory=s("threat.indicator.file.directory"),
        path=s("threat.indicator.file.path"),
        size=found.i("threat.indicator.file.size"),
        mime_type=s("threat.indicator.file.mime_type"),
        hash=file_hash,
    )


def _indicator_url(found: _Found) -> ecs.IndicatorUrl:
    s = found.s
    return ecs.IndicatorUrl(
        full=s("threat.indicator.url.full"),
        original=s("threat.indicator.url.original"),
        scheme=s("threat.indicator.url.scheme"),
        domain=s("threat.indicator.url.domain"),
        port=found.i("threat.indicator.url.port"),
        path=s("threat.indicator.url.path"),
        query=s("threat.indicator.url.query"),
        fragment=s("threat.indicator.url.fragment"),
        extension=s("threat.indicator.url.extension"),
    )


def _indicator_registry(found: _Found, groups: set[str]) -> ecs.IndicatorRegistry:
    s = found.s
    data = None
    if "threat.indicator.registry.data" in groups:
        data = ecs.RegistryData(
            strings=s("threat.indicator.registry.data.strings"),
            type=s("threat.indicator.registry.data.type"),
        )
    return ecs.IndicatorRegistry(
        hive=s("threat.indicator.registry.hive"),
        key=s("threat.indicator.registry.key"),
        path=s("threat.indicator.registry.path"),
        value=s("threat.indicator.registry.value"),
        data=data,
    )


def _x509_name_part(found: _Found, groups: set[str], role: str) -> ecs.X509Name | None:
    prefix = f"threat.indicator.x509.{role}"
    if prefix not in groups:
        return None
    s = found.s
    return ecs.X509Name(
        distinguished_name=s(f"{prefix}.distinguished_name"),
        common_name=s(f"{prefix}.common_name"),
        organization=s(f"{prefix}.organization"),
        organizational_unit=s(f"{prefix}.organizational_unit"),
        country=s(f"{prefix}.country"),
        locality=s(f"{prefix}.locality"),
        state_or_province=s(f"{prefix}.state_or_province"),
    )


def _indicator_x509(found: _Found, groups: set[str]) -> ecs.X509:
    s = found.s
    return ecs.X509(
        serial_number=s("threat.indicator.x509.serial_number"),
        issuer=_x509_name_part(found, groups, "issuer"),
        subject=_x509_name_part(found, groups, "subject"),
        not_before=found.d("threat.indicator.x509.not_before"),
        not_after=found.d("threat.indicator.x509.not_after"),
        alternative_names=s("threat.indicator.x509.alternative_names"),
        signature_algorithm=s("threat.indicator.x509.signature_algorithm"),
        public_key_algorithm=s("threat.indicator.x509.public_key_algorithm"),
        public_key_exponent=found.i("threat.indicator.x509.public_key_exponent"),
        version_number=s("threat.indicator.x509.version_number"),
    )


def _indicator_as(found: _Found, groups: set[str]) -> ecs.AutonomousSystem:
    organization = None
    if "threat.indicator.as.organization" in groups:
        organization = ecs.AsOrganization(name=found.s("threat.indicator.as.organization.name"))
    return ecs.AutonomousSystem(
        number=found.i("threat.indicator.as.number"), organization=organization
    )


@functools.lru_cache(maxsize=64)
def _ecs_type_of(main_type: str) -> str | None:
    return ecs_indicator_type(main_type)


@functools.lru_cache(maxsize=16)
def _marking(tlp: Tlp) -> ecs.Marking:
    return ecs.Marking(tlp=tlp.value, tlp_version="1.0" if tlp is Tlp.WHITE else "2.0")


# Document parts with many fields are built from the fields most indicators have, and the rest
# is added only when present (``msgspec.structs.replace``): CPython 3.11 makes any call with 16
# or more keyword arguments about four times slower, and that was a tenth of the mapping's cost.


def _threat_indicator(
    indicator: Indicator, found: _Found, groups: set[str], context: MappingContext
) -> ecs.ThreatIndicator:
    extension = indicator.extensions.opencti
    if extension is not None:
        internal_id = extension.id or None
        main_type = extension.main_observable_type
        if main_type is None:
            main_type = indicator.x_opencti_main_observable_type
        modified = _opt_date(indicator.modified)
        if modified is None:
            modified = _opt_date(extension.updated_at)
    else:
        internal_id = None
        main_type = indicator.x_opencti_main_observable_type
        modified = _opt_date(indicator.modified)
    indicator_type = _ecs_type_of(main_type) if isinstance(main_type, str) else None
    if indicator_type is None:
        indicator_type = next(iter(found.types), None) or next(iter(found.stix_types), None)
    reference = None
    if context.opencti_url:
        base = context.opencti_url.rstrip("/")
        if base:
            link = f"{base}/dashboard/observations/indicators/{internal_id or indicator.id}"
            reference = _text(link)
    strs = found.strs
    document = ecs.ThreatIndicator(
        confidence=confidence_level(indicator.confidence),
        id=_unique((internal_id, indicator.id)),
        type=indicator_type,
        name=_opt_text(indicator.name) or found.first_text,
        description=_opt_text(indicator.description),
        provider=_opt_text(context.provider),
        reference=reference,
        first_seen=_opt_date(indicator.created) or _opt_date(indicator.valid_from),
        modified_at=modified,
        marking=None if context.tlp is None else _marking(context.tlp),
        ip=tuple(strs["threat.indicator.ip"]) if "threat.indicator.ip" in strs else (),
        port=found.i("threat.indicator.port"),
    )
    # The parts named after observable types, only where the pattern gave them a value.
    parts: dict[str, object] = {}
    if "threat.indicator.email" in groups:
        parts["email"] = ecs.IndicatorEmail(address=found.s("threat.indicator.email.address"))
    if "threat.indicator.file" in groups:
        parts["file"] = _indicator_file(found, groups)
    if "threat.indicator.url" in groups:
        parts["url"] = _indicator_url(found)
    if "threat.indicator.registry" in groups:
        parts["registry"] = _indicator_registry(found, groups)
    if "threat.indicator.x509" in groups:
        parts["x509"] = _indicator_x509(found, groups)
    if "threat.indicator.as" in groups:
        parts["as_"] = _indicator_as(found, groups)
    return msgspec.structs.replace(document, **parts) if parts else document


# --- opencti.* ------------------------------------------------------------------------------


def _extra_hash(found: _Found, prefix: str) -> ecs.ExtraHash:
    s = found.s
    return ecs.ExtraHash(
        md5=s(f"{prefix}.md5"),
        sha1=s(f"{prefix}.sha1"),
        sha256=s(f"{prefix}.sha256"),
        sha384=s(f"{prefix}.sha384"),
        sha512=s(f"{prefix}.sha512"),
        sha3_256=s(f"{prefix}.sha3_256"),
        sha3_512=s(f"{prefix}.sha3_512"),
        ssdeep=s(f"{prefix}.ssdeep"),
        tlsh=s(f"{prefix}.tlsh"),
    )


_OBSERVED_VALUES: Final = (
    "user_agent",
    "cryptocurrency_wallet",
    "phone_number",
    "bank_account",
    "credential",
    "tracking_number",
    "text",
)
_NO_OBSERVABLE: Final = ecs.Observable()


def _observable(found: _Found, groups: set[str]) -> ecs.Observable | None:
    o = "opencti.observable"
    if o not in groups:
        return None
    s, i = found.s, found.i
    parts: dict[str, object] = {}
    if f"{o}.file.hash" in groups:
        parts["file"] = ecs.ObservedFile(
            hash=ecs.Sha3Hash(
                sha3_256=s(f"{o}.file.hash.sha3_256"), sha3_512=s(f"{o}.file.hash.sha3_512")
            )
        )
    if f"{o}.x509_certificate.hash" in groups:
        parts["x509_certificate"] = ecs.ObservedX509(
            hash=_extra_hash(found, f"{o}.x509_certificate.hash")
        )
    if f"{o}.mac_addr" in groups:
        parts["mac_addr"] = ecs.ObservedMac(value=s(f"{o}.mac_addr.value"))
    if f"{o}.mutex" in groups:
        parts["mutex"] = ecs.ObservedMutex(name=s(f"{o}.mutex.name"))
    if f"{o}.process" in groups:
        parts["process"] = ecs.ObservedProcess(
            name=s(f"{o}.process.name"),
            pid=i(f"{o}.process.pid"),
            command_line=s(f"{o}.process.command_line"),
            cwd=s(f"{o}.process.cwd"),
        )
    if f"{o}.user_account" in groups:
        parts["user_account"] = ecs.ObservedUserAccount(
            user_id=s(f"{o}.user_account.user_id"),
            account_login=s(f"{o}.user_account.account_login"),
            display_name=s(f"{o}.user_account.display_name"),
        )
    if f"{o}.software" in groups:
        parts["software"] = ecs.ObservedSoftware(
            name=s(f"{o}.software.name"),
            vendor=s(f"{o}.software.vendor"),
            version=s(f"{o}.software.version"),
            cpe=s(f"{o}.software.cpe"),
            swid=s(f"{o}.software.swid"),
        )
    if f"{o}.network_traffic" in groups:
        parts["network_traffic"] = ecs.ObservedNetworkTraffic(
            protocols=s(f"{o}.network_traffic.protocols")
        )
    if f"{o}.email_message" in groups:
        parts["email_message"] = ecs.ObservedEmailMessage(subject=s(f"{o}.email_message.subject"))
    for kind in _OBSERVED_VALUES:
        group = f"{o}.{kind}"
        if group in groups:
            parts[kind] = ecs.ObservedValue(value=s(f"{group}.value"))
    return msgspec.structs.replace(_NO_OBSERVABLE, **parts)


def _external_reference(ref: ExternalReference) -> ecs.ExternalReference | None:
    source_name, url, external_id = (
        _opt_text(ref.source_name),
        _opt_text(ref.url),
        _opt_text(ref.external_id),
    )
    if source_name is None and url is None and external_id is None:
        return None
    return ecs.ExternalReference(source_name=source_name, url=url, external_id=external_id)


def _opencti_indicator(indicator: Indicator, found: _Found) -> ecs.OpenCTIIndicator:
    extension = indicator.extensions.opencti
    mitre = indicator.extensions.mitre
    if extension is not None:
        internal_id, is_inferred = extension.id, extension.is_inferred
        score = extension.score
        if score is None:
            score = indicator.x_opencti_score
        detection = extension.detection
        if detection is None:
            detection = indicator.x_opencti_detection
        main_type = extension.main_observable_type
        if main_type is None:
            main_type = indicator.x_opencti_main_observable_type
    else:
        internal_id, is_inferred = None, None
        score, detection = indicator.x_opencti_score, indicator.x_opencti_detection
        main_type = indicator.x_opencti_main_observable_type
    platforms = (mitre.platforms if mitre is not None else ()) or indicator.x_mitre_platforms
    references: tuple[ecs.ExternalReference, ...] = ()
    if indicator.external_references:
        kept = (_external_reference(ref) for ref in indicator.external_references)
        references = tuple(ref for ref in kept if ref is not None)
    kill_chain: tuple[str, ...] = ()
    if indicator.kill_chain_phases:
        kill_chain = _unique(
            f"[{phase.kill_chain_name}] {phase.phase_name}" for phase in indicator.kill_chain_phases
        )
    confidence = indicator.confidence
    revoked = indicator.revoked
    document = ecs.OpenCTIIndicator(
        id=_opt_text(internal_id),
        standard_id=_opt_text(indicator.id),
        pattern=_opt_text(indicator.pattern),
        pattern_type=_opt_text(indicator.pattern_type),
        score=None if score is None else _long(score),
        confidence=None if confidence is None else _long(confidence),
        detection=detection if detection is True or detection is False else None,
        revoked=revoked if revoked is True or revoked is False else None,
        is_inferred=is_inferred if is_inferred is True or is_inferred is False else None,
        valid_from=_opt_date(indicator.valid_from),
        valid_until=_opt_date(indicator.valid_until),
        created=_opt_date(indicator.created),
        modified=_opt_date(indicator.modified),
        created_by_ref=_opt_text(indicator.created_by_ref),
        main_observable_type=_opt_text(main_type),
    )
    # Properties most indicators do not have, only when they have a value.
    extras: dict[str, object] = {}
    pattern_version = _opt_text(indicator.pattern_version)
    if pattern_version is not None:
        extras["pattern_version"] = pattern_version
    if "opencti.indicator.ip_range" in found.strs:
        extras["ip_range"] = found.s("opencti.indicator.ip_range")
    if indicator.indicator_types:
        extras["indicator_types"] = _unique(indicator.indicator_types)
    if platforms:
        extras["mitre_platforms"] = _unique(platforms)
    if kill_chain:
        extras["kill_chain_phase"] = kill_chain
    if references:
        extras["external_reference"] = references
    return msgspec.structs.replace(document, **extras) if extras else document


def _exact_values(pattern: Pattern) -> _Found:
    """Walk ``pattern`` and collect its exact values per document field."""
    found = _Found()
    _observations(found, pattern.expression)
    return found


def indicator_document(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> Result[ecs.IndicatorDocument, Unmappable]:
    """The ECS document of ``indicator`` (whose parsed pattern is ``pattern``), or why there is
    none. Deterministic, never raises; the caller uses ``StixObject.opencti_id`` as ``_id``."""
    found = _exact_values(pattern)
    if found.empty:
        return Failure(_why_nothing(found))
    groups = _groups(found)
    return Success(
        ecs.IndicatorDocument(
            timestamp=_opt_date(context.now) or _EPOCH,
            ecs=ecs.ECS_INFO,
            event=ecs.INDICATOR_EVENT,
            threat=ecs.Threat(
                indicator=_threat_indicator(indicator, found, groups, context),
                feed=_feed(context.feed_name, context.opencti_url),
            ),
            opencti=ecs.OpenCTI(
                indicator=_opencti_indicator(indicator, found),
                observable=_observable(found, groups) if "opencti.observable" in groups else None,
            ),
            tags=_unique(indicator.labels) if indicator.labels else (),
        )
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=16)
def _feed(name: str, opencti_url: str | None) -> ecs.Feed:
    """``threat.feed``: the same for every document of one connector."""
    reference = (opencti_url or "").rstrip("/") or None
    return ecs.Feed(name=_text(name) or "OpenCTI", reference=_opt_text(reference))
