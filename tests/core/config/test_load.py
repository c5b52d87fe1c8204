"""Example tests: one per validation rule of the settings loader (core.config.load)."""

from __future__ import annotations

import base64
import datetime

import pytest
from returns.result import Failure, Result, Success

from elastic_connector.core.config import (
    DEFAULT_ECS_INDEX,
    DEFAULT_STIX_INDEX,
    NO_RECOVER,
    OFFLINE_CONNECTOR_ID,
    OFFLINE_OPENCTI_TOKEN,
    OFFLINE_OPENCTI_URL,
    OPTIONS,
    Config,
    LogFormat,
    Mode,
    Secret,
)
from elastic_connector.core.config.export import config_to_env, config_to_mapping
from elastic_connector.core.config.load import (
    SOURCE_JSON,
    ConfigError,
    Layer,
    build_config,
    env_layer,
    file_layer,
    json_layer,
    misspelled_env_vars,
)
from elastic_connector.core.config.pycti_view import PYCTI_ENV_VARS, pycti_config, pycti_environment
from elastic_connector.core.policy.tlp import Tlp

CONNECTOR_ID = "7b1f1a44-28a7-4bb2-9f0d-3f1c1b4a5a10"
REQUIRED = {
    "opencti": {"url": "https://opencti.example.com", "token": "tok-123"},
    "connector": {"id": CONNECTOR_ID},
}
FILE = "file config.yml"
NOT_SECONDS = "is not a number of seconds or a duration like 30s, 5m, 1h"


def load(
    file: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    *,
    base: bool = True,
    offline: bool = False,
) -> Result[Config, tuple[ConfigError, ...]]:
    """Build from an optional base layer with the required settings, a file layer and env."""
    layers = [Layer("file base.yml", REQUIRED)] if base else []
    if file is not None:
        layers.append(Layer(FILE, file))
    if env is not None:
        layers.append(env_layer(env))
    return build_config(layers, offline=offline)


def ok(result: Result[Config, tuple[ConfigError, ...]]) -> Config:
    config = result.value_or(None)
    assert config is not None, result
    return config


def errors(result: Result[Config, tuple[ConfigError, ...]]) -> list[str]:
    assert isinstance(result, Failure), result
    return [str(error) for error in result.failure()]


def only_error(result: Result[Config, tuple[ConfigError, ...]]) -> str:
    found = errors(result)
    assert len(found) == 1, found
    return found[0]


def es(**settings: object) -> dict[str, object]:
    return {"output": {"elasticsearch": settings}}


def cloud_id(host: str = "us-east-1.aws.found.io:443", es_uuid: str = "abc123") -> str:
    return "deployment:" + base64.b64encode(f"{host}${es_uuid}$kib456".encode()).decode()


# --- the registry ---------------------------------------------------------------------------


def test_every_option_has_one_yaml_path_and_one_env_var() -> None:
    assert len({option.yaml_path for option in OPTIONS}) == len(OPTIONS)
    assert len({option.env_var for option in OPTIONS}) == len(OPTIONS)
    for option in OPTIONS:
        *sections, name = option.yaml_path.split(".")
        assert name == option.name
        assert option.env_var == f"{option.section}_{option.name}".upper()
        expected = {
            "elasticsearch": ["output", "elasticsearch"],
            "elasticsearch_lookup": ["output", "lookup"],
        }
        assert sections == expected.get(option.section, [option.section])


def test_secret_options_are_exactly_the_secret_typed_fields() -> None:
    assert {option.yaml_path for option in OPTIONS if option.secret} == {
        "opencti.token",
        "cloud.auth",
        "output.elasticsearch.password",
        "output.elasticsearch.api_key",
    }


# --- defaults, required, offline ------------------------------------------------------------


def test_required_settings_alone_give_the_documented_defaults() -> None:
    config = ok(load())
    assert config.opencti.url == "https://opencti.example.com"
    assert config.opencti.token == Secret("tok-123")
    assert config.connector.id == CONNECTOR_ID
    for option in OPTIONS:
        if not option.required:
            assert getattr(getattr(config, option.section), option.name) == option.default
    assert config.elasticsearch.hosts == ("https://localhost:9200",)
    assert config.connector.max_tlp is Tlp.AMBER_STRICT
    assert config.opencti.ssl_verify is True
    assert config.elasticsearch.ssl_verify is True


