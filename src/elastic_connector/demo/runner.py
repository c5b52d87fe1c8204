"""`elastic-connector demo`: the whole loop on one machine, with no external server.

1. starts noida-db (a local Elasticsearch-API server) and the OpenCTI stand-in, which serves the
   sample indicators (or a given bundle) on its live stream;
2. runs the real connector (`elastic-connector run`, a subprocess) against both;
3. prints the indicator documents it wrote, and why the others were withheld;
4. writes an indicator-match alert the way Kibana would, and shows the sighting the connector
   records in "OpenCTI";
5. revokes an indicator in "OpenCTI" and shows its document disappear;
6. stops the connector with SIGTERM, as an orchestrator would.

SIGTERM (``timeout``, ``docker stop``, systemd) and SIGINT (Ctrl-C) at any moment stop everything
the demo started (the connector, the stand-in, noida-db: with ``noida-db down``, since its
launcher daemonises the server) and remove its temporary directories. The connector's log is
kept only when the demo failed, to be read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Final, TextIO

from elasticsearch import Elasticsearch

from elastic_connector.core.config import DEFAULT_ECS_INDEX
from elastic_connector.demo.kibana_alerts import ALERTS_MAPPINGS
from elastic_connector.demo.noida import NoidaServer
from elastic_connector.demo.opencti_data import Json
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.demo.sample import sample_objects

CONNECTOR_ID: Final = "d3b07384-d113-4ec6-a5c0-1f6e0f0f0de0"
TOKEN: Final = "demo-admin-token"  # noqa: S105  (the local stand-in's token, not a secret)
ALERTS_INDEX: Final = ".alerts-security.alerts-default"
ALERTS_BACKING_INDEX: Final = ".internal.alerts-security.alerts-default-000001"
_WAIT: Final = 90.0
_VALUE_FIELDS: Final = frozenset({"ip", "url", "file", "email", "registry", "x509", "as"})


def _wait(condition: Callable[[], bool], timeout: float = _WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


def _load_bundle(path: Path) -> list[Json]:
    data = json.loads(path.read_text())
    objects = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objects, list):
        raise ValueError(f"{path} is not a STIX bundle (no 'objects' list)")
    return [obj for obj in objects if isinstance(obj, dict)]


def _dig(node: object, path: str) -> object:
    """``_dig(doc, "threat.indicator.type")``; None where the path does not exist."""
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _values(doc: dict[str, object]) -> str:
    """The match values of an indicator document, for display."""
    indicator = _dig(doc, "threat.indicator")
    found: list[str] = []

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        elif prefix.split(".", maxsplit=1)[0] in _VALUE_FIELDS:
            values = node if isinstance(node, list) else [node]
            found.extend(f"{prefix}={value}" for value in values)

    walk(indicator, "")
    ranges = _dig(doc, "opencti.indicator.ip_range")
    for value in ranges if isinstance(ranges, list) else [ranges] if ranges else []:
        found.append(f"ip_range={value}")
    return ", ".join(found)


def _connector_env(opencti_url: str, es_url: str, workdir: Path) -> dict[str, str]:
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"}
    env = {name: value for name, value in os.environ.items() if name in keep}
    env.update(
        {
            "OPENCTI_URL": opencti_url,
            "OPENCTI_TOKEN": TOKEN,
            "CONNECTOR_ID": CONNECTOR_ID,
            "CONNECTOR_NAME": "Elastic (demo)",
            "CONNECTOR_MODE": "ecs",
            # The walk-through shows why each indicator was withheld: those are debug lines.
            "CONNECTOR_LOG_LEVEL": "debug",
            "ELASTICSEARCH_HOSTS": es_url,
            "ELASTICSEARCH_BULK_FLUSH_INTERVAL": "0.2",
            "SIGHTINGS_POLL_INTERVAL": "2",
            "SIGHTINGS_ALERTS_INDEX": ".alerts-security.alerts-*",
            # The demo's alert is stamped 5 minutes ago: a short settle delay shows the loop at
            # once (production keeps the generous default).
            "SIGHTINGS_SETTLE_DELAY": "60",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env["HOME"] = env.get("HOME", str(workdir))
    return env


def _alert_for(doc_id: str, doc: dict[str, object], now: datetime) -> dict[str, object]:
    """An 8.x indicator-match alert exactly as Kibana stores it (dotted kibana.* keys)."""
    seen = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    indicator = _dig(doc, "threat.indicator")
    alert_id = str(uuid.uuid4())
    return {
        "@timestamp": seen,
        "kibana.alert.uuid": alert_id,
        "kibana.alert.rule.type": "threat_match",
        "kibana.alert.rule.name": "Threat Intel IP Address Indicator Match",
        "kibana.alert.rule.uuid": "demo-rule",
        "kibana.alert.original_time": seen,
        "kibana.alert.workflow_status": "open",
        "kibana.space_ids": ["default"],
        "kibana.version": "8.15.3",
        "event.kind": "signal",
        "source": {"ip": "198.51.100.23"},
        "host": {"name": "finance-laptop-07"},
        "threat": {
            "enrichments": [
                {
                    "indicator": indicator,
                    "feed": {"name": "OpenCTI"},
                    "matched": {
                        "atomic": "198.51.100.23",
                        "field": "source.ip",
                        "id": doc_id,
                        "index": f"{DEFAULT_ECS_INDEX}-000001",
                        "type": "indicator_match_rule",
                    },
                }
            ]
        },
    }


class DemoStopped(BaseException):
    """SIGTERM or SIGINT arrived: unwind, stopping what was started (a BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _signals_stop_the_demo() -> Iterator[None]:
    """While the demo runs, SIGTERM and SIGINT raise ``DemoStopped``; once one has, both are
    ignored, so that a second Ctrl-C cannot interrupt the clean-up it started."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread
        return

    def stop(signum: int, _frame: FrameType | None) -> None:
        for each in _STOP_SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        raise DemoStopped(signum)

    previous = {each: signal.signal(each, stop) for each in _STOP_SIGNALS}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


def run_demo(*, bundle: Path | None, keep_running: bool, out: TextIO) -> int:
    """Run the demo; returns the exit code (0 when every step worked, 128 + the signal number
    when SIGTERM/SIGINT stopped it before the end)."""

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    objects = _load_bundle(bundle) if bundle else sample_objects()
    with _signals_stop_the_demo():
        try:
            return _run(say, objects, keep_running)
        except DemoStopped as stopped:
            say("")
            say(
                f"{stopped}: the demo stopped everything it started and removed its temporary data."
            )
            return 128 + stopped.signum


def _run(say: Callable[[str], None], objects: list[Json], keep_running: bool) -> int:
    with ExitStack() as cleanup:
        # Callbacks run last-in first-out: the connector stops first, the directories go last.
        workdir = Path(tempfile.mkdtemp(prefix="elastic-connector-demo-"))
        keep_log = False

        def remove_workdir() -> None:
            if not keep_log:
                shutil.rmtree(workdir, ignore_errors=True)

        cleanup.callback(remove_workdir)
        log_path = workdir / "connector.log"
        say("elastic-connector demo: everything runs locally, nothing leaves this machine.")
        noida = cleanup.enter_context(NoidaServer())
        opencti = cleanup.enter_context(OpenCTIStandin(token=TOKEN))
        say(f"  Elasticsearch API (noida-db) ... {noida.url}")
        say(f"  OpenCTI stand-in ............... {opencti.url}  ({len(objects)} objects)")
        for obj in objects:
            opencti.publish("create", obj)
        es = Elasticsearch(noida.url)
        cleanup.callback(es.close)
        # What Kibana creates when Elastic Security is first opened.
        es.indices.create(
            index=ALERTS_BACKING_INDEX,
            mappings=ALERTS_MAPPINGS,
            settings={"index": {"hidden": True}},
            aliases={ALERTS_INDEX: {"is_write_index": True, "is_hidden": True}},
        )
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "elastic_connector", "run"],
                env=_connector_env(opencti.url, noida.url, workdir),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        cleanup.callback(_stop_connector, process)
        say(f"  connector ...................... pid {process.pid}, log {log_path}")
        code = _walk_through(say, es, opencti, objects, process, log_path, keep_running)
        if code != 0:
            keep_log = True
            say(f"The connector's log is kept for reading: {log_path}")
        return code


def _stop_connector(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an orchestrator would; SIGKILL if it has not exited within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _documents(es: Elasticsearch) -> dict[str, dict[str, object]]:
    if not es.indices.exists(index=DEFAULT_ECS_INDEX):
        return {}
    es.indices.refresh(index=DEFAULT_ECS_INDEX)
    hits = es.search(index=DEFAULT_ECS_INDEX, size=1000, sort=["_doc"])["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def _withheld(log_path: Path) -> list[str]:
    return [
        line.split("not exported: ", 1)[1].split(" object_id=", 1)[0]
        for line in log_path.read_text(errors="replace").splitlines()
        if "not exported: " in line
    ]


def _walk_through(
    say: Callable[[str], None],
    es: Elasticsearch,
    opencti: OpenCTIStandin,
    objects: list[Json],
    process: subprocess.Popen[bytes],
    log_path: Path,
    keep_running: bool,
) -> int:
    indicators = sum(1 for obj in objects if obj.get("type") == "indicator")
    # Every indicator is either written or withheld (and logged): wait until all are accounted.
    if not _wait(
        lambda: (
            len(_documents(es)) + len(_withheld(log_path)) >= indicators
            or process.poll() is not None
        )
    ):
        say(f"The connector did not process the sample in time; see {log_path}.")
        return 1
    if process.poll() is not None:
        say(f"The connector exited with code {process.returncode}; see {log_path}.")
        return 1
    documents = _documents(es)
    if not documents:
        say("No indicator could be exported; nothing more to show.")
        return 1
    say("")
    say(f"Indicator documents in {DEFAULT_ECS_INDEX} ({len(documents)}):")
    for doc_id, doc in documents.items():
        kind = _dig(doc, "threat.indicator.type") or "?"
        tlp = _dig(doc, "threat.indicator.marking.tlp") or "-"
        say(f"  {kind!s:<22} TLP:{tlp!s:<6} {_values(doc)}")
        say(f"  {'':<22} _id {doc_id}  name {_dig(doc, 'threat.indicator.name')!r}")
    say("")
    say("Withheld from Elasticsearch (the connector's log says why):")
    for line in _withheld(log_path):
        document_id, _, reason = line.partition(" ")
        try:
            name = _indicator_by_id(objects, document_id).get("name", document_id)
        except LookupError:
            name = document_id
        say(f"  {name!s:<28} {reason}")

    first_id, first_doc = next(iter(documents.items()))
    say("")
    say(f"An indicator-match alert arrives in {ALERTS_INDEX} for {first_id} ...")
    es.index(
        index=ALERTS_INDEX,
        document=_alert_for(first_id, first_doc, datetime.now(UTC)),
        refresh=True,
    )
    if _wait(lambda: bool(opencti.sightings), timeout=30):
        sighting = opencti.sightings[0]
        say(
            "  OpenCTI now has a sighting: "
            f"indicator {sighting.get('fromId', first_id)}, "
            f"count {sighting.get('attribute_count')}, first seen {sighting.get('first_seen')}"
        )
    else:
        say("  no sighting was recorded (is the alert poller running? see the log)")

    revoked = opencti.publish("update", {**_indicator_by_id(objects, first_id), "revoked": True})
    say("")
    say(f"The indicator is revoked in OpenCTI (event {revoked}) ...")
    if _wait(lambda: first_id not in _documents(es), timeout=30):
        say(f"  its document is gone: {len(_documents(es))} indicator documents left")
    else:
        say("  its document is still there (see the log)")

    if keep_running:
        say("")
        say("Still running; press Ctrl-C (or send SIGTERM) to stop.")
        try:
            while process.poll() is None:
                time.sleep(1)
        except DemoStopped:
            pass  # what --keep-running waits for: stop as below, then clean up
    process.send_signal(signal.SIGTERM)
    code = process.wait(15)
    say("")
    say(f"SIGTERM: the connector stopped with exit code {code}; position saved in OpenCTI.")
    return 0 if code == 0 else 1


def _indicator_by_id(objects: list[Json], document_id: str) -> Json:
    """The streamed object whose document has ``document_id`` (OpenCTI id, else STIX id)."""
    for obj in objects:
        if obj.get("id") == document_id:
            return obj
        extensions = obj.get("extensions")
        if isinstance(extensions, dict):
            for value in extensions.values():
                if isinstance(value, dict) and value.get("id") == document_id:
                    return obj
    raise LookupError(document_id)
