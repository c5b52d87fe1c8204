"""The OpenCTI catalog files at the repository root follow the option registry.

``__metadata__/connector_manifest.json`` and ``__metadata__/connector_config_schema.json`` are
compared with what ``core.config.catalog`` generates now (regenerate them with
``UPDATE_CATALOG=1 pytest tests/test_catalog_files.py``); the schema is held to the rules the
connectors repository checks for every connector (``tests/tests_metadata`` there) and to the
registry: every option's variable is a property, with a default the connector reads back to the
option's default, and ranges the connector enforces. The docker-compose block of
docs/opencti-catalog.md must configure a connector that starts.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from returns.result import Failure, Success

from elastic_connector import __version__
from elastic_connector.core.config.catalog import MANAGER_SET, config_schema, manifest
from elastic_connector.core.config.export import env_text, plain_value
from elastic_connector.core.config.load import build_config, env_layer
from elastic_connector.core.config.options import OPTIONS, PARSERS, Option

ROOT = Path(__file__).resolve().parents[1]
METADATA = ROOT / "__metadata__"
CATALOG_DOC = ROOT / "docs" / "opencti-catalog.md"

# The platform's allowed values (connectors repository, tests/_manifest_validators.py).
USE_CASES = {"Detection & Response Enablement", "Adversary & Campaign Insights", "Other"}
SOLUTION_CATEGORIES = {"SIEM & Security Analytics", "Threat Intelligence Feed", "Other"}
LOG_LEVELS = {"error", "warning", "warn", "info", "debug"}


def _generated(path: Path, content: dict[str, object]) -> dict[str, Any]:
    text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_CATALOG"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, (
        f"{path.name} is out of date: UPDATE_CATALOG=1 pytest {__file__}"
    )
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return _generated(METADATA / "connector_config_schema.json", config_schema())


@pytest.fixture(scope="module")
def properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = schema["properties"]
    assert isinstance(found, dict)
    return found


def test_manifest_is_generated_and_valid_for_the_catalog() -> None:
    found = _generated(METADATA / "connector_manifest.json", manifest(__version__))
    for key in ("title", "slug", "description", "short_description", "support_version"):
        assert isinstance(found[key], str)
        assert found[key].strip()
    assert len(str(found["short_description"])) <= 250
    assert 1 <= len(found["use_cases"]) <= 3
    assert set(found["use_cases"]) <= USE_CASES
    assert set(found["solution_categories"]) <= SOLUTION_CATEGORIES
    assert found["license_type"] in ("Free", "Commercial")
    assert found["verified"] is False
    assert found["last_verified_date"] is None
    assert isinstance(found["max_confidence_level"], int)
    assert 0 <= found["max_confidence_level"] <= 100
    assert str(found["source_code"]).startswith("https://github.com/OpenCTI-Platform/connectors/")
    assert str(found["container_image"]).startswith("opencti/connector-")
    assert found["container_type"] == "STREAM"
    assert found["manager_supported"] is True


def test_every_option_variable_is_a_property(properties: dict[str, dict[str, Any]]) -> None:
    expected = {option.env_var for option in OPTIONS} - MANAGER_SET
    assert set(properties) - {"CONNECTOR_TYPE"} == expected
    assert {"CONNECTOR_ID"} == MANAGER_SET  # the manager gives each deployment its own id


def test_schema_follows_the_platform_rules(
    schema: dict[str, Any], properties: dict[str, dict[str, Any]]
) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is True
    for name, spec in properties.items():
        assert "type" in spec, name
        assert "anyOf" not in spec
        assert "oneOf" not in spec
        assert spec["type"] != "object"
        if spec["type"] == "array":
            assert "default" in spec, f"{name}: the OpenCTI form needs a default for arrays"
            assert spec["items"] == {"type": "string"}
    assert properties["CONNECTOR_TYPE"]["const"] == "STREAM"
    assert properties["CONNECTOR_SCOPE"]["type"] == "array"
    assert properties["CONNECTOR_LOG_LEVEL"]["default"] in LOG_LEVELS
    assert set(properties["CONNECTOR_LOG_LEVEL"]["enum"]) <= LOG_LEVELS
    assert properties["OPENCTI_URL"]["format"] == "uri"
    assert properties["CONNECTOR_LIVE_STREAM_ID"]["type"] == "string"
    for name in ("CONNECTOR_LIVE_STREAM_LISTEN_DELETE", "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES"):
        assert properties[name]["type"] == "boolean"
    assert schema["required"] == ["OPENCTI_URL", "OPENCTI_TOKEN"]
    secrets = {name for name, spec in properties.items() if spec.get("writeOnly")}
    assert secrets == {option.env_var for option in OPTIONS if option.secret}


@pytest.mark.parametrize(
    "option",
    [option for option in OPTIONS if option.env_var not in MANAGER_SET],
    ids=lambda option: option.env_var,
)
def test_a_schema_default_reads_back_to_the_option_default(
    option: Option, properties: dict[str, dict[str, Any]]
) -> None:
    spec = properties[option.env_var]
    if "default" not in spec or spec["default"] == []:  # [] is "unset" to the loader
        assert option.default is None
        return
    parsed = PARSERS[option.yaml_path](env_text(spec["default"]))
    assert isinstance(parsed, Success), parsed
    assert plain_value(parsed.unwrap(), reveal_secrets=True) == plain_value(
        option.default, reveal_secrets=True
    )


def test_schema_ranges_are_the_ones_the_connector_enforces(
    properties: dict[str, dict[str, Any]],
) -> None:
    by_env = {option.env_var: option for option in OPTIONS}
    for name, spec in properties.items():
        parse = PARSERS[by_env[name].yaml_path] if name in by_env else None
        for key, outside in (("minimum", -1), ("maximum", 1)):
            bound = spec.get(key)
            if parse is None or not isinstance(bound, int):
                continue
            assert isinstance(parse(str(bound)), Success), (name, key)
            assert isinstance(parse(str(bound + outside)), Failure), (name, key)


def _compose_service() -> dict[str, object]:
    text = CATALOG_DOC.read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(services:\n.*?)```", text, re.S)
    assert match, "docs/opencti-catalog.md lost its docker-compose block"
    document = yaml.safe_load(match.group(1))
    (service,) = document["services"].values()
    assert isinstance(service, dict)
    return service


def test_the_compose_block_configures_a_connector_that_starts() -> None:
    service = _compose_service()
    assert str(service["image"]).startswith(str(manifest(__version__)["container_image"]) + ":")
    environment: dict[str, str] = {}
    for entry in service["environment"]:  # type: ignore[attr-defined]
        name, _, value = str(entry).partition("=")
        environment[name] = value
    options = {option.env_var for option in OPTIONS}
    assert set(environment) <= options, set(environment) - options
    # ${...} are the administrator's own values: any well-formed ones will do here.
    samples = {
        "CONNECTOR_ID": "9f0e4ad1-2c5b-4c8e-9a43-5b2f3c1f6a7d",
        "ELASTICSEARCH_HOSTS": "https://es.example.org:9200",
        "ELASTICSEARCH_API_KEY": "key-id:key-secret",
    }
    filled = {
        name: re.sub(r"\$\{[A-Z_]+\}", samples.get(name, "s3cr3t-value"), value)
        for name, value in environment.items()
    }
    config = build_config([env_layer(filled)])
    assert isinstance(config, Success), config
