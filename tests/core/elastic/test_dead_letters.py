"""Dead letters: what a refused document becomes, and which refusals make one."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.elastic.dead_letters import (
    DEAD_LETTER_MAPPINGS,
    dead_letter,
    dead_letter_status,
)
from elastic_connector.core.indicators import ecs

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@given(
    document=st.binary(max_size=200),
    reason=st.text(max_size=80),
    position=st.none() | st.text(max_size=20),
)
def test_a_dead_letter_keeps_the_document_and_why(
    document: bytes, reason: str, position: str | None
) -> None:
    letter_id, body = dead_letter(
        index="ti", document_id="id-1", status=400, reason=reason, document=document,
        stream_position=position, now=NOW,
    )  # fmt: skip
    decoded = msgspec.json.decode(body)
    assert decoded["event"]["original"] == document.decode("utf-8", errors="replace")
    assert decoded["event"]["kind"] == "pipeline_error"
    assert decoded["error"]["message"] == reason
    target = decoded["opencti"]["dead_letter"]
    assert (target["id"], target["index"], target["status"]) == ("id-1", "ti", 400)
    assert target.get("stream_position") == position
    mapped = ecs.field_types(DEAD_LETTER_MAPPINGS)
    assert mapped["event.original"] == "keyword"
    # The same refusal of the same event is one dead letter; another event's is another.
    again, _ = dead_letter(
        index="ti", document_id="id-1", status=400, reason="other", document=b"{}",
        stream_position=position, now=NOW,
    )  # fmt: skip
    later, _ = dead_letter(
        index="ti", document_id="id-1", status=400, reason=reason, document=document,
        stream_position=f"{position}9", now=NOW,
    )  # fmt: skip
    assert again == letter_id
    assert later != letter_id


def test_the_original_document_is_stored_not_indexed() -> None:
    original = DEAD_LETTER_MAPPINGS["properties"]["event"]["properties"]["original"]  # type: ignore[index]
    assert original == {"type": "keyword", "index": False, "doc_values": False}


@pytest.mark.parametrize(
    ("status", "kept"), [(400, True), (404, True), (409, True), (413, False), (429, False),
                         (500, False), (0, False)],
)  # fmt: skip
def test_only_refusals_of_the_document_itself_are_dead_lettered(status: int, kept: bool) -> None:
    assert dead_letter_status(status) is kept


def test_the_error_type_is_read_from_the_reason() -> None:
    _, body = dead_letter(
        index="ti", document_id="i", status=400, document=b"{}", stream_position=None, now=NOW,
        reason="document_parsing_exception: [1:2] failed to parse field [x] (bad ip)",
    )  # fmt: skip
    assert msgspec.json.decode(body)["error"]["type"] == "document_parsing_exception"
    _, body = dead_letter(
        index="ti", document_id="i", status=400, document=b"{}", stream_position=None, now=NOW,
        reason="no reason given",
    )  # fmt: skip
    assert "type" not in msgspec.json.decode(body)["error"]