def test_missing_required_settings_are_each_reported_with_their_env_var() -> None:
    found = errors(load(base=False))
    assert found == [
        "defaults opencti.url: is required: set it in the config file, OPENCTI_URL or "
        "CONNECTOR_JSON_CONFIG",
        "defaults opencti.token: is required: set it in the config file, OPENCTI_TOKEN or "
        "CONNECTOR_JSON_CONFIG",
        "defaults connector.id: is required: set it in the config file, CONNECTOR_ID or "
        "CONNECTOR_JSON_CONFIG",
    ]


def test_offline_fills_missing_connection_settings_with_inert_placeholders() -> None:
    config = ok(load(base=False, offline=True))
    assert config.opencti.url == OFFLINE_OPENCTI_URL
    assert config.opencti.url.endswith(".invalid")
    assert config.opencti.token == OFFLINE_OPENCTI_TOKEN
    assert config.connector.id == OFFLINE_CONNECTOR_ID


def test_offline_still_validates_the_settings_that_are_given() -> None:
    message = only_error(load({"connector": {"id": "nope"}}, base=False, offline=True))
    assert (
        message
        == "file config.yml connector.id: 'nope' is not a UUID (generate one with `uuidgen`)"
    )


def test_offline_keeps_real_values_when_given() -> None:
    config = ok(load(offline=True))
    assert config.opencti.url == "https://opencti.example.com"


# --- error shape ---------------------------------------------------------------------------


def test_config_error_reads_as_one_line() -> None:
    assert str(ConfigError("env", "CONNECTOR_MAX_TLP", "bad")) == "env CONNECTOR_MAX_TLP: bad"
    assert str(ConfigError(SOURCE_JSON, "", "is not valid JSON")) == (
        "CONNECTOR_JSON_CONFIG: is not valid JSON"
    )


def test_every_error_is_reported_at_once_with_source_and_path() -> None:
    found = errors(
        load(
            {"connector": {"mode": "elk", "metrics_port": 70000}},
            {"CONNECTOR_MAX_TLP": "TLP:PURPLE", "SIGHTINGS_POLL_INTERVAL": "-5"},
        )
    )
    assert found == [
        "file config.yml connector.mode: 'elk' is not one of ecs, ecs_no_signals, stix",
        "env CONNECTOR_MAX_TLP: 'TLP:PURPLE' is not one of TLP:CLEAR, TLP:GREEN, TLP:AMBER, "
        "TLP:AMBER+STRICT, TLP:RED (TLP:WHITE = TLP:CLEAR)",
        "file config.yml connector.metrics_port: 70000 is not between 1 and 65535",
        "env SIGHTINGS_POLL_INTERVAL: -5.0 must be greater than 0",
    ]


def test_an_invalid_value_overridden_by_a_higher_layer_is_not_reported() -> None:
    # The usual container setup: a config.yml with placeholders, real values in the environment.
    config = ok(load({"connector": {"id": "ChangeMe"}}, {"CONNECTOR_ID": CONNECTOR_ID}))
    assert config.connector.id == CONNECTOR_ID


# --- environment strings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("yes", True),
        ("YES", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("0", False),
        (" False ", False),
    ],
)
def test_env_booleans(text: str, expected: bool) -> None:
    config = ok(load(env={"ELASTICSEARCH_REDUCED_PRIVILEGES": text}))
    assert config.elasticsearch.reduced_privileges is expected


def test_env_boolean_that_is_not_one() -> None:
    assert only_error(load(env={"OPENCTI_SSL_VERIFY": "maybe"})) == (
        "env OPENCTI_SSL_VERIFY: 'maybe' is not a boolean (true/false, yes/no, 1/0)"
    )


def test_env_numbers_lists_and_strings_are_converted() -> None:
    config = ok(
        load(
            env={
                "ELASTICSEARCH_BULK_MAX_ACTIONS": "250",
                "ELASTICSEARCH_REQUEST_TIMEOUT": "2.5",
                "SIGHTINGS_POLL_INTERVAL": "1e2",
                "ELASTICSEARCH_HOSTS": " https://a.example:9200 , https://b.example ,",
                "CONNECTOR_NAME": "  Elastic prod  ",
                "SIGHTINGS_CONFIDENCE": "+80",
            }
        )
    )
    assert config.elasticsearch.bulk_max_actions == 250
    assert config.elasticsearch.request_timeout == 2.5
    assert config.sightings.poll_interval == 100.0
    assert config.elasticsearch.hosts == ("https://a.example:9200", "https://b.example")
    assert config.connector.name == "Elastic prod"
    assert config.sightings.confidence == 80


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("ELASTICSEARCH_BULK_MAX_ACTIONS", "1.5", "'1.5' is not an integer"),
        ("ELASTICSEARCH_BULK_MAX_ACTIONS", "٣", "'٣' is not an integer"),
        ("ELASTICSEARCH_BULK_MAX_ACTIONS", "9" * 25, f"'{'9' * 25}' is out of range"),
        ("ELASTICSEARCH_REQUEST_TIMEOUT", "fast", f"'fast' {NOT_SECONDS}"),
        ("ELASTICSEARCH_REQUEST_TIMEOUT", "nan", f"'nan' {NOT_SECONDS}"),
        ("ELASTICSEARCH_REQUEST_TIMEOUT", "1e999", "'1e999' is not a finite number"),
        ("ELASTICSEARCH_HOSTS", " , ", "must not be empty"),
    ],
)
def test_env_values_that_do_not_convert(variable: str, text: str, message: str) -> None:
    assert only_error(load(env={variable: text})) == f"env {variable}: {message}"


