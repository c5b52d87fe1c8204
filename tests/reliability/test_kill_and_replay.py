"""``kill -9`` at random moments of a 20k-event replay, several times, then a restart that
finishes: the index equals, document by document, the state the pure core computes from the
events. Also the baseline that makes that comparison meaningful: an undisturbed daemon reaches
exactly that state.

The connector first runs once and stops cleanly (its position P0 is saved on the platform), then
20 000 events (creates, updates of confidence/labels/markings/revocation/pattern, deletes,
merges) are published while it is down, and it is started again to replay them. Elasticsearch
answers slowly (each bulk request is held 0.4 s by the proxy) so that the replay lasts over a
minute and every kill lands in the middle of it, often with a bulk request in flight. Kill
times are drawn from a seeded generator; the second round outlives pycti's 40 s ping, so the
later rounds resume from a position saved in the middle of the replay.

After every kill:

* the platform holds either P0 or a position saved by a ping, and the next start asks for
  exactly that position (``Last-Event-ID``);
* every indicator whose last event is at or before the saved position is in its final state in
  the index: a saved position never covers an event that was not written.

The stand-in streams as the platform does (``shared/reference/opencti.md``): the markings an
indicator refers to come first as dependency frames under the indicator's id, with a heartbeat
inside every such group; idle heartbeats carry the platform's clock; and the stream is bounded,
trimmed so that the oldest events (replayed by the first start) are gone when the replay runs.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence

import msgspec
import pytest

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.demo.opencti_standin import OpenCTIStandin, StreamSwitches
from tests.e2e.harness import ConnectorHarness, doc_id, is_at_or_after
from tests.reliability.expected_index import (
    assert_index_matches,
    comparable,
    expected_documents,
    plan_settings,
)
from tests.reliability.monitoring import publish_all
from tests.reliability.workload import Event, generate
from tests.support.faulty_proxy import Delay, FaultyProxy

Harnesses = Callable[..., ConnectorHarness]

SEED = 4_242
EVENTS = 20_000
BULK_DELAY = 0.4
BATCH = 100
PREHISTORY = 50
"""Events before the first start: replayed by its recovery, then trimmed from the stream."""


def platform_standin(keep: int) -> OpenCTIStandin:
    """A stand-in with a heartbeat inside every dependency group, keeping ``keep`` events."""
    return OpenCTIStandin(
        heartbeat_interval=0.2,
        switches=StreamSwitches(heartbeat_in_groups=True),
        max_stream_length=keep,
    ).start()


def touched_ids(event: Event) -> list[str]:
    """The document ids an event can change (merges also remove their sources)."""
    ids = [doc_id(event.stix)]
    if event.context is not None:
        sources = event.context.get("sources")
        if isinstance(sources, list):
            ids.extend(doc_id(source) for source in sources if isinstance(source, dict))
    return ids


def settled_before(events: Sequence[Event], ids: Sequence[str], saved: str) -> set[str]:
    """Documents no event after position ``saved`` touches: their final state is due."""
    later: set[str] = set()
    earlier: set[str] = set()
    for event, event_id in zip(events, ids, strict=True):
        (earlier if is_at_or_after(saved, event_id) else later).update(touched_ids(event))
    return earlier - later


def test_an_undisturbed_daemon_reaches_the_state_the_core_computes(
    e2e_harness: Harnesses,
) -> None:
    prehistory = generate(SEED + 3, PREHISTORY, tag="basebefore", population=PREHISTORY)
    events = generate(SEED, 2_000, tag="baseline", population=300)
    standin = platform_standin(keep=len(events))  # the prehistory is trimmed, nothing else
    try:
        connector = e2e_harness(env={"ELASTICSEARCH_BULK_MAX_ACTIONS": str(BATCH)}, standin=standin)
        publish_all(standin, prehistory)
        time.sleep(1.1)  # the recovery date has a one-second resolution: keep it after them
        daemon = connector.start()
        ids = publish_all(standin, events)
        assert standin.event_ids[0] == ids[0], "the stream was not trimmed"
        connector.wait_for_commit(ids[-2], timeout=60)
        connector.wait_for_ack(ids[-1], timeout=60)
        assert_index_matches(
            connector.documents(),
            expected_documents([*prehistory, *events], plan_settings(connector)),
        )
        kinds = {event.kind for event in events}
        assert kinds == {"create", "update", "delete", "merge"}
        assert daemon.metric("stream_gaps") == 0
        assert daemon.terminate() == 0
    finally:
        standin.stop()


@pytest.mark.slow
def test_kill_9_at_random_moments_of_a_20k_event_replay(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    with contextlib.ExitStack() as stack:
        _kill_9_rounds(stack, e2e_harness, faulty_proxy, es_settings)


def _kill_9_rounds(
    stack: contextlib.ExitStack,
    e2e_harness: Harnesses,
    faulty_proxy: FaultyProxy,
    es_settings: ElasticsearchSettings,
) -> None:
    rng = random.Random(SEED)
    prehistory = generate(SEED + 2, PREHISTORY, tag="before", population=PREHISTORY)
    seed_event = generate(SEED + 1, 1, tag="seed")[0]
    events = generate(SEED, EVENTS, tag="replay")
    # The stream keeps the seed and what follows it: the prehistory is trimmed by the replay.
    standin = platform_standin(keep=EVENTS + 1)
    stack.callback(standin.stop)
    connector = e2e_harness(env={"ELASTICSEARCH_BULK_MAX_ACTIONS": str(BATCH)}, standin=standin)
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,))
    expected = expected_documents([*prehistory, seed_event, *events], plan_settings(connector))
    publish_all(standin, prehistory)
    time.sleep(1.1)  # the recovery date has a one-second resolution: keep it after them

    # A first run that stops cleanly: P0 is saved, past the first-start recovery.
    first = connector.start()
    p0 = connector.publish(seed_event.kind, seed_event.stix)
    connector.wait_for_commit(p0)
    assert first.terminate() == 0
    assert connector.saved_state() == {
        "start_from": p0,
        "recover_until": connector.standin.stream_requests[0].query["recover"],
    }

    ids = publish_all(connector.standin, events)
    assert standin.event_ids[0] == p0, "the stream was not trimmed up to P0"
    faulty_proxy.inject(Delay(BULK_DELAY), times=None, path="/_bulk")
    # Seconds after the stream connects. The second round outlives pycti's 40 s ping, so the
    # rounds after it resume from a position saved in the middle of the replay.
    kill_after = [rng.uniform(4, 12), rng.uniform(43, 47), rng.uniform(4, 12), rng.uniform(4, 12)]
    resumed_from: list[str] = []
    covered: list[int] = []
    for seconds in kill_after:
        held = connector.saved_state()
        assert held is not None
        resume = str(held["start_from"])
        daemon = connector.start(timeout=60)
        assert connector.stream_request_positions()[-1] == resume
        resumed_from.append(resume)
        time.sleep(seconds)
        assert not is_at_or_after(daemon.last_ack_id(), ids[-1]), "the replay ended too early"
        daemon.kill()
        saved = connector.saved_state()
        assert saved is not None
        position = str(saved["start_from"])
        assert is_at_or_after(position, resume), (resume, position)  # never backwards
        # Whatever the saved position covers is written, in its final state.
        documents = connector.documents()
        settled = settled_before(events, ids, position)
        covered.append(len(settled))
        for key in settled:
            if key in expected:
                assert key in documents, f"{key} is covered by {position} but missing"
                assert comparable(documents[key]) == expected[key], key
            else:
                assert key not in documents, f"{key} is covered by {position} but present"

    assert resumed_from[:2] == [p0, p0]
    assert resumed_from[2] != p0, "the long round saved no progress"
    assert resumed_from[3] == resumed_from[2]
    assert max(covered) > 100, covered  # the mid-replay position was checked on real documents
    faulty_proxy.clear()
    last = connector.start(timeout=60)
    assert connector.stream_request_positions()[-1] == resumed_from[-1]
    connector.wait_for_ack(ids[-1], timeout=180)
    assert_index_matches(connector.documents(), expected)  # documents() fails on a duplicate
    assert last.metric("stream_gaps") == 0
    assert last.terminate() == 0
    assert connector.saved_state() is not None
