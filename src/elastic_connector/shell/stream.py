"""Our reader of the OpenCTI live stream (server-sent events over HTTP).

Why not pycti's ``ListenStream``: it sends SIGTERM to the whole process when a callback raises,
when one reconnect fails, when the platform answers 401/410/500, and when a callback blocks for
more than 45 s; its batch wrapper buffers without bound. A threat-intel feed must wait out
platform restarts and token fixes instead, and must slow the stream down (not buffer it) while
Elasticsearch is busy.

``StreamReader`` runs one thread that:

* asks for the stream exactly as pycti does (same URL, headers and state keys, see
  ``core.stream.position``), so switching readers keeps the saved position;
* puts every frame that has an id into a bounded ``queue.Queue`` as a ``StreamMessage``:
  data events (``create``/``update``/``delete``/``merge``) and the platform's other named events
  (``heartbeat``, ``consumer_metrics``...), for the consumer to filter on ``event``; frames of
  the first start's recovery replay are marked (``recovery``), as they carry no position;
* when the queue is full it stops reading, which back-pressures the TCP stream; but the
  platform does not wait for a socket to drain (it buffers the stream in memory), so after
  ``queue_full_timeout`` it disconnects, and reconnects once the queue has room (except
  during the recovery replay, which a reconnect would start again);
* never dies: on a silent connection (no byte for ``read_timeout``), end of stream, network
  error or 5xx it reconnects with capped exponential backoff and jitter; on 401 (token lacks
  rights, or no such live stream) or 410 (live stream stopped) it logs what to fix and keeps
  retrying at the longest delay, so an operator can fix OpenCTI without a restart;
* reconnects from a position that loses nothing (``core.stream.progress``): never inside a
  group of frames sharing one id, a heartbeat's clock id stepped back by ``heartbeat_margin``,
  and during the recovery replay the original start and recovery date;
* reports a gap when the platform no longer holds the events after the requested position
  (``connected.firstEventId``): a warning, and ``on_gap`` for whoever must repair the index.

The reader does not save the position: the consumer commits, through the connector state, the
position its acknowledged messages allow (``position_state``).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Final

import certifi
import msgspec
import urllib3
from urllib3.exceptions import HTTPError, ReadTimeoutError

from elastic_connector.core.backoff import backoff_delay
from elastic_connector.core.config import Config, Secret
from elastic_connector.core.stix import DATA_EVENTS
from elastic_connector.core.stream import SseDecoder, SseFrame, feed
from elastic_connector.core.stream.frames import (
    ConnectedInfo,
    Recovery,
    next_recovery,
    read_connected,
    recovery_of,
    trimmed_gap,
)
from elastic_connector.core.stream.ids import is_after
from elastic_connector.core.stream.position import StreamPosition, stream_headers, stream_url
from elastic_connector.core.stream.progress import (
    StreamProgress,
    observe,
    resume_position,
    skip_past,
    start_progress,
)

_log = logging.getLogger(__name__)

_READ_SIZE: Final = 64 * 1024
_PUT_POLL: Final = 0.2  # seconds between checks for stop() while the queue is full
NO_RECOVER_EVENT: Final = "no-recover"
"""The platform will not replay history for this stream (handled here, never queued)."""
CONNECTED_EVENT: Final = "connected"


class StreamMessage(msgspec.Struct, frozen=True):
    """One stream frame that carries an id.

    ``event`` is the SSE event name: ``create``, ``update``, ``delete`` and ``merge`` carry a
    STIX object in ``data`` (raw JSON bytes); ``heartbeat`` and other names carry nothing to
    index, but their id tells how far the platform has read (past events it filtered out for
    this consumer; an idle read's clock).

    ``recovery``: a frame of the first start's replay of the knowledge base (or a heartbeat
    during it); its id is an object's update time, no stream position.
    """

    id: str
    event: str
    data: bytes
    recovery: bool = False


class StreamGap(msgspec.Struct, frozen=True):
    """The stream was resumed from ``saved_position`` but the platform's oldest kept event is
    ``first_event_id``: the events in between were trimmed and are lost, deletions included."""

    saved_position: str
    first_event_id: str


class StreamReaderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the reader needs to know; ``from_config`` builds it from the settings."""

    url: str
    """The platform's base URL (``https://opencti.example.org``)."""
    token: Secret
    live_stream_id: str | None = None
    listen_delete: bool = True
    no_dependencies: bool = True
    with_inferences: bool = False
    ssl_verify: bool = True
    ca_certs: str | None = None
    """A CA bundle file; by default the one requests (and so pycti) uses."""
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    """Reconnect when no byte arrives for this long (the platform sends heartbeats every 5 s)."""
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_frame_bytes: int = 64 * 1024 * 1024
    """A frame larger than this is skipped (logged with its id) instead of exhausting memory."""
    heartbeat_margin: float = 60.0
    """Seconds a position taken from a heartbeat is moved back (``core.stream.progress``)."""
    queue_full_timeout: float = 30.0
    """Disconnect when the queue stays full this long (the platform would buffer the stream)."""

    @classmethod
    def from_config(cls, config: Config) -> StreamReaderSettings:
        """Reader settings from the connector configuration."""
        connector = config.connector
        return cls(
            url=config.opencti.url,
            token=config.opencti.token,
            live_stream_id=connector.live_stream_id,
            listen_delete=connector.live_stream_listen_delete,
            no_dependencies=connector.live_stream_no_dependencies,
            with_inferences=connector.live_stream_with_inferences,
            ssl_verify=config.opencti.ssl_verify,
            ca_certs=config.opencti.ca_certs,
            heartbeat_margin=connector.stream_heartbeat_margin,
            queue_full_timeout=connector.stream_queue_full_timeout,
        )


class ReaderStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot for health checks and metrics."""

    connected: bool
    last_event_id: str
    recover_until: str | None
    resume_from: str
    """Where the next connection starts (a position that loses nothing)."""
    recovering: bool
    """The recovery replay of a first start is being read."""
    gaps: int
    """Gaps reported since start (``StreamGap``)."""
    last_gap: StreamGap | None
    connections: int
    """Successful connections since start (1 + reconnections)."""
    consecutive_failures: int
    """Connection attempts that failed since the last successful one."""
    last_error: str | None
    stream_info: ConnectedInfo | None = None
    """What the platform said of its event stream when the last connection opened."""


class _Outcome(msgspec.Struct, frozen=True):
    """How one connection ended."""

    error: str | None
    received: bool = False
    """At least one frame with an id arrived (the connection was healthy)."""
    slow_retry: bool = False
    """Retrying soon is pointless (401, 410, 4xx): wait the longest delay."""
    stalled: bool = False
    """Disconnected because the queue stayed full: reconnect once it has room."""


class _StopReading(Exception):
    """stop() or restart_from() was called while a message waited for queue space."""


class _FrameTooLarge(Exception):
    pass


class _QueueStalled(Exception):
    """The queue stayed full for ``queue_full_timeout``."""


def _proxy_for(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``/``NO_PROXY``...) sets for ``url``, as
    requests (and so pycti's GraphQL client) would use it."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    return proxy


def _ca_bundle(configured: str | None) -> str:
    """The CA bundle to trust: the configured one, else the one requests (and so pycti's
    GraphQL client) would use: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, then certifi's."""
    return (
        configured
        or os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or certifi.where()
    )


def _make_pool(settings: StreamReaderSettings) -> urllib3.PoolManager:
    cert_reqs = "CERT_REQUIRED" if settings.ssl_verify else "CERT_NONE"
    ca_certs = _ca_bundle(settings.ca_certs) if settings.ssl_verify else None
    proxy = _proxy_for(settings.url)
    if proxy is not None:
        return urllib3.ProxyManager(
            proxy, num_pools=1, maxsize=1, cert_reqs=cert_reqs, ca_certs=ca_certs
        )
    return urllib3.PoolManager(num_pools=1, maxsize=1, cert_reqs=cert_reqs, ca_certs=ca_certs)


