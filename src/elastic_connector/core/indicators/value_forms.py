"""Observable values in the normal form ECS prescribes, and the parts ECS splits them into.

Values are kept as the pattern writes them except where ECS names a form: IP addresses and
CIDR blocks (the network address), MAC addresses (``00-00-5E-00-53-23``), hash algorithm names
(``sha256``), URL parts, registry hives (``HKLM``), x509 serial numbers (upper case, no colons)
and the attributes of a distinguished name. Every function here is total: a value it cannot
read gives None (or is left out), never an exception.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

from elastic_connector.core.indicators.field_values import keyword_value as _text

# --- IP addresses and CIDR blocks -------------------------------------------------------------

_DIGITS: Final = "0123456789"
_HEX_DIGITS: Final = "0123456789abcdefABCDEF"


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""Dotted-quad IPv4 exactly as ``ipaddress`` accepts it (no leading zeros), but faster."""


def _ipv4_number(text: str) -> int:
    """The number of an IPv4 address ``_IPV4`` matched."""
    a, b, c, d = text.split(".")
    return int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d)


def _plain_ipv6(text: str) -> bool:
    """Whether ``text`` is an IPv6 address of hex groups only (no embedded IPv4, no zone), in a
    form ``ipaddress`` accepts: eight groups of 1-4 hex digits, or at most seven around one
    ``::``. False means "not shown here", not "invalid": the caller asks ``ipaddress``."""
    head, double, tail = text.partition("::")
    if double:
        if "::" in tail:
            return False
        groups = (head.split(":") if head else []) + (tail.split(":") if tail else [])
        if len(groups) > 7:
            return False
    else:
        groups = text.split(":")
        if len(groups) != 8:
            return False
    return all(len(group) <= 4 and is_hex(group) for group in groups)


def _dotted(number: int) -> str:
    return f"{number >> 24}.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def address_kind(text: str) -> tuple[str, str] | None:
    """(``ip`` | ``range``, normal text) for an address or CIDR block; None if it is neither.
    ``ipaddress``'s reading of ``text``: plain IPv4 and IPv6 addresses and IPv4 blocks with a
    prefix length, nearly all that indicators carry, are read here, anything else by
    ``ipaddress`` (interpreted, ten times the cost). ``tests/core/indicators/
    test_address_kind.py`` compares the two on any text."""
    if _IPV4.fullmatch(text):
        return ("ip", text)
    if "%" in text:  # IPv6 zone ids are not accepted by Elasticsearch's ip type
        return None
    address, slash, prefix = text.partition("/")
    if not slash:
        if _plain_ipv6(text):
            return ("ip", text)
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return None
        return ("ip", text)
    if is_decimal(prefix, 2) and _IPV4.fullmatch(address):
        bits = int(prefix)
        if bits == 32:
            return ("ip", address)
        if bits < 32:
            # The network address, as ip_range accepts it (``10.1.2.3/8`` is ``10.0.0.0/8``).
            first = _ipv4_number(address) & (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
            return ("range", f"{_dotted(first)}/{bits}")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if network.prefixlen == network.max_prefixlen:
        return ("ip", address)
    return ("range", network.with_prefixlen)


# --- MAC addresses ----------------------------------------------------------------------------

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


# --- hashes -----------------------------------------------------------------------------------

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
    "IMPHASH": "imphash",
    "PEHASH": "pehash",
    "TELFHASH": "telfhash",
}
EXECUTABLE_HASHES: Final = {
    "imphash": "pe.imphash",
    "pehash": "pe.pehash",
    "telfhash": "elf.telfhash",
}
"""Hashes of an executable's structure: ECS ``file.pe.imphash``, ``file.pe.pehash``,
``file.elf.telfhash`` (relative to ``file``); only files have them."""
HASH_ALGORITHMS: Final = tuple(name for name in _HASHES.values() if name not in EXECUTABLE_HASHES)
"""The content hashes ``hash_algorithm`` can name (every hashed object has fields for them)."""
ECS_FILE_HASHES: Final = frozenset({"md5", "sha1", "sha256", "sha384", "sha512", "ssdeep", "tlsh"})
"""The algorithms ECS has a ``file.hash.*`` field for (not SHA-3)."""
HEX_DIGESTS: Final = frozenset(
    {"md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512", "imphash", "pehash"}
)
"""The algorithms whose digests are written in hex (not ssdeep, TLSH or telfhash)."""


