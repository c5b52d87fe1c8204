"""What `check` prints, line by line, against the OpenCTI stand-in and noida-db: its own
OK/WARN/FAIL lines only (no library log line, no traceback), unless --verbose or log level
debug."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.e2e.harness import ConnectorHarness

Harnesses = Callable[..., ConnectorHarness]


def expected_lines(connector: ConnectorHarness) -> list[str]:
    opencti = connector.standin.url
    elasticsearch = connector.es_settings.hosts[0]
    return [
        f"OK   config: mode ecs, index {connector.index}, max TLP TLP:AMBER+STRICT",
        f"OK   opencti: reached {opencti} as user 'admin'",
        "WARN opencti: user 'admin' is an administrator (BYPASS): use a dedicated connector user "
        "with only the rights it needs (see README, 'OpenCTI user')",
        "OK   sightings: the user may mark sightings TLP:AMBER (sightings.tlp)",
        f"OK   stream: {opencti}/stream/live is readable",
        f"OK   elasticsearch: reached {elasticsearch} (version 8.15.3)",
        "WARN privileges: privileges could not be verified: the cluster has no security API "
        "(security disabled, or an Elasticsearch-compatible server)",
        f"OK   index: {connector.index} does not exist yet; it is created at start",
        "WARN alerts: .alerts-security.alerts-* matches no index yet (Kibana creates it with the "
        "first alert of a detection rule); check again once rules have run",
    ]


def test_check_prints_its_own_lines_only(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    process = connector.run("check", CONNECTOR_MODE="ecs")

    assert process.returncode == 0, process.tail()
    # stdout and stderr together: nothing but the report.
    assert process.lines() == expected_lines(connector)


def test_verbose_adds_the_libraries_lines_without_tracebacks(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    process = connector.run("check", "--verbose", CONNECTOR_MODE="ecs")

    assert process.returncode == 0, process.tail()
    lines = process.lines()
    report = [line for line in lines if re.match(r"^(OK|WARN|FAIL) ", line)]
    assert report == expected_lines(connector)
    assert any(" INFO elastic_transport.transport: POST " in line for line in lines)
    assert "Traceback" not in process.output()


def test_log_level_debug_shows_everything(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    process = connector.run("check", CONNECTOR_MODE="ecs", CONNECTOR_LOG_LEVEL="debug")

    assert process.returncode == 0, process.tail()
    lines = process.lines()
    assert [line for line in lines if re.match(r"^(OK|WARN|FAIL) ", line)] == (
        expected_lines(connector)
    )
    assert any(" DEBUG " in line for line in lines)


def test_setup_prints_its_own_lines_only(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    process = connector.run("setup")

    assert process.returncode == 0, process.tail()
    index = connector.index
    assert process.lines() == [
        f"index {index}: changed",
        f"  template {index}@elastic-connector (updated)",
        f"  created {index}-000001 with write alias {index}",
    ]
