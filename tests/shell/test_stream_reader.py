"""Our SSE reader against the OpenCTI stand-in: order, resumption, outages, refusals, silence,
back-pressure, deletions, recovery, TLS and stopping."""

from __future__ import annotations

import json
import logging
import queue
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec
import pytest
import trustme

from elastic_connector.core.config import Config, ConnectorSettings, OpenCTISettings, Secret
from elastic_connector.core.stix import DATA_EVENTS
from elastic_connector.core.stream import StreamId, parse_stream_id
from elastic_connector.core.stream.position import StreamPosition, initial_position, position_state
from elastic_connector.demo.opencti_standin import OpenCTIStandin, make_indicator
from elastic_connector.shell.stream import (
    StreamGap,
    StreamMessage,
    StreamReader,
    StreamReaderSettings,
    _proxy_for,
)
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from tests.support.opencti import HelperFactory


class ReaderFactory(Protocol):
    """``start_reader(...)``: a started reader and its queue; keywords override settings."""

    def __call__(
        self,
        position: StreamPosition = ...,
        *,
        queue_size: int = ...,
        url: str | None = None,
        token: str | None = None,
        **settings: object,
    ) -> tuple[StreamReader, queue.Queue[StreamMessage]]: ...


START = StreamPosition("0-0", None)
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _indicators(count: int, prefix: str = "10.0") -> list[dict[str, object]]:
    return [
        make_indicator(f"[ipv4-addr:value = '{prefix}.{n // 256}.{n % 256}']") for n in range(count)
    ]


@pytest.fixture
def start_reader(opencti_standin: OpenCTIStandin) -> Iterator[ReaderFactory]:
    """Start readers on the stand-in with quick retries; all are stopped at teardown."""
    readers: list[StreamReader] = []

    def start(
        position: StreamPosition = START,
        *,
        queue_size: int = 10_000,
        url: str | None = None,
        token: str | None = None,
        **settings: object,
    ) -> tuple[StreamReader, queue.Queue[StreamMessage]]:
        quick = StreamReaderSettings(
            url=url or opencti_standin.url,
            token=Secret(token or opencti_standin.token),
            backoff_base=0.01,
            backoff_cap=0.05,
            read_timeout=5.0,
        )
        out: queue.Queue[StreamMessage] = queue.Queue(queue_size)
        reader = StreamReader(
            msgspec.structs.replace(quick, **settings), position, out, random_unit=lambda: 0.5
        )
        readers.append(reader)
        reader.start()
        return reader, out

    yield start
    for reader in readers:
        reader.stop()
        assert not reader.is_alive()


def _take(
    out: queue.Queue[StreamMessage], count: int, timeout: float = 10.0
) -> list[StreamMessage]:
    """The next ``count`` data messages (heartbeats and other events skipped), within
    ``timeout`` seconds in all (heartbeats never stop coming)."""
    taken: list[StreamMessage] = []
    deadline = time.monotonic() + timeout
    while len(taken) < count:
        try:
            message = out.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"only {len(taken)} of {count} data messages arrived")
        if message.event in DATA_EVENTS:
            taken.append(message)
    return taken


def _stix_id(message: StreamMessage) -> str:
    return str(json.loads(message.data)["data"]["id"])


