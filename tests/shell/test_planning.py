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
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.core.policy import Tlp
from elastic_connector.core.stream import StreamPosition
from elastic_connector.demo.opencti_data import make_indicator
from elastic_connector.shell.authors import AuthorNames
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.pipeline import Pipeline
from elastic_connector.shell.planning import (
    PlannedBatch,
    PlanningProcess,
    PlanningProcessError,
    plan_batch,
)
from elastic_connector.shell.stream import StreamMessage
from tests.reliability.pipeline_run import MemoryStore
from tests.support.faulty_planning import COMMAND
from tests.support.writers import InstantWriter

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


def _custom_marking(level: str) -> dict[str, object]:
    """The marking definition ``CUSTOM``, a TLP marking at ``level``."""
    return {
        "type": "marking-definition",
        "id": CUSTOM,
        "definition_type": "TLP",
        "name": level,
        "definition": level,
    }


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
        marking = _custom_marking(draw(st.sampled_from(["TLP:RED", "TLP:GREEN"])))
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


@given(batches=_batches(), syncs=st.lists(st.booleans(), min_size=5, max_size=5))
def test_the_planning_process_plans_every_batch_exactly_as_it_is_planned_here(
    process: PlanningProcess, batches: list[list[Message]], syncs: list[bool]
) -> None:
    """Batches are sent up to ``AHEAD`` at a time, each going on from the one before; at the
    drawn sync points everything sent is answered first, then authors and markings are read
    (which changes the state and the names behind the child's back: the next batch is sent
    with them)."""
    asked_here: list[str] = []
    asked_apart: list[str] = []
    here, apart = _lookup(asked_here), _lookup(asked_apart)
    state_here = state_apart = PlannerState()
    expected: list[tuple[PlannedBatch, PlannerState, dict[str, str]]] = []
    sent: deque[int] = deque()
    go_on = False  # the module's child ended the last example elsewhere

    def answer_oldest() -> None:
        number = sent.popleft()
        planned, state = process.result()
        for learned in planned.learned:
            apart.learn_parts(learned.authors, learned.missing)
        want_planned, want_state, want_names = expected[number]
        assert planned.actions == want_planned.actions
        assert planned.origins == want_planned.origins
        assert planned.other == want_planned.other
        assert planned.failures == want_planned.failures == []
        assert state == want_state
        assert dict(apart.names) == want_names
        nonlocal state_apart
        state_apart = state

    for number, batch in enumerate(batches):
        planned_here, state_here = plan_batch(
            batch, state_here, SETTINGS, NOW, here.names, here.learn
        )
        expected.append((planned_here, state_here, dict(here.names)))
        if len(sent) == PlanningProcess.AHEAD:
            answer_oldest()
        process.submit(batch, NOW, state_apart, apart, go_on=go_on)
        sent.append(number)
        go_on = True
        if syncs[number % len(syncs)]:
            while sent:
                answer_oldest()
            assert apart.fetch_missing() == here.fetch_missing()
            assert asked_apart == asked_here
            state_here = state_here.with_markings({OTHER: Tlp.GREEN})
            state_apart = state_apart.with_markings({OTHER: Tlp.GREEN})
            go_on = False
    while sent:
        answer_oldest()


def test_a_child_answering_nonsense_is_stopped_and_started_again_for_the_next_batch() -> None:
    child = PlanningProcess(SETTINGS, COMMAND)
    authors = AuthorNames()
    try:
        child.submit([("1-0", "create", b"garble")], NOW, PlannerState(), authors, go_on=True)
        with pytest.raises(PlanningProcessError, match="unreadable"):
            child.result()
        child.submit([("1-0", "create", b"die")], NOW, PlannerState(), authors, go_on=True)
        with pytest.raises(PlanningProcessError, match=r"exited \(status 3\)"):
            child.result()
        # A new child, which is sent the state and the names even when told to go on.
        marking = _custom_marking("TLP:RED")
        child.submit(
            [("2-0", "create", _frame("create", marking))], NOW, PlannerState(), authors, go_on=True
        )
        planned, state = child.result()
        assert planned.actions == []
        assert state.markings == {CUSTOM: Tlp.RED}
    finally:
        child.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_batch_sent_to_a_child_that_died_is_an_error_of_its_own_not_a_crash() -> None:
    child = PlanningProcess(SETTINGS, COMMAND)
    authors = AuthorNames()
    try:
        child.submit([("1-0", "create", b"die")], NOW, PlannerState(), authors, go_on=True)
        pid = child.pid
        assert pid is not None
        # Dead (a zombie until waited for): the next batch meets a closed pipe.
        _wait_until(lambda: _files_closed(pid))
        with pytest.raises(PlanningProcessError, match="could not send it a batch"):
            child.submit([("2-0", "create", b"{}")], NOW, PlannerState(), authors, go_on=True)
        assert not child.running
    finally:
        child.close()


