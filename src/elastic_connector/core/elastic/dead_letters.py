"""Dead letters: documents Elasticsearch refused, kept where an analyst can read and fix them.

With ``output.elasticsearch.dead_letter_index`` set, a document refused with a per-item 4xx
(a mapping or parsing error: retrying it unchanged cannot help) is written there, with why, the
OpenCTI id, the target index and the stream position of the event that produced it. The refused
document itself is a string in ``event.original`` (as ECS keeps an original event: stored, not
indexed), so no mapping can refuse it a second time. ``event.kind: pipeline_error`` is ECS's
value for documents that failed processing.

Each dead letter's ``_id`` is derived from the target, the document id and the stream position:
a replay of the same event writes the same dead letter again instead of a second one, while
each later refusal of the same object is kept.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Final

import msgspec

from elastic_connector.core.indicators.ecs import Date, Keyword, Long, mapping_of

Unindexed = Annotated[
    str, msgspec.Meta(extra={"es": {"type": "keyword", "index": False, "doc_values": False}})
]
"""Kept in ``_source`` only: no length limit, never parsed (ECS ``event.original``)."""

DEAD_LETTER_STATUSES: Final = range(400, 500)
"""Item statuses whose document is dead-lettered (but see ``dead_letter_status``)."""


def dead_letter_status(status: int) -> bool:
    """Whether a refusal with this item status is about the document itself: a 4xx other than
    413 (too large: a dead letter carrying it would be refused too) and 429 (never a refusal of
    the document)."""
    return status in DEAD_LETTER_STATUSES and status not in (413, 429)


class _Doc(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


class DeadLetterEvent(_Doc, frozen=True, kw_only=True, omit_defaults=False):
    kind: Keyword = "pipeline_error"
    dataset: Keyword = "ti_opencti_connector.dead_letter"
    original: Unindexed
    """The refused document (its JSON text, as sent)."""


class DeadLetterError(_Doc, frozen=True, kw_only=True):
    message: Annotated[str, msgspec.Meta(extra={"es": {"type": "match_only_text"}})]
    type: Keyword | None = None


class DeadLetterTarget(_Doc, frozen=True, kw_only=True):
    id: Keyword
    """The OpenCTI id (the refused document's ``_id``)."""
    index: Keyword
    """Where the document was to be written."""
    status: Long
    """HTTP status of the refusal."""
    stream_position: Keyword | None = None
    """Id of the stream event that produced the document (resume from just before it to
    replay it once the cause is fixed)."""


class DeadLetterOpenCTI(_Doc, frozen=True, kw_only=True):
    dead_letter: DeadLetterTarget


class DeadLetter(_Doc, frozen=True, kw_only=True):
    timestamp: Date = msgspec.field(name="@timestamp")
    event: DeadLetterEvent
    error: DeadLetterError
    opencti: DeadLetterOpenCTI


DEAD_LETTER_MAPPINGS: Final[dict[str, object]] = {
    "dynamic": False,
    "properties": mapping_of(DeadLetter),
}

_encoder: Final = msgspec.json.Encoder()


def dead_letter_id(index: str, document_id: str, stream_position: str | None) -> str:
    key = f"{index}\0{document_id}\0{stream_position or ''}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def dead_letter(
    *,
    index: str,
    document_id: str,
    status: int,
    reason: str,
    document: bytes,
    stream_position: str | None,
    now: datetime,
) -> tuple[str, bytes]:
    """``(_id, JSON)`` of the dead letter for ``document`` refused at ``index``/``document_id``
    with ``status`` and ``reason`` (``type: text`` as the bulk writer words it)."""
    error_type, colon, _ = reason.partition(":")
    letter = DeadLetter(
        timestamp=now,
        event=DeadLetterEvent(original=document.decode("utf-8", errors="replace")),
        error=DeadLetterError(
            message=reason,
            type=error_type.strip() if colon and " " not in error_type.strip() else None,
        ),
        opencti=DeadLetterOpenCTI(
            dead_letter=DeadLetterTarget(
                id=document_id, index=index, status=status, stream_position=stream_position
            )
        ),
    )
    return dead_letter_id(index, document_id, stream_position), _encoder.encode(letter)
