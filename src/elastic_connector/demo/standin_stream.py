"""The stand-in platform's live stream: its event log (a bounded Redis stream) and what one SSE
connection is sent, the way OpenCTI's ``sseMiddleware.js`` and ``redis-stream.ts`` serve it
(``shared/reference/opencti.md``, "The stream" and "Platform behaviours a connector must
survive"; both files read with the search tools, late 2026).

A stand-in kinder than the platform hides connector bugs, so each of these platform behaviours
is reproduced; those a test may want to turn off (to show what goes wrong without the fix) are
``StreamSwitches``, on by default where the platform always behaves so:

* recovery and dependency frames carry only ``{data, message, origin, version}``
  (``platform_envelopes``);
* before an event, the objects it refers to (marking, author...) that this connection was not
  sent yet come as ``create`` frames carrying the event's own id, even with
  ``no-dependencies: true`` (``dependencies``; ``resolveAndPublishMissingRefs``); the heartbeat
  timer may fire between them and the event (``heartbeat_in_groups`` makes it fire there);
* a read that finds nothing sets the connection's position to the host clock, ``<now ms>-0``,
  which the next heartbeat carries (``clock_heartbeats``; ``processStreamResult``);
* the recovery replay re-reads each object as it sends it: the frame id is the object's current
  update time, later than the recovery date for an object edited meanwhile;
* the log is trimmed to a maximum length (``redis.trimming``, 2 000 000 by default); reading
  after a trimmed id silently starts at the oldest kept event, and ``connected.firstEventId``
  says which (``StreamLog``);
* a collection with filters turns an update into ``delete`` (the object left the filters) or
  ``create`` (it entered them) while the JSON ``type`` still says ``update``, and leaves out
  what its filters do not match;
* no ``retry:`` line (the stand-in sends one only when asked to).

An object's "update time" in the stand-in is the time of its last event.
"""

from __future__ import annotations

import bisect
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple

import msgspec

from elastic_connector.core.stream import StreamId
from elastic_connector.demo.opencti_data import DATA_EVENTS, Json, iso_ms
from elastic_connector.demo.standin_graphql import PlatformState, Stored

__all__ = [
    "DEFAULT_TRIMMING",
    "Channel",
    "Connection",
    "LogEntry",
    "StreamControls",
    "StreamLog",
    "StreamSwitches",
    "Visibility",
    "create_message",
    "encode_frame",
    "object_refs",
]

BATCH: Final = 500
"""Entries per read (and chunk written to a connection)."""
DEFAULT_TRIMMING: Final = 2_000_000
"""``redis.trimming`` in the platform's ``config/default.json``: the stream's maximum length."""
_MEMBER_REFS: Final = ("object_refs",)
"""Container contents: the platform sends them too, but they are no dependency of a marking."""

_enc = msgspec.json.encode
_decode_json = msgspec.json.Decoder(Json)

Visibility = Callable[[Json], bool]
"""A collection's filters: whether a STIX object matches them."""


class StreamSwitches(msgspec.Struct, frozen=True, kw_only=True):
    """The platform behaviours a test may turn off or force (see the module documentation)."""

    platform_envelopes: bool = True
    """Recovery and dependency frames without ``type``/``scope``; False adds both (kinder)."""
    dependencies: bool = True
    """Send the objects an event refers to before it, under its id; False never does (kinder)."""
    heartbeat_in_groups: bool = False
    """A heartbeat between every event's dependencies and the event (the platform's timer
    fires there only sometimes)."""
    clock_heartbeats: bool = True
    """An idle read moves the position to ``<now ms>-0``; False keeps the last event's id
    (kinder)."""


class LogEntry(NamedTuple):
    """One event of the log, its SSE frame already encoded."""

    id: StreamId
    kind: str
    frame: bytes
    data_start: int
    """``frame[data_start:-2]`` is the frame's data."""
    stix_id: str = ""
    refs: tuple[str, ...] = ()
    """The ids the object refers to (sent before it as dependencies)."""
    previous: Stored | None = None
    """An update's object before it (what a collection's filters matched)."""

    @property
    def data(self) -> bytes:
        return self.frame[self.data_start : -2]


def encode_frame(event_id: StreamId, event: str, data: bytes) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (str(event_id).encode(), event.encode(), data)


def frame_header_size(event_id: StreamId, event: str) -> int:
    """Where ``data`` starts in ``encode_frame(event_id, event, data)``."""
    return len(b"id: \nevent: \ndata: ") + len(str(event_id)) + len(event.encode())


