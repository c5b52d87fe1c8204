"""OpenCTI's observable type names: the values of an indicator's ``main_observable_type``.

The platform's list (``schema/stixCyberObservable.ts``, ``STIX_CYBER_OBSERVABLES``), spelled
as the platform spells them: ``connector.indicator_types`` is checked against it, so a typo is
a configuration error instead of a filter that silently withholds every indicator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

OPENCTI_OBSERVABLE_TYPES: Final[tuple[str, ...]] = (
    "Autonomous-System",
    "Directory",
    "Domain-Name",
    "Email-Addr",
    "Email-Message",
    "Email-Mime-Part-Type",
    "Artifact",
    "StixFile",
    "X509-Certificate",
    "IPv4-Addr",
    "IPv6-Addr",
    "Mac-Addr",
    "Mutex",
    "Network-Traffic",
    "Process",
    "Software",
    "Url",
    "User-Account",
    "Windows-Registry-Key",
    "Windows-Registry-Value-Type",
    "Cryptographic-Key",
    "Cryptocurrency-Wallet",
    "Hostname",
    "Text",
    "Credential",
    "User-Agent",
    "Bank-Account",
    "Tracking-Number",
    "Phone-Number",
    "Payment-Card",
    "Media-Content",
    "Persona",
    "SSH-Key",
    "IMEI",
    "ICCID",
    "IMSI",
)

_CANONICAL: Final[Mapping[str, str]] = {
    **{name.lower(): name for name in OPENCTI_OBSERVABLE_TYPES},
    # The STIX type names of the two the platform renames.
    "file": "StixFile",
    "x509-certificate": "X509-Certificate",
}


def canonical_observable_type(name: str) -> str | None:
    """The platform's spelling of an observable type written in any case (``ipv4-addr`` ->
    ``IPv4-Addr``; the STIX name ``file`` -> ``StixFile``), or None when it is not one."""
    return _CANONICAL.get(name.strip().lower())
