"""The OpenCTI stream fails in every way operators see, while events keep being published; the
connector (one process, no manual action) resumes each time right after the last event it
received whose group was complete, and loses nothing.

The daemon reaches the stand-in through a TCP relay. Over two minutes, with a publisher adding
events at a steady rate throughout:

1. the stream is cut four times (the platform or a proxy resets the connection);
2. the next three reconnection attempts are answered HTTP 500;
3. the platform restarts (down for a few seconds: connections refused, then back on the same
   address, with what it had stored);
4. heartbeats stop and the network path dies silently (the relay swallows every byte of the
   stream connection, no FIN, no RST): only the reader's read timeout can notice.

Then: every event was delivered to this process, and again only what a resume must read
again (``events_total`` per kind is at least what was published; the surplus is bounded by what
each connection re-reads: the last event, whose group may still have been arriving, and the
markings the platform sends as dependencies on every new connection), every reconnection asked
for a position at or after the previous one, and the index equals the state the pure core
computes from all the events, document by document.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable

import pytest

from elastic_connector.demo.opencti_data import DEFAULT_MARKINGS
from tests.e2e.harness import ConnectorHarness, is_at_or_after, wait_for
from tests.reliability.expected_index import (
    assert_index_matches,
    expected_documents,
    plan_settings,
)
from tests.reliability.monitoring import Publisher
from tests.reliability.tcp_relay import TcpRelay
from tests.reliability.workload import generate

Harnesses = Callable[..., ConnectorHarness]

SEED = 7_331
READ_TIMEOUT = 60.0  # shell/stream.py StreamReaderSettings.read_timeout


def stream_connections(connector: ConnectorHarness) -> int:
    return sum(request.status == 200 for request in connector.standin.stream_requests)


def wait_for_new_connection(connector: ConnectorHarness, count: int, timeout: float) -> None:
    wait_for(
        lambda: stream_connections(connector) > count and connector.daemon.stream_connected(),
        timeout=timeout,
        what=f"stream connection number {count + 1}",
        context=connector.tail,
    )


@pytest.mark.slow
def test_stream_drops_500s_restarts_and_silence_lose_nothing(e2e_harness: Harnesses) -> None:
    events = generate(SEED, 1_250, tag="stream", population=300)
    connector = e2e_harness()
    relay = TcpRelay(int(connector.standin.url.rsplit(":", 1)[1])).start()
    connector.opencti_url = relay.url()
    try:
        daemon = connector.start()
        publisher = Publisher(connector.standin, events, rate=12.0).start()

        # 1. Four resets, three seconds apart.
        for _ in range(4):
            time.sleep(3)
            count = stream_connections(connector)
            assert connector.standin.drop_connections() >= 1
            wait_for_new_connection(connector, count, timeout=30)

        # 2. A reset, then the next three attempts fail with HTTP 500.
        requests_before = len(connector.standin.stream_requests)
        count = stream_connections(connector)
        connector.standin.fail_stream(500, times=3)
        connector.standin.drop_connections()
        wait_for_new_connection(connector, count, timeout=60)
        statuses = [r.status for r in connector.standin.stream_requests[requests_before:]]
        assert statuses[:4] == [500, 500, 500, 200], statuses

        # 3. The platform restarts (what it stores survives; same address).
        count = stream_connections(connector)
        connector.standin.stop()
        time.sleep(5)
        connector.standin.start()
        wait_for_new_connection(connector, count, timeout=60)

        # 4. Heartbeats stop and the stream's network path goes silent.
        count = stream_connections(connector)
        connector.standin.pause_heartbeats()
        silenced_at = time.monotonic()
        assert relay.blackhole(b"GET /stream") == 1
        wait_for_new_connection(connector, count, timeout=READ_TIMEOUT + 30)
        assert time.monotonic() - silenced_at >= READ_TIMEOUT - 1
        connector.standin.resume_heartbeats()

        ids = publisher.join(120)
        connector.wait_for_commit(ids[-1], timeout=60)

        # No event skipped; re-read only what a resume must read again: per connection, the
        # last event (its group may still have been arriving) and the markings sent before
        # the first event that refers to them.
        published = collections.Counter(event.kind for event in events)
        delivered = {kind: daemon.metric("events", event=kind) for kind in published}
        for kind, count in published.items():
            assert delivered[kind] >= count, (kind, delivered)
        surplus = sum(delivered.values()) - sum(published.values())
        assert surplus <= stream_connections(connector) * (1 + len(DEFAULT_MARKINGS)), delivered
        positions = connector.stream_request_positions()
        assert all(p is not None for p in positions), positions
        for earlier, later in itertools.pairwise(positions):
            assert is_at_or_after(later, str(earlier)), positions
        assert stream_connections(connector) >= 8
        output = daemon.output()
        assert "lost the OpenCTI stream" in output or "closed the stream" in output
        assert "the OpenCTI stream is unavailable (HTTP 500" in output
        assert "cannot reach the OpenCTI stream" in output
        assert f"no data from the OpenCTI stream for {READ_TIMEOUT:g} s" in output
        assert "Traceback" not in output
        assert daemon.running
        assert len(connector.processes) == 1

        assert_index_matches(
            connector.documents(), expected_documents(events, plan_settings(connector))
        )
        assert daemon.terminate() == 0
        saved = connector.saved_state()
        assert saved is not None
        assert is_at_or_after(str(saved["start_from"]), ids[-1])
    finally:
        relay.stop()
