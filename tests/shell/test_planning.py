"""The planning process plans exactly as the writer would itself, and its failures cost nothing.

The property runs one child process over many drawn streams: indicators under known, custom and
unknown markings, by known and unknown authors; marking definitions created, changed and
deleted; identities naming authors; frames that do not decode; heartbeats; all cut into
batches, with markings and authors read from OpenCTI between batches (as the writer does when a
batch lacks them). Each batch is planned here (``plan_batch``) and in the child, and the plans,
the planner states and the author caches must be the same after every batch.

The pipeline tests run ``Pipeline`` with a child that fails on purpose
(``tests/support/faulty_planning.py``): a planner exception costs its one event, as it does
here; a child that dies or answers nonsense in the middle of a batch costs a re-plan here, and
every event is still written once, in order, and committed.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec
import pytest
from elasticsearch import Elasticsearch
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.core.policy import Tlp
from elastic_connector.core.stream import StreamPosition
from elastic_connector.demo.opencti_data import make_indicator
from elastic_connector.shell.authors import AuthorNames
from elastic_connector.shell.bulk import BulkResult, BulkWriter, WriteAction
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.pipeline import Pipeline
from elastic_connector.shell.planning import PlanningProcess, PlanningProcessError, plan_batch
from elastic_connector.shell.stream import StreamMessage
from tests.reliability.pipeline_run import MemoryStore
from tests.support.faulty_planning import COMMAND

NOW: Final = datetime(2025, 6, 1, tzinfo=UTC)
SETTINGS: Final = PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="ti")
CUSTOM: Final = "marking-definition--aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
OTHER: Final = "marking-definition--aaaaaaaa-bbbb-4ccc-8ddd-ffffffffffff"
"""Never on the stream: only a read from OpenCTI makes it known."""
AMBER: Final = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
AUTHORS: Final = tuple(f"identity--7d6b1a2c-1c55-4b8e-9c1b-{n:012d}" for n in range(3))
READABLE: Final = AUTHORS[0]
"""The one author a lookup in OpenCTI finds."""
WAIT: Final = 20.0

Message = tuple[str, str, bytes]


def _frame(kind: str, obj: object) -> bytes:
    return msgspec.json.encode({"type": kind, "data": obj})


@st.composite
def _message(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["indicator", "indicator", "indicator", "marking", "identity"]))
    if kind == "indicator":
        obj = make_indicator(
            f"[ipv4-addr:value = '198.51.100.{draw(st.integers(0, 5))}']",
            markings=draw(st.sampled_from([(), (AMBER,), (CUSTOM,), (OTHER,)])),
            created_by_ref=draw(st.sampled_from([None, *AUTHORS])),
        )
        event = draw(st.sampled_from(["create", "update", "delete"]))
        return event, _frame(event, obj)
    if kind == "marking":
        level = draw(st.sampled_from(["TLP:RED", "TLP:GREEN"]))
        marking = {
            "type": "marking-definition",
            "id": CUSTOM,
            "definition_type": "TLP",
            "name": level,
            "definition": level,
        }
        event = draw(st.sampled_from(["create", "delete"]))
        return event, _frame(event, marking)
    identity = {
        "type": "identity",
        "id": draw(st.sampled_from(AUTHORS)),
        "name": draw(st.sampled_from(["ACME CERT", "CIRCL", " "])),
    }
    return "create", _frame("create", identity)


@st.composite
def _batches(draw: st.DrawFn) -> list[list[Message]]:
    drawn = draw(
        st.lists(
            st.one_of(
                _message(),
                st.just(("create", b"{not json")),
                st.just(("heartbeat", b'"2025-06-01T00:00:00.000Z"')),
            ),
            max_size=40,
        )
    )
    messages = [
        (f"{1_800_000_000_000 + n}-0", event, data) for n, (event, data) in enumerate(drawn)
    ]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(messages) - 1)), max_size=4)))
    bounds = [0, *cuts, len(messages)]
    return [messages[a:b] for a, b in itertools.pairwise(bounds) if a < b]


@pytest.fixture(scope="module")
def process() -> Iterator[PlanningProcess]:
    child = PlanningProcess(SETTINGS)
    yield child
    child.close()


def _lookup(asked: list[str]) -> AuthorNames:
    def lookup(identity_id: str) -> str | None:
        asked.append(identity_id)
        return "Found in OpenCTI" if identity_id == READABLE else None

    return AuthorNames(lookup)


@given(batches=_batches(), refresh=st.lists(st.booleans(), min_size=5, max_size=5))
def test_the_planning_process_plans_every_batch_exactly_as_it_is_planned_here(
    process: PlanningProcess, batches: list[list[Message]], refresh: list[bool]
) -> None:
    asked_here: list[str] = []
    asked_apart: list[str] = []
    here, apart = _lookup(asked_here), _lookup(asked_apart)
    state_here = state_apart = PlannerState()
    for number, batch in enumerate(batches):
        planned_here, state_here = plan_batch(
            batch, state_here, SETTINGS, NOW, here.names, here.learn
        )
        process.submit(batch, state_apart, NOW, apart)
        planned_apart, state_apart = process.result()
        for learned in planned_apart.learned:
            apart.learn_parts(learned.authors, learned.missing)

        assert planned_apart.actions == planned_here.actions
        assert planned_apart.origins == planned_here.origins
        assert planned_apart.other == planned_here.other
        assert planned_apart.failures == planned_here.failures == []
        assert state_apart == state_here
        assert dict(apart.names) == dict(here.names)
        # What the writer does between batches: read the authors the batch lacked, and the
        # markings (a new state, which the child must be sent).
        assert apart.fetch_missing() == here.fetch_missing()
        assert asked_apart == asked_here
        if refresh[number % len(refresh)]:
            state_here = state_here.with_markings({OTHER: Tlp.GREEN})
            state_apart = state_apart.with_markings({OTHER: Tlp.GREEN})


def test_a_child_answering_nonsense_is_stopped_and_started_again_for_the_next_batch() -> None:
    child = PlanningProcess(SETTINGS, COMMAND)
    authors = AuthorNames()
    try:
        child.submit([("1-0", "create", b"garble")], PlannerState(), NOW, authors)
        with pytest.raises(PlanningProcessError, match="unreadable"):
            child.result()
        child.submit([("1-0", "create", b"die")], PlannerState(), NOW, authors)
        with pytest.raises(PlanningProcessError, match=r"exited \(status 3\)"):
            child.result()
        # A new child, which must be sent the state and the names again.
        marking = {
            "type": "marking-definition",
            "id": CUSTOM,
            "definition_type": "TLP",
            "name": "TLP:RED",
            "definition": "TLP:RED",
        }
        child.submit([("2-0", "create", _frame("create", marking))], PlannerState(), NOW, authors)
        planned, state = child.result()
        assert planned.actions == []
        assert state.markings == {CUSTOM: Tlp.RED}
    finally:
        child.close()


# --- the pipeline with a faulty child -------------------------------------------------------


class InstantWriter(BulkWriter):
    """Acknowledges every write at once, recording the ids."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(Elasticsearch("http://127.0.0.1:9"), require_alias=False, stop=stop)
        self.calls: list[list[str]] = []

    def write(self, actions: Sequence[WriteAction]) -> BulkResult:
        self.calls.append([action.id for action in actions])
        return BulkResult(written=sum(isinstance(a, Upsert) for a in actions))


