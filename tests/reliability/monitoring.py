"""Watching a running daemon from the outside while a test breaks things around it.

``Sampler`` polls ``/healthz`` and the process's resident memory (``/proc/<pid>/status``) in a
background thread; ``Publisher`` feeds the stand-in a list of events at a steady rate, so the
platform keeps producing while Elasticsearch or the network is failing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elastic_connector.demo.opencti_standin import OpenCTIStandin
from tests.e2e.harness import ConnectorProcess
from tests.reliability.workload import Event

__all__ = ["Publisher", "Sample", "Sampler", "publish_all", "resident_megabytes"]


def publish_all(standin: OpenCTIStandin, events: Sequence[Event]) -> list[str]:
    """Publish ``events`` at once (with their context: merges name their sources); the ids."""
    return [standin.publish(event.kind, event.stix, event.context) for event in events]


def resident_megabytes(pid: int) -> float | None:
    """The process's resident set size (Linux), or None when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass(frozen=True)
class Sample:
    at: float
    queue_depth: int | None
    read_id: str | None
    """The last stream id the reader received (acknowledged or not)."""
    ack_id: str | None
    healthy: bool | None
    last_error: str | None
    rss_mb: float | None


@dataclass
class Sampler:
    """Samples ``daemon`` every ``interval`` seconds until ``stop()``."""

    daemon: ConnectorProcess
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return self.samples

    def since(self, moment: float) -> list[Sample]:
        return [sample for sample in list(self.samples) if sample.at >= moment]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.sample())

    def sample(self) -> Sample:
        health = self.daemon.health()
        body = health[1] if health is not None else {}
        stream = body.get("stream")
        elastic = body.get("elasticsearch")
        depth = body.get("queue_depth")
        read_id = stream.get("last_event_id") if isinstance(stream, dict) else None
        ack_id = elastic.get("last_ack_id") if isinstance(elastic, dict) else None
        error = elastic.get("last_error") if isinstance(elastic, dict) else None
        return Sample(
            at=time.monotonic(),
            queue_depth=depth if isinstance(depth, int) else None,
            read_id=read_id if isinstance(read_id, str) else None,
            ack_id=ack_id if isinstance(ack_id, str) else None,
            healthy=None if health is None else health[0] == 200,
            last_error=error if isinstance(error, str) else None,
            rss_mb=resident_megabytes(self.daemon.pid),
        )


@dataclass
class Publisher:
    """Publishes ``events`` on ``standin`` at ``rate`` events per second, in a thread."""

    standin: OpenCTIStandin
    events: Sequence[Event]
    rate: float
    ids: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float) -> list[str]:
        """Wait until every event is published; the ids, in order."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"published {len(self.ids)} of {len(self.events)} events")
        return self.ids

    def _run(self) -> None:
        began = time.monotonic()
        for number, event in enumerate(self.events):
            delay = began + number / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            self.ids.append(self.standin.publish(event.kind, event.stix, event.context))