def _interrupt(response: urllib3.BaseHTTPResponse) -> None:
    """Make a read blocked on ``response`` in another thread return now."""
    try:
        response.shutdown()
    except (ValueError, RuntimeError, OSError, AttributeError):
        try:
            response.close()
        except Exception:  # closing a dying socket: nothing left to report
            _log.debug("closing the stream response failed", exc_info=True)


class StreamReader:
    """Reads the stream in a thread and feeds ``out``; see the module documentation.

    ``position`` is where to start (``core.stream.position.initial_position``); ``random_unit``
    supplies the backoff jitter (tests pass a constant); ``on_gap`` is called (in the reader's
    thread) for each gap found.
    """

    def __init__(
        self,
        settings: StreamReaderSettings,
        position: StreamPosition,
        out: queue.Queue[StreamMessage],
        *,
        random_unit: Callable[[], float] = random.random,
        on_gap: Callable[[StreamGap], None] | None = None,
    ) -> None:
        self._settings = settings
        self._out = out
        self._random_unit = random_unit
        self._on_gap = on_gap
        self._margin_ms = int(settings.heartbeat_margin * 1000)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._restart: StreamPosition | None = None
        self._last_id = position.start_from
        self._recover_until = position.recover_until
        self._resume = position
        """Where the next connection starts."""
        self._progress: StreamProgress = start_progress(position.start_from)
        self._recovery: Recovery | None = None
        """The replay the current connection is in (kept when it ends: ask for it again)."""
        self._gaps = 0
        self._stream_info: ConnectedInfo | None = None
        self._last_gap: StreamGap | None = None
        self._reported_gaps: set[str] = set()
        self._stalled_in_replay = False
        self._response: urllib3.BaseHTTPResponse | None = None
        self._connected = False
        self._connections = 0
        self._failures = 0
        self._last_error: str | None = None
        self._server_retry = 0.0
        self._pool = _make_pool(settings)
        self._thread = threading.Thread(target=self._run, name="opencti-stream", daemon=True)

    # --- public API ---------------------------------------------------------------------

    @property
    def position(self) -> StreamPosition:
        """The last id received (heartbeats included) and the current recovery date."""
        with self._lock:
            return StreamPosition(self._last_id, self._recover_until)

    def status(self) -> ReaderStatus:
        """Connection state, for health checks and metrics."""
        with self._lock:
            return ReaderStatus(
                connected=self._connected,
                last_event_id=self._last_id,
                recover_until=self._recover_until,
                resume_from=self._next_position().start_from,
                recovering=self._recovery is not None,
                gaps=self._gaps,
                last_gap=self._last_gap,
                connections=self._connections,
                consecutive_failures=self._failures,
                last_error=self._last_error,
                stream_info=self._stream_info,
            )

    def start(self) -> None:
        """Start reading in the background."""
        if not self._settings.ssl_verify:
            _log.warning("TLS certificate verification is off for the OpenCTI stream")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading: close the connection and wait up to ``timeout`` s for the thread."""
        with self._lock:
            self._stopping = True
            response = self._response
        self._wake.set()
        if response is not None:
            _interrupt(response)
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.clear()

    def is_alive(self) -> bool:
        """True while the reading thread runs."""
        return self._thread.is_alive()

    def restart_from(self, position: StreamPosition) -> None:
        """Drop the connection and read again from ``position`` (after a state reset in the
        OpenCTI UI). Messages already queued are not withdrawn."""
        with self._lock:
            self._restart = position
            response = self._response
        self._wake.set()
        if response is not None:
            _interrupt(response)

    # --- the reading thread -------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while True:
            begin = self._begin_attempt()
            if begin == "stop":
                return
            if begin == "restart":
                attempt = 0
            try:
                outcome = self._read_once()
            except Exception as error:  # the reader must outlive any bug
                _log.exception("unexpected error in the OpenCTI stream reader")
                outcome = _Outcome(error=f"unexpected error: {error!r}")
            end = self._end_attempt(outcome)
            if end == "stop":
                return
            if end == "restart":
                continue
            if outcome.stalled:
                self._wait_for_room()
                attempt = 0
                continue
            if outcome.received:
                attempt = 0
            delay = self._retry_delay(attempt, outcome)
            attempt += 1
            if outcome.error is not None:
                level = logging.ERROR if outcome.slow_retry else logging.WARNING
                _log.log(level, "%s; reconnecting in %.1f s", outcome.error, delay)
            self._wake.wait(delay)

    def _begin_attempt(self) -> str:
        """``stop``, ``restart`` (a new position was set) or ``read``."""
        with self._lock:
            if self._stopping:
                return "stop"
            self._wake.clear()
            restart = self._restart
            if restart is None:
                return "read"
            self._last_id = restart.start_from
            self._recover_until = restart.recover_until
            self._resume = restart
            self._progress = start_progress(restart.start_from)
            self._recovery = None
            self._restart = None
            return "restart"

    def _end_attempt(self, outcome: _Outcome) -> str:
        """``stop``, ``restart`` (reconnect at once) or ``wait``."""
        with self._lock:
            self._connected = False
            if self._stopping:
                return "stop"
            if self._restart is not None:
                return "restart"
            if outcome.error is not None:
                self._failures += 1
                self._last_error = outcome.error
            return "wait"

    def _retry_delay(self, attempt: int, outcome: _Outcome) -> float:
        settings = self._settings
        if outcome.slow_retry:
            return settings.backoff_cap
        delay = backoff_delay(
            attempt, self._random_unit(), base=settings.backoff_base, cap=settings.backoff_cap
        )
        # The platform may ask for a longer pause with "retry:" (pycti honours it too).
        return max(delay, min(self._server_retry, settings.backoff_cap))

    def _next_position(self) -> StreamPosition:
        """Where the next connection starts (called with the lock held): during a replay, the
        original start and recovery date again; else the furthest position that loses
        nothing (never inside a group, a heartbeat's id stepped back)."""
        if self._recovery is not None:
            return self._resume
        return StreamPosition(str(resume_position(self._progress)), self._recover_until)

    def _wait_for_room(self) -> None:
        """After a disconnect for a full queue: wait until it is half empty (or a stop)."""
        room = max(1, self._out.maxsize // 2)
        while self._out.qsize() >= room:
            with self._lock:
                if self._stopping or self._restart is not None:
                    return
            self._wake.wait(_PUT_POLL)

    def _read_once(self) -> _Outcome:
        settings = self._settings
        with self._lock:
            position = self._next_position()
            self._resume = position
            self._progress = start_progress(position.start_from)
            self._recovery = recovery_of(settings.live_stream_id, position)
        url = stream_url(settings.url, settings.live_stream_id, position.recover_until)
        headers = stream_headers(
            settings.token.reveal(),
            position.start_from,
            listen_delete=settings.listen_delete,
            no_dependencies=settings.no_dependencies,
            with_inferences=settings.with_inferences,
        )
        try:
            response = self._pool.request(
                "GET",
                url,
                headers=headers,
                preload_content=False,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(
                    connect=settings.connect_timeout, read=settings.read_timeout
                ),
            )
        except (HTTPError, OSError) as error:
            return _Outcome(error=f"cannot reach the OpenCTI stream at {url}: {error}")
        with self._lock:
            self._response = response
            interrupted = self._stopping or self._restart is not None
        try:
            if interrupted:
                return _Outcome(error=None)
            refused = _refusal(response, settings.live_stream_id, url)
            if refused is not None:
                return refused
            with self._lock:
                self._connected = True
                self._connections += 1
                self._failures = 0
                first = self._connections == 1
            _log.info(
                "%s the OpenCTI stream %s after event %s",
                "reading" if first else "resumed",
                url,
                position.start_from,
            )
            return self._consume(response, position)
        finally:
            with self._lock:
                self._response = None
            response.close()

    def _consume(self, response: urllib3.BaseHTTPResponse, position: StreamPosition) -> _Outcome:
        decoder = SseDecoder()
        received = False
        limit = self._settings.max_frame_bytes
        try:
            while True:
                chunk = response.read1(_READ_SIZE)
                if not chunk:
                    return _Outcome("the platform closed the stream", received)
                decoder, frames = feed(decoder, chunk)
                for frame in frames:
                    if frame.retry is not None:
                        self._server_retry = frame.retry / 1000
                    if frame.id is None:  # id-less frames are not events, as for pycti
                        if frame.event == CONNECTED_EVENT:
                            self._check_gap(frame.data, position.start_from)
                        continue
                    if frame.event == NO_RECOVER_EVENT:
                        self._no_recover(frame.id)
                        continue
                    if len(frame.data) > limit:
                        self._skip_large_frame(frame.id)
                        continue
                    replayed = self._in_recovery(frame)
                    self._put(StreamMessage(frame.id, frame.event, frame.data, replayed))
                    self._advance(frame.id, frame.event in DATA_EVENTS, replayed)
                    received = True
                if decoder.frame_bytes > limit:
                    raise _FrameTooLarge(decoder.id)
        except _StopReading:
            return _Outcome(error=None, received=received)
        except _QueueStalled:
            _log.warning(
                "Elasticsearch has taken no stream event for %g s (queue full): disconnected "
                "from the OpenCTI stream so that the platform does not buffer it; it resumes "
                "after %s once the queue drains",
                self._settings.queue_full_timeout,
                self.status().resume_from,
            )
            return _Outcome(error=None, received=received, stalled=True)
        except _FrameTooLarge as too_large:
            frame_id = too_large.args[0]
            if frame_id is None:
                return _Outcome(f"a stream frame without id exceeds {limit} bytes", received)
            # Reconnecting after the frame's id is the only way to skip the rest of it.
            self._skip_large_frame(frame_id)
            return _Outcome(error=None, received=True)
        except ReadTimeoutError:
            timeout = self._settings.read_timeout
            return _Outcome(f"no data from the OpenCTI stream for {timeout:g} s", received)
        except (HTTPError, OSError, ValueError) as error:
            with self._lock:
                stopping = self._stopping or self._restart is not None
            if stopping:
                return _Outcome(error=None, received=received)
            return _Outcome(f"lost the OpenCTI stream: {error}", received)

    def _put(self, message: StreamMessage) -> None:
        full_since: float | None = None
        while True:
            with self._lock:
                if self._stopping or self._restart is not None:
                    raise _StopReading
            try:
                self._out.put(message, timeout=_PUT_POLL)
            except queue.Full:
                now = time.monotonic()
                full_since = now if full_since is None else full_since
                if now - full_since >= self._settings.queue_full_timeout:
                    with self._lock:
                        replaying = self._recovery is not None
                    if not replaying:
                        raise _QueueStalled from None
                    # A reconnect would restart the replay from the beginning, and a replay
                    # slower than Elasticsearch would never end: stay, and wait.
                    if not self._stalled_in_replay:
                        self._stalled_in_replay = True
                        _log.warning(
                            "Elasticsearch has taken no stream event for %g s (queue full) "
                            "during the knowledge base replay: staying connected, since a "
                            "reconnect would start the replay again",
                            self._settings.queue_full_timeout,
                        )
                continue
            return

    def _in_recovery(self, frame: SseFrame) -> bool:
        """Whether ``frame`` (with an id) belongs to the recovery replay; the first frame of
        the live part ends it, and positions count from the recovery date on."""
        assert frame.id is not None
        with self._lock:
            recovery = self._recovery
        if recovery is None:
            return False
        after = next_recovery(recovery, frame.id, frame.event, frame.data)
        with self._lock:
            self._recovery = after
            if after is None:
                self._progress = start_progress(str(recovery.until))
        if after is None:
            _log.info("the knowledge base replay is over; reading live events from %s", frame.id)
        return after is not None

    def _advance(self, event_id: str, is_data: bool, replayed: bool) -> None:
        with self._lock:
            if is_after(event_id, self._last_id):
                self._last_id = event_id
            if not replayed:
                self._progress = observe(
                    self._progress, event_id, is_data=is_data, margin_ms=self._margin_ms
                )

    def _check_gap(self, data: bytes, start_from: str) -> None:
        info = read_connected(data)
        with self._lock:
            self._stream_info = info
        if info is None or not trimmed_gap(start_from, info.first_event_id):
            return
        first = str(info.first_event_id)
        with self._lock:
            if start_from in self._reported_gaps:
                return
            self._reported_gaps.add(start_from)
            gap = StreamGap(start_from, first)
            self._gaps += 1
            self._last_gap = gap
        _log.warning(
            "stream gap: the saved position %s is older than the oldest event OpenCTI still "
            "holds (%s); the events in between were trimmed from the stream and are lost, "
            "deletions included: indicators deleted meanwhile may stay in the index until the "
            "knowledge base is read again",
            start_from,
            first,
        )
        if self._on_gap is not None:
            try:
                self._on_gap(gap)
            except Exception:  # a listener's bug must not stop the stream
                _log.exception("a stream gap listener failed")

    def _no_recover(self, event_id: str) -> None:
        with self._lock:
            was_recovering = self._recover_until is not None
            self._recover_until = None
            self._recovery = None
        if was_recovering:
            _log.warning(
                "the platform does not replay history for this stream; reading live events only"
            )
        self._advance(event_id, is_data=False, replayed=False)

    def _skip_large_frame(self, frame_id: str) -> None:
        _log.error(
            "skipping stream event %s: larger than max_frame_bytes (%d bytes)",
            frame_id,
            self._settings.max_frame_bytes,
        )
        with self._lock:
            if is_after(frame_id, self._last_id):
                self._last_id = frame_id
            if self._recovery is None:
                # Resuming after it is the only way past it (later frames of its group too).
                self._progress = skip_past(self._progress, frame_id)


def unauthorized_causes(live_stream_id: str | None) -> str:
    """What a 401 on the stream can mean: the platform answers it for missing rights, and for
    a live stream id it does not know (``sseMiddleware.js``)."""
    if live_stream_id and live_stream_id != "live":
        return (
            "its user needs the TAXIIAPI capability (or the stream must be public), or no live "
            f"stream has the id {live_stream_id!r} (check connector.live_stream_id under Data "
            "sharing > Live streams)"
        )
    return "its user needs the BYPASS capability"


def _refusal(
    response: urllib3.BaseHTTPResponse, live_stream_id: str | None, url: str
) -> _Outcome | None:
    """Why a stream response cannot be read (None when it can)."""
    status = response.status
    reason = f" ({response.reason})" if response.reason else ""
    if status == 200:
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            return None
        return _Outcome(
            f"{url} answered {content_type or 'no content type'} instead of an event stream: "
            "is opencti.url the platform's address?",
            slow_retry=True,
        )
    if status == 401:
        causes = unauthorized_causes(live_stream_id)
        return _Outcome(
            f"OpenCTI refused the stream token (HTTP 401{reason}): {causes}", slow_retry=True
        )
    if status == 410:
        return _Outcome(
            f"the OpenCTI live stream {live_stream_id} is stopped (HTTP 410{reason}): "
            "start it under Data sharing > Live streams",
            slow_retry=True,
        )
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        return _Outcome(
            f"{url} redirects (HTTP {status}) to {location}: set opencti.url to the final address",
            slow_retry=True,
        )
    if status >= 500 or status == 429:
        return _Outcome(f"the OpenCTI stream is unavailable (HTTP {status}{reason})")
    return _Outcome(f"the OpenCTI stream answered HTTP {status}{reason}", slow_retry=True)