def test_empty_env_value_means_use_the_lower_layer_or_default() -> None:
    config = ok(
        load(
            {"connector": {"name": "From file"}},
            {"CONNECTOR_NAME": "", "CONNECTOR_MAX_TLP": "", "OPENCTI_URL": "   "},
        )
    )
    assert config.connector.name == "From file"
    assert config.connector.max_tlp is Tlp.AMBER_STRICT
    assert config.opencti.url == "https://opencti.example.com"


def test_env_layer_ignores_unrelated_variables_and_the_json_variable() -> None:
    layer = env_layer({"PATH": "/bin", "CONNECTOR_JSON_CONFIG": "{}", "KIBANA_URL": "http://k"})
    assert layer.values == {"KIBANA_URL": "http://k"}


# --- wrong types in YAML/JSON --------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"connector": {"metrics_port": "nine"}},
            "connector.metrics_port: 'nine' is not an integer",
        ),
        (
            {"connector": {"metrics_port": True}},
            "connector.metrics_port: must be an integer, got a boolean",
        ),
        ({"connector": {"metrics_port": 80.5}}, "connector.metrics_port: 80.5 is not an integer"),
        ({"connector": {"name": 42}}, "connector.name: must be a string, got an integer"),
        ({"connector": {"name": ["a"]}}, "connector.name: must be a string, got a list"),
        (
            {"opencti": {"ssl_verify": [True]}},
            "opencti.ssl_verify: a list is not a boolean (true/false, yes/no, 1/0)",
        ),
        (
            {"opencti": {"ssl_verify": 2}},
            "opencti.ssl_verify: 2 is not a boolean (true/false, yes/no, 1/0)",
        ),
        (
            {"sightings": {"poll_interval": {"s": 1}}},
            "sightings.poll_interval: a mapping is not a number",
        ),
        (
            {"sightings": {"poll_interval": False}},
            "sightings.poll_interval: must be a number, got a boolean",
        ),
        (
            es(hosts=["https://a.example", 7]),
            "output.elasticsearch.hosts: item 2 must be a string, got an integer",
        ),
        (
            es(hosts={"a": 1}),
            "output.elasticsearch.hosts: must be a list of strings or a comma-separated string, "
            "got a mapping",
        ),
        (
            {"opencti": "https://x"},
            "opencti: must be a mapping (ca_certs, ssl_verify, token, url), got a string",
        ),
    ],
)
def test_wrong_types_from_a_file(settings: dict[str, object], message: str) -> None:
    assert only_error(load(settings)) == f"{FILE} {message}"


def test_native_yaml_values_are_accepted() -> None:
    config = ok(
        load(
            {
                "opencti": {"ssl_verify": False},
                "connector": {"metrics_port": 9100, "require_detection": 1},
                "sightings": {"poll_interval": 30, "initial_lookback": 0},
                "output": {"elasticsearch": {"hosts": ["https://a.example", "http://b:9200"]}},
            }
        )
    )
    assert config.opencti.ssl_verify is False
    assert config.connector.metrics_port == 9100
    assert config.connector.require_detection is True
    assert config.sightings.poll_interval == 30.0
    assert isinstance(config.sightings.poll_interval, float)
    assert config.sightings.initial_lookback == 0.0
    assert config.elasticsearch.hosts == ("https://a.example", "http://b:9200")


def test_null_and_empty_sections_are_not_set() -> None:
    config = ok(load({"kibana": None, "sightings": {}, "connector": {"name": None}}))
    assert config.kibana.space == "default"
    assert config.connector.name == "Elastic"


# --- enumerations --------------------------------------------------------------------------


