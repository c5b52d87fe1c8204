"""A private noida-db Elasticsearch-API server for the demo and the test suite.

noida-db (PyPI) is a third-party local server that speaks the Elasticsearch REST API; it is a
demo/test dependency only (extras ``demo`` and ``test``). The ``noida-db`` command is a Python
wrapper that daemonises the server: killing the wrapper leaves the server running, so it is
always stopped with ``noida-db down --data-dir <same dir>``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final, Self

_START_ATTEMPTS: Final = 5
_READY_TIMEOUT: Final = 20.0
_RESERVED_PORT: Final = 9200  # a developer's own server may be there; never take it


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def noida_command() -> str:
    """The ``noida-db`` launcher: on PATH, or next to this interpreter (a venv not activated)."""
    found = shutil.which("noida-db")
    if found is not None:
        return found
    beside = Path(sys.executable).parent / "noida-db"
    if beside.exists():
        return str(beside)
    raise RuntimeError("noida-db is not installed: pip install 'elastic-connector[demo]'")


def _wait_ready(url: str) -> bool:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (loopback URL we built)
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


class NoidaServer:
    """noida-db on a free loopback port with a fresh temporary data directory."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="elastic-connector-noida-"))
        self.url = ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            # Interrupted (or failed) while starting: the launcher may already have daemonised
            # a server, which outlives it.
            self.stop()
            self.remove()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        self.remove()

    def start(self) -> str:
        command = noida_command()
        failures: list[str] = []
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            if port == _RESERVED_PORT:
                continue
            result = subprocess.run(  # noqa: S603  (fixed arguments, our own launcher)
                [
                    command,
                    "up",
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--only",
                    "elasticsearch",
                    "--elasticsearch-port",
                    str(port),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            url = f"http://127.0.0.1:{port}"
            if result.returncode == 0 and _wait_ready(url):
                self.url = url
                return url
            failures.append(result.stdout[-500:] + result.stderr[-500:])
            self.stop()
        raise RuntimeError("noida-db did not start:\n" + "\n---\n".join(failures))

    def stop(self) -> None:
        subprocess.run(  # noqa: S603  (fixed arguments, our own launcher)
            [noida_command(), "down", "--data-dir", str(self.data_dir)],
            capture_output=True,
            timeout=60,
            check=False,
        )

    def remove(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
