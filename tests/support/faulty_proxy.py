"""A small HTTP proxy in front of Elasticsearch that misbehaves on request.

Tests put it between the real client and the real server to produce the failures a cluster
produces under load or misconfiguration, then let everything else through unchanged:

* ``Reply``: answer with a fabricated status and body (429, 503, 401, 403 shaped like
  Elasticsearch's own bodies) instead of forwarding;
* ``Disconnect``: close the connection without answering (a crash or a proxy reset);
* ``Stall``: hold the request, then close (the client's timeout fires);
* ``Delay``: hold the request, then forward it (a slow, overloaded cluster);
* ``FailBulkItems``: forward a ``_bulk`` request *without* some of its items and answer for
  those items with a per-item error (e.g. 429 ``es_rejected_execution_exception``), which is
  what a cluster under pressure does: the other items really are written.

With ``role=`` (a ``tests.support.es_roles.Role``), requests no fault catches go through a
``RoleGate`` that answers 403 wherever Elasticsearch would for that role (``proxy.gate``
records each decision).

Faults are queued with ``inject(fault, times=N, path=..., method=...)``; each matching request
consumes one; ``times=None`` keeps the fault until ``clear()``. Every request is recorded in
``requests`` (method, path, body, the fault applied). Optional ``server_ssl`` serves TLS (and
with ``verify_mode = CERT_REQUIRED``, mutual TLS) so client TLS settings can be tested for real.

``stop()`` also closes the connections clients keep alive, so that a stopped proxy refuses
connections like a stopped cluster; ``FaultyProxy(upstream, port=<the old port>)`` then serves
again at the same URL (a cluster coming back).

Only the standard library is used; the reliability suite reuses this module.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from tests.support.es_roles import Role, RoleGate

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
_ES_HEADERS = {"content-type": "application/json", "x-elastic-product": "Elasticsearch"}


@dataclass(frozen=True)
class Reply:
    """Answer with ``status`` and ``body`` (a dict is sent as JSON) instead of forwarding."""

    status: int
    body: Mapping[str, object] | bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: dict(_ES_HEADERS))


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without sending any response."""


@dataclass(frozen=True)
class Stall:
    """Hold the request ``seconds`` (or until the proxy stops), then close without answering."""

    seconds: float


@dataclass(frozen=True)
class FailBulkItems:
    """Fail the ``_bulk`` items whose ``_id`` is in ``ids`` (all items when None) with
    ``status``/``error_type``; forward the rest and merge the answers in request order. With
    ``ids``, only requests carrying one of them consume the fault. ``ops`` limits the failure
    to those operations (``{"index"}``: a read-only-allow-delete block lets deletes through)."""

    status: int = 429
    error_type: str = "es_rejected_execution_exception"
    reason: str = "rejected execution of coordinating operation (injected by FaultyProxy)"
    ids: frozenset[str] | None = None
    ops: frozenset[str] | None = None
    extra: Mapping[str, object] = field(default_factory=dict)
    """More fields of the item's ``error`` (``durability`` of a circuit breaker, ``index``)."""


@dataclass(frozen=True)
class Delay:
    """Hold the request ``seconds`` (less if the proxy stops), then forward it."""

    seconds: float


Fault = Reply | Disconnect | Stall | FailBulkItems | Delay


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes
    fault: Fault | None


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None
    path: str | None
    method: str | None

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is not None and self.path not in path.split("?", 1)[0]:
            return False
        if isinstance(self.fault, FailBulkItems) and self.fault.ids is not None:
            # Only requests that carry one of the targeted documents consume the fault.
            return not self.fault.ids.isdisjoint(bulk_ids(body))
        return True


def es_error_body(status: int, error_type: str, reason: str) -> dict[str, object]:
    """An error body shaped like Elasticsearch's (``error.root_cause``, ``type``, ``reason``)."""
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def unauthorized_reply(user: str = "connector") -> Reply:
    """A 401 exactly as Elasticsearch words a failed basic-auth login."""
    reason = f"unable to authenticate user [{user}] for REST request [/_bulk]"
    return Reply(401, es_error_body(401, "security_exception", reason))


def forbidden_reply(
    action: str = "indices:data/write/bulk[s]",
    index: str = "logs-ti_test.indicator",
    privileges: str = "create_doc,create,delete,index,write,all",
    api_key_id: str = "VuaCfGcBCdbkQm-e5aOx",
    user: str = "connector",
) -> Reply:
    """A 403 exactly as Elasticsearch 8.x words a missing index privilege for an API key."""
    reason = (
        f"action [{action}] is unauthorized for API key id [{api_key_id}] of user [{user}] "
        f"on indices [{index}], this action is granted by the index privileges [{privileges}]"
    )
    return Reply(403, es_error_body(403, "security_exception", reason))