def test_mode_and_log_format_are_case_insensitive() -> None:
    config = ok(load(env={"CONNECTOR_MODE": "STIX", "CONNECTOR_LOG_FORMAT": "Json"}))
    assert config.connector.mode is Mode.STIX
    assert config.connector.log_format is LogFormat.JSON


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("DEBUG", "debug"),
        ("info", "info"),
        ("Warning", "warning"),
        ("warn", "warning"),
        ("error", "error"),
    ],
)
def test_log_levels(text: str, level: str) -> None:
    assert ok(load(env={"CONNECTOR_LOG_LEVEL": text})).connector.log_level == level


def test_unknown_log_level() -> None:
    assert only_error(load(env={"CONNECTOR_LOG_LEVEL": "trace"})) == (
        "env CONNECTOR_LOG_LEVEL: 'trace' is not one of debug, info, warning (or warn), error"
    )


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("TLP:CLEAR", Tlp.CLEAR),
        ("tlp:clear", Tlp.CLEAR),
        ("TLP:WHITE", Tlp.CLEAR),
        ("tlp:green", Tlp.GREEN),
        ("TLP:Amber", Tlp.AMBER),
        ("TLP:AMBER+STRICT", Tlp.AMBER_STRICT),
        ("red", Tlp.RED),
    ],
)
def test_tlp_names(text: str, level: Tlp) -> None:
    config = ok(load(env={"CONNECTOR_MAX_TLP": text, "SIGHTINGS_TLP": text}))
    assert config.connector.max_tlp is level
    assert config.sightings.tlp is level


def test_identity_type_is_stored_in_the_case_pycti_needs() -> None:
    assert ok(load(env={"SIGHTINGS_IDENTITY_TYPE": "organization"})).sightings.identity_type == (
        "Organization"
    )
    assert only_error(load(env={"SIGHTINGS_IDENTITY_TYPE": "Sector"})) == (
        "env SIGHTINGS_IDENTITY_TYPE: 'Sector' is not one of Organization, System, "
        "SecurityPlatform, Individual"
    )


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080",
        "https://opencti.example.com",
        "https://opencti.example.com/sub/path",
        "HTTPS://OpenCTI.Example.com:443",
        "http://[::1]:4000",
        "http://10.0.0.5:8080",
        "http://opencti_platform:8080",
    ],
)
def test_valid_urls(url: str) -> None:
    assert ok(load(env={"OPENCTI_URL": url, "KIBANA_URL": url})).opencti.url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("opencti.example.com", "must start with http:// or https://"),
        ("ftp://opencti.example.com", "must start with http:// or https://"),
        ("https://", "has no host"),
        ("https://:8080", "has no host"),
        ("https://opencti.example.com:99999", "is not a valid URL (check the port: 1-65535)"),
        ("https://opencti.example.com:0", "has an invalid port (1-65535)"),
        ("https://opencti.example.com:http", "is not a valid URL (check the port: 1-65535)"),
        ("https://exa mple.com", "must not contain spaces"),
        (
            "https://bad_host-.example!",
            "has an invalid host name (ASCII letters, digits, '.', '-'; use punycode)",
        ),
        ("https://[fe80::zz]", "is not a valid URL (check the port: 1-65535)"),
        ("https://opencti.example.com/?q=1", "must not have a query (?...) or fragment (#...)"),
    ],
)
def test_invalid_urls(url: str, problem: str) -> None:
    assert only_error(load(env={"OPENCTI_URL": url})) == f"env OPENCTI_URL: {url!r} {problem}"


def test_credentials_in_urls_are_rejected_and_masked() -> None:
    found = errors(
        load(
            env={
                "OPENCTI_URL": "https://admin:hunter2@opencti.example.com",
                "ELASTICSEARCH_HOSTS": "https://elastic:pa@ss/w0rd@es.example:9200",
            }
        )
    )
    assert found == [
        "env OPENCTI_URL: 'https://***@opencti.example.com' must not contain credentials: use "
        "the username/password or API key options",
        "env ELASTICSEARCH_HOSTS: 'https://***@es.example:9200' must not contain credentials: "
        "use the username/password or API key options",
    ]
    assert not any("hunter2" in line or "w0rd" in line for line in found)


def test_elasticsearch_hosts_over_http_need_a_port() -> None:
    assert only_error(load(es(hosts=["https://a.example", "http://b.example"]))) == (
        f"{FILE} output.elasticsearch.hosts: item 2 'http://b.example' needs a port for http, "
        "e.g. http://localhost:9200"
    )
    assert ok(load(es(hosts="https://es.example"))).elasticsearch.hosts == ("https://es.example",)


