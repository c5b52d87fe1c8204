"""How one literal of an exact comparison becomes the value(s) of document fields.

A handler checks that the literal is valid for its field's Elasticsearch type (an IPv4 address
``'foo'``, a port above 65535, an unreadable date are not) and records the value, in the normal
form ECS prescribes where there is one (``value_forms``); otherwise it says why not, and the
value is left out, so a document is never rejected by Elasticsearch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from elastic_connector.core.indicators.field_values import date_text_value
from elastic_connector.core.indicators.field_values import keyword_value as _text
from elastic_connector.core.indicators.field_values import long_value as _long
from elastic_connector.core.indicators.found_values import FoundValues
from elastic_connector.core.indicators.value_forms import (
    ECS_FILE_HASHES,
    EXECUTABLE_HASHES,
    HASH_ALGORITHMS,
    HEX_DIGESTS,
    address_kind,
    distinguished_name,
    hash_algorithm,
    is_decimal,
    is_hex,
    normal_mac,
    registry_key_text,
    registry_parts,
    serial_number,
    url_parts,
)
from elastic_connector.core.memo import Memo
from elastic_connector.core.pattern.tree import (
    HexLiteral,
    IntLiteral,
    Literal,
    StringLiteral,
    TimestampLiteral,
)

Handler = Callable[[FoundValues, Literal, str], str | None]
"""Takes one literal of an exact comparison (and the path's argument: the hash algorithm);
records the value(s) and returns None, or returns why the literal is not a valid value."""

# isinstance() tuple built once (a ``A | B`` union would be rebuilt on every call). Where the
# test often fails, literals are told apart by exact class instead (``type(x) is C``; why, in
# ``core.pattern.tree``).
_TEXT_LITERALS: Final = (StringLiteral, TimestampLiteral)
# Bound as ``Final``: compiled, a ``Final`` module name is a C variable, and any other global a
# dictionary lookup at every use (docs/performance.md §7d). mypy narrows a positive test on them
# as on the class itself.
_StringLiteral: Final = StringLiteral
_IntLiteral: Final = IntLiteral
_HexLiteral: Final = HexLiteral


# --- values as their field types accept them --------------------------------------------------


def _integer(literal: Literal, low: int, high: int) -> int | None:
    """An integer literal, or a string of decimal digits, within ``low..high``."""
    if type(literal) is _IntLiteral:
        return _long(literal.value, low, high)
    if type(literal) is _StringLiteral and is_decimal(literal.value, 20):
        return _long(int(literal.value), low, high)
    return None


def _keyword(literal: Literal) -> str | None:
    """A string (or integer, as its decimal text) usable as a keyword value."""
    if type(literal) is _StringLiteral:
        return _text(literal.value)
    if type(literal) is _IntLiteral and type(literal.value) is int:
        return str(literal.value)
    return None


def _date(literal: Literal) -> datetime | None:
    if isinstance(literal, _TEXT_LITERALS):
        return date_text_value(literal.value)
    return None


# --- handlers for plain fields ----------------------------------------------------------------


def into(field: str, remember: str | None = None) -> Handler:
    """A keyword field taking the value as written (noted as ``remember`` within an AND)."""

    def handle(found: FoundValues, literal: Literal, _arg: str) -> str | None:
        value = _keyword(literal)
        if value is None:
            return "not a non-empty string"
        found.text(field, value)
        if remember is not None:
            found.remember(remember, value)
        return None

    return handle


def number_into(field: str, low: int, high: int) -> Handler:
    """An integer field taking values in ``low..high``."""

    def handle(found: FoundValues, literal: Literal, _arg: str) -> str | None:
        value = _integer(literal, low, high)
        if value is None:
            return f"not an integer in {low}..{high}"
        found.number(field, value)
        return None

    return handle


def date_into(field: str) -> Handler:
    """A date field taking RFC 3339 timestamps."""

    def handle(found: FoundValues, literal: Literal, _arg: str) -> str | None:
        value = _date(literal)
        if value is None:
            return "not an RFC 3339 timestamp"
        found.moment(field, value)
        return None

    return handle


# --- handlers for values with a normal form or parts ------------------------------------------


def address(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """An IP address (``threat.indicator.ip``) or CIDR block (``opencti.indicator.ip_range``)."""
    if not isinstance(literal, StringLiteral):
        return "not a string"
    kind = address_kind(literal.value)
    if kind is None:
        return "not an IP address or CIDR block"
    if kind[0] == "ip":
        found.text("threat.indicator.ip", kind[1])
    else:
        found.text("opencti.indicator.ip_range", kind[1])
    return None


def mac(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """A MAC address, in ECS's form."""
    if not isinstance(literal, StringLiteral):
        return "not a string"
    value = normal_mac(literal.value)
    if value is None:
        return "not a MAC address"
    found.text("opencti.observable.mac_addr.value", value)
    return None


_hash_names: Final = Memo(hash_algorithm, 256)


def hashes(
    ecs_prefix: str | None, extra_prefix: str, executable_prefix: str | None = None
) -> Handler:
    """Hashes: ECS file hash fields when ``ecs_prefix`` is given, else (and for SHA-3) custom;
    the executable's import/structure hashes under ``executable_prefix`` (``file.pe.imphash``).

    A hex digest is written as given and, when it has upper-case letters, also in lower case:
    Elastic's sources write lower-case hex and keyword matching is case-sensitive.
    """

    # Field names per algorithm, made once (the handler runs for every hash of every pattern).
    fields = {name: f"{extra_prefix}.{name}" for name in HASH_ALGORITHMS}
    if ecs_prefix is not None:
        fields.update({name: f"{ecs_prefix}.{name}" for name in ECS_FILE_HASHES})
    if executable_prefix is not None:
        fields.update({k: f"{executable_prefix}.{v}" for k, v in EXECUTABLE_HASHES.items()})

    def handle(found: FoundValues, literal: Literal, algorithm: str) -> str | None:
        name = _hash_names.of(algorithm)
        if name is None:
            return f"unknown hash algorithm {algorithm[:40]!r}"
        if name not in fields:
            return f"no field for {name} hashes of this object"
        if type(literal) is _HexLiteral:
            value: str | None = literal.value.hex() or None
        else:
            value = _keyword(literal)
        if value is None:
            return "not a non-empty string"
        field = fields[name]
        found.text(field, value)
        # Most digests are written in lower case already: that check first.
        if name in HEX_DIGESTS and not value.islower() and is_hex(value):
            lower = value.lower()
            if lower != value:
                found.text(field, lower)
        return None

    return handle


def file_name(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """A file name (joined with a directory ANDed with it into the file's path)."""
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    found.text("threat.indicator.file.name", value)
    found.remember("file.name", value)
    return None


def directory(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """A directory path (``directory:path``: a directory object of its own)."""
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    found.text("threat.indicator.file.directory", value)
    return None


def parent_directory(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """A file's own directory (joined with its name, ANDed with it, into the file's path)."""
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    found.text("threat.indicator.file.directory", value)
    found.remember("file.directory", value)
    return None


def url(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """A URL, whole and in its ECS ``url.*`` parts."""
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


def registry_key(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """A registry key: its hive (abbreviated), hive-relative key and full path."""
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    value = registry_key_text(value)
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


def x509_serial_number(found: FoundValues, literal: Literal, _arg: str) -> str | None:
    """An x509 serial number, in ECS's form."""
    value = _keyword(literal)
    if value is None:
        return "not a non-empty string"
    found.text("threat.indicator.x509.serial_number", serial_number(value))
    return None


def x509_name(role: str) -> Handler:
    """The ``issuer`` or ``subject`` (``role``) of a certificate: the DN and its attributes, or
    a value that is not a DN as the common name."""

    def handle(found: FoundValues, literal: Literal, _arg: str) -> str | None:
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
