"""Planning a batch of stream messages, in this process or in a second one.

``plan_batch`` is the writer's planning step: every data message through the core's
``plan_frame``, in order, the planner state and the authors' names carried from one message to
the next, a planner exception turned into a ``Skip`` of that one event (the core promises never
to raise; a bug that breaks the promise must cost one event, not the connector).

``PlanningProcess`` runs the same function in a child process
(``python -m elastic_connector.shell.planning``), so that while the writer thread waits for the
bulk answer of one batch, the next one is planned on another CPU instead of under the GIL the
writer and the stream reader share (``docs/performance.md`` §7b). The child is a pure function
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
import ctypes
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
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

_log = logging.getLogger(__name__)

Planner = Callable[[str, str, bytes, PlannerState, PlanSettings, datetime, Mapping[str, str]], Plan]
"""``core.events.plan_frame``'s shape (tests substitute a faulty one)."""

_LENGTH: Final = 4
_PR_SET_PDEATHSIG: Final = 1
_PARENT_ENV: Final = "ELASTIC_CONNECTOR_PLANNING_PARENT"
_TRACEBACKS_ENV: Final = "ELASTIC_CONNECTOR_PLANNING_TRACEBACKS"
_BUG_STATUS: Final = 70
"""The child's exit status after an exception of its own (``EX_SOFTWARE``)."""
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
        batch.origins += [event_id] * len(plan.actions)
        batch.other += not plan.actions
    return batch, state


# --- the parent's side ------------------------------------------------------------------------


class _Request(msgspec.Struct, frozen=True, array_like=True):
    now: datetime
    messages: list[tuple[str, str, bytes]]
    state: bytes | None
    """The pickled planner state to start from; None: go on from the end of the last batch."""
    names: list[tuple[str, str]] | None
    """The authors' names to start from (least recently learnt first); None: go on with the
    names as the last batch left them."""


class PlanningProcessError(Exception):
    """The child died, or answered something that is not an answer; it is stopped."""


class PlanningProcess:
    """A child process that plans batches (see the module documentation), at most ``AHEAD``
    sent and not yet answered; one thread calls ``submit`` and ``result``."""

    AHEAD: Final = 2

    def __init__(self, settings: PlanSettings, command: Sequence[str] | None = None) -> None:
        """``command`` starts the child (tests start one with a faulty planner)."""
        self._command = list(command or (sys.executable, "-m", __name__))
        self._settings = pickle.dumps(settings)
        self._child: subprocess.Popen[bytes] | None = None
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(PlannedBatch)
        self._in_flight: deque[PlannerState | None] = deque()
        """The state each batch sent starts from; None: where the batch before it ended."""
        self._end = PlannerState()
        """The state the last batch answered ended with."""
        self._has_basis = False

    @property
    def running(self) -> bool:
        """Whether the child is running (started by the first ``submit``)."""
        return self._child is not None

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        return None if self._child is None else self._child.pid

    def submit(
        self,
        messages: Sequence[tuple[str, str, bytes]],
        now: datetime,
        state: PlannerState,
        authors: AuthorNames,
        *,
        go_on: bool,
    ) -> None:
        """Send a batch to plan. ``go_on``: the child goes on from the end of the batch sent
        before (its state and the names it learnt: exactly the caller's once it has taken
        that batch's plan in, unless it planned something itself meanwhile); otherwise, and
        always for a new child, it starts from ``state`` and the names ``authors`` knows."""
        child = self._child or self._start()
        if len(self._in_flight) >= self.AHEAD:
            raise RuntimeError(f"more than {self.AHEAD} batches sent ahead")
        explicit = not (go_on and self._has_basis)
        request = _Request(
            now,
            list(messages),
            pickle.dumps(state) if explicit else None,
            list(authors.names.items()) if explicit else None,
        )
        self._in_flight.append(state if explicit else None)
        self._has_basis = True
        try:
            # The child reads requests as they come (a thread of its own), so this write never
            # waits on the child writing an answer nobody reads yet.
            _write_frame(_stdin(child), self._encoder.encode(request))
        except OSError as error:
            raise self._failed(f"could not send it a batch ({error})") from None

    def result(self) -> tuple[PlannedBatch, PlannerState]:
        """The oldest batch sent and not yet answered, planned, and the state after it."""
        if not self._in_flight:
            raise RuntimeError("result without a batch sent")
        begin = self._in_flight.popleft()
        if self._child is None:
            raise PlanningProcessError("the planning process is not running")
        try:
            frame = _read_frame(_stdout(self._child))
        except OSError as error:
            raise self._failed(f"could not read its answer ({error})") from None
        if frame is None:
            raise self._failed(f"it exited (status {self._child.wait()})")
        try:
            planned = self._decoder.decode(frame)
            if len(planned.origins) != len(planned.actions):
                raise ValueError("not one origin per action")
            start = self._end if begin is None else begin
            state = start if planned.state is None else _load_state(planned.state)
        except (msgspec.DecodeError, ValueError, TypeError, pickle.UnpicklingError) as error:
            raise self._failed(f"its answer is unreadable ({error})") from None
        self._end = state
        return planned, state

    def close(self) -> None:
        """Stop the child (it exits at the end of its input), dropping what it was sent; a
        later ``submit`` starts a new one."""
        child, self._child = self._child, None
        self._has_basis = False
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                # Closing flushes what a failed write left in the buffer: a dead child's
                # pipe refuses it, and there is nothing left to tell it.
                with contextlib.suppress(OSError):
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
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={
                **os.environ,
                _PARENT_ENV: str(os.getpid()),
                _TRACEBACKS_ENV: "1" if _log.isEnabledFor(logging.DEBUG) else "",
            },
        )
        self._child = child
        self._in_flight.clear()
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
    """The child's author cache: the parent's, kept in step by learning the same names in the
    same order (the parent takes in ``learned`` after each batch)."""

    def __init__(self, names: Sequence[tuple[str, str]] = ()) -> None:
        self.authors = AuthorNames()
        self.authors.learn_parts(names, ())
        self.learned: list[Learned] = []

    def learn(self, plan: Plan) -> None:
        if plan.authors or plan.missing_authors:
            self.authors.learn(plan)
            self.learned.append(Learned(list(plan.authors), list(plan.missing_authors)))