def is_hex(text: str) -> bool:
    """``text`` is one or more hex digits (what ``[0-9A-Fa-f]+`` matches whole). ``strip``
    leaves nothing exactly when every character is one of them; compiled, that costs a fraction
    of a regular expression's call."""
    return bool(text) and not text.strip(_HEX_DIGITS)


def is_decimal(text: str, most: int) -> bool:
    """``text`` is 1 to ``most`` ASCII decimal digits (what ``[0-9]{1,most}`` matches whole)."""
    return 0 < len(text) <= most and not text.strip(_DIGITS)


def hash_algorithm(name: str) -> str | None:
    """The field name for a STIX hash key (``'SHA-256'`` -> ``sha256``); None if unknown."""
    key = name.upper().replace("-", "").replace("_", "").replace(" ", "")
    return _HASHES.get(key)


# --- file paths -------------------------------------------------------------------------------


def joined_path(directory: str, name: str) -> str | None:
    """``directory`` + separator + ``name``, with the separator the directory uses (``\\`` for
    a Windows path: one with a backslash, or a drive letter and no slash); None when ``name``
    is itself a path."""
    if "/" in name or "\\" in name:
        return None
    if "\\" in directory:
        separator = "\\"
    elif "/" in directory:
        separator = "/"
    else:
        separator = "\\" if re.match(r"[A-Za-z]:", directory) else "/"
    return directory.rstrip("\\/") + separator + name


# --- URLs -------------------------------------------------------------------------------------

_SCHEME_REST: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-"


def _is_scheme(text: str) -> bool:
    """``text`` is a URL scheme: what ``[A-Za-z][A-Za-z0-9+.-]*`` matches whole."""
    return text[:1].isalpha() and not text.strip(_SCHEME_REST)


def split_url(target: str) -> tuple[str, str, str, str]:
    """(netloc, path, query, fragment) of a URL without a scheme (``//host/path``, ``/path``),
    as ``urllib.parse.urlsplit`` reads it; raises ``ValueError`` where it does.

    Plain printable ASCII without brackets, which is most of what indicators carry, is split
    here: ``urlsplit`` is interpreted code, about half of the time ``url_parts`` takes, and on
    such text it only cuts at the first ``/?#`` after ``//``, then at ``#`` and at ``?``
    (what it cleans or checks beyond that is leading blanks, control characters, bracketed IPv6
    hosts and non-ASCII hosts). Any other text goes to ``urlsplit`` itself.
    ``tests/core/indicators/test_url_split.py`` compares the two on any text.
    """
    if not (target.isascii() and target.isprintable() and target[:1] == "/") or (
        "[" in target or "]" in target
    ):
        split = urlsplit(target)
        return split.netloc, split.path, split.query, split.fragment
    netloc = ""
    rest = target
    if target[:2] == "//":
        end = len(target)
        for delimiter in "/?#":
            found = target.find(delimiter, 2)
            if 0 <= found < end:
                end = found
        netloc, rest = target[2:end], target[end:]
    fragment = query = ""
    if "#" in rest:
        rest, fragment = rest.split("#", 1)
    if "?" in rest:
        rest, query = rest.split("?", 1)
    return netloc, rest, query, fragment