def test_every_event_arrives_once_in_order(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    indicators = _indicators(300)
    ids = opencti_standin.publish_many(("create", i) for i in indicators)
    _, out = start_reader()

    messages = _take(out, 300)

    assert [m.id for m in messages] == ids
    assert [_stix_id(m) for m in messages] == [i["id"] for i in indicators]
    assert out.empty() or all(m.event not in DATA_EVENTS for m in list(out.queue))


def test_the_request_is_the_one_pycti_sends(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    reader, _ = start_reader(
        StreamPosition("1704067200000-0", "2024-01-15T10:30:00Z"),
        live_stream_id="live",
        listen_delete=False,
        no_dependencies=True,
        with_inferences=False,
    )
    wait_until(lambda: reader.status().connected, what="the connection")

    request = opencti_standin.stream_requests[0]
    assert request.path == "/stream/live"
    assert request.query == {"recover": "2024-01-15T10:30:00Z"}
    sent = {
        key: request.headers[key]
        for key in ("last-event-id", "listen-delete", "no-dependencies", "with-inferences")
    }
    assert sent == {
        "last-event-id": "1704067200000-0",
        "listen-delete": "false",
        "no-dependencies": "true",
        "with-inferences": "false",
    }
    assert request.headers["accept"] == "text/event-stream"
    assert "authorization" not in request.headers  # the stand-in never keeps it


def _settled(reader: StreamReader, event_id: str) -> None:
    """Until the reader knows ``event_id``'s group is complete (a later frame arrived: an idle
    heartbeat with the platform's clock), so that it resumes after it."""
    wait_until(lambda: reader.status().resume_from == event_id, what=f"{event_id} to be complete")


@pytest.mark.parametrize("graceful", [False, True], ids=["cut", "closed"])
def test_a_dropped_connection_resumes_after_the_last_complete_id_without_loss_or_duplicates(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, graceful: bool
) -> None:
    first = opencti_standin.publish_many(("create", i) for i in _indicators(50, "10.1"))
    reader, out = start_reader()
    received = _take(out, 50)
    _settled(reader, first[-1])

    assert opencti_standin.drop_connections(graceful=graceful) == 1
    second = opencti_standin.publish_many(("create", i) for i in _indicators(50, "10.2"))
    received += _take(out, 50)

    assert [m.id for m in received] == first + second
    resumed = [r for r in opencti_standin.stream_requests if r.status == 200][1]
    assert resumed.headers["last-event-id"] == first[-1]
    assert reader.status().connections == 2


def test_a_platform_restart_is_waited_out_without_loss(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    before = opencti_standin.publish_many(("create", i) for i in _indicators(20, "10.3"))
    reader, out = start_reader()
    received = _take(out, 20)
    _settled(reader, before[-1])

    opencti_standin.stop()
    wait_until(lambda: reader.status().consecutive_failures >= 2, what="failed reconnections")
    last_error = reader.status().last_error
    assert last_error is not None
    assert "cannot reach" in last_error
    after = opencti_standin.publish_many(("create", i) for i in _indicators(20, "10.4"))
    opencti_standin.start()
    received += _take(out, 20)

    assert [m.id for m in received] == before + after
    assert reader.status().connected


def test_server_errors_are_retried_until_the_stream_works(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    opencti_standin.fail_stream(500, times=3)
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(5))
    reader, out = start_reader()

    assert [m.id for m in _take(out, 5)] == ids
    assert [r.status for r in opencti_standin.stream_requests] == [500, 500, 500, 200]
    status = reader.status()
    assert (status.connections, status.consecutive_failures) == (1, 0)
    assert status.last_error is not None
    assert "HTTP 500" in status.last_error


def test_a_refused_token_is_retried_until_the_user_gets_the_right(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    opencti_standin.add_user("connector-token", name="connector", capabilities=["KNOWLEDGE"])
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(3))
    caplog.set_level(logging.ERROR, logger="elastic_connector.shell.stream")
    reader, out = start_reader(token="connector-token", live_stream_id="live")

    wait_until(lambda: len(opencti_standin.stream_requests) >= 3, what="retries after 401")
    assert {r.status for r in opencti_standin.stream_requests} == {401}
    assert reader.is_alive()
    assert any("401" in r.message and "BYPASS" in r.message for r in caplog.records)
    assert "connector-token" not in caplog.text

    opencti_standin.add_user("connector-token", name="connector", capabilities=["BYPASS"])
    assert [m.id for m in _take(out, 3)] == ids


def test_a_stopped_live_stream_is_waited_for(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    opencti_standin.add_stream_collection("feed", live=False)
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(2))
    caplog.set_level(logging.ERROR, logger="elastic_connector.shell.stream")
    reader, out = start_reader(live_stream_id="feed")

    wait_until(lambda: len(opencti_standin.stream_requests) >= 2, what="retries after 410")
    assert {r.status for r in opencti_standin.stream_requests} == {410}
    assert any("stopped" in r.message for r in caplog.records)

    opencti_standin.set_stream_live("feed", True)
    assert [m.id for m in _take(out, 2)] == ids
    assert reader.status().connected


def test_a_silent_connection_is_abandoned_and_reopened(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    opencti_standin.pause_heartbeats()
    reader, out = start_reader(read_timeout=0.3)

    wait_until(lambda: len(opencti_standin.stream_requests) >= 2, what="a reconnection")
    last_error = reader.status().last_error
    assert last_error is not None
    assert "no data" in last_error

    opencti_standin.resume_heartbeats()
    event_id = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.9.9.9']"))
    assert [m.id for m in _take(out, 1)] == [event_id]


def test_a_full_queue_blocks_the_reader_without_losing_events(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(200))
    reader, out = start_reader(queue_size=2)

    wait_until(out.full, what="the queue to fill up")
    assert reader.is_alive()
    assert reader.status().connected

    assert [m.id for m in _take(out, 200)] == ids
    assert reader.status().connections == 1


def test_deletions_are_not_sent_when_not_wanted_but_the_position_moves_past_them(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    kept, removed = _indicators(2)
    created = opencti_standin.publish("create", kept)
    opencti_standin.publish("create", removed)
    deleted = opencti_standin.publish("delete", removed)
    reader, out = start_reader(live_stream_id="live", listen_delete=False)

    messages = _take(out, 2)

    assert [(m.id, m.event) for m in messages] == [
        (created, "create"),
        (opencti_standin.event_ids[1], "create"),
    ]
    wait_until(lambda: reader.position.start_from == deleted, what="a heartbeat past the delete")
    after = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.8.8.8']"))
    assert [m.id for m in _take(out, 1)] == [after]


def test_deletions_are_sent_by_default(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    indicator = make_indicator("[ipv4-addr:value = '10.7.7.7']")
    opencti_standin.publish("create", indicator)
    opencti_standin.publish("delete", indicator)
    _, out = start_reader(live_stream_id="live")

    assert [m.event for m in _take(out, 2)] == ["create", "delete"]


def test_heartbeats_are_queued_as_position_markers(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    event_id = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.6.6.6']"))
    _, out = start_reader()

    messages: list[StreamMessage] = []
    while not any(m.event == "heartbeat" for m in messages):
        messages.append(out.get(timeout=5))

    heartbeat = messages[-1]
    assert messages[0].id == event_id
    assert heartbeat.id == event_id
    assert json.loads(heartbeat.data).endswith("Z")


def test_first_run_recovers_the_knowledge_base_then_reads_live(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    existing = make_indicator("[ipv4-addr:value = '10.5.5.5']")
    opencti_standin.publish("create", existing, at_ms=1_000)
    position = initial_position(
        None, start_timestamp=None, recover_iso_date=None, now=datetime(2001, 1, 1, tzinfo=UTC)
    )
    assert position == StreamPosition("0-0", "2001-01-01T00:00:00Z")
    _, out = start_reader(position, live_stream_id="live")

    recovered = _take(out, 1)[0]
    live_id = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.5.5.6']"))
    live = _take(out, 1)[0]

    envelope = json.loads(recovered.data)
    assert (envelope["origin"]["referer"], envelope["data"]["id"]) == (
        "init-create",
        existing["id"],
    )
    assert live.id == live_id


def test_a_stream_without_history_switches_to_live_only(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    opencti_standin.add_stream_collection("no-history", recover_supported=False)
    reader, out = start_reader(
        StreamPosition("0-0", "2030-01-01T00:00:00Z"), live_stream_id="no-history"
    )
    wait_until(lambda: reader.position.recover_until is None, what="the no-recover event")

    opencti_standin.drop_connections()
    wait_until(lambda: len(opencti_standin.stream_requests) == 2, what="a reconnection")
    assert opencti_standin.stream_requests[0].query == {"recover": "2030-01-01T00:00:00Z"}
    assert opencti_standin.stream_requests[1].query == {}
    event_id = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.4.4.4']"))
    assert [m.id for m in _take(out, 1)] == [event_id]
    assert all(m.event != "no-recover" for m in list(out.queue))


def test_restart_from_reads_again_from_the_new_position(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(4))
    reader, out = start_reader()
    assert [m.id for m in _take(out, 4)] == ids

    reader.restart_from(StreamPosition(ids[1], None))

    assert [m.id for m in _take(out, 2)] == ids[2:]
    assert reader.position.start_from == ids[-1]


def test_malformed_and_oversized_frames_do_not_stop_the_reader(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="elastic_connector.shell.stream")
    before = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.3.0.1']"))
    broken = opencti_standin.publish_raw("create", b'{"not": json')
    huge = opencti_standin.publish_raw("create", b'"' + b"x" * 50_000 + b'"')
    middle = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.3.0.2']"))
    larger = opencti_standin.publish_raw("create", b'"' + b"y" * 500_000 + b'"')
    after = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.3.0.3']"))
    reader, out = start_reader(max_frame_bytes=10_000)

    messages = _take(out, 4)

    assert [m.id for m in messages] == [before, broken, middle, after]
    assert messages[1].data == b'{"not": json'  # the consumer reports it, the reader passes it on
    assert any(huge in r.message for r in caplog.records)  # read whole, then dropped
    assert any(larger in r.message for r in caplog.records)  # abandoned while being read
    assert reader.is_alive()


def test_stop_returns_promptly_while_a_read_is_blocked(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    opencti_standin.pause_heartbeats()
    reader, _ = start_reader(read_timeout=600.0)
    wait_until(lambda: reader.status().connected, what="the connection")

    reader.stop(timeout=5.0)

    assert not reader.is_alive()
    assert opencti_standin.open_stream_connections in (0, 1)  # the server notices soon after


def test_stop_returns_promptly_while_the_queue_is_full(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    opencti_standin.publish_many(("create", i) for i in _indicators(20))
    reader, out = start_reader(queue_size=1)
    wait_until(out.full, what="the queue to fill up")

    reader.stop(timeout=5.0)

    assert not reader.is_alive()


def test_stop_returns_promptly_while_waiting_to_retry(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    opencti_standin.fail_stream(401, times=None)
    reader, _ = start_reader(backoff_cap=600.0)
    wait_until(lambda: len(opencti_standin.stream_requests) >= 1, what="the first refusal")

    reader.stop(timeout=5.0)

    assert not reader.is_alive()


@pytest.fixture
def tls_standin(clean_opencti_env: None, tmp_path: Path) -> Iterator[tuple[OpenCTIStandin, Path]]:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    with OpenCTIStandin(heartbeat_interval=0.2, ssl_context=context) as standin:
        yield standin, bundle


def test_tls_is_verified_against_the_configured_authority(
    tls_standin: tuple[OpenCTIStandin, Path], start_reader: ReaderFactory
) -> None:
    standin, bundle = tls_standin
    event_id = standin.publish("create", make_indicator("[ipv4-addr:value = '10.2.0.1']"))

    trusting, trusted_out = start_reader(url=standin.url, token=standin.token, ca_certs=str(bundle))
    doubting, _ = start_reader(url=standin.url, token=standin.token)

    assert [m.id for m in _take(trusted_out, 1)] == [event_id]
    wait_until(lambda: doubting.status().consecutive_failures >= 2, what="TLS failures")
    last_error = doubting.status().last_error
    assert last_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in last_error
    assert trusting.status().connected


def test_position_only_moves_forward(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(3))
    reader, out = start_reader(StreamPosition(ids[0], None))

    assert [m.id for m in _take(out, 2)] == ids[1:]
    position, last = parse_stream_id(reader.position.start_from), parse_stream_id(ids[-1])
    assert position is not None
    assert last is not None
    assert position >= last


def test_settings_come_from_the_connector_configuration() -> None:
    config = Config(
        opencti=OpenCTISettings(
            url="https://opencti.example.org", token=Secret("t"), ca_certs="/etc/ca.pem"
        ),
        connector=ConnectorSettings(id="c", live_stream_id="live", live_stream_listen_delete=False),
    )

    settings = StreamReaderSettings.from_config(config)

    assert (settings.url, settings.token.reveal(), settings.ca_certs) == (
        "https://opencti.example.org",
        "t",
        "/etc/ca.pem",
    )
    assert (settings.live_stream_id, settings.listen_delete, settings.ssl_verify) == (
        "live",
        False,
        True,
    )


def test_proxies_come_from_the_environment_as_for_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")

    assert _proxy_for("https://opencti.example.org") == "http://proxy.example:3128"
    assert _proxy_for("https://opencti.internal.example") is None
    assert _proxy_for("http://opencti.example.org") is None


def test_a_position_saved_through_pycti_resumes_the_next_run(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, pycti_helper: HelperFactory
) -> None:
    connector_id = "0f2c3b8e-34a1-4c7e-9d1a-5b6f7e8d9c0a"
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(6))
    helper = pycti_helper(connector_id=connector_id)
    position = initial_position(
        helper.get_state(), start_timestamp=None, recover_iso_date="false", now=NOW
    )
    reader, out = start_reader(position, live_stream_id="live")
    first_run = _take(out, 3)
    reader.stop()
    # What the daemon does once Elasticsearch acknowledged the first three events:
    helper.set_state(
        position_state(StreamPosition(first_run[-1].id, reader.position.recover_until))
    )
    helper.force_ping()

    restarted = pycti_helper(connector_id=connector_id)
    resumed = initial_position(
        restarted.get_state(), start_timestamp=None, recover_iso_date=None, now=NOW
    )
    _, out = start_reader(resumed, live_stream_id="live")

    assert restarted.get_state() == {"start_from": ids[2], "recover_until": False}
    assert [m.id for m in _take(out, 3)] == ids[3:]


# --- the platform's harder behaviours (shared/reference/opencti.md) ------------------------------

GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def _requests_ok(standin: OpenCTIStandin) -> list[tuple[str | None, dict[str, str]]]:
    return [
        (r.headers.get("last-event-id"), r.query)
        for r in standin.stream_requests
        if r.status == 200
    ]


def test_a_connection_lost_inside_a_group_resumes_before_the_group(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    before = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.7.0.1']"))
    marked = make_indicator("[ipv4-addr:value = '10.7.0.2']", markings=[GREEN])
    group = opencti_standin.publish("create", marked)
    opencti_standin.hold_group(group)  # the platform sent the marking, not the indicator yet
    _, out = start_reader(live_stream_id="live")
    assert [m.id for m in _take(out, 2)] == [before, group]  # the event, the marking
    assert opencti_standin.wait_for_held(group)

    opencti_standin.drop_connections()
    opencti_standin.release_group(group)
    rest = _take(out, 2)

    # Resuming after the group's id would have skipped the indicator, which carries it too.
    assert _requests_ok(opencti_standin)[1][0] == before
    assert [(m.id, _stix_id(m)) for m in rest] == [(group, GREEN), (group, marked["id"])]


def test_a_reconnect_during_the_replay_asks_for_the_same_replay(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    for n in range(6):
        opencti_standin.publish(
            "create", make_indicator(f"[ipv4-addr:value = '10.7.1.{n}']"), at_ms=1000 + n
        )
    opencti_standin.set_event_delay(0.2)
    start = StreamPosition("0-0", "1970-01-01T00:00:05Z")
    reader, out = start_reader(start, live_stream_id="live")
    replayed = _take(out, 2)
    assert all(m.recovery for m in replayed)
    assert reader.status().recovering

    opencti_standin.drop_connections()
    wait_until(lambda: len(_requests_ok(opencti_standin)) == 2, what="a reconnection")
    # Replay ids are update times in no order: resuming after one could skip the rest.
    assert _requests_ok(opencti_standin) == [("0-0", {"recover": "1970-01-01T00:00:05Z"})] * 2
    opencti_standin.set_event_delay(0)
    live = opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.7.1.9']"))
    messages = _take(out, 7)
    assert [m.recovery for m in messages[-1:]] == [False]
    assert messages[-1].id == live
    assert not reader.status().recovering
    resumed = parse_stream_id(reader.status().resume_from)
    assert resumed is not None
    assert resumed >= StreamId(5000, 0)  # live positions start at the recovery date


def test_heartbeats_during_the_replay_are_marked_and_the_clock_ends_it(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory
) -> None:
    opencti_standin.publish("create", make_indicator("[ipv4-addr:value = '10.7.2.1']"), at_ms=1000)
    reader, out = start_reader(StreamPosition("0-0", "1970-01-01T00:00:05Z"), live_stream_id="live")
    seen: list[StreamMessage] = []
    while not any(m.event == "heartbeat" and not m.recovery for m in seen):
        seen.append(out.get(timeout=5))
    assert seen[0].recovery
    assert seen[0].event == "create"
    # The replay is over once a heartbeat carries an id above all it sent: the live part's.
    assert not reader.status().recovering


def test_a_position_the_platform_trimmed_is_reported_as_a_gap_once(
    clean_opencti_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    gaps: list[StreamGap] = []
    with OpenCTIStandin(heartbeat_interval=0.2, max_stream_length=3) as standin:
        ids = [
            standin.publish("create", make_indicator(f"[ipv4-addr:value = '10.7.3.{n}']"))
            for n in range(6)
        ]
        out: queue.Queue[StreamMessage] = queue.Queue()
        settings = StreamReaderSettings(
            url=standin.url, token=Secret(standin.token), backoff_base=0.01, backoff_cap=0.05
        )
        reader = StreamReader(settings, StreamPosition(ids[1], None), out, on_gap=gaps.append)
        reader.start()
        try:
            assert [m.id for m in _take(out, 3)] == ids[3:]
            standin.drop_connections()
            wait_until(lambda: len(standin.stream_requests) == 2, what="a reconnection")
            wait_until(lambda: reader.status().connected, what="the reconnection")
        finally:
            reader.stop()
    assert gaps == [StreamGap(ids[1], ids[3])]
    status = reader.status()
    assert (status.gaps, status.last_gap) == (1, gaps[0])
    warnings = [r.getMessage() for r in caplog.records if "stream gap" in r.getMessage()]
    assert len(warnings) == 1
    assert ids[1] in warnings[0]
    assert ids[3] in warnings[0]
    assert "deletions" in warnings[0]


def test_a_queue_full_for_too_long_disconnects_then_resumes(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ids = opencti_standin.publish_many(("create", i) for i in _indicators(40, "10.8"))
    reader, out = start_reader(queue_size=5, queue_full_timeout=0.5)
    wait_until(out.full, what="a full queue")
    # Nobody takes: the platform would buffer the stream in memory; the reader hangs up.
    wait_until(lambda: opencti_standin.open_stream_connections == 0, what="a disconnect")
    assert not reader.status().connected
    assert any("queue full" in r.getMessage() for r in caplog.records)
    assert len(opencti_standin.stream_requests) == 1

    received = _take(out, 41)
    # Resumed from the last id received whose group was known complete: nothing lost.
    assert _requests_ok(opencti_standin)[1][0] == ids[3]
    assert list(dict.fromkeys(m.id for m in received)) == ids
    assert [m.id for m in received].count(ids[4]) == 2  # its group is read again


def test_a_401_on_a_collection_names_an_unknown_id(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="elastic_connector.shell.stream")
    reader, _ = start_reader(live_stream_id="no-such-stream")
    wait_until(lambda: reader.status().last_error is not None, what="the refusal")
    error = str(reader.status().last_error)
    assert "401" in error
    assert "no live stream has the id 'no-such-stream'" in error
    assert "TAXIIAPI" in error


def test_a_queue_full_during_the_replay_keeps_the_connection(
    opencti_standin: OpenCTIStandin, start_reader: ReaderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(20):
        opencti_standin.publish(
            "create", make_indicator(f"[ipv4-addr:value = '10.9.0.{n}']"), at_ms=1000 + n
        )
    start = StreamPosition("0-0", "1970-01-01T00:00:05Z")
    reader, out = start_reader(start, live_stream_id="live", queue_size=5, queue_full_timeout=0.3)
    wait_until(out.full, what="a full queue")
    time.sleep(0.8)
    # A reconnect would restart the replay from its beginning: the reader waits instead.
    assert opencti_standin.open_stream_connections == 1
    assert reader.status().recovering
    assert any("during the knowledge base replay" in r.getMessage() for r in caplog.records)
    assert len(_take(out, 20)) == 20
    assert len(opencti_standin.stream_requests) == 1
