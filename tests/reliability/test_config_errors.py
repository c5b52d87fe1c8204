"""Every class of invalid setting stops ``elastic-connector run`` before it touches anything:
exit code 2, one line per problem naming the option and the source it came from (the YAML
file, an environment variable, ``CONNECTOR_JSON_CONFIG``), and no secret in the output.

The command runs as a subprocess with secrets set in every source at once — the OpenCTI token
and the Elasticsearch password in the file, the environment and the JSON document — plus, per
case, the secret the case is about (an API key in both forms, ``cloud.auth``, credentials
inside a URL, a secret under a misspelt key). The whole output is searched for each of them
and for the parts of encoded ones.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import ConnectorProcess

FILE_TOKEN = "file-token-9f8e7d6c5b4a"
ENV_TOKEN = "env-token-1a2b3c4d5e6f"
JSON_TOKEN = "json-token-0d9c8b7a6f5e"
FILE_PASSWORD = "file-password-77aa66bb"
ENV_PASSWORD = "env-password-55cc44dd"
JSON_PASSWORD = "json-password-33ee22ff"
BASE_SECRETS = (FILE_TOKEN, ENV_TOKEN, JSON_TOKEN, FILE_PASSWORD, ENV_PASSWORD, JSON_PASSWORD)

API_KEY_ID = "VuaCfGcBCdbkQm-e5aOx"
API_KEY_SECRET = "ui2lp2axTNmsyakw9tvNnw"
CLOUD_PASSWORD = "cloud-password-0099887766"
URL_PASSWORD = "url-password-1122334455"
TYPO_SECRET = "typo-secret-6677889900"
CLOUD_ID = "test:" + base64.b64encode(b"es.example.org:443$abcdef0123$kib0123").decode()

CONFIG_FILE = "config.yml"


@dataclass(frozen=True)
class Case:
    """One invalid value: where it goes and the line that must report it."""

    expected: str
    """The whole report line (without the leading ``  - ``), or its start when it ends with
    ``...``."""
    file: Mapping[str, object] = field(default_factory=dict)
    env: Mapping[str, str | None] = field(default_factory=dict)
    json: Mapping[str, object] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


def merged(base: Mapping[str, object], extra: Mapping[str, object]) -> dict[str, object]:
    result = dict(base)
    for key, value in extra.items():
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            result[key] = merged(current, value)
        else:
            result[key] = value
    return result


def without_basic_auth(document: Mapping[str, object]) -> dict[str, object]:
    """The document without the Elasticsearch user and password (they would conflict with
    the API key or cloud.auth a case sets)."""
    return {
        key: ({"elasticsearch": {}} if key == "output" else value)
        for key, value in document.items()
    }


CASES: Mapping[str, Case] = {
    # wrong type
    "wrong type, file": Case(
        f"file {CONFIG_FILE} connector.expiry_sweep_interval: a list is not a number",
        file={"connector": {"expiry_sweep_interval": [1, 2]}},
    ),
    "wrong type, env": Case(
        "env ELASTICSEARCH_SSL_VERIFY: 'maybe' is not a boolean (true/false, yes/no, 1/0)",
        env={"ELASTICSEARCH_SSL_VERIFY": "maybe"},
    ),
    "wrong type, JSON": Case(
        "CONNECTOR_JSON_CONFIG output.elasticsearch.bulk_max_actions: 'many' is not an integer",
        json={"output": {"elasticsearch": {"bulk_max_actions": "many"}}},
    ),
    # unknown mode
    "unknown mode, file": Case(
        f"file {CONFIG_FILE} connector.mode: 'ecs-nosignals' is not one of ecs, "
        "ecs_no_signals, stix",
        file={"connector": {"mode": "ecs-nosignals"}},
        env={"CONNECTOR_MODE": None},
    ),
    "unknown mode, JSON": Case(
        "CONNECTOR_JSON_CONFIG connector.mode: 'indicators' is not one of ecs, ecs_no_signals, "
        "stix",
        json={"connector": {"mode": "indicators"}},
    ),
    # bad URL
    "URL without scheme, env": Case(
        "env OPENCTI_URL: 'opencti.example.org' must start with http:// or https://",
        env={"OPENCTI_URL": "opencti.example.org"},
    ),
    "URL with a bad port, JSON": Case(
        "CONNECTOR_JSON_CONFIG output.elasticsearch.hosts: 'https://es.example.org:99999' is "
        "not a valid URL (check the port: 1-65535)",
        json={"output": {"elasticsearch": {"hosts": ["https://es.example.org:99999"]}}},
    ),
    "URL with credentials, file": Case(
        f"file {CONFIG_FILE} output.elasticsearch.hosts: 'https://***@es.example.org:9200' must "
        "not contain credentials: use the username/password or API key options",
        file={
            "output": {
                "elasticsearch": {"hosts": [f"https://elastic:{URL_PASSWORD}@es.example.org:9200"]}
            }
        },
        env={"ELASTICSEARCH_HOSTS": None},
        secrets=(URL_PASSWORD,),
    ),
    # bad API key form
    "API key that is not id:key once decoded, env": Case(
        "env ELASTICSEARCH_API_KEY: *** is neither id:api_key nor the base64 encoded key that "
        "Kibana shows",
        env={
            "ELASTICSEARCH_API_KEY": base64.b64encode(API_KEY_SECRET.encode()).decode(),
            "ELASTICSEARCH_PASSWORD": None,
        },
        secrets=(API_KEY_SECRET, base64.b64encode(API_KEY_SECRET.encode()).decode()),
    ),
    "API key id without key, JSON": Case(
        "CONNECTOR_JSON_CONFIG output.elasticsearch.api_key: *** is neither id:api_key nor the "
        "base64 encoded key that Kibana shows",
        json={"output": {"elasticsearch": {"api_key": f"{API_KEY_ID}:"}}},
        secrets=(API_KEY_ID,),
    ),
    "API key with a line break, file": Case(
        f"file {CONFIG_FILE} output.elasticsearch.api_key: *** has leading or trailing "
        "whitespace (a newline from a secret file?)",
        file={"output": {"elasticsearch": {"api_key": f"{API_KEY_ID}:{API_KEY_SECRET}\n"}}},
        secrets=(API_KEY_ID, API_KEY_SECRET),
    ),
    "cloud.auth that is not user:password, JSON": Case(
        "CONNECTOR_JSON_CONFIG cloud.auth: *** must be user:password",
        json={"cloud": {"id": CLOUD_ID, "auth": CLOUD_PASSWORD}},
        env={"ELASTICSEARCH_HOSTS": None},
        secrets=(CLOUD_PASSWORD,),
    ),
    "token with a trailing newline, env": Case(
        "env OPENCTI_TOKEN: *** has leading or trailing whitespace (a newline from a secret file?)",
        env={"OPENCTI_TOKEN": ENV_TOKEN + "\n"},
        json={"opencti": {"token": None}},
    ),
    # negative interval
    "negative interval, JSON": Case(
        "CONNECTOR_JSON_CONFIG sightings.poll_interval: -5.0 must be greater than 0",
        json={"sightings": {"poll_interval": -5}},
    ),
    "negative interval, env": Case(
        "env CONNECTOR_EXPIRY_SWEEP_INTERVAL: -1.5 must be greater than 0",
        env={"CONNECTOR_EXPIRY_SWEEP_INTERVAL": "-1.5"},
    ),
    "zero backoff, file": Case(
        f"file {CONFIG_FILE} output.elasticsearch.retry_max_backoff: 0.0 must be greater than 0",
        file={"output": {"elasticsearch": {"retry_max_backoff": 0}}},
    ),
    # port out of range
    "port out of range, env": Case(
        "env CONNECTOR_METRICS_PORT: 70000 is not between 1 and 65535",
        env={"CONNECTOR_METRICS_PORT": "70000"},
    ),
    "port zero, file": Case(
        f"file {CONFIG_FILE} connector.metrics_port: 0 is not between 1 and 65535",
        file={"connector": {"metrics_port": 0}},
    ),
    # unknown key, with a suggestion
    "misspelt key, file": Case(
        f"file {CONFIG_FILE} opencti.tokne: unknown option; did you mean opencti.token?",
        file={"opencti": {"tokne": TYPO_SECRET}},
        secrets=(TYPO_SECRET,),
    ),
    "misspelt key, JSON": Case(
        "CONNECTOR_JSON_CONFIG connector.max_tpl: unknown option; did you mean connector.max_tlp?",
        json={"connector": {"max_tpl": "TLP:RED"}},
    ),
    "key in the wrong section, file": Case(
        f"file {CONFIG_FILE} connector.bulk_max_actions: unknown option; did you mean "
        "output.elasticsearch.bulk_max_actions?",
        file={"connector": {"bulk_max_actions": 10}},
    ),
    # whole documents
    "JSON that does not parse": Case(
        "CONNECTOR_JSON_CONFIG: is not valid JSON: ...",
        env={"CONNECTOR_JSON_CONFIG": '{"opencti": {"token": "' + JSON_TOKEN + '"'},
    ),
}


def base_file() -> dict[str, object]:
    return {
        "opencti": {"url": "https://opencti.example.org", "token": FILE_TOKEN},
        "connector": {"id": str(uuid.uuid4()), "mode": "ecs_no_signals"},
        "output": {"elasticsearch": {"username": "connector", "password": FILE_PASSWORD}},
    }


def base_env() -> dict[str, str | None]:
    return {
        "OPENCTI_TOKEN": ENV_TOKEN,
        "ELASTICSEARCH_PASSWORD": ENV_PASSWORD,
        "ELASTICSEARCH_HOSTS": "https://es.example.org:9200",
    }


def base_json() -> dict[str, object]:
    return {
        "opencti": {"token": JSON_TOKEN},
        "output": {"elasticsearch": {"password": JSON_PASSWORD}},
    }


def run_with(case: Case, workdir: Path) -> ConnectorProcess:
    file_base, json_base, env_values = base_file(), base_json(), base_env()
    if any("api_key" in str(s) or "cloud" in str(s) for s in (case.file, case.env, case.json)):
        # Another way to authenticate: the user and password would conflict with it.
        file_base, json_base = without_basic_auth(file_base), without_basic_auth(json_base)
        env_values["ELASTICSEARCH_PASSWORD"] = None
    document = merged(file_base, case.file)
    overrides = merged(json_base, case.json)
    env_values.update(case.env)
    (workdir / CONFIG_FILE).write_text(yaml.safe_dump(document))
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "CONNECTOR_JSON_CONFIG": json.dumps(overrides),
    }
    env.update({k: v for k, v in env_values.items() if v is not None})
    for name, value in env_values.items():
        if value is None:
            env.pop(name, None)
    for name in ("HOME", "LANG", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    process = ConnectorProcess(("run", "-c", CONFIG_FILE), env, workdir, workdir / "run.log")
    process.start()
    process.wait(15)
    return process


@pytest.mark.parametrize("name", list(CASES))
def test_an_invalid_setting_exits_2_naming_the_option_and_its_source(
    name: str, tmp_path: Path
) -> None:
    case = CASES[name]
    process = run_with(case, tmp_path)

    assert process.returncode == 2, process.tail()
    lines = process.lines()
    assert lines[0].startswith("elastic-connector: invalid configuration ("), lines
    problems = [line.removeprefix("  - ") for line in lines[1:]]
    assert all(line.startswith("  - ") for line in lines[1:]), lines
    if case.expected.endswith("..."):
        assert any(p.startswith(case.expected[:-3]) for p in problems), problems
    else:
        assert case.expected in problems, problems
    for problem in problems:
        assert problem.startswith(("file ", "env ", "CONNECTOR_JSON_CONFIG", "defaults ")), problem
    output = process.output()
    for secret in (*BASE_SECRETS, *case.secrets):
        assert secret not in output, f"{secret!r} leaked:\n{output}"
    assert "Traceback" not in output
