"""Planning a batch of stream messages, in this process or in a second one.

``plan_batch`` is the writer's planning step: every data message through the core's
``plan_frame``, in order, the planner state and the authors' names carried from one message to
the next, a planner exception turned into a ``Skip`` of that one event (the core promises never
to raise; a bug that breaks the promise must cost one event, not the connector).

``PlanningProcess`` runs the same function in a child process
(``python -m elastic_connector.shell.planning``), so that while the writer thread waits for the
bulk answer of one batch, the next one is planned on another CPU instead of under the GIL the
writer and the stream reader share (``docs/performance.md`` §7). The child is a pure function
server: it owns no stream position, writes nothing and commits nothing; everything it returns is
applied by the writer thread exactly as if it had planned the batch itself, and the parent still
holds every message it sent, so a child that dies or answers nonsense costs a re-plan in this
process, never an event.

The protocol, over the child's stdin and stdout: frames of a 4-byte big-endian length and a
payload. The first frame is the pickled ``PlanSettings``; then each request is a msgpack
``_Request`` and each answer a msgpack ``PlannedBatch`` (the planner state, whose marking levels
are two enums msgpack cannot tell apart, travels pickled, and only when it changed).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import IO, Final

import msgspec

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]  # the pipes then keep their size

from elastic_connector.core.actions import Action, Skip
from elastic_connector.core.events import Plan, PlannerState, PlanSettings, plan_frame
from elastic_connector.core.stix import DATA_EVENTS
from elastic_connector.shell.authors import AuthorNames

Planner = Callable[[str, str, bytes, PlannerState, PlanSettings, datetime, Mapping[str, str]], Plan]
"""``core.events.plan_frame``'s shape (tests substitute a faulty one)."""

_LENGTH: Final = 4
PIPE_SIZE: Final = 1 << 20
"""Bytes each pipe to and from the child holds (Linux's default limit for a user)."""


class Learned(msgspec.Struct, frozen=True, array_like=True):
    """The identities one event carried and the authors it lacked (``Plan.authors``,
    ``Plan.missing_authors``), in event order: the writer's author cache takes them in."""

    authors: list[tuple[str, str]]
    missing: list[str]


class Failure(msgspec.Struct, frozen=True, array_like=True):
    """A planner exception (a bug): the event it cost, the exception and its traceback."""

    event_id: str
    error: str
    traceback: str


class PlannedBatch(msgspec.Struct, kw_only=True):
    """What planning a batch came to."""

    actions: list[Action] = msgspec.field(default_factory=list)
    origins: list[str] = msgspec.field(default_factory=list)
    """For each action, the id of the event it comes from (dead letters name it)."""
    other: int = 0
    """Data events that called for nothing (objects the mode does not export)."""
    learned: list[Learned] = msgspec.field(default_factory=list)
    failures: list[Failure] = msgspec.field(default_factory=list)
    state: bytes | None = None
    """The pickled planner state after the batch, when it differs from the one it began with
    (set by the child only; ``plan_batch`` returns the state itself)."""


def plan_batch(
    messages: Sequence[tuple[str, str, bytes]],
    state: PlannerState,
    settings: PlanSettings,
    now: datetime,
    names: Mapping[str, str],
    learn: Callable[[Plan], None],
    planner: Planner = plan_frame,
) -> tuple[PlannedBatch, PlannerState]:
    """Plan ``messages`` ((id, event, data), in stream order) from ``state``; ``learn`` is told
    each plan before the next message is planned (it may add to ``names``)."""
    batch = PlannedBatch()
    for event_id, event, data in messages:
        if event not in DATA_EVENTS:
            continue
        try:
            plan = planner(event_id, event, data, state, settings, now, names)
        except Exception as error:
            # A dead writer would stop the connector on this event, and again after every
            # restart, since its position is never committed.
            text = "".join(traceback.format_exception_only(error)).strip()
            batch.failures.append(Failure(event_id, text, traceback.format_exc()))
            batch.actions.append(
                Skip(event_id, "", "internal_error", f"planning raised {text} (a bug)")
            )
            batch.origins.append(event_id)
            continue
        state = plan.state
        learn(plan)
        batch.actions.extend(plan.actions)
        batch.origins.extend(event_id for _ in plan.actions)
        batch.other += not plan.actions
    return batch, state


# --- the parent's side ------------------------------------------------------------------------


class _Request(msgspec.Struct, frozen=True, array_like=True):
    now: datetime
    messages: list[tuple[str, str, bytes]]
    state: bytes | None
    """The pickled planner state, when it is not the one the child ended its last batch with."""
    names: dict[str, str] | None
    """The authors' names, when they changed since the last request."""


class PlanningProcessError(Exception):
    """The child died, or answered something that is not an answer; it is stopped."""