def _requests(source: IO[bytes], into: queue.SimpleQueue[bytes | None]) -> None:
    """Read requests as they come, so the parent's writes never wait on our answers."""
    try:
        while (frame := _read_frame(source)) is not None:
            into.put(frame)
    finally:
        into.put(None)


def serve(source: IO[bytes], sink: IO[bytes], planner: Planner = plan_frame) -> None:
    """Plan the batches read from ``source`` until it ends, answering on ``sink``."""
    first = _read_frame(source)
    if first is None:
        return
    settings = pickle.loads(first)  # noqa: S301  (from the parent that started us, on our stdin)
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_requests, args=(source, requests), daemon=True).start()
    decoder = msgspec.msgpack.Decoder(_Request)
    encoder = msgspec.msgpack.Encoder()
    state = PlannerState()
    learner = _Learner()
    while (frame := requests.get()) is not None:
        request = decoder.decode(frame)
        if request.state is not None:
            state = _load_state(request.state)
        if request.names is not None:
            learner = _Learner(request.names)
        learner.learned = []
        before = state
        planned, state = plan_batch(
            request.messages,
            state,
            settings,
            request.now,
            learner.authors.names,
            learner.learn,
            planner,
        )
        planned.learned = learner.learned
        if state is not before:
            planned.state = pickle.dumps(state)
        _write_frame(sink, encoder.encode(planned))


def _die_with_the_writer() -> None:
    """Linux: be killed when the thread that started us ends (the connector's writer, or the
    whole connector), so a batch that never finishes planning (a core bug) cannot keep this
    process running after the connector is gone. Elsewhere the end of stdin is all there is."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.environ.get(_PARENT_ENV) not in (None, str(os.getppid())):
        os._exit(0)  # the connector ended before the line above: nobody will ever read us


def main(planner: Planner = plan_frame) -> None:
    """The child: requests on stdin, answers on stdout (and nothing else there)."""
    _die_with_the_writer()
    # ^C in a terminal, or a service manager's SIGTERM to the whole group, is the connector's
    # to act on: it drains, then closes our stdin, and we end there.
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    source = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # A stray print must not corrupt the answers.
    sys.stdout = sys.stderr
    try:
        serve(source, sink, planner)
    except BrokenPipeError:
        pass  # the parent is gone: nothing to answer
    except Exception:
        # A bug here. The connector logs that we exited, and plans the batch itself; our
        # traceback goes to its stderr only when it logs at debug (tracebacks are for debug).
        if os.environ.get(_TRACEBACKS_ENV):
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(_BUG_STATUS)


if __name__ == "__main__":
    main()
