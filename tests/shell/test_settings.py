"""Reading the settings sources: the YAML file, the environment and CONNECTOR_JSON_CONFIG."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from returns.result import Failure, Result

from elastic_connector.core.config import Config, ConfigError, Secret
from elastic_connector.core.config.export import config_to_mapping
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.shell.settings import load_config, parse_yaml, read_config_file
from tests.core.config.test_properties import valid_configs

CONNECTOR_ID = "7b1f1a44-28a7-4bb2-9f0d-3f1c1b4a5a10"
REQUIRED_ENV = {
    "OPENCTI_URL": "https://opencti.example.com",
    "OPENCTI_TOKEN": "tok-123",
    "CONNECTOR_ID": CONNECTOR_ID,
}


def ok(result: Result[Config, tuple[ConfigError, ...]]) -> Config:
    config = result.value_or(None)
    assert config is not None, result
    return config


def errors(result: Result[Config, tuple[ConfigError, ...]]) -> list[str]:
    assert isinstance(result, Failure), result
    return [str(error) for error in result.failure()]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- which file ----------------------------------------------------------------------------


def test_missing_default_file_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ok(load_config(None, REQUIRED_ENV)).opencti.url == "https://opencti.example.com"


def test_default_file_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "config.yml", "connector:\n  name: From default file\n")
    assert ok(load_config(None, REQUIRED_ENV)).connector.name == "From default file"


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    assert errors(load_config(missing, REQUIRED_ENV)) == [f"file {missing}: does not exist"]


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    assert errors(load_config(tmp_path, REQUIRED_ENV)) == [
        f"file {tmp_path}: cannot be read: Is a directory"
    ]


def test_a_path_through_a_file_cannot_be_read(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "") / "inner.yml"
    assert errors(load_config(path, REQUIRED_ENV)) == [
        f"file {path}: cannot be read: Not a directory"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "kibana: {}\n")
    path.chmod(0)
    assert errors(load_config(path, REQUIRED_ENV)) == [
        f"file {path}: cannot be read: Permission denied"
    ]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(b"connector:\n  name: caf\xe9\n")
    assert errors(load_config(path, REQUIRED_ENV)) == [f"file {path}: is not UTF-8 text (byte 22)"]


# --- YAML contents -------------------------------------------------------------------------


def test_empty_and_comment_only_files_are_empty_layers(tmp_path: Path) -> None:
    for text in ("", "# nothing\n", "---\n"):
        path = write(tmp_path / "config.yml", text)
        assert ok(load_config(path, REQUIRED_ENV)).connector.name == "Elastic"


@pytest.mark.parametrize(
    ("text", "kind"), [("- opencti\n- connector\n", "a list"), ("just text\n", "a string")]
)
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path / "config.yml", text)
    assert errors(load_config(path, REQUIRED_ENV)) == [
        f"file {path}: must be a mapping (opencti:, connector:, ...), got {kind}"
    ]


def test_invalid_yaml_error_has_the_position_but_not_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yml",
        'opencti:\n  url: https://o.example\n  token: "tok-SECRET-77\nconnector:\n  id: x\n',
    )
    (message,) = errors(load_config(path, REQUIRED_ENV))
    assert message.startswith(f"file {path}: is not valid YAML: while scanning a quoted scalar")
    assert "(line 3, column 10)" in message
    assert "SECRET" not in message


def test_yaml_error_from_pyyaml_itself_would_have_leaked(tmp_path: Path) -> None:
    # Why the loader rewrites PyYAML's message: PyYAML quotes the offending line.
    text = "opencti:\n  token: tok-SECRET-77: x\n"
    with pytest.raises(yaml.YAMLError) as raised:
        yaml.safe_load(text)
    assert "SECRET" in str(raised.value)
    (message,) = errors(load_config(write(tmp_path / "c.yml", text), REQUIRED_ENV))
    assert "SECRET" not in message
    assert "line 2" in message


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "opencti:\n  ssl_verify: false\n  ssl_verify: true\n")
    assert errors(load_config(path, REQUIRED_ENV)) == [
        f"file {path}: is not valid YAML: while reading a mapping (line 2, column 3): duplicate "
        "key 'ssl_verify' (line 3, column 3)"
    ]


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = (
        "base: &base\n  space: base-space\n  url: http://k:5601\n"
        "kibana:\n  <<: *base\n  space: soc\n"
    )
    assert parse_yaml(text).unwrap() == {
        "base": {"space": "base-space", "url": "http://k:5601"},
        "kibana": {"space": "soc", "url": "http://k:5601"},
    }
    # `base` itself is not an option: reported, not silently ignored.
    assert errors(load_config(write(tmp_path / "c.yml", text), REQUIRED_ENV)) == [
        f"file {tmp_path / 'c.yml'} base: unknown option; expected one of: cloud, connector, "
        "kibana, opencti, output, sightings"
    ]


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "opencti: !!python/object/apply:os.getcwd []\n")
    (message,) = errors(load_config(path, REQUIRED_ENV))
    assert "could not determine a constructor for the tag" in message


def test_absurd_yaml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "connector:\n  metrics_port: " + "9" * 5000 + "\n")
    assert errors(load_config(path, REQUIRED_ENV)) == [
        f"file {path}: is not usable YAML: ValueError"
    ]


def test_yaml_native_types_and_dates(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yml",
        "connector:\n"
        "  live_stream_recover_iso_date: 2024-01-31T00:00:00Z\n"
        "  max_tlp: TLP:WHITE\n"
        "  require_detection: yes\n"
        "output:\n"
        "  elasticsearch:\n"
        "    hosts:\n      - https://es1.example\n      - https://es2.example:9243\n",
    )
    config = ok(load_config(path, REQUIRED_ENV))
    assert config.connector.live_stream_recover_iso_date == "2024-01-31T00:00:00Z"
    assert config.connector.max_tlp is Tlp.CLEAR
    assert config.connector.require_detection is True
    assert config.elasticsearch.hosts == ("https://es1.example", "https://es2.example:9243")


# --- precedence across the real sources ----------------------------------------------------


def test_file_then_environment_then_json(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yml",
        "opencti:\n  url: https://file.example\n  token: file-token\n"
        "connector:\n  id: " + CONNECTOR_ID + "\n  name: file-name\n  scope: file-scope\n"
        "kibana:\n  space: file-space\n",
    )
    environ = {
        "CONNECTOR_NAME": "env-name",
        "CONNECTOR_SCOPE": "env-scope",
        "KIBANA_SPACE": "",
        "CONNECTOR_JSON_CONFIG": json.dumps({"connector": {"scope": "json-scope"}}),
    }
    config = ok(load_config(path, environ))
    assert config.opencti.url == "https://file.example"
    assert config.opencti.token == Secret("file-token")
    assert config.connector.name == "env-name"
    assert config.connector.scope == "json-scope"
    assert config.kibana.space == "file-space"


def test_file_and_json_errors_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "[not, a, mapping]\n")
    assert errors(load_config(path, {"CONNECTOR_JSON_CONFIG": "{oops}"})) == [
        f"file {path}: must be a mapping (opencti:, connector:, ...), got a list",
        "CONNECTOR_JSON_CONFIG: is not valid JSON: JSON is malformed: object keys must be "
        "strings (byte 1)",
    ]


def test_validation_errors_from_every_source_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "connector:\n  mode: elk\n  max_tpl: TLP:RED\n")
    environ = {
        **REQUIRED_ENV,
        "SIGHTINGS_PAGE_SIZE": "0",
        "CONNECTOR_JSON_CONFIG": '{"kibana": {"url": "kibana:5601"}}',
    }
    assert errors(load_config(path, environ)) == [
        f"file {path} connector.max_tpl: unknown option; did you mean connector.max_tlp?",
        f"file {path} connector.mode: 'elk' is not one of ecs, ecs_no_signals, stix",
        "env SIGHTINGS_PAGE_SIZE: 0 is not between 1 and 10000",
        "CONNECTOR_JSON_CONFIG kibana.url: 'kibana:5601' must start with http:// or https://",
    ]


def test_offline_load_without_connection_settings(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "connector:\n  max_tlp: TLP:GREEN\n")
    assert ok(load_config(path, {}, offline=True)).connector.max_tlp is Tlp.GREEN
    assert len(errors(load_config(path, {}))) == 3


def test_read_config_file_returns_no_layer_for_a_missing_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_config_file(None).unwrap() == ()


# --- round trip through YAML text ----------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(valid_configs())
def test_a_config_written_as_yaml_loads_back_equal(tmp_path: Path, config: Config) -> None:
    text = yaml.safe_dump(config_to_mapping(config, reveal_secrets=True), allow_unicode=True)
    path = write(tmp_path / "roundtrip.yml", text)
    assert ok(load_config(path, {})) == config