def url_parts(url: str) -> list[tuple[str, str]]:
    """ECS ``url.*`` parts of ``url``: (``scheme``|``domain``|``port``|``path``|``query``|
    ``fragment``|``extension``, text). Parts are cut from the text as written (nothing is
    lower-cased); a part that cannot be read is left out. Never raises."""
    scheme_text, sep, rest = url.partition("://")
    if sep and _is_scheme(scheme_text):
        target, scheme = "//" + rest, scheme_text
    elif url.startswith("/"):
        target, scheme = url, ""
    else:
        # No scheme (``evil.example/path``): read it as an authority and a path.
        target, scheme = "//" + url, ""
    try:
        netloc, path, query, fragment = split_url(target)
    except ValueError:
        return []
    parts: list[tuple[str, str]] = []
    if scheme:
        parts.append(("scheme", scheme))
    host_port = netloc.rpartition("@")[2]
    if host_port.startswith("["):
        # ECS keeps the brackets of a literal IPv6 host in url.domain.
        end = host_port.find("]")
        host, port = (host_port[: end + 1], host_port[end + 2 :]) if end > 0 else ("", "")
    else:
        host, _, port = host_port.partition(":")
    if host:
        parts.append(("domain", host))
    if is_decimal(port, 5) and int(port) <= 65535:
        parts.append(("port", port))
    if path:
        parts.append(("path", path))
        last = path.rsplit("/", 1)[-1]
        stem, dot, extension = last.rpartition(".")
        if dot and stem and extension:
            parts.append(("extension", extension))
    if query:
        parts.append(("query", query))
    if fragment:
        parts.append(("fragment", fragment))
    return [(field, text) for field, text in parts if _text(text) is not None]


# --- Windows registry keys --------------------------------------------------------------------

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


def registry_key_text(key: str) -> str:
    """A registry key with each run of backslashes made one: a key has no empty component, so
    doubled backslashes are escaping left over by a producer (``HKLM\\\\Software``)."""
    return re.sub(r"\\{2,}", r"\\", key) if "\\\\" in key else key


def registry_parts(key: str) -> tuple[str | None, str]:
    """(ECS hive abbreviation or None, hive-relative key) of a registry key path (backslash
    runs already made one by ``registry_key_text``)."""
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


# --- x509 certificates ------------------------------------------------------------------------


def serial_number(text: str) -> str:
    """ECS's form of an x509 serial number: an alphanumeric one is written without colons (or
    spaces), in upper case; anything else is kept as written."""
    compact = re.sub(r"[\s:]", "", text)
    if compact and compact.isalnum() and compact.isascii():
        return compact.upper()
    return text


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


_ATTRIBUTE_START: Final = re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9.-]*|\d+(?:\.\d+)+)\s*=")
"""What starts an attribute: ``KEY=`` or ``OID=``."""


def _split_attributes(text: str, separators: str) -> list[str]:
    """``text`` cut at the separators outside quotes and escapes that start an attribute: a
    separator not followed by ``KEY=`` belongs to the value (``O=VeriSign, Inc.``, written
    without RFC 4514's escape by many tools)."""
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
        elif char in separators and not quoted and _ATTRIBUTE_START.match(text, index + 1):
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
            if len(pair) == 2 and is_hex(pair):
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


_SLASH_ATTRIBUTE: Final = re.compile(r"(?<!\\)/(?=\s*[A-Za-z][A-Za-z0-9.-]*\s*=)")


def distinguished_name(text: str) -> list[tuple[str, str]] | None:
    """The (ECS x509 name field, value) pairs of a DN (``CN=a, O=b`` or ``/C=US/CN=a``), or None
    when ``text`` is not a DN. Attributes ECS has no field for are skipped."""
    stripped = text.strip()
    if stripped.startswith("/"):
        # OpenSSL's one-line form: a "/" starts a new attribute only before "KEY=" (as a "," in
        # the other form), so values keep their own slashes
        # (``OU=Terms of use at https://www.verisign.com/rpa (c)04``).
        pieces = [p for p in _SLASH_ATTRIBUTE.split(stripped[1:]) if p.strip()]
    else:
        pieces = [p for p in _split_attributes(stripped, ",;+") if p.strip()]
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