# --- secrets and authentication ------------------------------------------------------------


def test_api_key_in_id_colon_key_form_is_stored_encoded() -> None:
    config = ok(load(env={"ELASTICSEARCH_API_KEY": "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"}))
    assert config.elasticsearch.api_key == Secret(
        base64.b64encode(b"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").decode()
    )


def test_api_key_in_the_encoded_form_kibana_shows_is_kept() -> None:
    encoded = base64.b64encode(b"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").decode()
    config = ok(load(es(api_key=encoded)))
    assert config.elasticsearch.api_key == Secret(encoded)


@pytest.mark.parametrize(
    "key",
    [
        "just-a-key",
        ":nokeyid",
        "id:",
        base64.b64encode(b"no colon inside").decode(),
        base64.b64encode(b"id:").decode(),
        base64.b64encode(b"\xff\xfe:\x00").decode(),
        "abc$%^",
    ],
)
def test_api_keys_that_are_neither_form(key: str) -> None:
    assert only_error(load(es(api_key=key))) == (
        f"{FILE} output.elasticsearch.api_key: *** is neither id:api_key nor the base64 "
        "encoded key that Kibana shows"
    )


def test_secret_with_a_trailing_newline_is_rejected_without_showing_it() -> None:
    found = errors(load(env={"OPENCTI_TOKEN": "tok-456\n", "ELASTICSEARCH_API_KEY": "id:k ey"}))
    assert found == [
        "env OPENCTI_TOKEN: *** has leading or trailing whitespace (a newline from a secret file?)",
        "env ELASTICSEARCH_API_KEY: *** must not contain whitespace",
    ]


def test_secrets_never_show_in_reprs() -> None:
    config = ok(
        load(
            {
                "opencti": {"token": "tok-SECRET-1"},
                **es(username="bob", password="pw-SECRET-2"),
            }
        )
    )
    assert "SECRET" not in repr(config)
    assert "SECRET" not in str(config)
    assert config.elasticsearch.password is not None
    assert config.elasticsearch.password.reveal() == "pw-SECRET-2"
    assert "SECRET" not in repr(config_to_mapping(config))
    assert "SECRET" not in repr(config_to_env(config))


def test_username_without_password_and_the_reverse() -> None:
    assert only_error(load(es(username="bob"))) == (
        f"{FILE} output.elasticsearch.username: is set but output.elasticsearch.password "
        "(ELASTICSEARCH_PASSWORD) is not: set both or neither"
    )
    assert only_error(load(env={"ELASTICSEARCH_PASSWORD": "pw"})) == (
        "env ELASTICSEARCH_PASSWORD: is set but output.elasticsearch.username "
        "(ELASTICSEARCH_USERNAME) is not: set both or neither"
    )


def test_username_with_a_colon() -> None:
    assert only_error(load(es(username="bo:b", password="x"))) == (
        f"{FILE} output.elasticsearch.username: 'bo:b' must not contain ':' (HTTP basic "
        "authentication)"
    )


def test_client_certificate_needs_its_key_and_the_reverse() -> None:
    assert only_error(load(es(client_cert="/certs/c.pem"))) == (
        f"{FILE} output.elasticsearch.client_cert: is set but output.elasticsearch.client_key "
        "(ELASTICSEARCH_CLIENT_KEY) is not: set both or neither"
    )
    assert len(errors(load(es(client_key="/certs/k.pem")))) == 1
    config = ok(load(es(client_cert="/certs/c.pem", client_key="/certs/k.pem")))
    assert config.elasticsearch.client_key == "/certs/k.pem"


def test_only_one_way_to_authenticate() -> None:
    assert only_error(load(es(api_key="id:key", username="bob", password="pw"))) == (
        f"{FILE} output.elasticsearch.username: cannot be combined with "
        "output.elasticsearch.api_key (ELASTICSEARCH_API_KEY): authenticate one way"
    )


# --- Elastic Cloud -------------------------------------------------------------------------


def test_cloud_id_replaces_the_hosts() -> None:
    config = ok(load({"cloud": {"id": cloud_id(), "auth": "elastic:pw"}}))
    assert config.cloud.id == cloud_id()
    assert config.cloud.auth == Secret("elastic:pw")
    assert config.elasticsearch.hosts == ()


def test_cloud_id_with_api_key() -> None:
    config = ok(load({"cloud": {"id": cloud_id()}, **es(api_key="id:key")}))
    assert config.elasticsearch.api_key is not None