def object_refs(stix_object: Mapping[str, object]) -> tuple[str, ...]:
    """The ids a STIX object refers to (``*_ref``/``*_refs`` properties, as the platform's
    ``stixRefsExtractor``), in order, without duplicates."""
    refs: list[str] = []
    for key, value in stix_object.items():
        if key in _MEMBER_REFS:
            continue
        if key.endswith("_ref") and isinstance(value, str):
            refs.append(value)
        elif key.endswith("_refs") and isinstance(value, list):
            refs.extend(item for item in value if isinstance(item, str))
    return tuple(dict.fromkeys(refs))


def create_message(stix_object: Mapping[str, object], verb: str = "creates") -> str:
    """The platform's event message, ``creates a Indicator `1.2.3.4```."""
    extensions = stix_object.get("extensions")
    extension = (
        next((e for e in extensions.values() if isinstance(e, Mapping) and e.get("type")), None)
        if isinstance(extensions, Mapping)
        else None
    )
    stix_type = str(stix_object.get("type", ""))
    entity = (
        str(extension["type"])
        if extension is not None
        else stix_type.replace("-", " ").title().replace(" ", "-")
    )
    label = stix_object.get("name") or stix_object.get("value") or stix_object.get("id")
    return f"{verb} a {entity} `{label}`"


class StreamLog:
    """The platform's Redis stream: ``<ms>-<seq>`` ids that only grow, trimmed to
    ``max_length`` entries (None: never). Cursors are absolute positions, so trimming does not
    move them; a cursor below the oldest kept entry reads from that entry, as ``XREAD`` does."""

    def __init__(self, max_length: int | None = DEFAULT_TRIMMING) -> None:
        self.entries: list[LogEntry] = []
        self.trimmed = 0
        self.max_length = max_length
        self._last: StreamId | None = None

    def next_id(self, at_ms: int | None) -> StreamId:
        """The id of the next event: at ``at_ms`` (which must not go back), else now."""
        last = self._last
        ms = int(time.time() * 1000) if at_ms is None else at_ms
        if last is None:
            return StreamId(ms, 0)
        if at_ms is not None and ms < last.ms:
            raise ValueError(f"stream ids must grow: {ms} is before {last}")
        ms = max(ms, last.ms)
        return StreamId(ms, last.seq + 1 if ms == last.ms else 0)

    def append(self, entry: LogEntry) -> None:
        self.entries.append(entry)
        self._last = entry.id
        if self.max_length is not None and len(self.entries) > self.max_length:
            excess = len(self.entries) - self.max_length
            del self.entries[:excess]
            self.trimmed += excess

    @property
    def first_id(self) -> StreamId | None:
        return self.entries[0].id if self.entries else None

    @property
    def last_id(self) -> StreamId | None:
        return self._last

    @property
    def end(self) -> int:
        """The cursor after the last entry."""
        return self.trimmed + len(self.entries)

    def cursor_after(self, position: StreamId) -> int:
        """The cursor of the first entry after ``position`` (numeric comparison)."""
        return self.trimmed + bisect.bisect_right(self.entries, position, key=lambda e: e.id)

    def read(self, cursor: int, count: int = BATCH) -> tuple[list[LogEntry], int]:
        """Up to ``count`` entries from ``cursor`` (trimmed ones silently skipped), and the
        cursor after them."""
        start = max(cursor, self.trimmed) - self.trimmed
        batch = self.entries[start : start + count]
        return batch, self.trimmed + start + len(batch)


class StreamControls:
    """What tests change on a running stand-in, shared by its connections (guarded by the
    stand-in's condition)."""

    def __init__(self) -> None:
        self.heartbeats = True
        self.stopping = False
        self.event_delay = 0.0
        """Seconds waited after each recovered object, dependency and live read, when the
        request sets no ``delay`` (the platform's ``delay`` option slows a channel down)."""
        self.held: set[StreamId] = set()
        """Events whose connection stops after their dependencies until released."""
        self.reached: list[StreamId] = []
        """Held events a connection has stopped at (the group is half sent)."""


