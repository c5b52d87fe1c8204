"""The command line as an operator meets it: bad configuration (exit 2, every problem named
with its key and source, no secret shown), ``check`` (OK/FAIL lines, exit 0/1) and ``setup``
(idempotent)."""

from __future__ import annotations

import re
from collections.abc import Callable

from elastic_connector.demo.noida import free_port
from tests.e2e.harness import ConnectorHarness, ConnectorProcess

Harnesses = Callable[..., ConnectorHarness]

OPENCTI_SECRET = "e2e-opencti-token-5f1d9c0a7b"
ELASTIC_SECRET = "e2e-elastic-password-93be61"
API_KEY_SECRET = "e2e api key with spaces 0c4e"


def with_secret_token(connector: ConnectorHarness) -> None:
    """Use a token of our own (the stand-in's default admin token is a well-known value)."""
    connector.standin.add_user(OPENCTI_SECRET, name="connector", capabilities=["BYPASS"])
    connector.base_overrides["OPENCTI_TOKEN"] = OPENCTI_SECRET


def assert_no_secret(process: ConnectorProcess, *secrets: str) -> None:
    output = process.output()
    for secret in secrets:
        assert secret not in output, f"{secret!r} leaked\n{output}"


def report_lines(process: ConnectorProcess) -> list[str]:
    return [line for line in process.lines() if re.match(r"^(OK|WARN|FAIL) ", line)]


# --- bad configuration ------------------------------------------------------------------------


def test_unknown_mode_exits_2_naming_the_variable(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    process = connector.run("run", timeout=20, CONNECTOR_MODE="bogus")

    assert process.returncode == 2
    assert process.lines() == [
        "elastic-connector: invalid configuration (1 problem(s)):",
        "  - env CONNECTOR_MODE: 'bogus' is not one of ecs, ecs_no_signals, stix",
    ]
    assert connector.standin.graphql_requests == []  # it never went further


def test_every_config_problem_is_reported_with_its_source_and_no_secret(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness()
    (connector.workdir / "connector.yml").write_text(
        f"connector:\n  mode: bogus\nopencti:\n  token: {OPENCTI_SECRET}\n"
    )
    process = connector.run(
        "run",
        "-c",
        "connector.yml",
        timeout=20,
        OPENCTI_TOKEN=None,
        CONNECTOR_MODE=None,  # the environment would win over the file
        OPENCTI_URL="ftp://opencti.example.org",
        ELASTICSEARCH_API_KEY=API_KEY_SECRET,
        ELASTICSEARCH_PASSWORD=ELASTIC_SECRET,
        CONNECTOR_JSON_CONFIG='{"connector": {"max_tlp": "TLP:PURPLE"}}',
    )

    assert process.returncode == 2
    lines = process.lines()
    assert lines[0] == "elastic-connector: invalid configuration (5 problem(s)):"
    assert sorted(lines[1:]) == sorted(
        [
            "  - env OPENCTI_URL: 'ftp://opencti.example.org' must start with http:// or https://",
            "  - file connector.yml connector.mode: 'bogus' is not one of ecs, ecs_no_signals, "
            "stix",
            "  - CONNECTOR_JSON_CONFIG connector.max_tlp: 'TLP:PURPLE' is not one of TLP:CLEAR, "
            "TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED (TLP:WHITE = TLP:CLEAR)",
            "  - env ELASTICSEARCH_API_KEY: *** must not contain whitespace",
            "  - env ELASTICSEARCH_PASSWORD: is set but output.elasticsearch.username "
            "(ELASTICSEARCH_USERNAME) is not: set both or neither",
        ]
    )
    assert_no_secret(process, OPENCTI_SECRET, ELASTIC_SECRET, API_KEY_SECRET, "spaces 0c4e")
    assert connector.standin.graphql_requests == []


def test_a_url_that_is_not_one_exits_2(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    with_secret_token(connector)
    # (`localhost:9200` without a scheme is a URL: the earlier connector's form, read as http.)
    process = connector.run("run", timeout=20, ELASTICSEARCH_HOSTS="ftp://localhost:9200")

    assert process.returncode == 2
    assert "env ELASTICSEARCH_HOSTS" in process.output()
    assert "ftp://localhost:9200" in process.output()
    assert_no_secret(process, OPENCTI_SECRET)


# --- check -------------------------------------------------------------------------------------


def test_check_against_working_platforms_says_ok_and_exits_0(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    with_secret_token(connector)
    process = connector.run("check")

    assert process.returncode == 0, process.tail()
    lines = report_lines(process)
    assert not [line for line in lines if line.startswith("FAIL")], lines
    subjects = {line.split()[1].rstrip(":") for line in lines if line.startswith("OK ")}
    assert {"config", "opencti", "stream", "elasticsearch", "index"} <= subjects
    assert f"OK   opencti: reached {connector.standin.url} as user 'connector'" in process.lines()
    assert_no_secret(process, OPENCTI_SECRET)
    # check changes nothing: no connector registered, no index created.
    assert not connector.standin.connector_registered(connector.connector_id)
    assert not connector.es.indices.exists(index=connector.index)


def test_check_with_a_wrong_token_fails_and_exits_1(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    process = connector.run("check", OPENCTI_TOKEN=OPENCTI_SECRET)  # unknown to the platform

    assert process.returncode == 1
    fails = [line for line in report_lines(process) if line.startswith("FAIL")]
    assert len(fails) == 1, report_lines(process)
    assert fails[0].startswith("FAIL opencti: ")
    assert_no_secret(process, OPENCTI_SECRET)


def test_check_with_elasticsearch_unreachable_fails_and_exits_1(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    with_secret_token(connector)
    nowhere = f"http://127.0.0.1:{free_port()}"
    process = connector.run(
        "check",
        ELASTICSEARCH_HOSTS=nowhere,
        ELASTICSEARCH_USERNAME="connector",
        ELASTICSEARCH_PASSWORD=ELASTIC_SECRET,
        ELASTICSEARCH_API_KEY=None,
    )

    assert process.returncode == 1
    fails = [line for line in report_lines(process) if line.startswith("FAIL")]
    assert len(fails) == 1, report_lines(process)
    assert fails[0].startswith(f"FAIL elasticsearch: cannot use {nowhere}: ")
    assert "connection refused" in fails[0]
    assert_no_secret(process, OPENCTI_SECRET, ELASTIC_SECRET)


# --- setup --------------------------------------------------------------------------------------


def test_setup_twice_changes_nothing_the_second_time(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    first = connector.run("setup")
    assert first.returncode == 0, first.tail()
    out = first.lines()
    assert f"index {connector.index}: changed" in out
    assert f"  template {connector.index}@elastic-connector (updated)" in out
    assert f"  created {connector.index}-000001 with write alias {connector.index}" in out
    aliases = connector.es.indices.get_alias(name=connector.index).body
    assert list(aliases) == [f"{connector.index}-000001"]

    second = connector.run("setup")
    assert second.returncode == 0, second.tail()
    out = second.lines()
    assert f"index {connector.index}: already up to date" in out
    assert f"  template {connector.index}@elastic-connector" in out
    assert not [line for line in out if "created" in line or "updated" in line], out
    assert list(connector.es.indices.get_alias(name=connector.index).body) == [
        f"{connector.index}-000001"
    ]
    assert connector.standin.graphql_requests == []  # setup needs no OpenCTI
