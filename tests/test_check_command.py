"""`check` against platforms that refuse connections: one line each, naming the URL, the error
and the option to fix; never a library traceback (pycti's own error logging included) unless
the log level is debug."""

from __future__ import annotations

import os
import subprocess
import sys

from elastic_connector.demo.noida import free_port

CONNECTOR_ID = "5bd4ad4e-8bd8-4d8d-9d4e-62a4b4a1d3f0"


def run_check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")
    environment = {name: os.environ[name] for name in keep if name in os.environ}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "elastic_connector", "check", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def closed_ports() -> dict[str, str]:
    return {
        "OPENCTI_URL": f"http://127.0.0.1:{free_port()}",
        "OPENCTI_TOKEN": "check-token-5f1d9c",
        "CONNECTOR_ID": CONNECTOR_ID,
        "ELASTICSEARCH_HOSTS": f"http://127.0.0.1:{free_port()}",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }


def test_check_against_closed_ports_prints_one_line_per_platform_and_no_traceback() -> None:
    env = closed_ports()
    result = run_check(**env)

    assert result.returncode == 1
    assert result.stderr == ""
    opencti, elasticsearch = env["OPENCTI_URL"], env["ELASTICSEARCH_HOSTS"]
    es_endpoint = elasticsearch.removeprefix("http://")
    assert result.stdout.splitlines() == [
        "OK   config: mode ecs, index logs-ti_opencti_connector.indicator, max TLP "
        "TLP:AMBER+STRICT",
        f"FAIL opencti: cannot reach OpenCTI at {opencti}: connection refused; is the platform "
        "running there? check opencti.url (OPENCTI_URL)",
        f"FAIL elasticsearch: cannot use {elasticsearch}: cannot connect to Elasticsearch at "
        f"{es_endpoint}: connection refused (is it running and listening on that address?); "
        "check output.elasticsearch.hosts (ELASTICSEARCH_HOSTS)",
    ]
    assert "check-token-5f1d9c" not in result.stdout


def test_verbose_shows_library_lines_but_no_traceback() -> None:
    result = run_check("--verbose", **closed_ports())

    assert result.returncode == 1
    assert "elastic_transport" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_log_level_debug_shows_the_tracebacks() -> None:
    result = run_check(**closed_ports(), CONNECTOR_LOG_LEVEL="debug")

    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "check-token-5f1d9c" not in result.stdout + result.stderr
