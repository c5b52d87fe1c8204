"""A local stand-in for the OpenCTI platform's HTTP API (demo and test utility, never used by
``run``).

OpenCTI itself needs Elasticsearch, MinIO, Redis and RabbitMQ; the README demo and the end-to-end
tests instead run the real, unmodified pycti and our stream reader against this server, which
implements the surface a STREAM connector touches (see ``shared/reference/opencti.md``):

* ``POST /graphql``: ``about``, ``me``, ``registerConnector``, ``pingConnector``,
  ``deleteConnector``, ``indicator``, ``indicators``, ``markingDefinitions``, ``identity``,
  ``organizationAdd``/``systemAdd``/``securityPlatformAdd``/``individualAdd``/``identityAdd``,
  ``stixSightingRelationshipAdd``, ``stixSightingRelationship``, ``externalReferenceAdd``,
  ``streamCollection`` and ``stixBundlePush``. Answers are cut
  down to the fields the query selects; errors come as HTTP 200 with ``errors``, as the platform
  sends them (``AUTH_REQUIRED`` for a bad token, ``MISSING_REFERENCE_ERROR``...).
* ``GET /stream``, ``/stream/live``, ``/stream/<collection id>``: server-sent events with
  ``<ms>-<seq>`` ids, resume after ``Last-Event-ID``/``from`` (numeric comparison), first-run
  recovery (``?recover=``), ``listen-delete: false``, heartbeats, and the platform's 401/410/500
  answers; with the platform's harder behaviours (dependency frames sharing an event's id,
  clock heartbeat ids, frames without ``type``, trimming, collection filters), described and
  switchable in ``standin_stream``.

Tests drive it through ``publish`` and the fault-injection methods (``fail_graphql``,
``fail_stream``, ``drop_connections``, ``pause_heartbeats``, ``hold_group``, ``forget_object``,
``hold_graphql``, ``rewrite_indicator_nodes``) and assert on what clients sent
(``sighting_inputs``, ``stream_requests``, ``graphql_requests``).

``indicators`` is answered as the platform answers it (``standin_indicators``): ordered by
standard id, paged by ``search_after`` cursors, at most 5000 per page, filtered by a FilterGroup,
each node's ``toStix`` being the object as the stream sends it; ``streamCollection.filters`` is
the FilterGroup a collection was given (``add_stream_collection(filter_group=...)``).

Run ``python -m elastic_connector.demo.opencti_standin --port 8080 --token T`` to use it by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import parse_qs, urlsplit

import msgspec

from elastic_connector.core.stream import StreamId, parse_stream_id
from elastic_connector.demo.graphql_lite import (
    GraphQLSyntaxError,
    matches_filters,
    parse_operation,
    project,
)
from elastic_connector.demo.opencti_data import (
    ADMIN_USER_ID,
    DATA_EVENTS,
    DEFAULT_MARKINGS,
    NAMESPACE,
    OPENCTI_EXTENSION,
    Json,
    identity_standard_id,
    indicator_standard_id,
    internal_id,
    make_indicator,
    now_iso,
    sighting_standard_id,
)
from elastic_connector.demo.standin_graphql import (
    GraphQLError,
    PlatformState,
    StandinUser,
    Stored,
    StreamCollection,
    auth_required,
    has_capability,
)
from elastic_connector.demo.standin_stream import (
    DEFAULT_TRIMMING,
    Channel,
    Connection,
    LogEntry,
    StreamControls,
    StreamLog,
    StreamSwitches,
    Visibility,
    create_message,
    encode_frame,
    frame_header_size,
    object_refs,
)

__all__ = [
    "DEFAULT_MARKINGS",
    "OPENCTI_EXTENSION",
    "GraphQLRequest",
    "OpenCTIStandin",
    "StandinUser",
    "StreamCollection",
    "StreamRequest",
    "StreamSwitches",
    "identity_standard_id",
    "indicator_standard_id",
    "make_indicator",
    "now_iso",
    "sighting_standard_id",
]

_log = logging.getLogger(__name__)

_DEFAULT_VERSION: Final = "6.9.0"


# --- what the stand-in records ------------------------------------------------------------


class StreamRequest(msgspec.Struct, frozen=True):
    """One ``GET /stream...`` as received (the authorization header is never kept)."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int