def test_cloud_id_and_hosts_both_set_is_an_error() -> None:
    assert only_error(
        load({"cloud": {"id": cloud_id()}}, {"ELASTICSEARCH_HOSTS": "https://x"})
    ) == ("env ELASTICSEARCH_HOSTS: cannot be combined with cloud.id (CLOUD_ID): remove one")


@pytest.mark.parametrize(
    "value",
    [
        "no-colon-at-all",
        "name:%%%",
        "name:" + base64.b64encode(b"host-only").decode(),
        "name:" + base64.b64encode(b"$abc$def").decode(),
        "name:" + base64.b64encode(b"host:port$abc").decode(),
    ],
)
def test_invalid_cloud_ids(value: str) -> None:
    assert only_error(load({"cloud": {"id": value}})) == (
        f"{FILE} cloud.id: {value!r} is not an Elastic Cloud ID (name:base64..., from the Cloud "
        "console)"
    )


def test_cloud_auth_needs_cloud_id_and_user_password_form() -> None:
    assert errors(load({"cloud": {"auth": "elastic"}})) == [
        f"{FILE} cloud.auth: *** must be user:password",
        f"{FILE} cloud.auth: is set but cloud.id (CLOUD_ID) is not",
    ]
    assert errors(load({"cloud": {"auth": "elastic:pw"}})) == [
        f"{FILE} cloud.auth: is set but cloud.id (CLOUD_ID) is not"
    ]


def test_cloud_auth_and_api_key_conflict() -> None:
    assert only_error(load({"cloud": {"id": cloud_id(), "auth": "u:p"}, **es(api_key="i:k")})) == (
        f"{FILE} cloud.auth: cannot be combined with output.elasticsearch.api_key "
        "(ELASTICSEARCH_API_KEY): authenticate one way"
    )


# --- numbers and ranges --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("CONNECTOR_EXPIRY_SWEEP_INTERVAL", "0", "0.0 must be greater than 0"),
        ("ELASTICSEARCH_BULK_FLUSH_INTERVAL", "-1", "-1.0 must be greater than 0"),
        ("ELASTICSEARCH_RETRY_MAX_BACKOFF", "0", "0.0 must be greater than 0"),
        ("ELASTICSEARCH_REQUEST_TIMEOUT", "-0.5", "-0.5 must be greater than 0"),
        ("ELASTICSEARCH_BULK_MAX_ACTIONS", "0", "0 must be greater than 0"),
        ("ELASTICSEARCH_BULK_MAX_BYTES", "-100", "-100 must be greater than 0"),
        ("SIGHTINGS_POLL_INTERVAL", "0", "0.0 must be greater than 0"),
        ("SIGHTINGS_INITIAL_LOOKBACK", "-1", "-1.0 must not be negative"),
        ("SIGHTINGS_PAGE_SIZE", "0", "0 is not between 1 and 10000"),
        ("SIGHTINGS_PAGE_SIZE", "10001", "10001 is not between 1 and 10000"),
        ("SIGHTINGS_CONFIDENCE", "101", "101 is not between 0 and 100"),
        ("CONNECTOR_METRICS_PORT", "0", "0 is not between 1 and 65535"),
        ("CONNECTOR_METRICS_PORT", "65536", "65536 is not between 1 and 65535"),
        ("CONNECTOR_LIVE_STREAM_START_TIMESTAMP", "-1", "-1 must not be negative"),
    ],
)
def test_out_of_range_numbers(variable: str, text: str, message: str) -> None:
    assert only_error(load(env={variable: text})) == f"env {variable}: {message}"


def test_range_edges_are_accepted() -> None:
    config = ok(
        load(
            env={
                "CONNECTOR_METRICS_PORT": "65535",
                "SIGHTINGS_PAGE_SIZE": "10000",
                "SIGHTINGS_CONFIDENCE": "0",
                "CONNECTOR_LIVE_STREAM_START_TIMESTAMP": "0",
            }
        )
    )
    assert config.connector.metrics_port == 65535
    assert config.sightings.page_size == 10000
    assert config.sightings.confidence == 0
    assert config.connector.live_stream_start_timestamp == 0


# --- identifiers and names -----------------------------------------------------------------


def test_connector_id_must_be_a_uuid_and_is_kept_as_written() -> None:
    upper = CONNECTOR_ID.upper()
    assert ok(load(env={"CONNECTOR_ID": upper})).connector.id == upper
    assert only_error(load(env={"CONNECTOR_ID": "ChangeMe"})) == (
        "env CONNECTOR_ID: 'ChangeMe' is not a UUID (generate one with `uuidgen`)"
    )


