"""A TCP relay that can make the network path silently die.

``TcpRelay(upstream_port)`` listens on 127.0.0.1 and relays every connection to the upstream
port. ``blackhole(prefix)`` makes the connections it currently holds whose first bytes start
with ``prefix`` (``b"GET /stream"``) swallow everything from then on, in both directions,
without closing them: what a dropped NAT entry, a crashed middlebox or a pulled cable looks like
to both ends. Nothing arrives, no FIN, no RST — only a read timeout can notice. Connections
opened afterwards are relayed normally.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

__all__ = ["TcpRelay"]

_CHUNK = 65536


class _Link:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.first_bytes = b""
        self.silenced = threading.Event()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class TcpRelay:
    """Relays 127.0.0.1:<port> to 127.0.0.1:``upstream_port``; see the module documentation."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-relay", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def blackhole(self, prefix: bytes) -> int:
        """Silence the open connections whose client spoke first with ``prefix``; how many."""
        with self._lock:
            chosen = [link for link in self._links if link.first_bytes.startswith(prefix)]
        for link in chosen:
            link.silenced.set()
        return len(chosen)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()  # the upstream is down: so is the path
                continue
            upstream.settimeout(None)
            link = _Link(client, upstream)
            with self._lock:
                self._links.append(link)
            for source, target, first in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(link, source, target, first), daemon=True
                ).start()

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket, first: bool) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                if first and len(link.first_bytes) < 64:
                    link.first_bytes += data[: 64 - len(link.first_bytes)]
                if link.silenced.is_set():
                    continue  # swallowed: the other end hears nothing, not even a close
                target.sendall(data)
        except OSError:
            pass
        if source is link.client:
            # The client is gone (it closed, or gave up on a silent path): so is the link.
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
            link.close()
        elif not link.silenced.is_set():
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)  # pass the upstream's close on