class GraphQLRequest(msgspec.Struct, frozen=True):
    """One ``POST /graphql`` as received."""

    operation: str
    fields: tuple[str, ...]
    variables: Json


class _GraphQLFault(msgspec.Struct):
    status: int | None
    code: str
    message: str
    remaining: int | None
    fields: frozenset[str] | None
    passing: int = 0
    """Matching requests still answered normally before the fault starts."""


class _StreamFault(msgspec.Struct):
    status: int
    remaining: int | None


_enc = msgspec.json.encode
_decode_json = msgspec.json.Decoder(Json)


def _to_stream_id(param: str | None) -> StreamId | None:
    """The platform's ``convertParameterToStreamId``: ids, ``0``, or an ISO date."""
    if not param:
        return None
    if param in ("0", "0-0"):
        return StreamId(0, 0)
    if param.count("-") == 1:
        return parse_stream_id(param)
    moment = _to_ms(param)
    return None if moment is None else StreamId(moment, 0)


def _to_ms(param: str | None) -> int | None:
    """The platform's ``convertParameterToDate`` as epoch milliseconds."""
    if not param:
        return None
    if param in ("0", "0-0"):
        return 0
    if param.count("-") == 1:
        parsed = parse_stream_id(param)
        return None if parsed is None else parsed.ms
    try:
        moment = datetime.fromisoformat(param.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# --- the stand-in -------------------------------------------------------------------------


class OpenCTIStandin:
    """The stand-in platform. Use as a context manager, or ``start()``/``stop()``.

    ``token`` belongs to an administrator (``BYPASS``); ``add_user`` adds other tokens.
    ``heartbeat_interval`` is in seconds (the platform's default is 5; 1 keeps tests quick).
    With ``echo_writes`` the identities and sightings created through GraphQL also appear on
    the stream as ``create`` events, as they do on the platform. Sightings follow the platform's
    upsert rules (``standin_sightings``); ``merge_sightings=False`` sets the platform's
    deduplication window to 0 days (only ids find an existing sighting).

    The stream behaves as the platform's (``standin_stream``): ``switches`` turns some of its
    harder behaviours off (or forces a heartbeat inside every dependency group);
    ``max_stream_length`` trims the log (None: never); ``retry_ms`` adds a ``retry:`` line the
    platform never sends.
    """

    def __init__(
        self,
        *,
        token: str = "standin-admin-token",  # noqa: S107 - a demo server's well-known token
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_interval: float = 1.0,
        retry_ms: int | None = None,
        switches: StreamSwitches | None = None,
        max_stream_length: int | None = DEFAULT_TRIMMING,
        version: str = _DEFAULT_VERSION,
        ssl_context: ssl.SSLContext | None = None,
        echo_writes: bool = True,
        merge_sightings: bool = True,
    ) -> None:
        self.token = token
        self.echo_writes = echo_writes
        self.heartbeat_interval = heartbeat_interval
        self.retry_ms = retry_ms
        self.switches = switches or StreamSwitches()
        self.version = version
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._cond = threading.Condition(threading.RLock())
        self._platform = PlatformState(
            version=version,
            on_create=self._echo if echo_writes else None,
            merge_sightings=merge_sightings,
        )
        self._platform.users[token] = StandinUser(
            ADMIN_USER_ID, "admin", "admin@opencti.io", ("BYPASS",)
        )
        self._log = StreamLog(max_stream_length)
        self._controls = StreamControls()
        self._collection_filters: dict[str, Visibility] = {}
        self._graphql_requests: list[GraphQLRequest] = []
        self._stream_requests: list[StreamRequest] = []
        self._graphql_faults: list[_GraphQLFault] = []
        self._stream_faults: list[_StreamFault] = []
        self._graphql_holds: dict[str, int] = {}
        """Root field -> answers still to pass before the next one is held."""
        self._graphql_held: set[str] = set()
        self._connections: set[Connection] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` with an SSL context)."""
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Bind (a free port unless one was given) and serve in a background thread."""
        if self._server is not None:
            return self
        with self._cond:
            self._controls.stopping = False
        server = _Server((self._host, self._port), self, self._ssl_context)
        self._server = server
        self._port = server.server_address[1]  # a restart (stop, start) keeps the URL
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="opencti-standin",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and stop serving (like a platform shutdown: what it
        stores is kept, and ``start()`` serves it again on the same port)."""
        server = self._server
        if server is None:
            return
        with self._cond:
            self._controls.stopping = True
            self._cond.notify_all()
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- users and collections ---------------------------------------------------------------

    def add_user(
        self,
        token: str,
        *,
        name: str,
        capabilities: Iterable[str],
        max_confidence: int = 100,
        allowed_markings: Iterable[str] | None = None,
    ) -> StandinUser:
        """A user reachable with ``token`` (capabilities such as ``KNOWLEDGE``, ``TAXIIAPI``), its
        max confidence and the marking definitions (standard ids) its groups allow (None: all)."""
        user = StandinUser(
            str(uuid.uuid5(NAMESPACE, "user:" + name)),
            name,
            f"{name}@opencti.io",
            tuple(capabilities),
            max_confidence,
            None if allowed_markings is None else tuple(allowed_markings),
        )
        with self._cond:
            self._platform.users[token] = user
        return user

    def add_stream_collection(
        self,
        collection_id: str,
        *,
        name: str | None = None,
        live: bool = True,
        public: bool = False,
        recover_supported: bool = True,
        filters: Visibility | None = None,
        filter_group: Mapping[str, object] | None = None,
    ) -> StreamCollection:
        """A live stream served at ``/stream/<collection_id>`` showing the STIX objects its
        filters allow (all when it has none); its updates follow them: ``delete`` when an
        object leaves them, ``create`` when it enters them (``sseMiddleware.js``).

        ``filter_group`` is an OpenCTI FilterGroup, as the platform stores it: the stream and
        ``streamCollection.filters`` (so a filtered ``indicators`` listing) both follow it
        (``standin_indicators``). ``filters`` is a Python predicate on the STIX object instead,
        which no FilterGroup expresses: reading the collection's filters is then refused."""
        if filters is not None and filter_group is not None:
            raise ValueError("give filters or filter_group, not both")
        group = dict(filter_group) if filter_group is not None else None
        collection = StreamCollection(
            id=collection_id,
            name=name or collection_id,
            live=live,
            public=public,
            recover_supported=recover_supported,
            filters=json.dumps(group) if group is not None else None,
            opaque_filters=filters is not None,
        )
        visible = filters
        if group is not None:
            platform = self._platform

            def visible_by_group(stix: Json) -> bool:
                return matches_filters(platform.filter_view(stix), group)

            visible = visible_by_group
        with self._cond:
            self._platform.collections[collection_id] = collection
            if visible is not None:
                self._collection_filters[collection_id] = visible
            else:
                self._collection_filters.pop(collection_id, None)
        return collection

    def set_stream_live(self, collection_id: str, live: bool) -> None:
        """Start or stop a live stream (a stopped one answers 410)."""
        with self._cond:
            self._platform.collections[collection_id].live = live

    # --- the stream --------------------------------------------------------------------------

    def _append(
        self,
        kind: str,
        stix_object: Mapping[str, object],
        *,
        context: Mapping[str, object] | None = None,
        message: str | None = None,
        at_ms: int | None = None,
        origin: Mapping[str, object] | None = None,
    ) -> StreamId:
        stix_id = str(stix_object.get("id", ""))
        stix_type = str(stix_object.get("type", ""))
        extensions = stix_object.get("extensions")
        extension = extensions.get(OPENCTI_EXTENSION) if isinstance(extensions, Mapping) else None
        object_id = (
            str(extension["id"])
            if isinstance(extension, Mapping) and extension.get("id")
            else internal_id(stix_id)
        )
        stix = _enc(stix_object)
        if message is None:
            verb = {"create": "creates", "update": "updates", "delete": "deletes"}.get(
                kind, "merges"
            )
            message = create_message(stix_object, verb)
        event_id = self._log.next_id(at_ms)
        envelope = [
            b'{"version":"4","type":',
            _enc(kind),
            b',"scope":"external","message":',
            _enc(message),
            b',"origin":',
            _enc(origin if origin is not None else {"user_id": ADMIN_USER_ID}),
            b',"data":',
            stix,
        ]
        if context is not None:
            envelope += [b',"context":', _enc(context)]
        envelope.append(b"}")
        frame = encode_frame(event_id, kind, b"".join(envelope))
        previous = self._platform.objects.get(stix_id) if kind == "update" else None
        header = frame_header_size(event_id, kind)
        self._log.append(
            LogEntry(event_id, kind, frame, header, stix_id, object_refs(stix_object), previous)
        )
        if kind == "delete":
            self._platform.forget(stix_id)
        elif kind in DATA_EVENTS:
            start = header + sum(len(part) for part in envelope[:7])
            stored = Stored(frame, start, start + len(stix), event_id.ms, stix_type, object_id)
            self._platform.store(stix_id, stored)
            if kind == "merge" and context is not None:
                sources = context.get("sources")
                for source in sources if isinstance(sources, list) else []:
                    if isinstance(source, Mapping) and source.get("id") != stix_id:
                        self._platform.forget(str(source.get("id")))
        return event_id

    def store_only(self, stix_object: Mapping[str, object]) -> None:
        """Make ``stix_object`` known to GraphQL reads without any stream event: what a live
        stream with ``no-dependencies`` or a filter leaves out (a marking definition, say)."""
        stix_id = str(stix_object.get("id", ""))
        extensions = stix_object.get("extensions")
        extension = extensions.get(OPENCTI_EXTENSION) if isinstance(extensions, Mapping) else None
        object_id = (
            str(extension["id"])
            if isinstance(extension, Mapping) and extension.get("id")
            else internal_id(stix_id)
        )
        stix = _enc(stix_object)
        stored = Stored(
            stix, 0, len(stix), int(time.time() * 1000), str(stix_object.get("type", "")), object_id
        )
        with self._cond:
            self._platform.store(stix_id, stored)

    def publish(
        self,
        kind: str,
        stix_object: Mapping[str, object],
        context: Mapping[str, object] | None = None,
        *,
        message: str | None = None,
        at_ms: int | None = None,
    ) -> str:
        """Append an event (``create``/``update``/``delete``/``merge``) and return its id.

        ``context`` is the event context (``patch``/``reverse_patch`` for updates, ``sources``
        for merges). ``at_ms`` fixes the id's millisecond (ids must keep growing). Data events
        also update what GraphQL reads see (an indicator created here can be read and sighted).
        """
        with self._cond:
            event_id = self._append(
                kind, stix_object, context=context, message=message, at_ms=at_ms
            )
            self._cond.notify_all()
        return str(event_id)

    def publish_many(
        self, events: Iterable[tuple[str, Mapping[str, object]]], *, start_ms: int | None = None
    ) -> list[str]:
        """Append many ``(kind, stix_object)`` events at once (preloading a benchmark log).

        With ``start_ms`` the events get consecutive ids ``start_ms-0``, ``start_ms-1``...
        """
        with self._cond:
            ids = [
                str(self._append(kind, stix_object, at_ms=start_ms)) for kind, stix_object in events
            ]
            self._cond.notify_all()
        return ids

    def publish_raw(self, event: str, data: bytes, *, at_ms: int | None = None) -> str:
        """Append a frame with any event name and any ``data`` bytes (no LF), e.g. a malformed
        event; it changes nothing GraphQL sees."""
        if b"\n" in data or b"\r" in data:
            raise ValueError("data must be one line")
        with self._cond:
            event_id = self._log.next_id(at_ms)
            frame = encode_frame(event_id, event, data)
            self._log.append(LogEntry(event_id, event, frame, frame_header_size(event_id, event)))
            self._cond.notify_all()
        return str(event_id)

    @property
    def event_ids(self) -> list[str]:
        """Every event id the log still holds (trimming drops the oldest), in order."""
        with self._cond:
            return [str(entry.id) for entry in self._log.entries]

    def drop_connections(self, *, graceful: bool = False) -> int:
        """Close every open stream connection; return how many there were.

        Abrupt (default): the socket is shut down mid-stream, as when the platform dies or a
        proxy cuts the connection. ``graceful``: the response ends cleanly (end of stream).
        """
        with self._cond:
            connections = list(self._connections)
            for connection in connections:
                connection.dropped = True
                connection.graceful = graceful
            self._cond.notify_all()
        if not graceful:
            for connection in connections:
                _shutdown(connection.sock)
        return len(connections)

    @property
    def open_stream_connections(self) -> int:
        """Stream responses currently being served."""
        with self._cond:
            return len(self._connections)

    def pause_heartbeats(self) -> None:
        """Stop sending heartbeats (a connection without events then goes silent)."""
        with self._cond:
            self._controls.heartbeats = False

    def resume_heartbeats(self) -> None:
        with self._cond:
            self._controls.heartbeats = True
            self._cond.notify_all()

    def set_event_delay(self, seconds: float) -> None:
        """Slow every connection down: wait ``seconds`` after each recovered object, each
        dependency group and each live read (what the platform's ``delay`` option does)."""
        with self._cond:
            self._controls.event_delay = seconds
            self._cond.notify_all()

    def hold_group(self, event_id: str) -> None:
        """Stop connections right after the dependency frames of event ``event_id`` (sent
        under its id), before the event itself, until ``release_group``: a group half sent,
        as when the platform is slow or the connection breaks there."""
        parsed = parse_stream_id(event_id)
        if parsed is None:
            raise ValueError(f"not a stream id: {event_id!r}")
        with self._cond:
            self._controls.held.add(parsed)

    def release_group(self, event_id: str) -> None:
        parsed = parse_stream_id(event_id)
        with self._cond:
            if parsed is not None:
                self._controls.held.discard(parsed)
            self._cond.notify_all()

    def wait_for_held(self, event_id: str, timeout: float = 10.0) -> bool:
        """Whether a connection reached the held group of ``event_id`` within ``timeout``."""
        parsed = parse_stream_id(event_id)
        deadline = time.monotonic() + timeout
        with self._cond:
            while parsed not in self._controls.reached:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def fail_stream(self, status: int, *, times: int | None = 1) -> None:
        """Answer the next ``times`` stream requests (all when None) with HTTP ``status``."""
        with self._cond:
            self._stream_faults.append(_StreamFault(status, times))

    def clear_stream_failures(self) -> None:
        with self._cond:
            self._stream_faults.clear()

    @property
    def stream_requests(self) -> list[StreamRequest]:
        """Every stream request received, oldest first."""
        with self._cond:
            return list(self._stream_requests)

    # --- GraphQL state -----------------------------------------------------------------------

    def fail_graphql(
        self,
        *,
        status: int | None = 500,
        times: int | None = 1,
        fields: Iterable[str] | None = None,
        code: str = "DATABASE_ERROR",
        message: str = "A database error has occurred",
        after: int = 0,
    ) -> None:
        """Fail the next ``times`` GraphQL requests (all when None) touching ``fields`` (any
        when None), once ``after`` of them were answered normally: with HTTP ``status``, or
        with ``status=None`` an HTTP 200 ``errors`` answer carrying ``code`` as the platform
        reports its own failures."""
        with self._cond:
            self._graphql_faults.append(
                _GraphQLFault(
                    status,
                    code,
                    message,
                    times,
                    frozenset(fields) if fields else None,
                    after,
                )
            )

    def hold_graphql(self, field: str, *, after: int = 0) -> None:
        """Hold the answer to the next request for root field ``field`` (after ``after`` were
        answered) once it is computed, until ``release_graphql``: a slow platform, or a network
        that delivers late — what a reader read is then older than what happens meanwhile."""
        with self._cond:
            self._graphql_holds[field] = after

    def wait_for_graphql_hold(self, field: str, timeout: float = 10.0) -> bool:
        """Whether an answer to ``field`` is being held (within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while field not in self._graphql_held:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def release_graphql(self, field: str) -> None:
        with self._cond:
            self._graphql_holds.pop(field, None)
            self._graphql_held.discard(field)
            self._cond.notify_all()

    def rewrite_indicator_nodes(self, hook: Callable[[Json], object] | None) -> None:
        """Answer every node of ``indicators`` listings with ``hook(node)`` (the whole record,
        ``toStix`` included, as a dict): a platform answer with missing fields, wrong types or
        an object that does not decode. None restores the real nodes."""
        with self._cond:
            self._platform.indicator_node_hook = hook

    def clear_graphql_failures(self) -> None:
        with self._cond:
            self._graphql_faults.clear()

    def forget_object(self, object_id: str) -> None:
        """Make an object (STIX or internal id) unknown: reads return null and sightings of
        it fail with ``MISSING_REFERENCE_ERROR``, as after a deletion in the platform."""
        with self._cond:
            self._platform.forget(object_id)

    @property
    def sighting_inputs(self) -> list[Json]:
        """The exact ``input`` variable of every ``stixSightingRelationshipAdd`` received
        (failed ones included), oldest first."""
        with self._cond:
            return [dict(item) for item in self._platform.sighting_inputs]

    @property
    def sightings(self) -> list[Json]:
        """The sightings stored (one per standard id, upserted; references as ids)."""
        with self._cond:
            return [dict(item) for item in self._platform.sightings.values()]

    def sighting_references_at_creation(self, kept: bool) -> None:
        """False: drop the external references given when a sighting is created (a platform
        that attaches them only on upsert; see ``standin_sightings``)."""
        with self._cond:
            self._platform.sighting_store.rules.references_at_creation = kept

    def set_sighting_confidence(self, sighting_id: str, confidence: int) -> None:
        """What an analyst does in the UI: set a sighting's confidence."""
        with self._cond:
            record = self._platform.sighting_store.find(sighting_id)
            if record is None:
                raise KeyError(sighting_id)
            record["confidence"] = confidence

    @property
    def external_references(self) -> list[Json]:
        """External references created through GraphQL."""
        with self._cond:
            return [dict(item) for item in self._platform.external_references.values()]

    @property
    def identities(self) -> list[Json]:
        """Identities created through GraphQL."""
        with self._cond:
            return [dict(item) for item in self._platform.identities.values()]

    @property
    def bundles(self) -> list[str]:
        """Bundles received through ``stixBundlePush``."""
        with self._cond:
            return list(self._platform.bundles)

    @property
    def graphql_requests(self) -> list[GraphQLRequest]:
        """Every GraphQL request received (authorization never kept), oldest first."""
        with self._cond:
            return list(self._graphql_requests)

    def connector_state(self, connector_id: str) -> str | None:
        """The state string the platform holds for a registered connector."""
        with self._cond:
            connector = self._platform.connectors.get(connector_id)
            state = connector.get("connector_state") if connector else None
            return state if isinstance(state, str) else None

    def connector_registered(self, connector_id: str) -> bool:
        with self._cond:
            return connector_id in self._platform.connectors

    def ping_count(self, connector_id: str) -> int:
        with self._cond:
            connector = self._platform.connectors.get(connector_id)
            count = connector.get("_pings", 0) if connector else 0
            return count if isinstance(count, int) else 0

    def set_connector_state(self, connector_id: str, state: str | None) -> None:
        """Store a state as if the connector had pinged it (to seed a later run)."""
        with self._cond:
            connectors = self._platform.connectors
            connectors.setdefault(connector_id, {"id": connector_id})["connector_state"] = state

    def reset_connector_state(self, connector_id: str) -> None:
        """What "reset state" does in the UI: the next ping answers an empty state."""
        with self._cond:
            connector = self._platform.connectors[connector_id]
            connector["connector_state"] = ""
            connector["_reset"] = True

    # --- GraphQL -----------------------------------------------------------------------------

    def _user(self, token: str | None) -> StandinUser | None:
        with self._cond:
            return self._platform.user(token)

    def _take_graphql_fault(self, fields: Sequence[str]) -> _GraphQLFault | None:
        with self._cond:
            for fault in self._graphql_faults:
                if fault.fields is not None and not fault.fields.intersection(fields):
                    continue
                if fault.passing > 0:
                    fault.passing -= 1
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._graphql_faults.remove(fault)
                return fault
        return None

    def handle_graphql(self, body: bytes, token: str | None) -> tuple[int, bytes]:
        """Answer one GraphQL request body: ``(HTTP status, response body)``."""
        try:
            request = _decode_json.decode(body)
        except msgspec.DecodeError:
            return 400, _enc({"errors": [{"message": "POST body is not a JSON object"}]})
        query = request.get("query")
        raw_variables = request.get("variables")
        variables: Json = dict(raw_variables) if isinstance(raw_variables, dict) else {}
        if not isinstance(query, str):
            return 400, _enc({"errors": [{"message": "POST body sent invalid JSON."}]})
        try:
            operation = parse_operation(query, variables)
        except GraphQLSyntaxError as error:
            return 400, _enc(
                {
                    "errors": [
                        {
                            "message": f"Syntax Error: {error}",
                            "extensions": {"code": "GRAPHQL_PARSE_FAILED"},
                        }
                    ]
                }
            )
        names = tuple(field.name for field in operation.fields)
        with self._cond:
            self._graphql_requests.append(GraphQLRequest(query, names, variables))
        fault = self._take_graphql_fault(names)
        if fault is not None:
            if fault.status is not None:
                if fault.status == 500:
                    return 500, _enc({"errors": [{"message": fault.message}]})
                return fault.status, b"<html><body>%d</body></html>" % fault.status
            injected = GraphQLError(fault.code, fault.message, 500)
            payload = injected.payload(names[0] if names else None)
            return 200, _enc({"errors": [payload], "data": None})
        user = self._user(token)
        data: Json = {}
        errors: list[Json] = []
        for field in operation.fields:
            try:
                if user is None:
                    raise auth_required()
                with self._cond:
                    value = self._platform.resolve(operation.kind, field, user)
            except GraphQLError as error:
                errors.append(error.payload(field.alias))
                data[field.alias] = None
            else:
                data[field.alias] = project(value, field.selections)
        answer: Json = {"data": data}
        if errors:
            answer = {"errors": errors, "data": None if user is None else data}
        body = _enc(answer)
        self._hold_answer(names)
        return 200, body

    def _hold_answer(self, names: Sequence[str]) -> None:
        """Keep an answer already computed until ``release_graphql`` (``hold_graphql``)."""
        with self._cond:
            held = next((n for n in names if n in self._graphql_holds), None)
            if held is None:
                return
            if self._graphql_holds[held] > 0:
                self._graphql_holds[held] -= 1
                return
            del self._graphql_holds[held]
            self._graphql_held.add(held)
            self._cond.notify_all()
            while held in self._graphql_held and not self._controls.stopping:
                self._cond.wait(0.5)

    def _echo(self, stix_object: Json) -> None:
        """Publish what a GraphQL write created (called with the lock held)."""
        self._append("create", stix_object)
        self._cond.notify_all()

    # --- the SSE endpoint --------------------------------------------------------------------

    def _take_stream_fault(self) -> int | None:
        with self._cond:
            if not self._stream_faults:
                return None
            fault = self._stream_faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._stream_faults.pop(0)
            return fault.status

    def _authorize_stream(
        self, user: StandinUser | None, collection_id: str | None
    ) -> tuple[int, str] | None:
        """The platform's refusal (status, reason) for this stream request, if any."""
        if collection_id is None or collection_id == "live":
            if user is None:
                return 401, "You are not authenticated, please check your credentials"
            if not has_capability(user, "BYPASS", exact=True):
                return 401, "You are not authorized, please check your credentials"
            return None
        with self._cond:
            collection = self._platform.collections.get(collection_id)
        if collection is None:
            return 401, "You are not authorized, please check your credentials"
        if not collection.live:
            return 410, "This live stream is stopped"
        if collection.public:
            return None
        if user is None or not has_capability(user, "TAXIIAPI"):
            return 401, "You are not authorized, please check your credentials"
        return None

    def handle_stream(self, handler: _Handler, collection_id: str | None) -> None:
        """Serve one stream request on ``handler`` until the client leaves or is dropped."""
        parts = urlsplit(handler.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in handler.headers.items() if k.lower() != "authorization"}
        token = _bearer(handler.headers.get("authorization"))

        def answer(status: int, reason: str | None = None) -> None:
            with self._cond:
                self._stream_requests.append(StreamRequest(parts.path, query, headers, status))
            handler.send_response(status, reason)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        forced = self._take_stream_fault()
        if forced is not None:
            answer(forced, "Injected failure")
            return
        refusal = self._authorize_stream(self._user(token), collection_id)
        if refusal is not None:
            answer(*refusal)
            return
        start = _to_stream_id(
            query.get("from") or headers.get("from") or headers.get("last-event-id")
        )
        recover_ms: int | None = None
        listen_delete = True
        collection: StreamCollection | None = None
        if collection_id is not None:  # only live streams recover and filter deletions
            with self._cond:
                collection = self._platform.collections.get(collection_id)
            recover_ms = _to_ms(
                query.get("recover") or headers.get("recover") or headers.get("recover-date")
            )
            if recover_ms is not None and start is None:
                answer(500, "Error in stream: Recovery mode is only possible with a start date.")
                return
            listen_delete = (query.get("listen-delete") or headers.get("listen-delete")) != "false"
        with self._cond:
            self._stream_requests.append(StreamRequest(parts.path, query, headers, 200))
            visible = self._collection_filters.get(collection_id or "")
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache, no-transform")
        handler.send_header("Connection", "keep-alive")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        connection = Connection(handler.connection)
        with self._cond:
            if self._controls.stopping:
                return
            self._connections.add(connection)

        def write(payload: bytes) -> None:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

        delay = query.get("delay") or headers.get("event-delay")
        channel = Channel(
            cond=self._cond,
            log=self._log,
            platform=self._platform,
            controls=self._controls,
            switches=self.switches,
            connection=connection,
            write=write,
            heartbeat_interval=self.heartbeat_interval,
            live=collection_id is not None,
            listen_delete=listen_delete,
            visible=visible,
            delay=int(delay) / 1000 if delay and delay.isdigit() else None,
        )
        try:
            channel.serve(
                start,
                recover_ms=recover_ms,
                recover_supported=collection is None or collection.recover_supported,
                retry_ms=self.retry_ms,
            )
        except OSError:
            pass  # the client went away
        finally:
            with self._cond:
                self._connections.discard(connection)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


# --- HTTP plumbing ------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        standin: OpenCTIStandin,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.standin = standin
        self.ssl_context = ssl_context
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        with self._sockets_lock:
            self._sockets.add(sock)
        return sock, address

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]  # typeshed types request as a generic socket-or-tuple
        with self._sockets_lock:
            self._sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def handle_error(self, request: object, client_address: object) -> None:
        _log.debug("stand-in connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The platform's Node.js HTTP server turns Nagle's algorithm off on every connection
    # (http.createServer's noDelay defaults to true since Node 18, nodejs/node#42163). Left
    # on, a reply's body waited here for the client's delayed ACK of its headers: 40 ms per
    # GraphQL answer that OpenCTI does not cost.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("stand-in: " + format, *args)

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if path != "/graphql":
            self._reply(404, b'{"status":"not found"}')
            return
        status, answer = self.server.standin.handle_graphql(
            body, _bearer(self.headers.get("authorization"))
        )
        self._reply(status, answer, "application/json" if answer.startswith(b"{") else "text/html")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/stream":
            self.server.standin.handle_stream(self, None)
        elif path.startswith("/stream/") and path.count("/") == 2:
            self.server.standin.handle_stream(self, path.removeprefix("/stream/"))
        elif path == "/health":
            self._reply(200, b'{"status":"success"}')
        else:
            self._reply(404, b'{"status":"not found"}')


# --- command line -------------------------------------------------------------------------


def _bundle_objects(path: Path) -> list[Json]:
    bundle = _decode_json.decode(path.read_bytes())
    objects = bundle.get("objects")
    return [o for o in objects if isinstance(o, dict)] if isinstance(objects, list) else []


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a stand-in until interrupted; ``--bundle`` preloads a STIX bundle as creates."""
    parser = argparse.ArgumentParser(description="A local OpenCTI stand-in (demo and tests).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", default="standin-admin-token")
    parser.add_argument("--bundle", type=Path, action="append", default=[])
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    standin = OpenCTIStandin(
        token=arguments.token,
        host=arguments.host,
        port=arguments.port,
        heartbeat_interval=arguments.heartbeat,
    )
    done = threading.Event()

    def finish(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    with standin:
        for path in arguments.bundle:
            objects = _bundle_objects(path)
            standin.publish_many(("create", o) for o in objects)
            _log.info("published %d objects from %s", len(objects), path)
        # The URL on stdout lets scripts and tests wait for the server to be ready.
        print(standin.url, flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