@pytest.mark.parametrize(
    "name", ["Indicators", "ti*", "-ti", "_ti", "ti index", "a,b", "..", "x" * 256]
)
def test_invalid_index_names(name: str) -> None:
    assert "is not a valid index name" in only_error(load(es(index=name)))


def test_index_defaults_follow_the_mode() -> None:
    assert ok(load()).index == DEFAULT_ECS_INDEX
    assert ok(load(env={"CONNECTOR_MODE": "stix"})).index == DEFAULT_STIX_INDEX
    assert ok(load(env={"ELASTICSEARCH_INDEX": "ti-opencti"})).index == "ti-opencti"


def test_kibana_space_ids() -> None:
    assert ok(load(env={"KIBANA_SPACE": "soc_team-1"})).kibana.space == "soc_team-1"
    assert only_error(load(env={"KIBANA_SPACE": "SOC Team"})) == (
        "env KIBANA_SPACE: 'SOC Team' is not a Kibana space id (lower-case letters, digits, _ "
        "and -)"
    )


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("2024-01-31T00:00:00Z", "2024-01-31T00:00:00Z"),
        ("2024-01-31", "2024-01-31"),
        ("2024-01-31T10:00:00+02:00", "2024-01-31T10:00:00+02:00"),
        ("false", NO_RECOVER),
        ("No", NO_RECOVER),
        ("none", NO_RECOVER),
        (False, NO_RECOVER),
        (datetime.date(2024, 1, 31), "2024-01-31"),
        (datetime.datetime(2024, 1, 31, tzinfo=datetime.UTC), "2024-01-31T00:00:00Z"),
    ],
)
def test_recover_date(raw: object, stored: str) -> None:
    config = ok(load({"connector": {"live_stream_recover_iso_date": raw}}))
    assert config.connector.live_stream_recover_iso_date == stored


@pytest.mark.parametrize("raw", ["yesterday", True, "2024-13-01", 20240131])
def test_invalid_recover_date(raw: object) -> None:
    assert "is not an ISO 8601 date (e.g. 2024-01-31T00:00:00Z) or false" in only_error(
        load({"connector": {"live_stream_recover_iso_date": raw}})
    )


# --- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            es(api_kye="x"),
            "output.elasticsearch.api_kye: unknown option; "
            "did you mean output.elasticsearch.api_key?",
        ),
        (
            es(ssl_verfy=False),
            "output.elasticsearch.ssl_verfy: unknown option; "
            "did you mean output.elasticsearch.ssl_verify?",
        ),
        (
            {"opencti": {"SSL_VERIFY": False}},
            "opencti.SSL_VERIFY: unknown option; did you mean opencti.ssl_verify?",
        ),
        (
            {"elasticsearch": {"hosts": ["https://x"]}},
            "elasticsearch: unknown option; did you mean output.elasticsearch?",
        ),
        (
            {"connector": {"max_tpl": "TLP:RED"}},
            "connector.max_tpl: unknown option; did you mean connector.max_tlp?",
        ),
        (
            {"connector": {"ssl_verify": False}},
            "connector.ssl_verify: unknown option; "
            "did you mean opencti.ssl_verify or output.elasticsearch.ssl_verify?",
        ),
        ({"kibana": {"zzz": 1}}, "kibana.zzz: unknown option; expected one of: space, url"),
        (
            {"output": {"logstash": {}}},
            "output.logstash: unknown option; expected one of: elasticsearch, lookup",
        ),
        ({1: "x"}, "1: unknown option (keys must be strings)"),
    ],
)
def test_unknown_keys_are_errors_with_suggestions(
    settings: dict[object, object], message: str
) -> None:
    layers = [Layer("file base.yml", REQUIRED), Layer(FILE, settings)]  # type: ignore[arg-type]  # non-str keys are the point
    assert only_error(build_config(layers)) == f"{FILE} {message}"


def test_unknown_key_values_are_never_shown() -> None:
    message = only_error(load(es(api_kye="SECRET-VALUE")))
    assert "SECRET-VALUE" not in message


# --- JSON and file layers ------------------------------------------------------------------