def _run(messages: Sequence[StreamMessage], batch: int) -> tuple[InstantWriter, MemoryStore]:
    stop = threading.Event()
    inbox: queue.Queue[StreamMessage] = queue.Queue()
    for message in messages:
        inbox.put(message)
    store = MemoryStore()
    writer = InstantWriter(stop)
    pipeline = Pipeline(
        inbox=inbox,
        settings=SETTINGS,
        planner_state=PlannerState(),
        writer=writer,
        state=ConnectorState(store),
        metrics=Metrics(),
        position=lambda: StreamPosition(messages[-1].id, None),
        on_reset=lambda: StreamPosition("0-0", None),
        max_batch=batch,
        flush_interval=0.01,
        retry_delay=0.1,
        clock=lambda: NOW,
        stop=stop,
        start=StreamPosition("0-0", None),
        planning=PlanningProcess(SETTINGS, COMMAND),
    )
    pipeline.start()
    pipeline.drain_and_stop(timeout=WAIT)
    assert not pipeline.is_alive()
    return writer, store


def _indicators(count: int, marked: dict[int, str]) -> list[StreamMessage]:
    """``count`` indicator creates; ``marked``: message number -> a word its name carries."""
    return [
        StreamMessage(
            f"{1_800_000_000_000 + n}-0",
            "create",
            _frame(
                "create",
                make_indicator(f"[ipv4-addr:value = '198.51.100.{n}']", name=marked.get(n)),
            ),
        )
        for n in range(count)
    ]


def _document_ids(messages: Sequence[StreamMessage]) -> list[str]:
    ids = []
    for message in messages:
        action = plan_batch(
            [(message.id, message.event, message.data)],
            PlannerState(),
            SETTINGS,
            NOW,
            {},
            lambda _: None,
        )[0].actions[0]
        assert isinstance(action, Upsert | Delete)
        ids.append(action.id)
    return ids


@pytest.mark.parametrize("fault", ["die", "garble"])
def test_a_batch_the_child_fails_to_plan_is_planned_here_and_nothing_is_lost(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    messages = _indicators(12, {7: fault})
    with caplog.at_level(logging.WARNING, logger="elastic_connector.shell.pipeline"):
        writer, store = _run(messages, batch=4)
    # Every batch written once, in order; the faulty one planned here (where nothing fails).
    expected = _document_ids(messages)
    assert writer.calls == [expected[0:4], expected[4:8], expected[8:12]]
    assert store.state is not None
    assert store.state["start_from"] == messages[-2].id
    warnings = [r.getMessage() for r in caplog.records if "planning process" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("the planning process failed: ")


def test_a_planner_exception_in_the_child_costs_that_event_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = _indicators(12, {5: "poison"})
    with caplog.at_level(logging.DEBUG, logger="elastic_connector.shell.pipeline"):
        writer, store = _run(messages, batch=4)
    expected = _document_ids(messages)
    assert writer.calls == [expected[0:4], [*expected[4:5], *expected[6:8]], expected[8:12]]
    assert store.state is not None
    assert store.state["start_from"] == messages[-2].id
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"planning event {messages[5].id} raised (a bug), skipping it: ValueError: a planner bug"
    ]
    tracebacks = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("Traceback" in text and "a planner bug" in text for text in tracebacks)
    skips = [r for r in caplog.records if r.getMessage().startswith("skipped event")]
    assert [r.getMessage() for r in skips] == [
        f"skipped event {messages[5].id}: planning raised ValueError: a planner bug (a bug)"
    ]
