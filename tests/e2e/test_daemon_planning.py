"""The real daemon plans a backlog in its planning process, and stops it with itself.

A knowledge base of 1,500 indicators is replayed at once (full batches: a backlog). The daemon
must start ``python -m elastic_connector.shell.planning`` as its child, index exactly what
planning in its own process indexes, warn about nothing, and leave no child behind when it
stops; with ``CONNECTOR_PLANNING_PROCESS=false`` it starts no child at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from elastic_connector.demo.opencti_data import make_indicator
from tests.e2e.harness import ConnectorHarness, ConnectorProcess, doc_id, wait_for

Harnesses = Callable[..., ConnectorHarness]

COUNT: Final = 1500

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")


def _children(pid: int) -> list[int]:
    """The processes ``pid``'s threads started (the writer thread starts the planning one)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _planning_children(daemon: ConnectorProcess) -> list[int]:
    planning = []
    for child in _children(daemon.pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"elastic_connector.shell.planning" in command:
            planning.append(child)
    return planning


@pytest.mark.parametrize("apart", [True, False], ids=["planning process", "in the writer"])
def test_a_replayed_backlog_is_planned_in_the_planning_process(
    e2e_harness: Harnesses, apart: bool
) -> None:
    connector = e2e_harness(env={"CONNECTOR_PLANNING_PROCESS": str(apart).lower()})
    now_ms = int(time.time() * 1000)
    indicators = [
        make_indicator(f"[ipv4-addr:value = '10.9.{n // 250}.{n % 250}']") for n in range(COUNT)
    ]
    for number, stix in enumerate(indicators):
        connector.standin.publish("create", stix, at_ms=now_ms - (COUNT - number) * 10)
    time.sleep(1.1)  # the recovery date has a one-second resolution: keep it after them
    daemon = connector.start()
    seen: set[int] = set()

    def indexed() -> bool:
        seen.update(_planning_children(daemon))
        return len(connector.documents()) == COUNT

    wait_for(indexed, what=f"{COUNT} documents", context=daemon.tail, timeout=60)
    assert set(connector.documents()) == {doc_id(stix) for stix in indicators}
    if apart:
        assert seen, "no planning process was started"
    else:
        assert not seen
    assert daemon.terminate() == 0
    for child in seen:
        assert not Path(f"/proc/{child}").exists(), "the planning process outlived the daemon"
    assert not [line for line in daemon.lines() if "WARNING" in line or "ERROR" in line]