def test_json_layer_shapes() -> None:
    assert json_layer("") == Success(Layer(SOURCE_JSON, {}))
    assert json_layer("  ") == Success(Layer(SOURCE_JSON, {}))
    assert json_layer('{"kibana": {"space": "soc"}}') == Success(
        Layer(SOURCE_JSON, {"kibana": {"space": "soc"}})
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"opencti": {"token": "abc",}}',
            "is not valid JSON: JSON is malformed: trailing comma in object (byte 28)",
        ),
        ("[1, 2]", 'must be a JSON object like {"opencti": {...}}, got a list'),
        ('"text"', 'must be a JSON object like {"opencti": {...}}, got a string'),
        ("[" * 100_000, "is nested too deeply"),
    ],
)
def test_json_layer_errors(text: str, message: str) -> None:
    result = json_layer(text)
    assert isinstance(result, Failure)
    assert [str(error) for error in result.failure()] == [f"CONNECTOR_JSON_CONFIG: {message}"]


def test_invalid_json_error_does_not_quote_the_document() -> None:
    result = json_layer('{"opencti": {"token": "tok-SECRET" "x"}}')
    assert isinstance(result, Failure)
    assert "SECRET" not in str(result.failure()[0])


def test_json_layer_errors_name_yaml_paths() -> None:
    layer = json_layer('{"connector": {"mode": "bad"}}').unwrap()
    assert only_error(build_config([Layer("file base.yml", REQUIRED), layer])) == (
        "CONNECTOR_JSON_CONFIG connector.mode: 'bad' is not one of ecs, ecs_no_signals, stix"
    )


def test_file_layer_shapes() -> None:
    assert file_layer("c.yml", None) == Success(Layer("file c.yml", {}))
    assert file_layer("c.yml", {"kibana": {}}) == Success(Layer("file c.yml", {"kibana": {}}))
    failure = file_layer("c.yml", ["opencti"])
    assert isinstance(failure, Failure)
    assert str(failure.failure()[0]) == (
        "file c.yml: must be a mapping (opencti:, connector:, ...), got a list"
    )


# --- environment typos ---------------------------------------------------------------------


def test_misspelled_env_vars_are_hinted() -> None:
    hints = misspelled_env_vars(
        {
            "CONNECTOR_MAX_TPL": "TLP:GREEN",
            "ELASTICSEARCH_SSL_VERIFIY": "false",
            "CONNECTOR_TYPE": "STREAM",  # pycti's own
            "CONNECTOR_MAX_TLP": "TLP:RED",  # ours
            "ELASTICSEARCH_TEST_URL": "http://x",  # unrelated
            "HOME": "/root",
        }
    )
    assert [str(hint) for hint in hints] == [
        "env CONNECTOR_MAX_TPL: is not a setting (ignored); did you mean CONNECTOR_MAX_TLP?",
        "env ELASTICSEARCH_SSL_VERIFIY: is not a setting (ignored); did you mean "
        "ELASTICSEARCH_SSL_VERIFY?",
    ]


# --- pycti interplay -----------------------------------------------------------------------


def test_pycti_environment_uses_the_spellings_pycti_understands() -> None:
    config = ok(
        load(
            env={
                "CONNECTOR_LIVE_STREAM_LISTEN_DELETE": "0",
                "CONNECTOR_LIVE_STREAM_WITH_INFERENCES": "YES",
                "CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE": "No",
                "OPENCTI_CA_CERTS": "/certs/opencti-ca.pem",
            }
        )
    )
    environment = pycti_environment(config)
    assert set(environment) == set(PYCTI_ENV_VARS)
    assert environment["CONNECTOR_LIVE_STREAM_LISTEN_DELETE"] == "false"
    assert environment["CONNECTOR_LIVE_STREAM_WITH_INFERENCES"] == "true"
    assert environment["CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE"] == "false"
    assert environment["CONNECTOR_LIVE_STREAM_START_TIMESTAMP"] is None  # "" would crash pycti
    assert environment["OPENCTI_SSL_VERIFY"] == "/certs/opencti-ca.pem"
    assert environment["OPENCTI_TOKEN"] == "tok-123"
    dictionary = pycti_config(config)
    assert dictionary["connector"]["type"] == "STREAM"
    assert dictionary["connector"]["live_stream_recover_iso_date"] is False
    assert "live_stream_start_timestamp" not in dictionary["connector"]
    assert dictionary["opencti"]["ssl_verify"] == "/certs/opencti-ca.pem"


def test_pycti_gets_false_not_the_ca_path_when_verification_is_off() -> None:
    config = ok(load(env={"OPENCTI_SSL_VERIFY": "no", "OPENCTI_CA_CERTS": "/ca.pem"}))
    assert pycti_environment(config)["OPENCTI_SSL_VERIFY"] == "false"
    assert pycti_config(config)["opencti"]["ssl_verify"] is False