class Connection:
    """One open stream response."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dropped = False
        self.graceful = False


class Channel:
    """What one stream connection is sent (``sseMiddleware.js``'s ``liveStreamHandler`` for
    ``/stream/<id>``; ``genericStreamHandler``, without recovery or dependencies, for
    ``/stream``). ``write`` sends bytes to the client; ``cond`` guards the log, the platform
    and the controls."""

    def __init__(
        self,
        *,
        cond: threading.Condition,
        log: StreamLog,
        platform: PlatformState,
        controls: StreamControls,
        switches: StreamSwitches,
        connection: Connection,
        write: Callable[[bytes], None],
        heartbeat_interval: float,
        live: bool,
        listen_delete: bool,
        visible: Visibility | None,
        delay: float | None,
    ) -> None:
        self._cond = cond
        self._log = log
        self._platform = platform
        self._controls = controls
        self._switches = switches
        self._connection = connection
        self._write = write
        self._interval = heartbeat_interval
        self._live = live
        self._listen_delete = listen_delete
        self._visible = visible
        self._delay = delay
        self._pending: list[bytes] = []
        self._sent: set[str] = set()
        """The platform's per-connection cache of objects already sent."""
        self.last_id: StreamId | None = None
        self._next_beat = time.monotonic() + heartbeat_interval

    # --- serving -------------------------------------------------------------------------

    def serve(
        self,
        start: StreamId | None,
        *,
        recover_ms: int | None,
        recover_supported: bool,
        retry_ms: int | None,
    ) -> None:
        """Greet, replay the knowledge base if asked, then follow the log until the client
        leaves, the connection is dropped or the stand-in stops."""
        with self._cond:
            first, last = self._log.first_id, self._log.last_id
            size = len(self._log.entries)
        hello = _enc(
            {
                "lastEventId": str(last or StreamId(0, 0)),
                "firstEventId": str(first or StreamId(0, 0)),
                "streamSize": size,
                "connectionId": str(uuid.uuid4()),
            }
        )
        opening = b"retry: %d\n\n" % retry_ms if retry_ms is not None else b""
        self._write(opening + b"event: connected\ndata: " + hello + b"\n\n")
        self.last_id = start
        live_from = start
        if self._live and recover_ms is not None and start is not None and recover_ms > start.ms:
            if not recover_supported:
                self._emit(start, "no-recover", _enc("Recovery is not supported for this stream"))
                self._flush()
            elif not self._recover(start.ms, recover_ms):
                return
            else:
                live_from = StreamId(recover_ms, 0)
        self._follow(live_from)

    def _recover(self, start_ms: int, recover_ms: int) -> bool:
        """The knowledge base updated in (start, recovery date], as ``create`` frames
        (``origin.referer: init-create``), each object read when it is sent."""
        with self._cond:
            chosen = sorted(
                (stored.ms, stix_id)
                for stix_id, stored in self._platform.objects.items()
                if start_ms < stored.ms <= recover_ms
            )
        for count, (_, stix_id) in enumerate(chosen, 1):
            if self._closed():
                return False
            with self._cond:
                stored = self._platform.objects.get(stix_id)
            if stored is None or stix_id in self._sent:
                continue
            stix = stored.stix
            event_id = StreamId(stored.ms, 0)
            if not self._dependencies(event_id, object_refs(_decode_json.decode(stix))):
                return False
            self._emit(event_id, "create", self._built("create", stix, "init-create"))
            self._sent.add(stix_id)
            delay = self._delay_seconds()
            if (count % BATCH == 0 or delay) and not self._pause(delay):
                return False
        return self._pause(0.0)

    def _follow(self, live_from: StreamId | None) -> None:
        """The live part: every read's events, then the position moves to the read's last id
        (events filtered out for this consumer included); a read that finds nothing moves it
        to the clock. Heartbeats carry the position."""
        with self._cond:
            cursor = self._log.end if live_from is None else self._log.cursor_after(live_from)
        read_since_beat = False
        while True:
            with self._cond:
                while (
                    cursor >= self._log.end
                    and not self._closed_locked()
                    and time.monotonic() < self._next_beat
                ):
                    self._cond.wait(max(0.0, self._next_beat - time.monotonic()))
                if self._closed_locked():
                    break
                batch, cursor = self._log.read(cursor)
            if batch:
                for entry in batch:
                    if not self._live_entry(entry):
                        return
                self._flush()
                self.last_id = batch[-1].id
                read_since_beat = True
                if self._delay_seconds() and not self._pause(self._delay_seconds()):
                    return
            if time.monotonic() >= self._next_beat:
                if not read_since_beat and self._switches.clock_heartbeats:
                    # A whole period without events: the blocking read came back empty, and
                    # redis-stream.ts made the position ``<Date.now()>-0`` (where the next
                    # read starts too).
                    self.last_id = StreamId(int(time.time() * 1000), 0)
                self._beat()
                read_since_beat = False
        if self._connection.graceful and not self._controls.stopping:
            self._flush()
            self._write(b"")  # an empty chunk: the end of the response

    def _live_entry(self, entry: LogEntry) -> bool:
        """Send one log entry as this connection sees it; False when the connection closed
        while the entry's group was held."""
        kind = entry.kind
        if not self._live or kind not in DATA_EVENTS:
            # /stream (genericStreamHandler) sends the log as it is; other names pass.
            self._emit(entry.id, kind, entry.data, entry.frame)
            return True
        event = kind if self._visible is None else self._filtered(entry)
        if event is None:
            return True
        if event == "delete":
            if self._listen_delete:
                self._emit(entry.id, event, entry.data, entry.frame if event == kind else None)
                self._sent.add(entry.stix_id)
            return True
        if not self._dependencies(entry.id, entry.refs):
            return False
        self._emit(entry.id, event, entry.data, entry.frame if event == kind else None)
        self._sent.add(entry.stix_id)
        return True

    def _filtered(self, entry: LogEntry) -> str | None:
        """The event name a collection sends for ``entry``, or None when it sends nothing."""
        visible = self._visible
        assert visible is not None
        try:
            current = _decode_json.decode(entry.data).get("data")
        except msgspec.DecodeError:
            return entry.kind  # a malformed frame a test published: sent as it is
        now = isinstance(current, dict) and visible(current)
        if entry.kind != "update":
            return entry.kind if now else None
        before = _decode_json.decode(entry.previous.stix) if entry.previous else None
        was = before is not None and visible(before)
        if was and not now:
            return "delete"  # left the filters: the JSON still says "update"
        if now and not was:
            return "create"  # entered them
        return "update" if now else None

    def _dependencies(self, event_id: StreamId, refs: tuple[str, ...]) -> bool:
        """Send what ``refs`` name that this connection was not sent yet (their own references
        first), as ``create`` frames with ``event_id``; then hold if the test asked."""
        if self._live and self._switches.dependencies and refs:
            missing = self._missing(refs, set())
            for stix_id, stix in missing:
                self._emit(event_id, "create", self._built("create", stix, "init-dependencies"))
                self._sent.add(stix_id)
            if missing and self._switches.heartbeat_in_groups:
                self._emit(event_id, "heartbeat", _enc(iso_ms(event_id.ms)))
        with self._cond:
            held = event_id in self._controls.held
            if held:
                self._controls.reached.append(event_id)
        if held:
            self._flush()
            with self._cond:
                self._cond.notify_all()
            return self._pause(None, until=lambda: event_id not in self._controls.held)
        return True

    def _missing(self, refs: tuple[str, ...], seen: set[str]) -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        for ref in refs:
            if ref in self._sent or ref in seen:
                continue
            seen.add(ref)
            with self._cond:
                stored = self._platform.objects.get(ref)
            if stored is None:
                continue
            stix = stored.stix
            found.extend(self._missing(object_refs(_decode_json.decode(stix)), seen))
            found.append((ref, stix))
        return found

    # --- frames and time -------------------------------------------------------------------

    def _built(self, event: str, stix: bytes, referer: str) -> bytes:
        """A frame the live stream builds itself: ``{data, message, origin, version}``."""
        message = _enc(create_message(_decode_json.decode(stix)))
        kinder = b'"type":%s,"scope":"external",' % _enc(event)
        return b"".join(
            [
                b"{",
                b"" if self._switches.platform_envelopes else kinder,
                b'"data":',
                stix,
                b',"message":',
                message,
                b',"origin":{"referer":',
                _enc(referer),
                b'},"version":"4"}',
            ]
        )

    def _emit(
        self, event_id: StreamId, event: str, data: bytes, frame: bytes | None = None
    ) -> None:
        """Queue a frame; like the platform's ``sendEvent``, it becomes the position."""
        self._pending.append(frame if frame is not None else encode_frame(event_id, event, data))
        self.last_id = event_id

    def _flush(self) -> None:
        if self._pending:
            self._write(b"".join(self._pending))
            self._pending = []

    def _beat(self) -> None:
        """The heartbeat timer: the position as a heartbeat, when there is one."""
        self._next_beat = time.monotonic() + self._interval
        with self._cond:
            enabled = self._controls.heartbeats
        if enabled and self.last_id is not None:
            self._emit(self.last_id, "heartbeat", _enc(iso_ms(self.last_id.ms)))
        self._flush()

    def _pause(self, seconds: float | None, until: Callable[[], bool] | None = None) -> bool:
        """Send what is pending, then wait ``seconds`` (or until ``until()``), sending
        heartbeats as they fall due; False when the connection closed meanwhile."""
        self._flush()
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            with self._cond:
                while True:
                    if self._closed_locked():
                        return False
                    if until is not None and until():
                        return True
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        return True
                    if now >= self._next_beat:
                        break
                    wake = self._next_beat if deadline is None else min(deadline, self._next_beat)
                    self._cond.wait(max(0.0, wake - now))
            self._beat()

    def _delay_seconds(self) -> float:
        if self._delay is not None:
            return self._delay
        with self._cond:
            return self._controls.event_delay

    def _closed_locked(self) -> bool:
        return self._connection.dropped or self._controls.stopping

    def _closed(self) -> bool:
        with self._cond:
            return self._closed_locked()
