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
    """Remove the document ``index``/``id``; a missing document is not an error.

    ``code`` is a short, fixed label for metrics (``deleted``, ``merged``, ``revoked``,
    ``expired``, ``tlp``, ``unknown_marking``, ``pattern_type``, ``detection``,
    ``invalid_pattern``, ``unmappable``);
    ``reason`` is the human explanation for logs; ``subject`` names what the code is about
    when the shell can act on it (the unknown marking id for ``unknown_marking``).
    """

    index: str
    id: str
    code: str
    reason: str
    subject: str = ""


class Skip(msgspec.Struct, frozen=True, tag="skip"):
    """Nothing is written for this event: it could not be understood (logged once, counted by
    ``code``, never retried). ``object_id`` is empty when the event did not decode that far."""

    event_id: str
    object_id: str
    code: str
    reason: str


Action: TypeAlias = Upsert | Delete | Skip
