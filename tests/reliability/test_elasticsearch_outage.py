"""Elasticsearch unavailable for two minutes while OpenCTI keeps producing: waited out, nothing
lost, nothing duplicated, no manual action.

The daemon writes through a ``FaultyProxy``. After a first wave is acknowledged, Elasticsearch
goes away in three phases of 40 s each — connections refused (the proxy is stopped), every
request answered 503, then 429 storms (whole requests, then every bulk item) — while events
keep arriving on the stream. Meanwhile, sampled every half second:

* the reader is back-pressured: the queue never holds more than its capacity and the reader
  never gets more than a queue and a batch ahead of what is acknowledged; memory stays flat;
* nothing is acknowledged and the saved position never moves past the last event written
  before the outage (no position covers an unwritten event).

When Elasticsearch is back, the same process catches up by itself and the index equals, document
by document, the state the pure core computes from the whole event sequence.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pytest

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.core.stream import StreamId, parse_stream_id
from tests.e2e.harness import ConnectorHarness
from tests.reliability.expected_index import (
    assert_index_matches,
    expected_documents,
    plan_settings,
)
from tests.reliability.monitoring import Publisher, Sampler, publish_all
from tests.reliability.workload import generate
from tests.support.faulty_proxy import FailBulkItems, FaultyProxy, Reply, es_error_body

Harnesses = Callable[..., ConnectorHarness]

SEED = 20_240_611
PHASE_SECONDS = 40.0
BATCH = 50
QUEUE_CAPACITY = max(100, 2 * BATCH)  # the daemon's inbox (shell/daemon.py)
RATE = 12.0  # events per second during the outage: far more than a queue's worth
MEMORY_GROWTH_MB = 60.0

UNAVAILABLE = Reply(
    503,
    es_error_body(503, "master_not_discovered_exception", "no master node (injected outage)"),
)
OVERLOADED = Reply(
    429,
    es_error_body(
        429,
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [shard_detail=...] (injected)",
    ),
)


def upstream_of(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


def position(ids: Sequence[StreamId], event_id: str | None) -> int:
    """How many of the published ``ids`` are at or before ``event_id``."""
    parsed = parse_stream_id(event_id) if event_id else None
    return 0 if parsed is None else bisect.bisect_right(ids, parsed)


@pytest.mark.slow
def test_a_two_minute_elasticsearch_outage_is_waited_out(
    e2e_harness: Harnesses, elasticsearch_url: str, es_settings: ElasticsearchSettings
) -> None:
    events = generate(SEED, 2_000, tag="outage", population=400)
    before, during, after = events[:300], events[300:1_800], events[1_800:]
    connector = e2e_harness(
        env={
            "ELASTICSEARCH_BULK_MAX_ACTIONS": str(BATCH),
            "ELASTICSEARCH_RETRY_MAX_BACKOFF": "2",
            "ELASTICSEARCH_REQUEST_TIMEOUT": "10",
        }
    )
    upstream = upstream_of(elasticsearch_url)
    proxy = FaultyProxy(upstream).start()
    port = proxy.port
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(proxy.url,))
    try:
        daemon = connector.start()
        first_ids = publish_all(connector.standin, before)
        connector.wait_for_ack(first_ids[-1], timeout=60)
        sampler = Sampler(daemon).start()
        baseline = sampler.sample()

        # Phase 1: nothing listens any more (connections refused).
        outage_began = time.monotonic()
        proxy.stop()
        publisher = Publisher(connector.standin, during, RATE).start()
        time.sleep(PHASE_SECONDS)
        # Phase 2: the cluster answers, unavailable.
        proxy = FaultyProxy(upstream, port=port)
        proxy.inject(UNAVAILABLE, times=None)
        proxy.start()
        time.sleep(PHASE_SECONDS)
        # Phase 3: 429 storms: whole requests, then every item of every bulk request.
        proxy.clear()
        proxy.inject(OVERLOADED, times=None)
        time.sleep(PHASE_SECONDS / 2)
        proxy.clear()
        proxy.inject(FailBulkItems(status=429), times=None, path="/_bulk")
        proxy.inject(OVERLOADED, times=None)
        time.sleep(PHASE_SECONDS / 2)
        outage = sampler.since(outage_began)
        saved_during = connector.saved_state()
        proxy.clear()

        during_ids = publisher.join(60)
        later_ids = publish_all(connector.standin, after)
        connector.wait_for_commit(later_ids[-1], timeout=120)
        sampler.stop()
        all_ids = [parse_stream_id(i) for i in [*first_ids, *during_ids, *later_ids]]
        published = [i for i in all_ids if i is not None]

        # Nothing was acknowledged, and no position was saved, past what was written before
        # (idle heartbeats, ids from the platform's clock, may have been).
        acked = [position(published, sample.ack_id) for sample in outage]
        assert max(acked) <= len(first_ids), outage[-1]
        if saved_during is not None:
            assert position(published, str(saved_during["start_from"])) <= len(first_ids)
        # Back-pressure: bounded queue, bounded read-ahead, flat memory.
        depths = [s.queue_depth for s in outage if s.queue_depth is not None]
        assert depths, "no /healthz sample during the outage"
        assert max(depths) <= QUEUE_CAPACITY
        read_ahead = max(position(published, s.read_id) for s in outage) - len(first_ids)
        assert read_ahead <= QUEUE_CAPACITY + BATCH + 1, read_ahead
        assert len(during_ids) - read_ahead > QUEUE_CAPACITY, "the outage did not fill the queue"
        rss = [s.rss_mb for s in outage if s.rss_mb is not None]
        if baseline.rss_mb is not None and rss:
            assert max(rss) - baseline.rss_mb < MEMORY_GROWTH_MB, (baseline.rss_mb, max(rss))

        # Waited out by the same process, without a restart or any manual action.
        assert daemon.running
        assert len(connector.processes) == 1
        output = daemon.output()
        assert "connection refused" in output
        assert "HTTP 503" in output
        assert "HTTP 429" in output
        assert "Traceback" not in output
        assert daemon.metric("documents_rejected") == 0
        assert daemon.metric("skips", code="undecodable") == 0

        assert_index_matches(
            connector.documents(), expected_documents(events, plan_settings(connector))
        )
        assert daemon.terminate() == 0
        saved = connector.saved_state()
        assert saved is not None
        assert saved["start_from"] == later_ids[-1]
    finally:
        proxy.stop()