class FaultyProxy:
    """An HTTP(S) proxy on 127.0.0.1 forwarding to ``upstream`` except where faults are queued."""

    def __init__(
        self,
        upstream: str,
        *,
        server_ssl: ssl.SSLContext | None = None,
        port: int = 0,
        role: Role | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError(f"upstream must be an http(s) URL, got {upstream!r}")
        self._upstream_https = parts.scheme == "https"
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or (443 if self._upstream_https else 80)
        self._server_ssl = server_ssl
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.gate = RoleGate(role) if role is not None else None
        self._server = _Server(("127.0.0.1", port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._server_ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="faulty-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop serving and close every client connection (kept-alive ones included)."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = 1,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests whose path contains ``path`` (and
        whose method is ``method``); ``times=None``: until ``clear()``."""
        with self._lock:
            self._rules.append(_Rule(fault, times, path, method))

    def clear(self) -> None:
        """Drop every queued fault: from now on every request is forwarded."""
        with self._lock:
            self._rules.clear()

    def pending(self) -> int:
        """How many queued faults have not fired yet (``times=None`` rules count as one)."""
        with self._lock:
            return sum(1 if r.remaining is None else r.remaining for r in self._rules)

    # -- used by the handler ------------------------------------------------------------------

    def _take_fault(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, body):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule.fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _upstream(self) -> http.client.HTTPConnection:
        if self._upstream_https:
            return http.client.HTTPSConnection(
                self._upstream_host,
                self._upstream_port,
                timeout=60,
                context=ssl._create_unverified_context(),
            )
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=60)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], proxy: FaultyProxy
    ) -> None:
        self.proxy = proxy
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        context = self.proxy._server_ssl
        if context is not None and isinstance(request, socket.socket):
            # The handshake runs in the request thread so a stuck client cannot block accept().
            try:
                request = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        if not isinstance(request, socket.socket):
            super().finish_request(request, client_address)
            return
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # Clients hang up mid-request on purpose in these tests: stay quiet.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        fault = proxy._take_fault(self.command, self.path, body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        proxy._record(RecordedRequest(self.command, self.path, headers, body, fault))
        if proxy._stopping.is_set():
            # A kept-alive connection outliving stop(): the cluster is gone.
            self._drop()
        elif isinstance(fault, Disconnect):
            self._drop()
        elif isinstance(fault, Stall):
            proxy._stopping.wait(fault.seconds)
            self._drop()
        elif isinstance(fault, Reply):
            payload = (
                fault.body
                if isinstance(fault.body, bytes)
                else json.dumps(fault.body).encode("utf-8")
            )
            self._send(fault.status, list(fault.headers.items()), payload)
        elif isinstance(fault, FailBulkItems):
            self._fail_bulk_items(fault, body)
        elif isinstance(fault, Delay):
            proxy._stopping.wait(fault.seconds)
            self._forward(body)
        elif proxy.gate is not None:
            self._through_gate(proxy.gate, body)
        else:
            self._forward(body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _upstream_request(
        self, body: bytes, path: str | None = None, method: str | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = self.server.proxy._upstream()
        try:
            connection.request(
                method or self.command, path or self.path, body=body or None, headers=headers
            )
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.getheaders(), payload
        finally:
            connection.close()

    def _forward(self, body: bytes) -> None:
        try:
            status, headers, payload = self._upstream_request(body)
        except OSError:
            self._send(502, list(_ES_HEADERS.items()), b'{"error":"upstream unreachable"}')
            return
        self._send(status, headers, payload)

    def _through_gate(self, gate: RoleGate, body: bytes) -> None:
        def upstream(
            method: str, path: str, payload: bytes
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            return self._upstream_request(payload, path, method)

        try:
            status, headers, payload = gate.handle(self.command, self.path, body, upstream)
        except OSError:
            self._send(502, list(_ES_HEADERS.items()), b'{"error":"upstream unreachable"}')
            return
        self._send(status, headers, payload)

    def _fail_bulk_items(self, fault: FailBulkItems, body: bytes) -> None:
        items = _split_bulk(body)
        failed = [
            (fault.ids is None or item.doc_id in fault.ids)
            and (fault.ops is None or item.op in fault.ops)
            for item in items
        ]
        kept = b"".join(item.raw for item, fail in zip(items, failed, strict=True) if not fail)
        upstream_items: list[object] = []
        took = 0
        upstream_errors = False
        if kept:
            try:
                status, _headers, payload = self._upstream_request(kept)
            except OSError:
                self._send(502, list(_ES_HEADERS.items()), b'{"error":"upstream unreachable"}')
                return
            if status != 200:
                self._send(status, list(_ES_HEADERS.items()), payload)
                return
            answer = json.loads(payload)
            upstream_items = list(answer.get("items", []))
            took = int(answer.get("took", 0))
            upstream_errors = bool(answer.get("errors"))
        merged: list[object] = []
        forwarded = iter(upstream_items)
        for item, fail in zip(items, failed, strict=True):
            if fail:
                merged.append(
                    {
                        item.op: {
                            "_index": item.index,
                            "_id": item.doc_id,
                            "status": fault.status,
                            "error": {
                                "type": fault.error_type,
                                "reason": fault.reason,
                                **fault.extra,
                            },
                        }
                    }
                )
            else:
                merged.append(next(forwarded))
        answer_body = {"took": took, "errors": upstream_errors or any(failed), "items": merged}
        payload = json.dumps(answer_body).encode("utf-8")
        self._send(200, list(_ES_HEADERS.items()), payload)


@dataclass(frozen=True)
class _BulkItem:
    op: str
    index: str | None
    doc_id: str | None
    raw: bytes


def _split_bulk(body: bytes) -> list[_BulkItem]:
    """The items of an NDJSON ``_bulk`` body, each with its raw lines (action + source)."""
    lines = body.splitlines(keepends=True)
    items: list[_BulkItem] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        position += 1
        if not line.strip():
            continue
        action = json.loads(line)
        op = next(iter(action))
        meta = action[op]
        raw = line
        if op != "delete" and position < len(lines):
            raw += lines[position]
            position += 1
        items.append(_BulkItem(op, meta.get("_index"), meta.get("_id"), raw))
    return items


def bulk_ids(body: bytes) -> list[str | None]:
    """The ``_id`` of every item of an NDJSON ``_bulk`` body, in order (for assertions)."""
    return [item.doc_id for item in _split_bulk(body)]
