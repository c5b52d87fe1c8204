"""An Elasticsearch endpoint that takes ``_bulk`` requests at no cost: the connector's ceiling.

``NullBulkProxy`` forwards every request to a real endpoint (noida-db or a cluster), so the
daemon sets its index up and reads it as usual, except ``_bulk``: those it answers itself, at
once, with one successful item per action (``201`` for an index action, ``200`` for a delete),
as Elasticsearch answers them with the ``filter_path`` the connector sends. Nothing is stored.
The daemon's throughput against it is what the connector can do when Elasticsearch is not the
bottleneck; its memory over 10k and 100k events shows whether streaming costs grow.

It runs in a process of its own (``python -m benchmarks.null_bulk UPSTREAM``). In the
benchmark's process it shared the GIL with the stand-in serving the stream, and the daemon's
writer spent 59% of its time waiting for bulk answers (py-spy, 60,000 events): the number
measured the benchmark, not the connector.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)


def bulk_answer(body: bytes) -> bytes:
    """The ``_bulk`` answer for ``body``: every action succeeded."""
    items: list[bytes] = []
    lines = iter(body.split(b"\n"))
    for line in lines:
        if not line.strip():
            continue
        if line.startswith(b'{"delete"'):
            items.append(b'{"delete":{"status":200}}')
        else:
            op = line[2 : line.index(b'"', 2)] if line.startswith(b'{"') else b"index"
            items.append(b'{"' + op + b'":{"status":201}}')
            next(lines, None)  # the document line
    return b'{"errors":false,"items":[' + b",".join(items) + b"]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux) on every request. Elasticsearch's
    # HTTP server sets TCP_NODELAY (http.tcp.no_delay, on by default); so does this one.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        if urlsplit(self.path).path.rstrip("/").endswith("/_bulk"):
            self._reply(
                200,
                bulk_answer(body),
                [("content-type", "application/json"), ("x-elastic-product", "Elasticsearch")],
            )
            return
        status, headers, answer = self.server.forward(
            self.command, self.path, dict(self.headers.items()), body
        )
        self._reply(status, answer, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlsplit(upstream)

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = self.upstream
        connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection(upstream.hostname or "", upstream.port or 443)
            if upstream.scheme == "https"
            else http.client.HTTPConnection(upstream.hostname or "", upstream.port or 9200)
        )
        try:
            kept = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(method, path, body=body or None, headers=kept)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


class NullBulkProxy:
    """``with NullBulkProxy(upstream) as proxy: ... proxy.url``: the endpoint in a child
    process, stopped when the block ends."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self._process: subprocess.Popen[str] | None = None
        self._url = ""

    @property
    def url(self) -> str:
        return self._url

    def __enter__(self) -> Self:
        root = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.null_bulk", self._upstream],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._process.stdout is not None
        self._url = self._process.stdout.readline().strip()
        if not self._url.startswith("http://"):
            self._process.kill()
            raise RuntimeError("the null bulk endpoint did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # end of input: the child shuts its server down and exits
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(upstream: str) -> None:
    """Serve until standard input ends; the first line printed is the endpoint's URL."""
    server = _Server(upstream)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main(sys.argv[1])
