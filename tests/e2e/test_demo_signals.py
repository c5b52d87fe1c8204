"""`elastic-connector demo` stopped by SIGTERM (timeout, docker stop, systemd) or SIGINT (Ctrl-C)
stops everything it started and removes its temporary data: no connector, no noida-db server
(its launcher daemonises it: only `noida-db down` stops it) and no directory is left behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from elastic_connector.demo.noida import noida_command

_CONNECTOR_LINE = r"connector \.+ pid (\d+), log "
_NOIDA_LINE = r"Elasticsearch API \(noida-db\) \.+ http://127\.0\.0\.1:(\d+)"


def _processes_using(directory: Path) -> list[str]:
    """Processes whose command line or working directory lies under ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if str(directory) in command or cwd.startswith(str(directory)):
            found.append(f"{entry.name}: {command.strip()}")
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Demo:
    """The demo in a subprocess of its own session (the signal reaches it alone, as from
    `docker stop`: not its children), its temporary files under ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        keep = ("PATH", "HOME", "LANG")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        env.update({"TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "elastic_connector", "demo", "--keep-running"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = regex.search(line)
                if match:
                    return match
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.1)
        pytest.fail(f"the demo never printed {regex.pattern!r}:\n" + "\n".join(self.lines))

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=90)
        self.reader.join(timeout=10)
        return code


def _leave_nothing_behind(tmp: Path) -> None:
    """If the demo failed to clean up, do it, so that a regression leaks nothing on CI."""
    for data_dir in tmp.glob("elastic-connector-noida-*"):
        subprocess.run(
            [noida_command(), "down", "--data-dir", str(data_dir)],
            capture_output=True,
            timeout=60,
            check=False,
        )
    for process in _processes_using(tmp):
        with contextlib.suppress(OSError):
            os.kill(int(process.split(":", 1)[0]), signal.SIGKILL)


def _stop_and_find_nothing_left(tmp: Path, signum: int, when: str) -> list[str]:
    demo = Demo(tmp)
    try:
        noida_port = int(demo.wait_for(_NOIDA_LINE).group(1))
        connector_pid = int(demo.wait_for(_CONNECTOR_LINE).group(1))
        demo.wait_for(when)
        assert _alive(connector_pid)
        assert _processes_using(tmp)  # the test sees what the demo started

        code = demo.stop(signum)
        connector_left = _alive(connector_pid)
        noida_left = _port_open(noida_port)
        processes_left = _processes_using(tmp)
        files_left = sorted(path.name for path in tmp.iterdir())
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.process.wait()
        _leave_nothing_behind(tmp)

    output = "\n".join(demo.lines)
    assert "Traceback" not in output
    assert not connector_left, output
    assert not noida_left, output
    assert processes_left == [], output
    assert files_left == [], output
    assert code in (0, 128 + signum), f"exit {code}\n{output}"
    return demo.lines


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_demo_stops_everything_and_removes_its_data(
    tmp_path: Path, signum: signal.Signals
) -> None:
    lines = _stop_and_find_nothing_left(tmp_path, signum, r"connector \.+ pid")
    assert lines[-1] == (
        f"{signum.name}: the demo stopped everything it started and removed its temporary data."
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_keep_running_stops_everything_and_removes_its_data(
    tmp_path: Path, signum: signal.Signals
) -> None:
    lines = _stop_and_find_nothing_left(tmp_path, signum, r"^Still running")
    # Whatever stopped the demo, the demo stops its connector with SIGTERM, cleanly.
    assert "SIGTERM: the connector stopped with exit code 0; position saved in OpenCTI." in lines
