"""A drop-in for the connector it replaces: the earlier Elastic connector's documented
configuration (every key of its README's table, in a file, in the environment and in
CONNECTOR_JSON_CONFIG; its sample config.yml; its docker-compose environment) loads, and
`elastic-connector config` shows each value under our name with the name it was given under."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from elastic_connector.cli import main
from elastic_connector.core.config import OPTIONS
from elastic_connector.core.config.aliases import ALIASES, EARLIER_KEYS, RETIRED
from elastic_connector.core.config.load import JSON_CONFIG_ENV

SAMPLE = Path(__file__).parent / "data" / "earlier_connector" / "config.yml.sample"
CONNECTOR_ID = "5bd4ad4e-8bd8-4d8d-9d4e-62a4b4a1d3f0"
CLOUD_ID = "elastic:ZXMuZXhhbXBsZS5jb20kYWJjZGVmJGtpYmFuYQ=="
OURS = {option.yaml_path: option for option in OPTIONS}

# The example values of the earlier connector's README table, under its names:
# (YAML path, environment variable) -> value.
TABLE: Mapping[tuple[str, str], object] = {
    ("opencti.token", "OPENCTI_TOKEN"): "ChangeMe-token-1234",
    ("opencti.url", "OPENCTI_URL"): "http://localhost:8080",
    ("opencti.ssl_verify", "OPENCTI_SSL_VERIFY"): False,
    ("connector.confidence_level", "CONNECTOR_CONFIDENCE_LEVEL"): 80,
    ("connector.id", "CONNECTOR_ID"): CONNECTOR_ID,
    ("connector.log_level", "CONNECTOR_LOG_LEVEL"): "warn",
    ("connector.mode", "CONNECTOR_MODE"): "ecs",
    ("connector.name", "CONNECTOR_NAME"): "OpenCTI Elastic Connector",
    ("connector.scope", "CONNECTOR_SCOPE"): "elastic",
    ("connector.start_timestamp", "CONNECTOR_START_TIMESTAMP"): "1655890657402",
    ("connector.live_stream_id", "CONNECTOR_LIVE_STREAM_ID"): "live",
    # The same instant as start_timestamp, in the other documented form.
    (
        "connector.live_stream_start_timestamp",
        "CONNECTOR_LIVE_STREAM_START_TIMESTAMP",
    ): "2022-06-22T09:37:37.402Z",
    ("output.elasticsearch.ssl_verify", "ELASTICSEARCH_SSL_VERIFY"): True,
    ("output.elasticsearch.reduced_privileges", "ELASTICSEARCH_REDUCED_PRIVILEGES"): False,
}
# Ways to authenticate, one at a time (as the earlier connector required too).
AUTHENTICATIONS: Mapping[str, Mapping[tuple[str, str], object]] = {
    "api key": {
        ("output.elasticsearch.hosts", "ELASTICSEARCH_HOSTS"): "localhost:9200",
        ("output.elasticsearch.api_key", "ELASTICSEARCH_APIKEY"): "key-id:key-secret",
    },
    "user and password": {
        ("output.elasticsearch.hosts", "ELASTICSEARCH_HOSTS"): "https://es.example.com:9200",
        ("output.elasticsearch.username", "ELASTICSEARCH_USERNAME"): "opencti",
        ("output.elasticsearch.password", "ELASTICSEARCH_PASSWORD"): "changeme-pw",
    },
    "elastic cloud": {
        ("cloud.id", "CLOUD_ID"): CLOUD_ID,
        ("cloud.auth", "CLOUD_AUTH"): "elastic:changeme-cloud",
    },
}
# What each table key becomes here (our YAML path and the typed value `config` shows).
EXPECTED: Mapping[str, tuple[str, object]] = {
    "opencti.token": ("opencti.token", "***"),
    "opencti.url": ("opencti.url", "http://localhost:8080"),
    "opencti.ssl_verify": ("opencti.ssl_verify", False),
    "connector.confidence_level": ("sightings.confidence", 80),
    "connector.id": ("connector.id", CONNECTOR_ID),
    "connector.log_level": ("connector.log_level", "warning"),
    "connector.mode": ("connector.mode", "ecs"),
    "connector.name": ("connector.name", "OpenCTI Elastic Connector"),
    "connector.scope": ("connector.scope", "elastic"),
    "connector.start_timestamp": ("connector.live_stream_start_timestamp", 1655890657402),
    "connector.live_stream_id": ("connector.live_stream_id", "live"),
    "connector.live_stream_start_timestamp": (
        "connector.live_stream_start_timestamp",
        1655890657402,
    ),
    "output.elasticsearch.ssl_verify": ("output.elasticsearch.ssl_verify", True),
    "output.elasticsearch.reduced_privileges": ("output.elasticsearch.reduced_privileges", False),
    "output.elasticsearch.api_key": ("output.elasticsearch.api_key", "***"),
    "output.elasticsearch.username": ("output.elasticsearch.username", "opencti"),
    "output.elasticsearch.password": ("output.elasticsearch.password", "***"),
    "cloud.id": ("cloud.id", CLOUD_ID),
    "cloud.auth": ("cloud.auth", "***"),
}
SECRETS = ("ChangeMe-token-1234", "key-secret", "changeme-pw", "changeme-cloud")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the test machine; a working directory without ./config.yml."""
    names = {option.env_var for option in OPTIONS} | {JSON_CONFIG_ENV}
    names |= {alias.env_var for alias in ALIASES if alias.env_var}
    names |= {name for retired in RETIRED for name in retired.env_vars}
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def nested(entries: Mapping[str, object]) -> dict[str, object]:
    tree: dict[str, object] = {}
    for path, value in entries.items():
        *sections, leaf = path.split(".")
        node = tree
        for key in sections:
            child = node.setdefault(key, {})
            assert isinstance(child, dict)
            node = child
        node[leaf] = value
    return tree


