"""What the core asks the shell to do with one stream event."""

from __future__ import annotations

from typing import TypeAlias

import msgspec


class Guard(msgspec.Struct, frozen=True):
    """Apply a write only if the document is still what a reader saw (reconciliation): the
    ``seq_no``/``primary_term`` it was read with, or, both None, no document at all. A write
    whose guard fails lost to a newer write and is dropped (see ``docs/reconcile.md``)."""

    seq_no: int | None = None
    primary_term: int | None = None


class Upsert(msgspec.Struct, frozen=True, tag="upsert"):
    """Write ``document`` (already JSON-encoded) at ``index``/``id``, replacing any earlier one
    (only the one ``guard`` names, when there is a guard)."""

    index: str
    id: str
    document: bytes
    guard: Guard | None = None


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
    guard: Guard | None = None


class Skip(msgspec.Struct, frozen=True, tag="skip"):
    """Nothing is written for this event: it could not be understood (logged once, counted by
    ``code``, never retried). ``object_id`` is empty when the event did not decode that far."""

    event_id: str
    object_id: str
    code: str
    reason: str


Action: TypeAlias = Upsert | Delete | Skip
