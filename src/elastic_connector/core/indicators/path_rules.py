"""Which document field each STIX object path feeds: the mapping table, one row per path.

``docs/ecs-mapping.md`` lists the same rows for readers; ``tests/core/indicators/test_mapping.py``
checks that every row here is in it.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from elastic_connector.core.indicators.field_handlers import (
    Handler,
    address,
    date_into,
    directory,
    file_name,
    hashes,
    into,
    mac,
    number_into,
    parent_directory,
    registry_key,
    url,
    x509_name,
    x509_serial_number,
)
from elastic_connector.core.indicators.field_values import LONG_MAX
from elastic_connector.core.pattern.tree import AnyIndex, ObjectPath


class Rule(NamedTuple):
    """How the exact values of one object path are mapped."""

    handler: Handler
    ecs_type: str | None
    """The ``threat.indicator.type`` a value of this path stands for (None: no ECS type)."""
    networks: bool = False
    """Accepts ``ISSUBSET`` (address paths only)."""


_PORT_RANGE: Final = (0, 65535)
_FILE_HASH: Final = hashes(
    "threat.indicator.file.hash", "opencti.observable.file.hash", "threat.indicator.file"
)
_EMAIL: Final = into("threat.indicator.email.address")
_DOMAIN: Final = into("threat.indicator.url.domain")

RULES: Final[dict[tuple[str, str], Rule]] = {
    ("ipv4-addr", "value"): Rule(address, "ipv4-addr", networks=True),
    ("ipv6-addr", "value"): Rule(address, "ipv6-addr", networks=True),
    ("domain-name", "value"): Rule(_DOMAIN, "domain-name"),
    ("domain-name", "resolves_to_refs[*].value"): Rule(address, "domain-name", networks=True),
    ("hostname", "value"): Rule(_DOMAIN, "domain-name"),
    ("url", "value"): Rule(url, "url"),
    ("email-addr", "value"): Rule(_EMAIL, "email-addr"),
    ("email-message", "from_ref.value"): Rule(_EMAIL, "email-addr"),
    ("email-message", "sender_ref.value"): Rule(_EMAIL, "email-addr"),
    ("email-message", "subject"): Rule(into("opencti.observable.email_message.subject"), None),
    ("file", "name"): Rule(file_name, "file"),
    ("file", "size"): Rule(number_into("threat.indicator.file.size", 0, LONG_MAX), "file"),
    ("file", "mime_type"): Rule(into("threat.indicator.file.mime_type"), "file"),
    ("file", "hashes.*"): Rule(_FILE_HASH, "file"),
    ("file", "parent_directory_ref.path"): Rule(parent_directory, "file"),
    ("file", "extensions.windows-pebinary-ext.imphash"): Rule(
        into("threat.indicator.file.pe.imphash"), "file"
    ),
    ("artifact", "hashes.*"): Rule(_FILE_HASH, "artifact"),
    ("artifact", "mime_type"): Rule(into("threat.indicator.file.mime_type"), "artifact"),
    ("directory", "path"): Rule(directory, "directory"),
    ("windows-registry-key", "key"): Rule(registry_key, "windows-registry-key"),
    ("windows-registry-key", "values[*].name"): Rule(
        into("threat.indicator.registry.value", remember="registry.value"),
        "windows-registry-key",
    ),
    ("windows-registry-key", "values[*].data"): Rule(
        into("threat.indicator.registry.data.strings"), "windows-registry-key"
    ),
    ("windows-registry-key", "values[*].data_type"): Rule(
        into("threat.indicator.registry.data.type"), "windows-registry-key"
    ),
    ("x509-certificate", "serial_number"): Rule(x509_serial_number, "x509-certificate"),
    ("x509-certificate", "issuer"): Rule(x509_name("issuer"), "x509-certificate"),
    ("x509-certificate", "subject"): Rule(x509_name("subject"), "x509-certificate"),
    ("x509-certificate", "hashes.*"): Rule(
        hashes(None, "opencti.observable.x509_certificate.hash"), "x509-certificate"
    ),
    ("x509-certificate", "validity_not_before"): Rule(
        date_into("threat.indicator.x509.not_before"), "x509-certificate"
    ),
    ("x509-certificate", "validity_not_after"): Rule(
        date_into("threat.indicator.x509.not_after"), "x509-certificate"
    ),
    ("x509-certificate", "signature_algorithm"): Rule(
        into("threat.indicator.x509.signature_algorithm"), "x509-certificate"
    ),
    ("x509-certificate", "subject_public_key_algorithm"): Rule(
        into("threat.indicator.x509.public_key_algorithm"), "x509-certificate"
    ),
    ("x509-certificate", "subject_public_key_exponent"): Rule(
        number_into("threat.indicator.x509.public_key_exponent", 0, LONG_MAX),
        "x509-certificate",
    ),
    ("x509-certificate", "version"): Rule(
        into("threat.indicator.x509.version_number"), "x509-certificate"
    ),
    ("x509-certificate", "x509_v3_extensions.subject_alternative_name"): Rule(
        into("threat.indicator.x509.alternative_names"), "x509-certificate"
    ),
    ("autonomous-system", "number"): Rule(
        number_into("threat.indicator.as.number", 0, 2**32 - 1), "autonomous-system"
    ),
    ("autonomous-system", "name"): Rule(
        into("threat.indicator.as.organization.name"), "autonomous-system"
    ),
    ("mac-addr", "value"): Rule(mac, "mac-addr"),
    ("network-traffic", "src_ref.value"): Rule(address, "ipv4-addr", networks=True),
    ("network-traffic", "dst_ref.value"): Rule(address, "ipv4-addr", networks=True),
    ("network-traffic", "src_port"): Rule(
        number_into("threat.indicator.port", *_PORT_RANGE), "port"
    ),
    ("network-traffic", "dst_port"): Rule(
        number_into("threat.indicator.port", *_PORT_RANGE), "port"
    ),
    ("network-traffic", "protocols[*]"): Rule(
        into("opencti.observable.network_traffic.protocols"), None
    ),
    ("process", "pid"): Rule(number_into("opencti.observable.process.pid", 0, LONG_MAX), "process"),
    ("process", "name"): Rule(into("opencti.observable.process.name"), "process"),
    ("process", "image_ref.name"): Rule(into("opencti.observable.process.name"), "process"),
    ("process", "image_ref.hashes.*"): Rule(_FILE_HASH, "process"),
    ("process", "command_line"): Rule(into("opencti.observable.process.command_line"), "process"),
    ("process", "cwd"): Rule(into("opencti.observable.process.cwd"), "process"),
    ("user-account", "user_id"): Rule(
        into("opencti.observable.user_account.user_id"), "user-account"
    ),
    ("user-account", "account_login"): Rule(
        into("opencti.observable.user_account.account_login"), "user-account"
    ),
    ("user-account", "display_name"): Rule(
        into("opencti.observable.user_account.display_name"), "user-account"
    ),
    ("software", "name"): Rule(into("opencti.observable.software.name"), "software"),
    ("software", "vendor"): Rule(into("opencti.observable.software.vendor"), "software"),
    ("software", "version"): Rule(into("opencti.observable.software.version"), "software"),
    ("software", "cpe"): Rule(into("opencti.observable.software.cpe"), "software"),
    ("software", "swid"): Rule(into("opencti.observable.software.swid"), "software"),
    ("mutex", "name"): Rule(into("opencti.observable.mutex.name"), "mutex"),
    # OpenCTI's own observable types.
    ("user-agent", "value"): Rule(into("opencti.observable.user_agent.value"), None),
    ("cryptocurrency-wallet", "value"): Rule(
        into("opencti.observable.cryptocurrency_wallet.value"), None
    ),
    ("phone-number", "value"): Rule(into("opencti.observable.phone_number.value"), None),
    ("bank-account", "iban"): Rule(into("opencti.observable.bank_account.value"), None),
    ("credential", "value"): Rule(into("opencti.observable.credential.value"), None),
    ("tracking-number", "value"): Rule(into("opencti.observable.tracking_number.value"), None),
    ("text", "value"): Rule(into("opencti.observable.text.value"), None),
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


def rule_for(path: ObjectPath) -> tuple[Rule, str] | None:
    """The rule of a path and the argument it passes (the hash algorithm), if any (not cached:
    the pattern walk keeps the answers it needs)."""
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
    if rule is None:
        # STIX 2.0 producers leave out the list index (``network-traffic:protocols = 'tcp'``):
        # a list property without one is read as "any element".
        for position, key in enumerate(keys):
            if not key.endswith("[*]"):
                listed = [*keys[:position], key + "[*]", *keys[position + 1 :]]
                rule = RULES.get((object_type, ".".join(listed)))
                if rule is not None:
                    break
    return (rule, "") if rule is not None else None
