"""What the core asks the shell to do with one stream event."""

from __future__ import annotations

from typing import TypeAlias

import msgspec


class Upsert(msgspec.Struct, frozen=True, tag="upsert"):
    """Write ``document`` (already JSON-encoded) at ``index``/``id``, replacing any earlier one."""

    index: str
    id: str
    document: bytes


class Delete(msgspec.Struct, frozen=True, tag="delete"):
    """Remove the document ``index``/``id``; a missing document is not an error."""

    index: str
    id: str
    reason: str = ""


class Skip(msgspec.Struct, frozen=True, tag="skip"):
    """Nothing is written for this event; ``reason`` says why (logged and counted by reason)."""

    event_id: str
    object_id: str
    reason: str


Action: TypeAlias = Upsert | Delete | Skip
