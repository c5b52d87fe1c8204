"""Example tests of the indicator -> ECS document mapping: one per row of docs/ecs-mapping.md.

Each pattern row of the table has an entry in ``PATTERN_ROWS`` (pattern text -> the exact value
fields of the document); each indicator-property row is covered by a test decorated with
``@covers(row)``. ``test_every_table_row_has_an_example`` fails when a row has no test or a test
names a row that is not in the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from returns.result import Failure, Success

from elastic_connector.core.indicators import (
    MappingContext,
    Unmappable,
    ecs,
    indicator_document,
    path_rules,
    value_forms,
)
from elastic_connector.core.pattern import parse
from elastic_connector.core.pattern.tree import (
    Comparison,
    IntLiteral,
    ObjectPath,
    Observation,
    Op,
    Pattern,
    StringLiteral,
)
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import (
    Extensions,
    ExternalReference,
    Indicator,
    KillChainPhase,
    MitreExtension,
    OpenCTIExtension,
)

TABLE = Path(__file__).resolve().parents[3] / "docs" / "ecs-mapping.md"
STIX_ID = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
INTERNAL_ID = "5f0c2c55-4f7b-4c2a-9f6e-2b7b3c0d1e2f"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CONTEXT = MappingContext(now=NOW, tlp=None, feed_name="OpenCTI")

MD5 = "D41D8CD98F00B204E9800998ECF8427E"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA384 = (
    "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da"
    "274edebfe76f65fbd51ad2f14898b95b"
)
SHA512 = (
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)
SHA3_256 = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
SHA3_512 = (
    "a69f73cca23a9ac5c8b567dc185a756e97c982164fe25859e0d1dcc1475c80a6"
    "15b2123af1f5f94c11e3e9402c3ac558f500199d95b6d3e301758586281dcd26"
)
SSDEEP = "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C"
IMPHASH = "F34D5F2D4577ED6D9CEEC516C1F5A744"
TELFHASH = "t1c5f0f4f8f4b1e2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
TLSH = "T1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C"

# Fields of threat.indicator that come from the indicator's properties, not from its pattern.
METADATA = re.compile(
    r"threat\.indicator\.(confidence|id|type|name|description|provider|reference|first_seen"
    r"|modified_at|marking\..*)"
)

TESTED: set[str] = set()
F = TypeVar("F", bound=Callable[..., object])


def covers(*rows: str) -> Callable[[F], F]:
    """Mark a test as the example of table rows (by their first column, backticks removed)."""

    def mark(test: F) -> F:
        TESTED.update(rows)
        return test

    return mark


# --- helpers ----------------------------------------------------------------------------------


def indicator(pattern: str = "[ipv4-addr:value = '198.51.100.7']", **fields: Any) -> Indicator:
    return Indicator(id=STIX_ID, pattern=pattern, **fields)


def pattern_of(text: str) -> Pattern:
    parsed = parse(text)
    if isinstance(parsed, Failure):
        raise AssertionError(f"{text!r} does not parse: {parsed.failure()}")
    pattern: Pattern = parsed.unwrap()
    return pattern


def document(
    item: Indicator | None = None, context: MappingContext = CONTEXT, text: str | None = None
) -> dict[str, Any]:
    """The mapped document of ``item`` as the JSON Elasticsearch receives, decoded."""
    item = item if item is not None else indicator()
    result = indicator_document(item, pattern_of(text or item.pattern), context)
    assert isinstance(result, Success), result
    decoded: dict[str, Any] = json.loads(ecs.encode_document(result.unwrap()))
    return decoded


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"threat.indicator.ip": [...], ...}``: leaves by dotted path."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        merged: dict[str, Any] = {}
        for item in value:
            for path, leaf in flat(item, prefix).items():
                merged.setdefault(path, []).append(leaf)
        return merged
    return {prefix.rstrip("."): value}


def pattern_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The document fields that hold pattern values."""
    return {
        path: value
        for path, value in flat(doc).items()
        if (path.startswith("threat.indicator.") and not METADATA.fullmatch(path))
        or path.startswith("opencti.observable.")
        or path == "opencti.indicator.ip_range"
    }


def unmappable(text: str) -> str:
    result = indicator_document(indicator(text), pattern_of(text), CONTEXT)
    assert isinstance(result, Failure), result
    failure = result.failure()
    assert isinstance(failure, Unmappable)
    return failure.reason


# --- one example per pattern row --------------------------------------------------------------

TI = "threat.indicator"
OO = "opencti.observable"

