"""Stream position and request: pycti's state format, URL and headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.stream import StreamId
from elastic_connector.core.stream.position import (
    StreamPosition,
    format_recover_date,
    initial_position,
    is_past_recovery,
    position_state,
    recovery_ms,
    stream_headers,
    stream_url,
)

NOW = datetime(2024, 1, 15, 10, 30, 0, 999_999, tzinfo=UTC)
parts = st.integers(min_value=0, max_value=2**63)
id_texts = st.builds(lambda ms, seq: str(StreamId(ms, seq)), parts, parts)
dates = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(format_recover_date)
recover_values = st.none() | dates
positions = st.builds(StreamPosition, id_texts, recover_values)
other_state = st.dictionaries(
    st.text(min_size=1).filter(
        lambda k: k not in ("start_from", "recover_until", "connectorLastEventId")
    ),
    st.integers() | st.text() | st.booleans(),
    max_size=3,
)
timestamps = st.none() | st.integers(min_value=0, max_value=2**42)


def pycti_url(base: str, live_stream_id: str | None, recover_until: object) -> str:
    """How pycti 7.x builds the stream URL (listen_stream + ListenStream.run)."""
    url = base.rstrip("/") + "/stream"
    if live_stream_id is not None:
        url = url + "/" + live_stream_id
    if recover_until is not False and recover_until not in (
        "no",
        "none",
        "No",
        "None",
        "false",
        "False",
    ):
        url = url + "?recover=" + str(recover_until)
    return url


@given(positions, other_state, timestamps, recover_values)
def test_a_saved_position_is_read_back_whatever_the_configuration(
    position: StreamPosition,
    other: dict[str, object],
    start_timestamp: int | None,
    recover_iso_date: str | None,
) -> None:
    state = {**other, **position_state(position)}
    assert (
        initial_position(
            state, start_timestamp=start_timestamp, recover_iso_date=recover_iso_date, now=NOW
        )
        == position
    )


@given(st.none() | other_state, timestamps, recover_values)
def test_a_first_run_starts_from_the_configuration(
    state: dict[str, object] | None, start_timestamp: int | None, recover_iso_date: str | None
) -> None:
    position = initial_position(
        state, start_timestamp=start_timestamp, recover_iso_date=recover_iso_date, now=NOW
    )
    expected_start = "0-0" if start_timestamp is None else f"{start_timestamp}-0"
    assert position == StreamPosition(expected_start, recover_iso_date or "2024-01-15T10:30:00Z")


def test_pycti_state_formats() -> None:
    assert position_state(StreamPosition("5-1", None)) == {
        "start_from": "5-1",
        "recover_until": False,
    }
    assert initial_position(
        {"start_from": "7-0", "recover_until": False},
        start_timestamp=99,
        recover_iso_date=None,
        now=NOW,
    ) == StreamPosition("7-0", None)
    legacy = {"connectorLastEventId": "3-0", "connectorStartTime": "2020-01-01T00:00:00Z"}
    assert initial_position(
        legacy, start_timestamp=None, recover_iso_date=None, now=NOW
    ) == StreamPosition("3-0", "2020-01-01T00:00:00Z")
    for off in ("no", "none", "None", "false", "False"):
        first_run = initial_position(None, start_timestamp=None, recover_iso_date=off, now=NOW)
        assert first_run == StreamPosition("0-0", None)
    corrupt = {"start_from": 12, "recover_until": "x"}
    assert initial_position(
        corrupt, start_timestamp=None, recover_iso_date=None, now=NOW
    ) == StreamPosition("0-0", "2024-01-15T10:30:00Z")


@given(
    st.sampled_from(["https://opencti.example.org", "http://127.0.0.1:8080/"]),
    st.none() | st.sampled_from(["live", "6b7ba9a5-bb4b-4e68-8b68-74e4d6a8b5ea"]),
    recover_values,
)
def test_url_is_pyctis_for_the_dates_pycti_writes(
    base: str, live_stream_id: str | None, recover_until: str | None
) -> None:
    expected = pycti_url(base, live_stream_id, recover_until if recover_until else False)
    assert stream_url(base, live_stream_id, recover_until) == expected


@given(st.text(min_size=1))
def test_any_recover_value_reaches_the_platform_intact(recover_until: str) -> None:
    url = stream_url("https://opencti.example.org", "live", recover_until)
    assert parse_qs(urlsplit(url).query) == {"recover": [recover_until]}


def test_offsets_are_not_turned_into_spaces() -> None:
    url = stream_url("https://o.example", "live", "2024-01-01T00:00:00+01:00")
    assert url == "https://o.example/stream/live?recover=2024-01-01T00:00:00%2B01:00"


@given(id_texts, st.booleans(), st.booleans(), st.booleans())
def test_headers_are_pyctis(
    start_from: str, listen_delete: bool, no_dependencies: bool, with_inferences: bool
) -> None:
    headers = stream_headers(
        "secret-token",
        start_from,
        listen_delete=listen_delete,
        no_dependencies=no_dependencies,
        with_inferences=with_inferences,
    )
    assert headers == {
        "authorization": "Bearer secret-token",
        "listen-delete": str(listen_delete).lower(),
        "no-dependencies": str(no_dependencies).lower(),
        "with-inferences": str(with_inferences).lower(),
        "Last-Event-ID": start_from,
        "Accept": "text/event-stream",
        "Cache-Control": "no-cache",
    }


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
    | st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
    )
)
def test_recover_dates_are_utc_seconds(moment: datetime) -> None:
    text = format_recover_date(moment)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    expected = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert text.endswith("Z")
    assert parsed == expected.replace(microsecond=0)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)), parts, parts)
def test_positions_are_saved_only_after_the_recovery(moment: datetime, ms: int, seq: int) -> None:
    recover_until = format_recover_date(moment)
    recover_ms = recovery_ms(recover_until)
    assert recover_ms == int(moment.replace(microsecond=0, tzinfo=UTC).timestamp() * 1000)
    event_id = str(StreamId(ms, seq))
    assert is_past_recovery(event_id, recover_until) == ((ms, seq) > (recover_ms, 0))
    assert is_past_recovery(event_id, None)


def test_recovery_examples() -> None:
    assert not is_past_recovery("1705314600000-0", "2024-01-15T10:30:00Z")
    assert is_past_recovery("1705314600000-1", "2024-01-15T10:30:00Z")
    assert not is_past_recovery("garbage", "2024-01-15T10:30:00Z")
    assert recovery_ms("2024-01-15T10:30:00+01:00") == 1705311000000
    assert recovery_ms("1705314600000-7") == 1705314600000
    assert recovery_ms("0") == 0
    assert recovery_ms("not a date") is None
    assert is_past_recovery("1-0", "not a date")  # the platform ignores it: no recovery
