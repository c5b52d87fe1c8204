"""OpenCTI observable type names as the values ECS ``threat.indicator.type`` expects."""

from __future__ import annotations

from typing import Final

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


def ecs_indicator_type(opencti_type: str) -> str | None:
    """OpenCTI's observable type name (``IPv4-Addr``, ``StixFile``...) as an ECS value."""
    key = opencti_type.strip().lower()
    key = _OPENCTI_TYPE_ALIASES.get(key, key)
    return key if key in ECS_INDICATOR_TYPES else None