def shown(lines: str) -> dict[str, tuple[object, str]]:
    """`config` output -> {our YAML path: (value, source)}."""
    found: dict[str, tuple[object, str]] = {}
    sections: list[str] = []
    for line in lines.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        sections = sections[:depth]
        if line.endswith(":"):
            sections.append(line.strip()[:-1])
            continue
        text, _, source = line.strip().rpartition("  # ")
        key, _, value = text.partition(": ")
        found[".".join([*sections, key])] = (yaml.safe_load(value), source)
    return found


def run_config(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["config", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def source_for(kind: str, path: str, variable: str) -> str:
    """The source `config` must show for a table key given in ``kind`` of layer."""
    ours = OURS[EXPECTED[path][0]]
    if kind == "env":
        return (
            f"env {variable}"
            if variable == ours.env_var
            else f"env {variable}, alias of {ours.env_var}"
        )
    base = "file config.yml" if kind == "file" else "json"
    return base if path == ours.yaml_path else f"{base} {path}, alias of {ours.yaml_path}"


def test_the_table_and_the_variants_cover_every_key_of_the_earlier_table() -> None:
    table_keys = EARLIER_KEYS[:20]  # its README table, in order
    used = set(TABLE) | {key for variant in AUTHENTICATIONS.values() for key in variant}
    assert used == {(path, variable) for path, variable in table_keys if path and variable}


@pytest.mark.parametrize("kind", ["file", "env", "json"])
@pytest.mark.parametrize("authentication", sorted(AUTHENTICATIONS))
def test_the_earlier_connectors_documented_configuration_loads_under_our_names(
    kind: str,
    authentication: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = {**TABLE, **AUTHENTICATIONS[authentication]}
    if kind == "env":
        for (_, variable), value in given.items():
            monkeypatch.setenv(variable, str(value))
    else:
        document = nested({path: value for (path, _), value in given.items()})
        if kind == "file":
            Path("config.yml").write_text(yaml.safe_dump(document))
        else:
            monkeypatch.setenv(JSON_CONFIG_ENV, json.dumps(document))

    code, out, err = run_config(capsys)

    assert code == 0, err
    values = shown(out)
    assert set(values) == set(OURS)
    for (path, variable), _ in given.items():
        if path == "output.elasticsearch.hosts":
            continue
        ours, value = EXPECTED[path]
        assert values[ours][0] == value, path
        if path == "connector.start_timestamp":
            continue  # given twice (same instant): shown under our name's source
        assert values[ours][1] == source_for(kind, path, variable), path
    hosts = values["output.elasticsearch.hosts"][0]
    if authentication == "api key":
        assert hosts == ["http://localhost:9200"]
        assert "has no scheme: read as http://localhost:9200" in err
    elif authentication == "elastic cloud":
        assert hosts == []
        assert values["output.elasticsearch.hosts"][1] == "from cloud.id"
    for secret in SECRETS:
        assert secret not in out + err
    assert "is the earlier name of" in err


def test_config_env_prints_variables_with_their_sources(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for (_, variable), value in {**TABLE, **AUTHENTICATIONS["api key"]}.items():
        monkeypatch.setenv(variable, str(value))

    code, out, _ = run_config(capsys, "--env")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("# elastic-connector: effective configuration")
    assert "SIGHTINGS_CONFIDENCE=80" in lines
    assert lines[lines.index("SIGHTINGS_CONFIDENCE=80") - 1] == (
        "# env CONNECTOR_CONFIDENCE_LEVEL, alias of SIGHTINGS_CONFIDENCE"
    )
    assert "ELASTICSEARCH_API_KEY=***" in lines
    assert "CONNECTOR_LIVE_STREAM_START_TIMESTAMP=1655890657402" in lines
    assert "ELASTICSEARCH_HOSTS=http://localhost:9200" in lines
    variables = [line.split("=", 1)[0] for line in lines if not line.startswith("#")]
    assert set(variables) <= {option.env_var for option in OPTIONS}


def test_the_earlier_sample_config_yml_loads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(SAMPLE, "config.yml")

    # As shipped, its connector id is a placeholder that OpenCTI would refuse.
    code, out, err = run_config(capsys)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "elastic-connector: invalid configuration (1 problem(s)):",
        "  - file config.yml connector.id: 'ChangeMe' is not a UUID (generate one with `uuidgen`)",
    ]

    monkeypatch.setenv("CONNECTOR_ID", CONNECTOR_ID)
    code, out, err = run_config(capsys)

    assert code == 0, err
    values = shown(out)
    assert values["connector.live_stream_start_timestamp"] == (
        1655890657402,
        "file config.yml connector.start_timestamp, alias of connector.live_stream_start_timestamp",
    )
    assert values["sightings.confidence"] == (
        80,
        "file config.yml connector.confidence_level, alias of sightings.confidence",
    )
    assert values["sightings.identity_name"] == (
        "Elastic Detection Cluster",
        "file config.yml connector.entity_name, alias of sightings.identity_name",
    )
    assert values["output.elasticsearch.hosts"] == (["http://localhost:9200"], "file config.yml")
    assert values["connector.id"] == (CONNECTOR_ID, "env CONNECTOR_ID")
    assert values["connector.name"] == ("OpenCTI Elastic Connector", "file config.yml")
    assert values["output.elasticsearch.index"] == (None, "default")
    assert err.splitlines() == [
        "elastic-connector: note: file config.yml connector.confidence_level: is the earlier "
        "name of sightings.confidence (SIGHTINGS_CONFIDENCE): read as it",
        "elastic-connector: note: file config.yml connector.entity_name: is the earlier name of "
        "sightings.identity_name (SIGHTINGS_IDENTITY_NAME): read as it",
        "elastic-connector: note: file config.yml connector.start_timestamp: is the earlier name "
        "of connector.live_stream_start_timestamp (CONNECTOR_LIVE_STREAM_START_TIMESTAMP): read "
        "as it",
        "elastic-connector: note: file config.yml connector.type: is not used by this connector "
        "(ignored): this connector is always a STREAM connector; the setting can be removed",
        "elastic-connector: warning: file config.yml connector.entity_description: is not used "
        "by this connector (ignored): the sighting identity (sightings.identity_name) is created "
        "with a fixed description; edit it in OpenCTI if you want another",
        "elastic-connector: warning: file config.yml output.include_labels: is not used by this "
        "connector (ignored): labels are always written, to the ECS field tags",
        "elastic-connector: warning: file config.yml setup.ilm.enabled, setup.ilm.policy_name, "
        "setup.ilm.rollover_alias, setup.ilm.pattern, setup.ilm.overwrite: are not used by this "
        "connector (ignored): the connector writes through the write alias "
        "output.elasticsearch.index and creates its first backing index itself; attach an ILM "
        "policy in Kibana if you want rollover",
        "elastic-connector: warning: file config.yml setup.template.enabled, "
        "setup.template.name, setup.template.pattern, setup.template.overwrite: are not used by "
        "this connector (ignored): the connector installs its own index template for "
        "output.elasticsearch.index (`elastic-connector setup`, or at start)",
        "elastic-connector: warning: file config.yml output.elasticsearch.hosts: 'localhost:9200' "
        "has no scheme: read as http://localhost:9200 (plain HTTP, as the earlier connector did); "
        "write https://... to use TLS",
    ]


def test_the_earlier_docker_compose_environment_loads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its docker-compose.yml, with the ChangeMe placeholders filled in.
    compose = {
        "OPENCTI_URL": "http://localhost",
        "OPENCTI_TOKEN": "ChangeMe-token-1234",
        "CONNECTOR_ID": CONNECTOR_ID,
        "CONNECTOR_LIVE_STREAM_ID": "live",
        "CONNECTOR_LIVE_STREAM_LISTEN_DELETE": "true",
        "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES": "true",
        "CONNECTOR_NAME": "OpenCTI Elastic Connector",
        "CONNECTOR_SCOPE": "elastic",
        "CONNECTOR_CONFIDENCE_LEVEL": "80",
        "CONNECTOR_LOG_LEVEL": "error",
        "CONNECTOR_ENTITY_NAME": "Elastic Detection Cluster",
        "CONNECTOR_ENTITY_DESCRIPTION": "Elasticsearch detection engine cluster",
        "CONNECTOR_MODE": "ecs",
        "CONNECTOR_TYPE": "STREAM",  # its Dockerfile's ENV
    }
    for name, value in compose.items():
        monkeypatch.setenv(name, value)

    code, out, err = run_config(capsys)

    assert code == 0, err
    values = shown(out)
    assert values["sightings.identity_name"] == (
        "Elastic Detection Cluster",
        "env CONNECTOR_ENTITY_NAME, alias of SIGHTINGS_IDENTITY_NAME",
    )
    assert values["connector.log_level"] == ("error", "env CONNECTOR_LOG_LEVEL")
    assert "CONNECTOR_ENTITY_DESCRIPTION: is not used by this connector" in err


def test_invalid_settings_exit_2_with_the_lines_run_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_TYPE", "EXTERNAL_IMPORT")
    monkeypatch.setenv("ELASTICSEARCH_API_KEY", "id:one")
    monkeypatch.setenv("ELASTICSEARCH_APIKEY", "id:two")

    code, out, err = run_config(capsys)
    assert code == 2
    assert out == ""
    for command in (["run"], ["check"]):
        assert main(command) == 2
        assert capsys.readouterr().err == err
    assert err.splitlines()[0] == "elastic-connector: invalid configuration (5 problem(s)):"
    assert (
        "  - env CONNECTOR_TYPE: 'EXTERNAL_IMPORT' is not STREAM: this connector only runs as a "
        "stream connector (remove the setting)"
    ) in err.splitlines()
    assert (
        "  - env ELASTICSEARCH_APIKEY: is set more than once (ELASTICSEARCH_API_KEY and "
        "ELASTICSEARCH_APIKEY) with different values: keep one"
    ) in err.splitlines()
    assert "id:one" not in err
    assert "id:two" not in err


@pytest.mark.parametrize("command", ["config", "map"])
def test_a_misspelt_variable_is_warned_by_every_command(
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for variable, value in {
        "OPENCTI_URL": "http://localhost:8080",
        "OPENCTI_TOKEN": "ChangeMe-token-1234",
        "CONNECTOR_ID": CONNECTOR_ID,
        "CONNECTOR_MIN_SCOR": "50",
    }.items():
        monkeypatch.setenv(variable, value)
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    code = main([command] if command == "config" else [command, str(empty)])
    err = capsys.readouterr().err
    assert code == 0
    assert (
        "elastic-connector: warning: env CONNECTOR_MIN_SCOR: is not a setting (ignored); "
        "did you mean CONNECTOR_MIN_SCORE?"
    ) in err.splitlines()