class PlanningProcess:
    """A child process that plans batches, one request at a time (see the module
    documentation). ``submit`` then ``result``, alternately, from one thread."""

    def __init__(self, settings: PlanSettings, command: Sequence[str] | None = None) -> None:
        """``command`` starts the child (tests start one with a faulty planner)."""
        self._command = list(command or (sys.executable, "-m", __name__))
        self._settings = pickle.dumps(settings)
        self._child: subprocess.Popen[bytes] | None = None
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(PlannedBatch)
        self._sent_state: PlannerState | None = None
        self._child_state: PlannerState | None = None
        self._names_source: AuthorNames | None = None
        self._names_version = 0
        self._waiting = False

    def submit(
        self,
        messages: Sequence[tuple[str, str, bytes]],
        state: PlannerState,
        now: datetime,
        authors: AuthorNames,
    ) -> None:
        """Send a batch to plan from ``state``, with the names ``authors`` knows."""
        if self._waiting:
            raise RuntimeError("submit before the last result was read")
        child = self._child or self._start()
        names_known = authors is self._names_source and authors.version == self._names_version
        request = _Request(
            now,
            list(messages),
            None if state is self._child_state else pickle.dumps(state),
            None if names_known else dict(authors.names),
        )
        self._sent_state = state
        self._names_source, self._names_version = authors, authors.version
        self._waiting = True
        try:
            _write_frame(_stdin(child), self._encoder.encode(request))
        except OSError as error:
            raise self._failed(f"could not send it a batch ({error})") from None

    def result(self) -> tuple[PlannedBatch, PlannerState]:
        """The planned batch last submitted and the state after it."""
        if not self._waiting or self._child is None:
            raise RuntimeError("result without a batch submitted")
        self._waiting = False
        try:
            frame = _read_frame(_stdout(self._child))
        except OSError as error:
            raise self._failed(f"could not read its answer ({error})") from None
        if frame is None:
            raise self._failed(f"it exited (status {self._child.wait()})")
        try:
            planned = self._decoder.decode(frame)
            state = self._sent_state if planned.state is None else _load_state(planned.state)
        except (msgspec.DecodeError, ValueError, TypeError, pickle.UnpicklingError) as error:
            raise self._failed(f"its answer is unreadable ({error})") from None
        assert state is not None  # set by submit
        self._child_state = state
        return planned, state

    def close(self) -> None:
        """Stop the child (it exits at the end of its input); a later ``submit`` starts one."""
        child, self._child = self._child, None
        self._child_state = None
        self._names_source = None
        self._waiting = False
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def _start(self) -> subprocess.Popen[bytes]:
        # stderr is the connector's own: only a crash of the interpreter itself writes there
        # (the child catches and returns everything it can).
        child = subprocess.Popen(  # noqa: S603  (our own module, or a test's, with this Python)
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._child = child
        self._child_state = PlannerState()
        for stream in (_stdin(child), _stdout(child)):
            _widen(stream)
        try:
            _write_frame(_stdin(child), self._settings)
        except OSError as error:
            raise self._failed(f"could not start it ({error})") from None
        return child

    def _failed(self, why: str) -> PlanningProcessError:
        if self._child is not None:
            self._child.kill()
        self.close()
        return PlanningProcessError(f"the planning process failed: {why}")


def _widen(stream: IO[bytes]) -> None:
    """Make the pipe hold a whole batch (Linux; elsewhere, or above the system's limit, the
    pipe keeps its size). With the default 64 KiB, a batch crosses in a dozen reads, and the
    writer thread waits for the GIL again after each (up to a 5 ms switch interval while the
    stream reader holds it): that cost more than the planning it moved away."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(stream.fileno(), set_size, PIPE_SIZE)


def _load_state(data: bytes) -> PlannerState:
    state = pickle.loads(data)  # noqa: S301  (our own process's answer, on a pipe only we hold)
    if not isinstance(state, PlannerState):
        raise TypeError(f"a {type(state).__name__} instead of the planner state")
    return state


def _stdin(child: subprocess.Popen[bytes]) -> IO[bytes]:
    assert child.stdin is not None  # Popen(stdin=PIPE)
    return child.stdin


def _stdout(child: subprocess.Popen[bytes]) -> IO[bytes]:
    assert child.stdout is not None  # Popen(stdout=PIPE)
    return child.stdout


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(len(payload).to_bytes(_LENGTH, "big"))
    stream.write(payload)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame, or None at the end of the stream (also in the middle of a frame)."""
    head = stream.read(_LENGTH)
    if len(head) < _LENGTH:
        return None
    size = int.from_bytes(head, "big")
    payload = stream.read(size)
    return payload if len(payload) == size else None


# --- the child's side -------------------------------------------------------------------------


class _Learner:
    """The child's copy of the parent's author cache, for one batch at a time."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.learned: list[Learned] = []

    def learn(self, plan: Plan) -> None:
        if plan.authors or plan.missing_authors:
            # The parent's cache learns them in the same order, after the batch; this copy
            # learns them now, for the rest of the batch, as the parent's does when it plans a
            # batch itself.
            self.names.update(plan.authors)
            self.learned.append(Learned(list(plan.authors), list(plan.missing_authors)))


def serve(source: IO[bytes], sink: IO[bytes], planner: Planner = plan_frame) -> None:
    """Plan the batches read from ``source`` until it ends, answering on ``sink``."""
    first = _read_frame(source)
    if first is None:
        return
    settings = pickle.loads(first)  # noqa: S301  (from the parent that started us, on our stdin)
    decoder = msgspec.msgpack.Decoder(_Request)
    encoder = msgspec.msgpack.Encoder()
    state = PlannerState()
    learner = _Learner()
    while (frame := _read_frame(source)) is not None:
        request = decoder.decode(frame)
        if request.state is not None:
            state = _load_state(request.state)
        if request.names is not None:
            learner.names = request.names
        learner.learned = []
        before = state
        planned, state = plan_batch(
            request.messages, state, settings, request.now, learner.names, learner.learn, planner
        )
        planned.learned = learner.learned
        if state is not before:
            planned.state = pickle.dumps(state)
        _write_frame(sink, encoder.encode(planned))


def main(planner: Planner = plan_frame) -> None:
    """The child: requests on stdin, answers on stdout (and nothing else there)."""
    source = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # A stray print must not corrupt the answers.
    sys.stdout = sys.stderr
    # The parent gone or stopping (a broken pipe, ^C in its terminal): nothing to answer.
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(source, sink, planner)


if __name__ == "__main__":
    main()