PATTERN_ROWS: list[tuple[str, str, dict[str, Any], str | None]] = [
    (
        "ipv4-addr:value",
        "[ipv4-addr:value = '198.51.100.7' OR ipv4-addr:value = '198.51.100.8/32']",
        {f"{TI}.ip": ["198.51.100.7", "198.51.100.8"]},
        "ipv4-addr",
    ),
    (
        "ipv4-addr:value (CIDR)",
        "[ipv4-addr:value = '10.1.2.3/8' OR ipv4-addr:value ISSUBSET '192.0.2.0/24']",
        {"opencti.indicator.ip_range": ["10.0.0.0/8", "192.0.2.0/24"]},
        "ipv4-addr",
    ),
    (
        "ipv6-addr:value",
        "[ipv6-addr:value IN ('2001:db8::1', '2001:DB8::2/128')]",
        {f"{TI}.ip": ["2001:db8::1", "2001:DB8::2"]},
        "ipv6-addr",
    ),
    (
        "ipv6-addr:value (CIDR)",
        "[ipv6-addr:value = '2001:db8::/32']",
        {"opencti.indicator.ip_range": ["2001:db8::/32"]},
        "ipv6-addr",
    ),
    (
        "domain-name:value",
        "[domain-name:value = 'Evil.Example.com']",
        {f"{TI}.url.domain": ["Evil.Example.com"]},
        "domain-name",
    ),
    (
        "domain-name:resolves_to_refs[*].value",
        "[domain-name:value = 'a.example' AND domain-name:resolves_to_refs[*].value = '203.0.113.5'"
        " AND domain-name:resolves_to_refs[*].value = '203.0.113.0/24']",
        {
            f"{TI}.url.domain": ["a.example"],
            f"{TI}.ip": ["203.0.113.5"],
            "opencti.indicator.ip_range": ["203.0.113.0/24"],
        },
        "domain-name",
    ),
    (
        "hostname:value",
        "[hostname:value = 'ec2-1-2-3-4.compute.example']",
        {f"{TI}.url.domain": ["ec2-1-2-3-4.compute.example"]},
        "domain-name",
    ),
    (
        "url:value",
        "[url:value = 'HTTPS://user@Evil.example:8443/dl/Invoice.PDF?id=1&x=2#top']",
        {
            f"{TI}.url.full": ["HTTPS://user@Evil.example:8443/dl/Invoice.PDF?id=1&x=2#top"],
            f"{TI}.url.original": ["HTTPS://user@Evil.example:8443/dl/Invoice.PDF?id=1&x=2#top"],
            f"{TI}.url.scheme": ["HTTPS"],
            f"{TI}.url.domain": ["Evil.example"],
            f"{TI}.url.port": [8443],
            f"{TI}.url.path": ["/dl/Invoice.PDF"],
            f"{TI}.url.query": ["id=1&x=2"],
            f"{TI}.url.fragment": ["top"],
            f"{TI}.url.extension": ["PDF"],
        },
        "url",
    ),
    (
        "email-addr:value",
        "[email-addr:value = 'Phish@Example.com']",
        {f"{TI}.email.address": ["Phish@Example.com"]},
        "email-addr",
    ),
    (
        "email-message:from_ref.value",
        "[email-message:from_ref.value = 'boss@example.com']",
        {f"{TI}.email.address": ["boss@example.com"]},
        "email-addr",
    ),
    (
        "email-message:sender_ref.value",
        "[email-message:sender_ref.value = 'relay@example.com']",
        {f"{TI}.email.address": ["relay@example.com"]},
        "email-addr",
    ),
    (
        "email-message:subject",
        "[email-message:subject = 'Invoice due']",
        {f"{OO}.email_message.subject": ["Invoice due"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
    (
        "file:hashes.*",
        f"[file:hashes.MD5 = '{MD5}' OR file:hashes.'SHA-1' = '{SHA1}'"
        f" OR file:hashes.SHA256 = '{SHA256}' OR file:hashes.'sha-384' = '{SHA384}'"
        f" OR file:hashes.'SHA-512' = '{SHA512}' OR file:hashes.SSDEEP = '{SSDEEP}'"
        f" OR file:hashes.tlsh = '{TLSH}' OR file:hashes.'SHA3-256' = '{SHA3_256}'"
        f" OR file:hashes.'SHA3-512' = '{SHA3_512}' OR file:hashes.IMPHASH = '{IMPHASH}'"
        f" OR file:hashes.pehash = '{SHA1}' OR file:hashes.TELFHASH = '{TELFHASH}']",
        {
            f"{TI}.file.hash.md5": [MD5, MD5.lower()],
            f"{TI}.file.hash.sha1": [SHA1],
            f"{TI}.file.hash.sha256": [SHA256],
            f"{TI}.file.hash.sha384": [SHA384],
            f"{TI}.file.hash.sha512": [SHA512],
            f"{TI}.file.hash.ssdeep": [SSDEEP],
            f"{TI}.file.hash.tlsh": [TLSH],
            f"{OO}.file.hash.sha3_256": [SHA3_256],
            f"{OO}.file.hash.sha3_512": [SHA3_512],
            f"{TI}.file.pe.imphash": [IMPHASH, IMPHASH.lower()],
            f"{TI}.file.pe.pehash": [SHA1],
            f"{TI}.file.elf.telfhash": [TELFHASH],
        },
        "file",
    ),
    (
        "file:extensions.windows-pebinary-ext.imphash",
        f"[file:extensions.'windows-pebinary-ext'.imphash = '{IMPHASH}']",
        {f"{TI}.file.pe.imphash": [IMPHASH]},
        "file",
    ),
    (
        "file:name",
        r"[file:name = 'Invoice.PDF' OR file:name = 'it\'s \\ here.exe']",
        {f"{TI}.file.name": ["Invoice.PDF", "it's \\ here.exe"]},
        "file",
    ),
    (
        "file:size",
        "[file:size = 1024 OR file:size = '2048']",
        {f"{TI}.file.size": [1024, 2048]},
        "file",
    ),
    (
        "file:mime_type",
        "[file:mime_type = 'application/x-dosexec']",
        {f"{TI}.file.mime_type": ["application/x-dosexec"]},
        "file",
    ),
    (
        "file:parent_directory_ref.path",
        r"[file:parent_directory_ref.path = 'C:\\Users\\Public']",
        {f"{TI}.file.directory": ["C:\\Users\\Public"]},
        "file",
    ),
    (
        "file:name + file:parent_directory_ref.path",
        r"[file:name = 'evil.exe' AND file:parent_directory_ref.path = 'C:\\Users\\Public\\']",
        {
            f"{TI}.file.name": ["evil.exe"],
            f"{TI}.file.directory": ["C:\\Users\\Public\\"],
            f"{TI}.file.path": ["C:\\Users\\Public\\evil.exe"],
        },
        "file",
    ),
    (
        "artifact:hashes.*",
        f"[artifact:hashes.'SHA-256' = '{SHA256.upper()}' AND artifact:hashes.'SHA3-256' = "
        f"'{SHA3_256}']",
        {
            f"{TI}.file.hash.sha256": [SHA256.upper(), SHA256],
            f"{OO}.file.hash.sha3_256": [SHA3_256],
        },
        "artifact",
    ),
    (
        "artifact:mime_type",
        "[artifact:mime_type = 'application/zip']",
        {f"{TI}.file.mime_type": ["application/zip"]},
        "artifact",
    ),
    (
        "directory:path",
        "[directory:path = '/tmp/.X11-unix']",
        {f"{TI}.file.directory": ["/tmp/.X11-unix"]},
        "directory",
    ),
    (
        "windows-registry-key:key",
        r"[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\Run'"
        r" OR windows-registry-key:key = '\\REGISTRY\\USER\\S-1-5-21\\Env'"
        r" OR windows-registry-key:key = 'SOFTWARE\\NoHive']",
        {
            f"{TI}.registry.hive": ["HKLM", "HKU"],
            f"{TI}.registry.key": [
                "Software\\Microsoft\\Windows\\Run",
                "S-1-5-21\\Env",
                "SOFTWARE\\NoHive",
            ],
            f"{TI}.registry.path": [
                "HKLM\\Software\\Microsoft\\Windows\\Run",
                "HKU\\S-1-5-21\\Env",
                "SOFTWARE\\NoHive",
            ],
        },
        "windows-registry-key",
    ),
    (
        "windows-registry-key:values[*].name",
        "[windows-registry-key:values[*].name = 'Debugger']",
        {f"{TI}.registry.value": ["Debugger"]},
        "windows-registry-key",
    ),
    (
        "windows-registry-key:key + values[*].name",
        r"[windows-registry-key:key = 'hkcu\\Software\\Run' AND "
        r"windows-registry-key:values[0].name = 'updater']",
        {
            f"{TI}.registry.hive": ["HKCU"],
            f"{TI}.registry.key": ["Software\\Run"],
            f"{TI}.registry.path": ["HKCU\\Software\\Run", "HKCU\\Software\\Run\\updater"],
            f"{TI}.registry.value": ["updater"],
        },
        "windows-registry-key",
    ),
    (
        "windows-registry-key:values[*].data",
        r"[windows-registry-key:values[*].data = 'C:\\rta\\red_ttp\\bin\\myapp.exe']",
        {f"{TI}.registry.data.strings": ["C:\\rta\\red_ttp\\bin\\myapp.exe"]},
        "windows-registry-key",
    ),
    (
        "windows-registry-key:values[*].data_type",
        "[windows-registry-key:values[*].data_type = 'REG_SZ']",
        {f"{TI}.registry.data.type": ["REG_SZ"]},
        "windows-registry-key",
    ),
    (
        "x509-certificate:serial_number",
        "[x509-certificate:serial_number = '55:fb:b9:c7:de:bf:09:80' OR "
        "x509-certificate:serial_number = '1234']",
        {f"{TI}.x509.serial_number": ["55FBB9C7DEBF0980", "1234"]},
        "x509-certificate",
    ),
    (
        "x509-certificate:issuer",
        r"[x509-certificate:issuer = 'C=US, ST=CA, L=Mountain View, O=Example\\, Inc.,"
        r" OU=www.example.com, CN=Example SHA2 High Assurance Server CA'"
        r" OR x509-certificate:issuer = 'Bad CA']",
        {
            f"{TI}.x509.issuer.distinguished_name": [
                "C=US, ST=CA, L=Mountain View, O=Example\\, Inc., OU=www.example.com,"
                " CN=Example SHA2 High Assurance Server CA"
            ],
            f"{TI}.x509.issuer.country": ["US"],
            f"{TI}.x509.issuer.state_or_province": ["CA"],
            f"{TI}.x509.issuer.locality": ["Mountain View"],
            f"{TI}.x509.issuer.organization": ["Example, Inc."],
            f"{TI}.x509.issuer.organizational_unit": ["www.example.com"],
            f"{TI}.x509.issuer.common_name": ["Example SHA2 High Assurance Server CA", "Bad CA"],
        },
        "x509-certificate",
    ),
    (
        "x509-certificate:subject",
        "[x509-certificate:subject = '/C=US/ST=California/L=San Francisco/O=Example/OU=Web"
        "/CN=shared.example.net']",
        {
            f"{TI}.x509.subject.distinguished_name": [
                "/C=US/ST=California/L=San Francisco/O=Example/OU=Web/CN=shared.example.net"
            ],
            f"{TI}.x509.subject.country": ["US"],
            f"{TI}.x509.subject.state_or_province": ["California"],
            f"{TI}.x509.subject.locality": ["San Francisco"],
            f"{TI}.x509.subject.organization": ["Example"],
            f"{TI}.x509.subject.organizational_unit": ["Web"],
            f"{TI}.x509.subject.common_name": ["shared.example.net"],
        },
        "x509-certificate",
    ),
    (
        "x509-certificate:hashes.*",
        f"[x509-certificate:hashes.'SHA-1' = '{SHA1.upper()}' AND "
        f"x509-certificate:hashes.'SHA-256' = '{SHA256}' AND x509-certificate:hashes.MD5 = "
        f"'{MD5.lower()}' AND x509-certificate:hashes.'SHA-384' = '{SHA384}' AND "
        f"x509-certificate:hashes.'SHA-512' = '{SHA512}' AND x509-certificate:hashes.'SHA3-256'"
        f" = '{SHA3_256}' AND x509-certificate:hashes.'SHA3-512' = '{SHA3_512}' AND "
        f"x509-certificate:hashes.SSDEEP = '{SSDEEP}' AND x509-certificate:hashes.TLSH = "
        f"'{TLSH}']",
        {
            f"{OO}.x509_certificate.hash.sha1": [SHA1.upper(), SHA1],
            f"{OO}.x509_certificate.hash.sha256": [SHA256],
            f"{OO}.x509_certificate.hash.md5": [MD5.lower()],
            f"{OO}.x509_certificate.hash.sha384": [SHA384],
            f"{OO}.x509_certificate.hash.sha512": [SHA512],
            f"{OO}.x509_certificate.hash.sha3_256": [SHA3_256],
            f"{OO}.x509_certificate.hash.sha3_512": [SHA3_512],
            f"{OO}.x509_certificate.hash.ssdeep": [SSDEEP],
            f"{OO}.x509_certificate.hash.tlsh": [TLSH],
        },
        "x509-certificate",
    ),
    (
        "x509-certificate:validity_not_before",
        "[x509-certificate:validity_not_before = t'2019-08-16T01:40:25Z']",
        {f"{TI}.x509.not_before": ["2019-08-16T01:40:25Z"]},
        "x509-certificate",
    ),
    (
        "x509-certificate:validity_not_after",
        "[x509-certificate:validity_not_after = '2020-07-16T05:15:39+02:00']",
        {f"{TI}.x509.not_after": ["2020-07-16T03:15:39Z"]},
        "x509-certificate",
    ),
    (
        "x509-certificate:signature_algorithm",
        "[x509-certificate:signature_algorithm = 'sha256WithRSAEncryption']",
        {f"{TI}.x509.signature_algorithm": ["sha256WithRSAEncryption"]},
        "x509-certificate",
    ),
    (
        "x509-certificate:subject_public_key_algorithm",
        "[x509-certificate:subject_public_key_algorithm = 'rsaEncryption']",
        {f"{TI}.x509.public_key_algorithm": ["rsaEncryption"]},
        "x509-certificate",
    ),
    (
        "x509-certificate:subject_public_key_exponent",
        "[x509-certificate:subject_public_key_exponent = 65537]",
        {f"{TI}.x509.public_key_exponent": [65537]},
        "x509-certificate",
    ),
    (
        "x509-certificate:version",
        "[x509-certificate:version = '3' OR x509-certificate:version = 2]",
        {f"{TI}.x509.version_number": ["3", "2"]},
        "x509-certificate",
    ),
    (
        "x509-certificate:x509_v3_extensions.subject_alternative_name",
        "[x509-certificate:x509_v3_extensions.subject_alternative_name = '*.elastic.co']",
        {f"{TI}.x509.alternative_names": ["*.elastic.co"]},
        "x509-certificate",
    ),
    (
        "autonomous-system:number",
        "[autonomous-system:number = 15169 OR autonomous-system:number = '4294967295']",
        {f"{TI}.as.number": [15169, 4294967295]},
        "autonomous-system",
    ),
    (
        "autonomous-system:name",
        "[autonomous-system:name = 'Google LLC']",
        {f"{TI}.as.organization.name": ["Google LLC"]},
        "autonomous-system",
    ),
    (
        "mac-addr:value",
        "[mac-addr:value IN ('00:1a:2b:3c:4d:5e', '001a.2b3c.4d5f', '00-1a-2b-3c-4d-5e')]",
        {f"{OO}.mac_addr.value": ["00-1A-2B-3C-4D-5E", "00-1A-2B-3C-4D-5F"]},
        "mac-addr",
    ),
    (
        "network-traffic:src_ref.value",
        "[network-traffic:src_ref.value = '192.0.2.10']",
        {f"{TI}.ip": ["192.0.2.10"]},
        "ipv4-addr",
    ),
    (
        "network-traffic:dst_ref.value",
        "[network-traffic:dst_ref.value = '2001:db8::5' AND network-traffic:dst_ref.value = "
        "'192.0.2.0/24']",
        {f"{TI}.ip": ["2001:db8::5"], "opencti.indicator.ip_range": ["192.0.2.0/24"]},
        "ipv6-addr",
    ),
    (
        "network-traffic:src_port",
        "[network-traffic:src_port = 4444]",
        {f"{TI}.port": [4444]},
        "port",
    ),
    (
        "network-traffic:dst_port",
        "[network-traffic:dst_port = 443 AND network-traffic:dst_port = '8443']",
        {f"{TI}.port": [443, 8443]},
        "port",
    ),
    (
        "network-traffic:protocols[*]",
        "[network-traffic:protocols[*] = 'tcp' AND network-traffic:dst_port = 25]",
        {f"{OO}.network_traffic.protocols": ["tcp"], f"{TI}.port": [25]},
        "port",
    ),
    (
        "process:pid",
        "[process:pid = 4242]",
        {f"{OO}.process.pid": [4242]},
        "process",
    ),
    (
        "process:name",
        "[process:name = 'Mimikatz.exe']",
        {f"{OO}.process.name": ["Mimikatz.exe"]},
        "process",
    ),
    (
        "process:image_ref.name",
        "[process:image_ref.name = 'psexec.exe']",
        {f"{OO}.process.name": ["psexec.exe"]},
        "process",
    ),
    (
        "process:image_ref.hashes.*",
        f"[process:image_ref.hashes.MD5 = '{MD5.lower()}']",
        {f"{TI}.file.hash.md5": [MD5.lower()]},
        "process",
    ),
    (
        "process:command_line",
        "[process:command_line = 'powershell -enc SQBFAFgA']",
        {f"{OO}.process.command_line": ["powershell -enc SQBFAFgA"]},
        "process",
    ),
    (
        "process:cwd",
        "[process:cwd = '/var/tmp']",
        {f"{OO}.process.cwd": ["/var/tmp"]},
        "process",
    ),
    (
        "user-account:user_id",
        "[user-account:user_id = 'S-1-5-21-1000' OR user-account:user_id = 1001]",
        {f"{OO}.user_account.user_id": ["S-1-5-21-1000", "1001"]},
        "user-account",
    ),
    (
        "user-account:account_login",
        "[user-account:account_login = 'jdoe']",
        {f"{OO}.user_account.account_login": ["jdoe"]},
        "user-account",
    ),
    (
        "user-account:display_name",
        "[user-account:display_name = 'John Doe']",
        {f"{OO}.user_account.display_name": ["John Doe"]},
        "user-account",
    ),
    (
        "software:name",
        "[software:name = 'AnyDesk']",
        {f"{OO}.software.name": ["AnyDesk"]},
        "software",
    ),
    (
        "software:vendor",
        "[software:vendor = 'AnyDesk Software GmbH']",
        {f"{OO}.software.vendor": ["AnyDesk Software GmbH"]},
        "software",
    ),
    (
        "software:version",
        "[software:version = '7.0.14']",
        {f"{OO}.software.version": ["7.0.14"]},
        "software",
    ),
    (
        "software:cpe",
        "[software:cpe = 'cpe:2.3:a:anydesk:anydesk:7.0.14:*:*:*:*:*:*:*']",
        {f"{OO}.software.cpe": ["cpe:2.3:a:anydesk:anydesk:7.0.14:*:*:*:*:*:*:*"]},
        "software",
    ),
    (
        "software:swid",
        "[software:swid = 'swid-anydesk-7']",
        {f"{OO}.software.swid": ["swid-anydesk-7"]},
        "software",
    ),
    (
        "mutex:name",
        "[mutex:name = 'Global\\\\MsWinZonesCacheCounterMutexA']",
        {f"{OO}.mutex.name": ["Global\\MsWinZonesCacheCounterMutexA"]},
        "mutex",
    ),
    (
        "user-agent:value",
        "[user-agent:value = 'Mozilla/5.0 (evil)']",
        {f"{OO}.user_agent.value": ["Mozilla/5.0 (evil)"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
    (
        "cryptocurrency-wallet:value",
        "[cryptocurrency-wallet:value = 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq']",
        {f"{OO}.cryptocurrency_wallet.value": ["bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
    (
        "phone-number:value",
        "[phone-number:value = '+33 1 23 45 67 89']",
        {f"{OO}.phone_number.value": ["+33 1 23 45 67 89"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
    (
        "bank-account:iban",
        "[bank-account:iban = 'FR7630006000011234567890189']",
        {f"{OO}.bank_account.value": ["FR7630006000011234567890189"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
    (
        "credential:value",
        "[credential:value = 'hunter2']",
        {f"{OO}.credential.value": ["hunter2"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
    (
        "tracking-number:value",
        "[tracking-number:value = '1Z999AA10123456784']",
        {f"{OO}.tracking_number.value": ["1Z999AA10123456784"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
    (
        "text:value",
        "[text:value = 'free text']",
        {f"{OO}.text.value": ["free text"]},
        None,  # no ECS type: threat.indicator.type is left out
    ),
]
TESTED.update(row for row, *_ in PATTERN_ROWS)


@pytest.mark.parametrize(
    ("row", "text", "expected", "indicator_type"),
    PATTERN_ROWS,
    ids=[row for row, *_ in PATTERN_ROWS],
)
def test_pattern_row(
    row: str, text: str, expected: dict[str, Any], indicator_type: str | None
) -> None:
    doc = document(indicator(text))
    assert pattern_fields(doc) == expected
    assert doc["threat"]["indicator"].get("type") == indicator_type
    assert doc["opencti"]["indicator"]["pattern"] == text


# --- the table and the tests stay in step -----------------------------------------------------


def table_rows() -> list[tuple[str, list[str]]]:
    """(first column without backticks, field names of the second column) of every table row."""
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= {"-"}:
            continue
        if cells[0] in ("STIX pattern path", "Indicator property"):
            continue
        rows.append((cells[0].replace("`", ""), re.findall(r"`([^`]+)`", cells[1])))
    return rows


def test_every_table_row_has_an_example() -> None:
    rows = [row for row, _ in table_rows()]
    assert len(rows) == len(set(rows)), "duplicate rows in the table"
    assert set(rows) - TESTED == set(), "table rows without an example test"
    assert TESTED - set(rows) == set(), "examples of rows that are not in the table"


def test_every_known_path_is_in_the_table() -> None:
    rows = {row for row, _ in table_rows()}
    assert {f"{kind}:{path}" for kind, path in path_rules.RULES} <= rows


def test_every_field_the_table_names_is_mapped() -> None:
    mapped = ecs.field_types(ecs.INDICATOR_MAPPINGS)
    for row, fields in table_rows():
        for field in fields:
            if field.startswith(("threat.", "opencti.", "event.", "ecs.", "@timestamp", "tags")):
                if field.endswith(".*"):
                    assert any(name.startswith(field[:-1]) for name in mapped), (row, field)
                else:
                    assert field in mapped, (row, field)


def _row_path_in(row: str, text: str) -> bool:
    path = row.split(" (", maxsplit=1)[0].split(" + ", maxsplit=1)[0]
    if path.endswith(".*"):
        path = path[:-2]
    expression = re.escape(path).replace(re.escape("[*]"), r"\[(\*|-?\d+)\]")
    return re.search(expression, text) is not None


def test_every_pattern_row_names_the_fields_its_example_fills() -> None:
    """Each value field of an example is listed by its row, or by the row of another path the
    example's pattern uses."""
    named = dict(table_rows())
    for row, text, expected, _type in PATTERN_ROWS:
        listed = [*named[row]]
        for other, fields in named.items():
            if ":" in other and _row_path_in(other, text):
                listed.extend(fields)
        for field in expected:
            assert any(
                field == name or (name.endswith(".*") and field.startswith(name[:-1]))
                for name in listed
            ), (row, field)


# --- only exact comparisons give values ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "[domain-name:value MATCHES '^evil' AND file:name LIKE 'inv%']",
            "pattern has no exact-match value: only MATCHES/LIKE comparisons",
        ),
        (
            "[ipv4-addr:value != '1.2.3.4'] OR [file:size > 10] OR [file:size <= 10]",
            "pattern has no exact-match value: only !=/>/<= comparisons",
        ),
        (
            "[ipv4-addr:value NOT = '1.2.3.4']",
            "pattern has no exact-match value: only NOT = comparisons",
        ),
        (
            "[ipv4-addr:value ISSUPERSET '1.2.3.4']",
            "pattern has no exact-match value: only ISSUPERSET comparisons",
        ),
        (
            "[EXISTS windows-registry-key:values]",
            "pattern has no exact-match value: only EXISTS comparisons",
        ),
        (
            "[domain-name:value ISSUBSET 'example.com']",
            "pattern has no exact-match value: only ISSUBSET comparisons",
        ),
        (
            "[x-acme-widget:serial = 'A1'] AND [file:ctime = t'2020-01-01T00:00:00Z']",
            "pattern has no exact-match value: no field for x-acme-widget:serial, file:ctime",
        ),
        (
            "[ipv4-addr:value = 'foo']",
            "pattern has no exact-match value: no value is valid for its field: "
            "ipv4-addr:value = 'foo': not an IP address or CIDR block",
        ),
        (
            "[network-traffic:dst_port = 70000 OR ipv4-addr:value != '1.2.3.4']",
            "pattern has no exact-match value: no value is valid for its field: "
            "network-traffic:dst_port = 70000: not an integer in 0..65535; only != comparisons",
        ),
    ],
)
def test_no_exact_value_is_unmappable_with_the_reason(text: str, reason: str) -> None:
    assert unmappable(text) == reason


def test_inexact_comparisons_next_to_exact_ones_are_ignored() -> None:
    doc = document(
        indicator(
            "[ipv4-addr:value = '1.2.3.4' AND ipv4-addr:value != '5.6.7.8'"
            " AND ipv4-addr:value MATCHES '^9' AND ipv4-addr:value NOT = '7.7.7.7']"
        )
    )
    assert pattern_fields(doc) == {f"{TI}.ip": ["1.2.3.4"]}


# --- invalid values are dropped, the rest is kept ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[ipv4-addr:value IN ('1.2.3.4', 'foo', '01.2.3.4', 'fe80::1%eth0', '1.2.3.4/33')]",
            {f"{TI}.ip": ["1.2.3.4"]},
        ),
        (
            "[network-traffic:dst_port IN (443, 70000, -1, 'http', 80.5, true)]",
            {f"{TI}.port": [443]},
        ),
        ("[file:size IN (10, -1, 'ten', '20')]", {f"{TI}.file.size": [10, 20]}),
        (
            "[x509-certificate:validity_not_after IN ('2020-01-01T00:00:00Z', 'yesterday',"
            " '0001-01-01T00:00:00+01:00')]",
            {f"{TI}.x509.not_after": ["2020-01-01T00:00:00Z"]},
        ),
        (
            "[autonomous-system:number IN (15169, 4294967296)]",
            {f"{TI}.as.number": [15169]},
        ),
        (
            "[mac-addr:value IN ('zz:zz:zz:zz:zz:zz', '00:11:22:33:44:55')]",
            {f"{OO}.mac_addr.value": ["00-11-22-33-44-55"]},
        ),
        (
            "[file:name IN ('', 'a.exe')]",
            {f"{TI}.file.name": ["a.exe"]},
        ),
    ],
)
def test_values_invalid_for_their_field_are_dropped(text: str, expected: dict[str, Any]) -> None:
    assert pattern_fields(document(indicator(text))) == expected


def test_unknown_hash_algorithm_is_dropped() -> None:
    text = f"[file:hashes.WHIRLPOOL = '{SHA512}' OR file:hashes.MD5 = '{MD5.lower()}']"
    assert pattern_fields(document(indicator(text))) == {f"{TI}.file.hash.md5": [MD5.lower()]}


# --- several observations, types and repeats --------------------------------------------------


def test_one_document_holds_every_value_of_every_observation() -> None:
    text = (
        "([ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'a.example']) "
        "FOLLOWEDBY [url:value = 'http://a.example/x'] WITHIN 60 SECONDS "
        "OR [ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '5.6.7.8'] REPEATS 2 TIMES"
    )
    doc = document(indicator(text))
    values = pattern_fields(doc)
    assert values[f"{TI}.ip"] == ["1.2.3.4", "5.6.7.8"]
    assert values[f"{TI}.url.domain"] == ["a.example"]
    assert values[f"{TI}.url.full"] == ["http://a.example/x"]
    assert doc["threat"]["indicator"]["type"] == "ipv4-addr"


def test_values_keep_pattern_order_and_repeat_once() -> None:
    text = "[file:name IN ('b.exe', 'a.exe', 'b.exe')] OR [file:name = 'a.exe']"
    assert pattern_fields(document(indicator(text))) == {f"{TI}.file.name": ["b.exe", "a.exe"]}


def test_file_path_is_joined_only_for_one_name_and_one_directory_anded() -> None:
    ored = r"[file:name = 'a.exe' OR file:parent_directory_ref.path = 'C:\\Temp']"
    assert f"{TI}.file.path" not in pattern_fields(document(indicator(ored)))
    two = "[file:name IN ('a', 'b') AND file:parent_directory_ref.path = '/tmp']"
    assert f"{TI}.file.path" not in pattern_fields(document(indicator(two)))
    unix = "[file:parent_directory_ref.path = '/tmp/x/' AND file:name = 'run.sh']"
    assert pattern_fields(document(indicator(unix)))[f"{TI}.file.path"] == ["/tmp/x/run.sh"]


def test_a_directory_object_is_never_joined_with_a_file_name() -> None:
    """``directory:path`` and ``file:name`` are two observed objects, not one file's parts."""
    text = r"[directory:path = 'C:\\Windows' AND file:name = 'evil.exe']"
    values = pattern_fields(document(indicator(text)))
    assert values[f"{TI}.file.directory"] == ["C:\\Windows"]
    assert f"{TI}.file.path" not in values


@pytest.mark.parametrize(
    ("directory", "path"),
    [
        (r"C:\\Windows\\", "C:\\Windows\\a.exe"),
        ("C:", "C:\\a.exe"),
        ("C:/Program Files", "C:/Program Files/a.exe"),
        ("/usr/bin", "/usr/bin/a.exe"),
        ("tmp", "tmp/a.exe"),
    ],
)
def test_a_joined_path_uses_the_separator_of_its_directory(directory: str, path: str) -> None:
    text = f"[file:name = 'a.exe' AND file:parent_directory_ref.path = '{directory}']"
    assert pattern_fields(document(indicator(text)))[f"{TI}.file.path"] == [path]


def test_a_list_property_without_an_index_is_read_as_any_element() -> None:
    """STIX 2.0 producers write ``protocols = 'tcp'`` for ``protocols[*] = 'tcp'``."""
    for text in (
        "[network-traffic:protocols = 'tcp']",
        "[domain-name:resolves_to_refs.value = '198.51.100.1']",
        "[windows-registry-key:values.name = 'Run']",
    ):
        listed = text.replace("protocols", "protocols[*]").replace("_refs.", "_refs[*].")
        listed = listed.replace("values.", "values[*].")
        assert pattern_fields(document(indicator(text))) == pattern_fields(
            document(indicator(listed))
        ), text


def test_doubled_backslashes_in_a_registry_key_are_one() -> None:
    text = r"[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Software\\\\x']"
    values = pattern_fields(document(indicator(text)))
    assert values[f"{TI}.registry.hive"] == ["HKLM"]
    assert values[f"{TI}.registry.key"] == ["Software\\x"]
    assert values[f"{TI}.registry.path"] == ["HKLM\\Software\\x"]


def test_a_slash_form_distinguished_name_keeps_slashes_inside_values() -> None:
    dn = (
        "/C=US/O=VeriSign, Inc./OU=Terms of use at https://www.verisign.com/rpa (c)04"
        "/CN=VeriSign Class 3 Code Signing 2004 CA"
    )
    values = pattern_fields(document(indicator(f"[x509-certificate:issuer = '{dn}']")))
    issuer = f"{TI}.x509.issuer"
    assert values[f"{issuer}.distinguished_name"] == [dn]
    assert values[f"{issuer}.country"] == ["US"]
    assert values[f"{issuer}.organization"] == ["VeriSign, Inc."]
    assert values[f"{issuer}.organizational_unit"] == [
        "Terms of use at https://www.verisign.com/rpa (c)04"
    ]
    assert values[f"{issuer}.common_name"] == ["VeriSign Class 3 Code Signing 2004 CA"]


def test_a_handmade_tree_maps_like_its_text() -> None:
    tree = Pattern(
        Observation(Comparison(ObjectPath("network-traffic", ("dst_port",)), Op.EQ, IntLiteral(53)))
    )
    result = indicator_document(indicator("[network-traffic:dst_port = 53]"), tree, CONTEXT)
    assert result == indicator_document(
        indicator("[network-traffic:dst_port = 53]"),
        pattern_of("[network-traffic:dst_port = 53]"),
        CONTEXT,
    )
    bad = Pattern(
        Observation(Comparison(ObjectPath("ipv4-addr", ("value",)), Op.EQ, StringLiteral("\ud800")))
    )
    assert isinstance(indicator_document(indicator(), bad, CONTEXT), Failure)


# --- url, registry and DN details --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "evil.example:8080/a/b.tar.gz",
            [
                ("domain", "evil.example"),
                ("port", "8080"),
                ("path", "/a/b.tar.gz"),
                ("extension", "gz"),
            ],
        ),
        (
            "http://[2001:db8::1]:80/x",
            [("scheme", "http"), ("domain", "[2001:db8::1]"), ("port", "80"), ("path", "/x")],
        ),
        ("http://[::1", []),
        ("https://a.example:99999/", [("scheme", "https"), ("domain", "a.example"), ("path", "/")]),
        ("/relative?q=1", [("path", "/relative"), ("query", "q=1")]),
        ("ftp://h/.hidden", [("scheme", "ftp"), ("domain", "h"), ("path", "/.hidden")]),
    ],
)
def test_url_parts(url: str, expected: list[tuple[str, str]]) -> None:
    assert value_forms.url_parts(url) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("HKEY_LOCAL_MACHINE\\SOFTWARE\\x", ("HKLM", "SOFTWARE\\x")),
        ("hkey_current_user\\x", ("HKCU", "x")),
        ("HKEY_USERS\\S-1\\x", ("HKU", "S-1\\x")),
        ("HKEY_CLASSES_ROOT\\.exe", ("HKCR", ".exe")),
        ("HKEY_CURRENT_CONFIG\\System", ("HKCC", "System")),
        ("\\REGISTRY\\MACHINE\\SYSTEM\\x", ("HKLM", "SYSTEM\\x")),
        ("HKLM", ("HKLM", "")),
        (value_forms.registry_key_text("HKLM\\\\Software\\\\\\x"), ("HKLM", "Software\\x")),
        ("SYSTEM\\CurrentControlSet", (None, "SYSTEM\\CurrentControlSet")),
    ],
)
def test_registry_hives_are_abbreviated(key: str, expected: tuple[str | None, str]) -> None:
    assert value_forms.registry_parts(key) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CN=a, O=b", [("common_name", "a"), ("organization", "b")]),
        ("cn = a ; c = FR", [("common_name", "a"), ("country", "FR")]),
        ('CN="x, y", OU=z', [("common_name", "x, y"), ("organizational_unit", "z")]),
        ("CN=caf\\C3\\A9", [("common_name", "café")]),
        ("/C=US/O=x\\/y/CN=z", [("country", "US"), ("organization", "x/y"), ("common_name", "z")]),
        ("/CN=a/b c/OU=d", [("common_name", "a/b c"), ("organizational_unit", "d")]),
        (
            "/OU=https://x.example/a?b=c/CN=z",
            [("organizational_unit", "https://x.example/a?b=c"), ("common_name", "z")],
        ),
        ("CN=a, 2.5.4.97=VAT", [("common_name", "a")]),
        (
            "C=US, O=VeriSign, Inc., CN=VeriSign Class 3",
            [
                ("country", "US"),
                ("organization", "VeriSign, Inc."),
                ("common_name", "VeriSign Class 3"),
            ],
        ),
        ("CN=a+b, OU=c", [("common_name", "a+b"), ("organizational_unit", "c")]),
        ("CN=a+OU=b", [("common_name", "a"), ("organizational_unit", "b")]),
        ("Smith, John", None),
        ("Just A Name", None),
        ("", None),
    ],
)
def test_distinguished_names(text: str, expected: list[tuple[str, str]] | None) -> None:
    assert value_forms.distinguished_name(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E"),
        ("00-1A-2B-3C-4D-5E", "00-1A-2B-3C-4D-5E"),
        ("001a.2b3c.4d5e", "00-1A-2B-3C-4D-5E"),
        ("001a2b3c4d5e", "00-1A-2B-3C-4D-5E"),
        ("00:1a:2b:3c:4d:5e:6f:70", "00-1A-2B-3C-4D-5E-6F-70"),
        ("00:1a-2b:3c:4d:5e", None),
        ("00:1a:2b:3c:4d", None),
        ("hello", None),
    ],
)
def test_mac_addresses_take_the_ecs_form(text: str, expected: str | None) -> None:
    assert value_forms.normal_mac(text) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MD5", "md5"),
        ("SHA-1", "sha1"),
        ("sha_256", "sha256"),
        ("SHA256", "sha256"),
        ("SHA3-512", "sha3_512"),
        ("ssdeep", "ssdeep"),
        ("TLSH", "tlsh"),
        ("SHA-224", None),
    ],
)
def test_hash_key_spellings(name: str, expected: str | None) -> None:
    assert value_forms.hash_algorithm(name) == expected


# --- indicator properties (one test per row of the second table) ------------------------------


def opencti(**fields: Any) -> Extensions:
    return Extensions(opencti=OpenCTIExtension(**fields))


@covers("id", "OpenCTI internal id")
def test_ids() -> None:
    doc = document(indicator(extensions=opencti(id=INTERNAL_ID)))
    assert doc["threat"]["indicator"]["id"] == [INTERNAL_ID, STIX_ID]
    assert doc["opencti"]["indicator"]["id"] == INTERNAL_ID
    assert doc["opencti"]["indicator"]["standard_id"] == STIX_ID
    without = document(indicator())
    assert without["threat"]["indicator"]["id"] == [STIX_ID]
    assert "id" not in without["opencti"]["indicator"]


@covers("name")
def test_name_else_first_value() -> None:
    named = document(indicator(name="C2 server"))
    assert named["threat"]["indicator"]["name"] == "C2 server"
    unnamed = document(indicator("[network-traffic:dst_port = 8443] OR [file:name = 'a']"))
    assert unnamed["threat"]["indicator"]["name"] == "8443"


@covers("description")
def test_description() -> None:
    assert (
        document(indicator(description="Seen in phishing"))["threat"]["indicator"]["description"]
        == "Seen in phishing"
    )
    assert "description" not in document(indicator(description=""))["threat"]["indicator"]


@covers("main observable type")
@pytest.mark.parametrize(
    ("extension_type", "legacy_type", "text", "expected"),
    [
        ("StixFile", None, "[file:name = 'a']", "file"),
        ("Hostname", None, "[hostname:value = 'h.example']", "domain-name"),
        ("Email-Message", None, "[email-message:from_ref.value = 'a@b.c']", "email-addr"),
        ("X509-Certificate", None, "[x509-certificate:serial_number = '01']", "x509-certificate"),
        (
            "Windows-Registry-Key",
            None,
            "[windows-registry-key:key = 'HKLM\\\\x']",
            "windows-registry-key",
        ),
        ("Text", None, "[text:value = 'x'] OR [ipv4-addr:value = '1.2.3.4']", "ipv4-addr"),
        (None, "IPv6-Addr", "[ipv6-addr:value = '::1']", "ipv6-addr"),
        (None, None, "[file:name = 'a'] OR [ipv4-addr:value = '1.2.3.4']", "file"),
        # Only a type the document carries a value of, and only one ECS allows.
        (
            "Domain-Name",
            None,
            "[domain-name:resolves_to_refs[*].value = '198.51.100.1']",
            "ipv4-addr",
        ),
        (None, None, "[domain-name:resolves_to_refs[*].value = '2001:db8::1']", "ipv6-addr"),
        ("Email-Message", None, "[email-message:subject = 'x']", None),
        ("Network-Traffic", None, "[network-traffic:protocols[*] = 'tcp']", None),
        ("User-Agent", None, "[user-agent:value = 'curl/8']", None),
        ("Text", None, "[text:value = 'x']", None),
    ],
)
def test_type_follows_opencti_main_observable_type(
    extension_type: str | None, legacy_type: str | None, text: str, expected: str | None
) -> None:
    item = indicator(
        text,
        extensions=opencti(main_observable_type=extension_type),
        x_opencti_main_observable_type=legacy_type,
    )
    doc = document(item)
    assert doc["threat"]["indicator"].get("type") == expected
    main = extension_type or legacy_type
    if main is None:
        assert "main_observable_type" not in doc["opencti"]["indicator"]
    else:
        assert doc["opencti"]["indicator"]["main_observable_type"] == main


@covers("confidence")
@pytest.mark.parametrize(
    ("confidence", "level"),
    [
        (None, "Not Specified"),
        (0, "None"),
        (1, "Low"),
        (29, "Low"),
        (30, "Medium"),
        (69, "Medium"),
        (70, "High"),
        (100, "High"),
        (101, "Not Specified"),
        (-1, "Not Specified"),
    ],
)
def test_confidence_scale(confidence: int | None, level: str) -> None:
    doc = document(indicator(confidence=confidence))
    assert doc["threat"]["indicator"]["confidence"] == level
    assert doc["opencti"]["indicator"].get("confidence") == confidence


@covers("OpenCTI score", "OpenCTI detection flag", "OpenCTI inferred flag")
def test_opencti_score_detection_inferred() -> None:
    doc = document(indicator(extensions=opencti(score=80, detection=True, is_inferred=False)))
    assert doc["opencti"]["indicator"]["score"] == 80
    assert doc["opencti"]["indicator"]["detection"] is True
    assert doc["opencti"]["indicator"]["is_inferred"] is False
    legacy = document(indicator(x_opencti_score=12, x_opencti_detection=False))
    assert legacy["opencti"]["indicator"]["score"] == 12
    assert legacy["opencti"]["indicator"]["detection"] is False
    huge = document(indicator(extensions=opencti(score=2**64)))
    assert "score" not in huge["opencti"]["indicator"]


@covers("created", "modified")
def test_seen_and_modified_dates() -> None:
    created = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    doc = document(
        indicator(
            created=created,
            valid_from=datetime(2024, 1, 1),
            modified=datetime(2024, 3, 1, 0, 0, 0, 500000, tzinfo=UTC),
        )
    )
    ti, oi = doc["threat"]["indicator"], doc["opencti"]["indicator"]
    assert ti["first_seen"] == "2024-01-02T01:04:05Z"
    assert oi["created"] == "2024-01-02T01:04:05Z"
    assert ti["modified_at"] == "2024-03-01T00:00:00.500000Z"
    assert oi["modified"] == "2024-03-01T00:00:00.500000Z"
    assert "last_seen" not in ti
    fallback = document(
        indicator(
            valid_from=datetime(2024, 1, 1, tzinfo=UTC),
            extensions=opencti(updated_at=datetime(2024, 2, 2, tzinfo=UTC)),
        )
    )
    assert fallback["threat"]["indicator"]["first_seen"] == "2024-01-01T00:00:00Z"
    assert fallback["threat"]["indicator"]["modified_at"] == "2024-02-02T00:00:00Z"


@covers("valid_from", "valid_until", "revoked")
def test_validity_and_revocation() -> None:
    doc = document(
        indicator(
            valid_from=datetime(2024, 1, 1, tzinfo=UTC),
            valid_until=datetime(2025, 1, 1),
            revoked=False,
        )
    )
    oi = doc["opencti"]["indicator"]
    assert oi["valid_from"] == "2024-01-01T00:00:00Z"
    assert oi["valid_until"] == "2025-01-01T00:00:00Z"
    assert oi["revoked"] is False


@covers("valid_from (else created) + connector.indicator_ttl")
def test_the_expiry_a_ttl_gives_is_written() -> None:
    # The planner computes it (core.policy.lifetime, tests/core/policy/test_lifetime.py); the
    # mapping writes it.
    context = msgspec.structs.replace(CONTEXT, expires_at=datetime(2025, 4, 1, 2, tzinfo=UTC))
    oi = document(indicator(), context)["opencti"]["indicator"]
    assert oi["expires_at"] == "2025-04-01T02:00:00Z"
    assert "expires_at" not in document(indicator())["opencti"]["indicator"]


@covers("labels")
def test_labels_are_a_keyword_array() -> None:
    doc = document(indicator(labels=("malware", "c2", "malware", "")))
    assert doc["tags"] == ["malware", "c2"]
    assert "tags" not in document(indicator())


@covers("kill_chain_phases", "external_references")
def test_kill_chain_and_external_references() -> None:
    doc = document(
        indicator(
            kill_chain_phases=(
                KillChainPhase("mitre-attack", "command-and-control"),
                KillChainPhase("lockheed-martin-cyber-kill-chain", "delivery"),
            ),
            external_references=(
                ExternalReference(source_name="abuse.ch", url="https://urlhaus.abuse.ch/url/1/"),
                ExternalReference(source_name="mitre-attack", external_id="T1071"),
                ExternalReference(),
            ),
        )
    )
    oi = doc["opencti"]["indicator"]
    assert oi["kill_chain_phase"] == [
        "[mitre-attack] command-and-control",
        "[lockheed-martin-cyber-kill-chain] delivery",
    ]
    assert oi["external_reference"] == [
        {"source_name": "abuse.ch", "url": "https://urlhaus.abuse.ch/url/1/"},
        {"source_name": "mitre-attack", "external_id": "T1071"},
    ]


@covers("pattern", "pattern_type", "pattern_version", "indicator_types")
def test_pattern_properties() -> None:
    text = "[ipv4-addr:value = '198.51.100.7']"
    doc = document(indicator(text, pattern_version="2.1", indicator_types=("malicious-activity",)))
    oi = doc["opencti"]["indicator"]
    assert oi["pattern"] == text
    assert oi["pattern_type"] == "stix"
    assert oi["pattern_version"] == "2.1"
    assert oi["indicator_types"] == ["malicious-activity"]


@covers("created_by_ref")
def test_author_and_provider() -> None:
    author = "identity--1f2e3d4c-0000-4000-8000-000000000000"
    context = msgspec.structs.replace(CONTEXT, provider="CIRCL")
    doc = document(indicator(created_by_ref=author), context)
    assert doc["opencti"]["indicator"]["created_by_ref"] == author
    assert doc["threat"]["indicator"]["provider"] == "CIRCL"
    assert "provider" not in document(indicator(created_by_ref=author))["threat"]["indicator"]


@covers("MITRE platforms")
def test_mitre_platforms() -> None:
    doc = document(indicator(extensions=Extensions(mitre=MitreExtension(("windows", "linux")))))
    assert doc["opencti"]["indicator"]["mitre_platforms"] == ["windows", "linux"]
    legacy = document(indicator(x_mitre_platforms=("macos",)))
    assert legacy["opencti"]["indicator"]["mitre_platforms"] == ["macos"]


@covers("TLP marking")
@pytest.mark.parametrize(
    ("level", "tlp", "version"),
    [
        (Tlp.WHITE, "WHITE", "1.0"),
        (Tlp.CLEAR, "CLEAR", "2.0"),
        (Tlp.GREEN, "GREEN", "2.0"),
        (Tlp.AMBER, "AMBER", "2.0"),
        (Tlp.AMBER_STRICT, "AMBER+STRICT", "2.0"),
        (Tlp.RED, "RED", "2.0"),
    ],
)
def test_tlp_marking(level: Tlp, tlp: str, version: str) -> None:
    doc = document(context=msgspec.structs.replace(CONTEXT, tlp=level))
    assert doc["threat"]["indicator"]["marking"] == {"tlp": tlp, "tlp_version": version}
    assert "marking" not in document()["threat"]["indicator"]


@covers("OpenCTI URL", "connector name")
def test_links_and_feed() -> None:
    context = msgspec.structs.replace(
        CONTEXT, opencti_url="https://cti.example.org/", feed_name="OpenCTI prod"
    )
    doc = document(indicator(extensions=opencti(id=INTERNAL_ID)), context)
    assert doc["threat"]["indicator"]["reference"] == (
        f"https://cti.example.org/dashboard/observations/indicators/{INTERNAL_ID}"
    )
    assert doc["threat"]["feed"] == {"name": "OpenCTI prod", "reference": "https://cti.example.org"}
    plain = document()
    assert "reference" not in plain["threat"]["indicator"]
    assert plain["threat"]["feed"] == {"name": "OpenCTI"}


@covers("time of writing")
def test_timestamp_is_the_time_of_writing_and_constants() -> None:
    now = datetime(2024, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    doc = document(context=msgspec.structs.replace(CONTEXT, now=now))
    assert doc["@timestamp"] == "2024-06-01T12:00:00Z"
    assert doc["event"] == {
        "kind": "enrichment",
        "category": ["threat"],
        "type": ["indicator"],
        "module": "ti_opencti_connector",
        "dataset": "ti_opencti_connector.indicator",
    }
    assert doc["ecs"] == {"version": ecs.ECS_VERSION}


def test_a_full_indicator_as_opencti_streams_it() -> None:
    """The whole document for the indicator of shared/reference/opencti.md."""
    from elastic_connector.core.stix import decode_object

    raw = {
        "id": STIX_ID,
        "type": "indicator",
        "spec_version": "2.1",
        "name": "1.2.3.4",
        "pattern": "[ipv4-addr:value = '1.2.3.4']",
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00.000Z",
        "valid_until": "2025-01-01T00:00:00.000Z",
        "revoked": False,
        "confidence": 75,
        "labels": ["c2"],
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-05T00:00:00.000Z",
        "created_by_ref": "identity--0a0b0c0d-0000-4000-8000-000000000000",
        "object_marking_refs": ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"],
        "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "execution"}],
        "external_references": [{"source_name": "feed", "url": "https://feed.example/1"}],
        "extensions": {
            "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba": {
                "extension_type": "property-extension",
                "id": INTERNAL_ID,
                "type": "Indicator",
                "created_at": "2024-01-01T00:00:01.000Z",
                "updated_at": "2024-01-05T00:00:01.000Z",
                "is_inferred": False,
                "score": 80,
                "detection": True,
                "main_observable_type": "IPv4-Addr",
            },
            "extension-definition--322b8f77-262a-4cb8-a915-1e441e00329b": {
                "platforms": ["windows"]
            },
        },
    }
    decoded = decode_object(json.dumps(raw))
    assert isinstance(decoded, Success)
    typed = decoded.unwrap().typed
    assert isinstance(typed, Indicator)
    context = MappingContext(
        now=NOW, tlp=Tlp.AMBER, feed_name="OpenCTI", opencti_url="https://cti.example"
    )
    assert document(typed, context) == {
        "@timestamp": "2024-06-01T12:00:00Z",
        "ecs": {"version": ecs.ECS_VERSION},
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "module": "ti_opencti_connector",
            "dataset": "ti_opencti_connector.indicator",
        },
        "threat": {
            "indicator": {
                "confidence": "High",
                "id": [INTERNAL_ID, STIX_ID],
                "type": "ipv4-addr",
                "name": "1.2.3.4",
                "reference": f"https://cti.example/dashboard/observations/indicators/{INTERNAL_ID}",
                "first_seen": "2024-01-01T00:00:00Z",
                "modified_at": "2024-01-05T00:00:00Z",
                "marking": {"tlp": "AMBER", "tlp_version": "2.0"},
                "ip": ["1.2.3.4"],
            },
            "feed": {"name": "OpenCTI", "reference": "https://cti.example"},
        },
        "opencti": {
            "indicator": {
                "id": INTERNAL_ID,
                "standard_id": STIX_ID,
                "pattern": "[ipv4-addr:value = '1.2.3.4']",
                "pattern_type": "stix",
                "score": 80,
                "confidence": 75,
                "detection": True,
                "revoked": False,
                "is_inferred": False,
                "valid_from": "2024-01-01T00:00:00Z",
                "valid_until": "2025-01-01T00:00:00Z",
                "created": "2024-01-01T00:00:00Z",
                "modified": "2024-01-05T00:00:00Z",
                "created_by_ref": "identity--0a0b0c0d-0000-4000-8000-000000000000",
                "main_observable_type": "IPv4-Addr",
                "mitre_platforms": ["windows"],
                "kill_chain_phase": ["[mitre-attack] execution"],
                "external_reference": [{"source_name": "feed", "url": "https://feed.example/1"}],
            }
        },
        "tags": ["c2"],
    }


def test_every_mapped_field_is_written_by_some_example() -> None:
    """No dead mapping: each field of INDICATOR_MAPPINGS appears in an example document."""
    full = indicator(
        "[ipv4-addr:value = '1.2.3.4']",
        name="n",
        description="d",
        pattern_version="2.1",
        indicator_types=("malicious-activity",),
        valid_from=NOW,
        valid_until=NOW,
        confidence=50,
        labels=("l",),
        created=NOW,
        modified=NOW,
        created_by_ref="identity--x",
        kill_chain_phases=(KillChainPhase("k", "p"),),
        external_references=(ExternalReference(source_name="s", url="u", external_id="e"),),
        extensions=Extensions(
            opencti=OpenCTIExtension(
                id=INTERNAL_ID, score=1, detection=True, is_inferred=False, main_observable_type="X"
            ),
            mitre=MitreExtension(("windows",)),
        ),
    )
    context = MappingContext(
        now=NOW,
        tlp=Tlp.RED,
        feed_name="f",
        opencti_url="https://o.example",
        provider="p",
        expires_at=NOW,
    )
    written = set(flat(document(full, context)))
    for _row, text, _expected, _type in PATTERN_ROWS:
        written |= set(flat(document(indicator(text))))
    assert set(ecs.field_types(ecs.INDICATOR_MAPPINGS)) - written == set()
