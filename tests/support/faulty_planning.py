"""A planning process (``shell.planning``) whose planner has the faults a test asks for, by the
event's data: ``poison`` raises in the planner (a core bug), ``die`` ends the process in the
middle of a batch (killed, out of memory), ``garble`` answers bytes that are not an answer,
``hang`` never finishes the batch (a core bug looping forever), ``mismatch`` answers a
well-formed answer that does not hold together (an action without its origin).

Run as a script (``COMMAND``, the command ``PlanningProcess`` is given): the test runner may
run from a directory where ``tests`` is not importable.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import msgspec

from elastic_connector.core.actions import Skip
from elastic_connector.core.events import Plan, PlannerState, PlanSettings, plan_frame
from elastic_connector.shell import planning

COMMAND = (sys.executable, str(Path(__file__).resolve()))


def faulty(
    event_id: str,
    event: str,
    data: bytes,
    state: PlannerState,
    settings: PlanSettings,
    now: datetime,
    authors: Mapping[str, str],
) -> Plan:
    if b"poison" in data:
        raise ValueError("a planner bug")
    if b"die" in data:
        os._exit(3)
    if b"hang" in data:
        while True:
            time.sleep(60)
    if b"mismatch" in data:
        answer = msgspec.msgpack.encode(
            planning.PlannedBatch(actions=[Skip(event_id, "", "undecodable", "?")], origins=[])
        )
        os.write(1, len(answer).to_bytes(4, "big") + answer)
        os._exit(0)
    if b"garble" in data:
        os.write(1, b"\0\0\0\3abc")  # a frame, but not an answer
        os._exit(0)
    return plan_frame(event_id, event, data, state, settings, now, authors)


if __name__ == "__main__":
    planning.main(faulty)