_HOLDER: Final = """
import sys, threading, time
from datetime import UTC, datetime
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.shell.authors import AuthorNames
from elastic_connector.shell.planning import PlanningProcess
from tests.support.faulty_planning import COMMAND

def send() -> None:
    child = PlanningProcess(PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="ti"), COMMAND)
    now = datetime.now(UTC)
    child.submit([("1-0", "create", b"{}")], now, PlannerState(), AuthorNames(), go_on=False)
    child.result()  # it answers: it is set to die with this thread
    child.submit([("2-0", "create", b"hang")], now, PlannerState(), AuthorNames(), go_on=False)
    print(child.pid, flush=True)
    time.sleep(600)

threading.Thread(target=send, daemon=True).start()
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _files_closed(pid: int) -> bool:
    """Dead, and its pipes closed: the process shows ``Z`` as soon as its main thread is gone,
    while its other threads, which hold its open files too, may still be exiting."""
    try:
        return _gone(pid) and os.listdir(f"/proc/{pid}/task") == [str(pid)]
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_stuck_on_a_batch_does_not_outlive_the_connector() -> None:
    root = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])},
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        pid = int(holder.stdout.readline())
        assert not _gone(pid)
        holder.kill()  # SIGKILL: no finally, no close, no end of stdin read
        holder.wait()
        _wait_until(lambda: _gone(pid))
    finally:
        holder.kill()
        holder.wait()


# --- the pipeline with a faulty child -------------------------------------------------------


class _Rig:
    """A pipeline over an inbox, writing to an ``InstantWriter``, with a planning process."""

    def __init__(
        self,
        last_id: str,
        batch: int,
        planning: PlanningProcess,
        authors: AuthorNames | None = None,
    ) -> None:
        stop = threading.Event()
        self.inbox: queue.Queue[StreamMessage] = queue.Queue()
        self.store = MemoryStore()
        self.writer = InstantWriter(stop)
        self.pipeline = Pipeline(
            inbox=self.inbox,
            settings=SETTINGS,
            planner_state=PlannerState(),
            writer=self.writer,
            state=ConnectorState(self.store),
            metrics=Metrics(),
            position=lambda: StreamPosition(last_id, None),
            on_reset=lambda: StreamPosition("0-0", None),
            max_batch=batch,
            flush_interval=0.01,
            retry_delay=0.1,
            clock=lambda: NOW,
            stop=stop,
            start=StreamPosition("0-0", None),
            authors=authors,
            planning=planning,
        )

    def feed(self, messages: Sequence[StreamMessage]) -> None:
        for message in messages:
            self.inbox.put(message)


def _run(
    messages: Sequence[StreamMessage],
    batch: int,
    authors: AuthorNames | None = None,
    command: Sequence[str] | None = COMMAND,
    planning: PlanningProcess | None = None,
) -> tuple[InstantWriter, MemoryStore]:
    """Write ``messages`` in batches of ``batch``, then stop."""
    rig = _Rig(messages[-1].id, batch, planning or PlanningProcess(SETTINGS, command), authors)
    rig.feed(messages)
    pipeline, writer, store = rig.pipeline, rig.writer, rig.store
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


@pytest.mark.parametrize("fault", ["die", "garble", "mismatch"])
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


def test_batches_sent_before_an_author_was_read_from_opencti_are_planned_again_with_it() -> None:
    """Batch 1's author is unknown: the writer reads it from OpenCTI and plans batch 1 again.
    Batches 2 and 3 were sent meanwhile, going on from a cache without the name: their plans
    are not used; they are planned with it, here."""
    name = "Found in OpenCTI"
    messages = [
        StreamMessage(
            f"{1_800_000_000_000 + n}-0",
            "create",
            _frame(
                "create",
                make_indicator(f"[ipv4-addr:value = '198.51.100.{n}']", created_by_ref=READABLE),
            ),
        )
        for n in range(12)
    ]
    asked: list[str] = []
    # The writer is slow enough that batches 2 and 3 are sent before batch 1 is answered.
    writer, store = _run(messages, batch=4, authors=_lookup(asked), command=None)
    assert asked == [READABLE]
    assert len(writer.documents) == 12
    providers = [
        msgspec.json.decode(document)["threat"]["indicator"].get("provider")
        for document in writer.documents
    ]
    assert providers == [name] * 12
    assert store.state is not None
    assert store.state["start_from"] == messages[-2].id


def test_the_process_stops_when_the_backlog_is_gone_and_starts_again_with_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("elastic_connector.shell.pipeline.PLANNING_IDLE_CLOSE", 0.0)
    messages = _indicators(12, {})
    planning = PlanningProcess(SETTINGS)
    rig = _Rig(messages[-1].id, 4, planning)
    rig.feed(messages[:8])
    pipeline, writer = rig.pipeline, rig.writer
    pipeline.start()
    try:
        _wait_until(lambda: len(writer.calls) == 2 and not planning.running)
        assert pipeline.is_alive()
        rig.feed(messages[8:])
        _wait_until(lambda: len(writer.calls) == 3)
        assert writer.calls == [_document_ids(messages[n : n + 4]) for n in (0, 4, 8)]
    finally:
        pipeline.drain_and_stop(timeout=WAIT)
    assert not planning.running


def test_an_interrupt_for_the_whole_process_group_is_left_to_the_connector() -> None:
    child = PlanningProcess(SETTINGS)
    authors = AuthorNames()
    message = _indicators(1, {})[0]
    batch = [(message.id, message.event, message.data)]
    try:
        child.submit(batch, NOW, PlannerState(), authors, go_on=False)
        child.result()  # started, its handlers set
        assert child.pid is not None
        os.kill(child.pid, signal.SIGINT)
        os.kill(child.pid, signal.SIGTERM)
        child.submit(batch, NOW, PlannerState(), authors, go_on=True)
        planned, _ = child.result()
        assert len(planned.actions) == 1
    finally:
        child.close()


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class BuggyPlanning(PlanningProcess):
    """A planning process whose answers raise what no failure of the child raises (a bug)."""

    def result(self) -> tuple[PlannedBatch, PlannerState]:
        super().result()
        raise KeyError("a bug in reading the answer")


def test_a_bug_in_the_planning_process_code_costs_a_replan_here_not_the_writer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = _indicators(12, {})
    planning = BuggyPlanning(SETTINGS)
    with caplog.at_level(logging.WARNING, logger="elastic_connector.shell.pipeline"):
        writer, store = _run(messages, batch=4, planning=planning)
    expected = _document_ids(messages)
    assert writer.calls == [expected[0:4], expected[4:8], expected[8:12]]
    assert store.state is not None
    assert store.state["start_from"] == messages[-2].id
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "KeyError('a bug in reading the answer') (a bug)" in warnings[0]
    assert not planning.running


@pytest.mark.parametrize("debug", [False, True], ids=["info", "debug"])
def test_a_child_bug_ends_it_quietly_with_its_status_and_a_traceback_only_at_debug(
    debug: bool,
) -> None:
    settings = pickle.dumps(SETTINGS)
    garbage = b"not msgpack of a request"
    frames = b"".join(len(f).to_bytes(4, "big") + f for f in (settings, garbage))
    child = subprocess.run(
        [sys.executable, "-m", "elastic_connector.shell.planning"],
        input=frames,
        capture_output=True,
        env={**os.environ, "ELASTIC_CONNECTOR_PLANNING_TRACEBACKS": "1" if debug else ""},
        timeout=WAIT,
        check=False,
    )
    assert child.returncode == 70
    assert child.stdout == b""
    if debug:
        assert b"Traceback" in child.stderr
        assert b"msgspec.ValidationError" in child.stderr
    else:
        assert child.stderr == b""
