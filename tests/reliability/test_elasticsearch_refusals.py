"""Elasticsearch refuses some documents, or all writes: each case is classified as Elasticsearch
really means it.

* A document the cluster cannot parse (HTTP 400 ``document_parsing_exception`` /
  ``mapper_parsing_exception`` per bulk item) is a poison document: reported once with its id,
  counted, never retried; the rest of the batch is written and the stream moves on.
* A full disk is an outage, not a verdict on the documents: it is waited out and nothing is
  dropped. What Elasticsearch answers (checked against real clusters' answers):

  - 8.x/9.x flood-stage watermark: the ``index.blocks.read_only_allow_delete`` block, per item
    ``429 cluster_block_exception`` "index [i] blocked by: [TOO_MANY_REQUESTS/12/disk usage
    exceeded flood-stage watermark, index has read-only-allow-delete block];" — deletes still
    pass;
  - the same block before 7.x, or set by hand on older clusters: per item ``403
    cluster_block_exception`` "[FORBIDDEN/12/index read-only / allow delete (api)]";
  - an ``index.blocks.write`` block: per item ``403`` "[FORBIDDEN/8/index write (api)]";
  - a cluster-wide block (``cluster.blocks.read_only``): the whole request ``403``
    "[FORBIDDEN/6/cluster read-only (api)]"; a whole request ``429`` for the flood stage.

  (``index_create_block_exception`` is OpenSearch's name for its create-index block; the
  Elasticsearch equivalent, ``[FORBIDDEN/10/cluster create-index blocked (api)]``, only stops
  index creation, which the connector does at setup, never in a bulk request: writes go through
  the alias with ``require_alias``.)

  During each block: nothing is acknowledged past what was written before, nothing is counted
  as rejected, the block's reason is logged, and for the 403 forms (an operator must act)
  ``/healthz`` reports it. After the block is lifted, the index equals the expected state.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import msgspec

from elastic_connector.core.config import ElasticsearchSettings
from tests.e2e.harness import ConnectorHarness, doc_id, is_at_or_after, wait_for
from tests.reliability.expected_index import (
    assert_index_matches,
    expected_documents,
    plan_settings,
)
from tests.reliability.monitoring import publish_all
from tests.reliability.workload import Event, generate
from tests.support.faulty_proxy import (
    FailBulkItems,
    Fault,
    FaultyProxy,
    Reply,
    bulk_ids,
    es_error_body,
)

Harnesses = Callable[..., ConnectorHarness]

SEED = 99_001


def _blocked(index: str, block: str) -> str:
    return f"index [{index}] blocked by: [{block}];"


def block_faults(index: str) -> dict[str, tuple[Fault, bool]]:
    """Name -> (the fault, whether an operator must act so /healthz must say it)."""
    backing = f"{index}-000001"
    flood = (
        "TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, "
        "index has read-only-allow-delete block"
    )
    return {
        "flood stage (8.x, per item 429, deletes allowed)": (
            FailBulkItems(
                429, "cluster_block_exception", _blocked(backing, flood), ops=frozenset({"index"})
            ),
            False,
        ),
        "read-only / allow delete (pre-7.x, per item 403)": (
            FailBulkItems(
                403,
                "cluster_block_exception",
                _blocked(backing, "FORBIDDEN/12/index read-only / allow delete (api)"),
                ops=frozenset({"index"}),
            ),
            True,
        ),
        "index.blocks.write (per item 403)": (
            FailBulkItems(
                403, "cluster_block_exception", _blocked(backing, "FORBIDDEN/8/index write (api)")
            ),
            True,
        ),
        "cluster read-only (whole request 403)": (
            Reply(
                403,
                es_error_body(
                    403,
                    "cluster_block_exception",
                    "blocked by: [FORBIDDEN/6/cluster read-only (api)];",
                ),
            ),
            True,
        ),
        "flood stage (whole request 429)": (
            Reply(429, es_error_body(429, "cluster_block_exception", _blocked(backing, flood))),
            False,
        ),
    }


def at_least_blocked(proxy: FaultyProxy, since: int, count: int) -> bool:
    """Whether ``count`` requests after the first ``since`` met a fault."""
    return sum(request.fault is not None for request in proxy.requests[since:]) >= count


def proxied(
    connector: ConnectorHarness, proxy: FaultyProxy, settings: ElasticsearchSettings
) -> None:
    connector.es_settings = msgspec.structs.replace(settings, hosts=(proxy.url,))


def test_unparsable_documents_are_reported_one_by_one_and_the_rest_proceed(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    events = generate(SEED, 400, tag="refused", population=80)
    # Debug: past ten a minute, refusals are warned about in one summary line, and each of
    # them is a debug line (nothing is lost to whoever asks for everything).
    connector = e2e_harness(
        env={"ELASTICSEARCH_BULK_MAX_ACTIONS": "25", "CONNECTOR_LOG_LEVEL": "debug"}
    )
    proxied(connector, faulty_proxy, es_settings)
    creates = [event for event in events if event.kind == "create"]
    refused = frozenset(doc_id(event.stix) for event in creates[::9])
    daemon = connector.start()
    faulty_proxy.inject(
        FailBulkItems(
            400,
            "document_parsing_exception",
            "[1:1234] failed to parse field [threat.indicator.name] of type [long] in document "
            "with id 'x'. Preview of field's value: 'evil.example.org'",
            ids=refused,
            ops=frozenset({"index"}),
        ),
        times=None,
        path="/_bulk",
    )
    ids = publish_all(connector.standin, events)
    connector.wait_for_ack(ids[-1], timeout=60)

    expected = expected_documents(events, plan_settings(connector))
    rejected = refused & set(expected)  # the others were deleted or withheld in the end
    assert rejected, "the seed produced no refusal that matters"
    actual = connector.documents()
    assert not rejected & set(actual)
    assert_index_matches(actual, {k: v for k, v in expected.items() if k not in rejected})

    lines = [
        line
        for line in daemon.lines()
        if re.search(r" (WARNING|DEBUG) \S+: Elasticsearch rejected", line)
    ]
    assert len([line for line in lines if " WARNING " in line]) <= 10
    reported = {m[1] for line in lines if (m := re.search(r"of document (\S+) in", line))}
    assert rejected <= reported
    assert reported <= refused
    for line in lines:
        assert "(HTTP 400): document_parsing_exception: [1:1234] failed to parse field" in line
    # Refused once each time it was sent, never retried: one line per refused write.
    sent = [i for r in faulty_proxy.requests if "/_bulk" in r.path for i in bulk_ids(r.body)]
    refused_sends = sum(1 for i in sent if i in refused)
    assert daemon.metric("documents_rejected") == len(lines)
    assert len(lines) <= refused_sends
    assert daemon.metric("bulk_retries") == 0
    assert daemon.terminate() == 0
    state = connector.saved_state()
    assert state is not None
    assert state["start_from"] == ids[-1]  # the stream moved past the refused documents


def test_disk_full_and_write_blocks_are_waited_out_and_nothing_is_dropped(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    events = generate(SEED + 1, 600, tag="blocked", population=120)
    connector = e2e_harness(
        env={"ELASTICSEARCH_BULK_MAX_ACTIONS": "40", "ELASTICSEARCH_RETRY_MAX_BACKOFF": "1"}
    )
    proxied(connector, faulty_proxy, es_settings)
    daemon = connector.start()
    faults = block_faults(connector.index)
    waves: list[list[Event]] = [events[:100]]
    rest = events[100:]
    share = len(rest) // len(faults)
    waves += [rest[n * share : (n + 1) * share] for n in range(len(faults))]
    waves[-1] += rest[len(faults) * share :]
    acked = publish_all(connector.standin, waves[0])[-1]
    connector.wait_for_ack(acked, timeout=30)

    for (name, (fault, reported)), wave in zip(faults.items(), waves[1:], strict=True):
        rejected_before = daemon.metric("documents_rejected")
        faulty_proxy.inject(fault, times=None, path="/_bulk")
        requests_before = len(faulty_proxy.requests)
        ids = publish_all(connector.standin, wave)
        enough = functools.partial(at_least_blocked, faulty_proxy, requests_before, 3)
        wait_for(
            enough,
            timeout=30,
            what=f"three blocked bulk requests ({name})",
            context=daemon.tail,
        )
        health = daemon.health()
        assert health is not None
        elastic = health[1]["elasticsearch"]
        assert isinstance(elastic, dict)
        # Heartbeats (clock ids) may be acknowledged meanwhile; no event of the wave may.
        last_ack = elastic["last_ack_id"]
        assert isinstance(last_ack, str)
        assert is_at_or_after(last_ack, acked)
        assert not is_at_or_after(last_ack, ids[0]), f"{name}: acknowledged while blocked"
        if reported:
            assert "blocks writes" in str(elastic["last_error"]), (name, elastic)
        assert daemon.metric("documents_rejected") == rejected_before, f"{name}: dropped"
        faulty_proxy.clear()
        connector.wait_for_ack(ids[-1], timeout=30)
        acked = ids[-1]

    output = daemon.output()
    assert "TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark" in output
    assert "FORBIDDEN/12/index read-only / allow delete (api)" in output
    assert "FORBIDDEN/8/index write (api)" in output
    assert "FORBIDDEN/6/cluster read-only (api)" in output
    assert daemon.metric("documents_rejected") == 0
    assert_index_matches(
        connector.documents(), expected_documents(events, plan_settings(connector))
    )
    assert daemon.terminate() == 0
