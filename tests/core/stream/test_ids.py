"""Stream event ids: parsed strictly, ordered as integer pairs, never as text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.stream.ids import (
    STREAM_START,
    StreamId,
    is_after,
    latest,
    parse_stream_id,
    stream_id_at,
)

parts = st.integers(min_value=0, max_value=2**64 - 1)
stream_ids = st.builds(StreamId, parts, parts)
# Small values make equal milliseconds, equal sequences and digit-count changes frequent.
close_ids = st.builds(StreamId, st.integers(0, 1100), st.integers(0, 12))
any_ids = stream_ids | close_ids


@given(any_ids)
def test_text_round_trip(event_id: StreamId) -> None:
    assert parse_stream_id(str(event_id)) == event_id


@given(st.text())
def test_parse_never_raises_and_only_accepts_canonical_pairs(text: str) -> None:
    parsed = parse_stream_id(text)
    if parsed is not None:
        assert parse_stream_id(str(parsed)) == parsed
        assert text.count("-") == 1
        assert all(c in "0123456789-" for c in text)


@given(any_ids, any_ids)
def test_order_is_the_order_of_integer_pairs(first: StreamId, second: StreamId) -> None:
    assert is_after(str(first), str(second)) == ((first.ms, first.seq) > (second.ms, second.seq))


def test_text_order_would_be_wrong() -> None:
    earlier, later = "999-0", "1000-0"
    assert earlier > later  # as text
    assert is_after(later, earlier)
    assert not is_after(earlier, later)
    assert is_after("5-10", "5-9")


@given(any_ids, any_ids, any_ids)
def test_latest_is_the_maximum(a: StreamId, b: StreamId, c: StreamId) -> None:
    texts = (str(a), str(b), str(c))
    assert parse_stream_id(latest(latest(texts[0], texts[1]), texts[2])) == max(a, b, c)
    assert latest(texts[0], texts[1]) in texts[:2]
    assert latest(texts[0], texts[0]) == texts[0]


@given(any_ids, st.text())
def test_garbage_never_moves_a_position(event_id: StreamId, garbage: str) -> None:
    if parse_stream_id(garbage) is not None:
        return
    assert not is_after(garbage, str(event_id))
    assert is_after(str(event_id), garbage)
    assert latest(str(event_id), garbage) == str(event_id)


def test_examples() -> None:
    assert parse_stream_id("1704067200000-3") == StreamId(1704067200000, 3)
    assert str(STREAM_START) == "0-0"
    for text in ("", "1", "1-", "-1", "1-2-3", " 1-2", "1-2 ", "+1-2", "1_000-0", "١٢-٣"):
        assert parse_stream_id(text) is None, text
    assert parse_stream_id(f"{2**64}-0") is None
    assert parse_stream_id(f"0-{2**64 - 1}") == StreamId(0, 2**64 - 1)
    assert stream_id_at(1704067200000) == StreamId(1704067200000, 0)
    assert stream_id_at(-5) == STREAM_START
