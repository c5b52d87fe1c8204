"""The earlier Elastic connector's names (core.config.aliases): each is read exactly as ours, says
so once, and never silently drops a value; and the value forms its users wrote (durations, ISO
start timestamps, hosts without a scheme, ``warn``)."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Result

from elastic_connector.core.config import OPTIONS, Secret
from elastic_connector.core.config.aliases import ALIASES, EARLIER_KEYS, RETIRED, Alias
from elastic_connector.core.config.load import (
    SOURCE_ENV,
    ConfigError,
    ConfigNote,
    Effective,
    Layer,
    Origin,
    build_config,
    build_effective,
    env_layer,
    json_layer,
    misspelled_env_vars,
)
from elastic_connector.core.config.values import parse_seconds, parse_start_timestamp
from tests.core.config.test_properties import REQUIRED_VALUES, VALUES, env_text, nested, plain

BASE = Layer("file base.yml", nested(REQUIRED_VALUES))
FILE = "file config.yml"
BY_PATH = {option.yaml_path: option for option in OPTIONS}


def effective(*layers: Layer) -> Effective:
    result = build_effective([BASE, *layers])
    value = result.value_or(None)
    assert value is not None, result
    return value


def failures(*layers: Layer) -> list[str]:
    result: Result[Effective, tuple[ConfigError, ...]] = build_effective([BASE, *layers])
    assert isinstance(result, Failure), result
    return [str(error) for error in result.failure()]


def field(found: Effective, path: str) -> object:
    option = BY_PATH[path]
    return getattr(getattr(found.config, option.section), option.name)


# --- every name the earlier connector documented is known -------------------------------------


def test_every_earlier_key_is_an_option_an_alias_or_a_retired_key() -> None:
    ours = {option.yaml_path for option in OPTIONS}
    our_vars = {option.env_var for option in OPTIONS}
    alias_paths = {alias.yaml_path for alias in ALIASES}
    alias_vars = {alias.env_var for alias in ALIASES}
    retired_paths = {path for retired in RETIRED for path in retired.yaml_paths}
    retired_vars = {name for retired in RETIRED for name in retired.env_vars}
    for path, variable in EARLIER_KEYS:
        assert path is None or path in ours | alias_paths | retired_paths, path
        assert variable is None or variable in our_vars | alias_vars | retired_vars, variable


def test_aliases_are_attached_to_their_options() -> None:
    attached = [alias for option in OPTIONS for alias in option.aliases]
    assert sorted(attached, key=str) == sorted(ALIASES, key=str)
    for option in OPTIONS:
        assert all(alias.option == option.yaml_path for alias in option.aliases)


# --- an earlier name is read exactly as ours ----------------------------------------------------


def _layers(alias: Alias, name_kind: str, value: object, layer_kind: str) -> list[Layer]:
    """``value`` given to ``alias.option`` under our name or the earlier one, in one layer."""
    option = BY_PATH[alias.option]
    if layer_kind == "env":
        variable = alias.env_var if name_kind == "earlier" else option.env_var
        assert variable is not None
        return [env_layer({variable: str(value)})]
    path = alias.yaml_path if name_kind == "earlier" else option.yaml_path
    assert path is not None
    document = nested({path: value})
    if layer_kind == "json":
        return [json_layer(json.dumps(document)).unwrap()]
    return [Layer(FILE, document)]


@given(st.data())
def test_a_value_under_an_earlier_name_gives_the_same_config_as_under_ours(
    data: st.DataObject,
) -> None:
    alias = data.draw(st.sampled_from(ALIASES))
    kinds = [kind for kind in ("file", "json") if alias.yaml_path] + (
        ["env"] if alias.env_var else []
    )
    layer_kind = data.draw(st.sampled_from(kinds))
    typed = data.draw(VALUES[alias.option])
    raw = data.draw(env_text(typed)) if layer_kind == "env" else plain(typed)
    if alias.option == "output.elasticsearch.api_key" and layer_kind != "env":
        return  # same YAML path as ours: nothing to compare
    ours = effective(*_layers(alias, "ours", raw, layer_kind))
    earlier = effective(*_layers(alias, "earlier", raw, layer_kind))

    assert earlier.config == ours.config
    origin = earlier.origins[alias.option]
    assert origin.alias_of in (BY_PATH[alias.option].yaml_path, BY_PATH[alias.option].env_var)
    assert "alias of" in str(origin)
    # Warnings about a value (a 7.x alerts index) are the same whatever the name.
    assert [n.message for n in earlier.notes if n.warning] == [
        n.message for n in ours.notes if n.warning
    ]
    assert not [note for note in ours.notes if not note.warning]
    (named,) = [note for note in earlier.notes if not note.warning]
    assert "is the earlier name of" in str(named)


def test_earlier_names_in_each_kind_of_layer() -> None:
    found = effective(
        Layer(FILE, {"connector": {"confidence_level": 80}}),
        env_layer({"CONNECTOR_START_TIMESTAMP": "1655890657402"}),
        json_layer('{"elastic": {"signals": {"query_interval": "5m"}}}').unwrap(),
    )
    assert found.config.sightings.confidence == 80
    assert found.config.connector.live_stream_start_timestamp == 1655890657402
    assert found.config.sightings.poll_interval == 300.0
    assert str(found.origins["sightings.confidence"]) == (
        "file config.yml connector.confidence_level, alias of sightings.confidence"
    )
    assert str(found.origins["connector.live_stream_start_timestamp"]) == (
        "env CONNECTOR_START_TIMESTAMP, alias of CONNECTOR_LIVE_STREAM_START_TIMESTAMP"
    )
    assert str(found.origins["sightings.poll_interval"]) == (
        "json elastic.signals.query_interval, alias of sightings.poll_interval"
    )
    assert [str(note) for note in found.notes] == [
        "file config.yml connector.confidence_level: is the earlier name of sightings.confidence "
        "(SIGHTINGS_CONFIDENCE): read as it",
        "env CONNECTOR_START_TIMESTAMP: is the earlier name of "
        "CONNECTOR_LIVE_STREAM_START_TIMESTAMP (connector.live_stream_start_timestamp): read as it",
        "CONNECTOR_JSON_CONFIG elastic.signals.query_interval: is the earlier name of "
        "sightings.poll_interval (SIGHTINGS_POLL_INTERVAL): read as it",
    ]


def test_origins_of_our_names_and_defaults() -> None:
    found = effective(
        env_layer({"KIBANA_SPACE": "soc"}),
        json_layer('{"kibana": {"url": "https://kibana.example.org"}}').unwrap(),
    )
    assert str(found.origins["opencti.url"]) == "file base.yml"
    assert str(found.origins["kibana.space"]) == "env KIBANA_SPACE"
    assert str(found.origins["kibana.url"]) == "json"
    assert str(found.origins["sightings.tlp"]) == "default"
    assert set(found.origins) == set(BY_PATH)
    assert str(Origin("offline")) == "offline placeholder"


def test_a_higher_layer_wins_whatever_the_name() -> None:
    found = effective(
        Layer(FILE, {"connector": {"confidence_level": 80}}),
        env_layer({"SIGHTINGS_CONFIDENCE": "50"}),
    )
    assert found.config.sightings.confidence == 50
    assert str(found.origins["sightings.confidence"]) == "env SIGHTINGS_CONFIDENCE"
    found = effective(
        Layer(FILE, {"sightings": {"confidence": 50}}),
        env_layer({"CONNECTOR_CONFIDENCE_LEVEL": "80"}),
    )
    assert found.config.sightings.confidence == 80


def test_both_api_key_variables_with_different_values_are_an_error() -> None:
    assert failures(env_layer({"ELASTICSEARCH_API_KEY": "a:b", "ELASTICSEARCH_APIKEY": "c:d"})) == [
        "env ELASTICSEARCH_APIKEY: is set more than once (ELASTICSEARCH_API_KEY and "
        "ELASTICSEARCH_APIKEY) with different values: keep one"
    ]


def test_both_names_with_the_same_value_are_one_value_read_under_ours() -> None:
    # The same instant written in both of the earlier connector's forms.
    found = effective(
        env_layer(
            {
                "CONNECTOR_START_TIMESTAMP": "1655890657402",
                "CONNECTOR_LIVE_STREAM_START_TIMESTAMP": "2022-06-22T09:37:37.402Z",
                "ELASTICSEARCH_API_KEY": "id:key",
                "ELASTICSEARCH_APIKEY": "aWQ6a2V5",  # base64("id:key"): the same key
            }
        )
    )
    assert found.config.connector.live_stream_start_timestamp == 1655890657402
    assert str(found.origins["connector.live_stream_start_timestamp"]) == (
        "env CONNECTOR_LIVE_STREAM_START_TIMESTAMP"
    )
    assert found.config.elasticsearch.api_key == Secret("aWQ6a2V5")


def test_an_invalid_value_under_an_earlier_name_names_that_name() -> None:
    assert failures(env_layer({"CONNECTOR_CONFIDENCE_LEVEL": "101"})) == [
        "env CONNECTOR_CONFIDENCE_LEVEL: 101 is not between 0 and 100"
    ]
    assert failures(Layer(FILE, {"elastic": {"signals": {"query_interval": "often"}}})) == [
        f"{FILE} elastic.signals.query_interval: 'often' is not a number of seconds or a "
        "duration like 30s, 5m, 1h"
    ]


def test_a_secret_under_both_names_is_never_shown_in_the_error() -> None:
    found = failures(
        env_layer({"ELASTICSEARCH_API_KEY": "id:s3cr3t-one", "ELASTICSEARCH_APIKEY": "id:two"})
    )
    assert not any("s3cr3t" in line or "two" in line.split(":", 1)[1] for line in found)


# --- retired keys: accepted, ignored, said once -------------------------------------------------


def test_connector_type_must_be_stream() -> None:
    found = effective(Layer(FILE, {"connector": {"type": "stream"}}))
    assert [str(note) for note in found.notes] == [
        f"{FILE} connector.type: is not used by this connector (ignored): this connector is "
        "always a STREAM connector; the setting can be removed"
    ]
    assert not found.notes[0].warning
    assert failures(env_layer({"CONNECTOR_TYPE": "EXTERNAL_IMPORT"})) == [
        "env CONNECTOR_TYPE: 'EXTERNAL_IMPORT' is not STREAM: this connector only runs as a "
        "stream connector (remove the setting)"
    ]


def test_retired_keys_give_one_warning_per_group_saying_what_replaces_them() -> None:
    found = effective(
        Layer(
            FILE,
            {
                "setup": {
                    "ilm": {"enabled": True, "policy_name": "opencti", "overwrite": False},
                    "template": {"enabled": True, "name": "opencti", "pattern": "opencti-*"},
                },
                "output": {"include_labels": False},
                "connector": {"entity_description": "Elasticsearch detection engine cluster"},
                "elastic": {"signals": {"query": '{"query": {"match_all": {}}}'}},
            },
        ),
        env_layer({"CONNECTOR_ENTITY_DESCRIPTION": "Elastic cluster"}),
    )
    notes = [str(note) for note in found.notes]
    assert all(note.warning for note in found.notes)
    assert notes == [
        f"{FILE} connector.entity_description: is not used by this connector (ignored): the "
        "sighting identity (sightings.identity_name) is created with a fixed description; edit "
        "it in OpenCTI if you want another",
        f"{FILE} output.include_labels: is not used by this connector (ignored): labels are "
        "always written, to the ECS field tags",
        f"{FILE} setup.ilm.enabled, setup.ilm.policy_name, setup.ilm.overwrite: are not used by "
        "this connector (ignored): the connector writes through the write alias "
        "output.elasticsearch.index and creates its first backing index itself; attach an ILM "
        "policy in Kibana if you want rollover",
        f"{FILE} setup.template.enabled, setup.template.name, setup.template.pattern: are not "
        "used by this connector (ignored): the connector installs its own index template for "
        "output.elasticsearch.index (`elastic-connector setup`, or at start)",
        f"{FILE} elastic.signals.query: is not used by this connector (ignored): alerts are "
        "selected by rule type (indicator match) and by the connector's indicator index; choose "
        "the alerts with sightings.alerts_index",
        "env CONNECTOR_ENTITY_DESCRIPTION: is not used by this connector (ignored): the sighting "
        "identity (sightings.identity_name) is created with a fixed description; edit it in "
        "OpenCTI if you want another",
    ]
    assert found.config == build_config([BASE]).unwrap()


def test_unknown_keys_under_a_retired_section_are_still_errors() -> None:
    assert failures(Layer(FILE, {"setup": {"ilm": {"enabeld": True}}})) == [
        f"{FILE} setup.ilm.enabeld: unknown option; did you mean setup.ilm.enabled?"
    ]


def test_earlier_variables_are_not_reported_as_misspellings() -> None:
    names = [name for _, name in EARLIER_KEYS if name]
    assert misspelled_env_vars(dict.fromkeys(names, "x")) == ()


# --- the value forms of the earlier connector ---------------------------------------------------


def test_dotted_keys_at_any_level_as_the_earlier_connector_read_them() -> None:
    found = effective(
        Layer(
            FILE,
            {
                "cloud.id": "n:" + "ZXhhbXBsZS5jb20kYWJjJGtpYg==",
                "output.elasticsearch": {"api_key": "id:key"},
                "sightings.identity_name": "SOC",
            },
        )
    )
    assert found.config.cloud.id == "n:ZXhhbXBsZS5jb20kYWJjJGtpYg=="
    assert found.config.elasticsearch.api_key == Secret("aWQ6a2V5")
    assert found.config.sightings.identity_name == "SOC"
    assert str(found.origins["cloud.id"]) == FILE
    twice = {"sightings.identity_name": "SOC", "sightings": {"identity_name": "NOC"}}
    assert failures(Layer(FILE, twice)) == [
        f"{FILE} sightings.identity_name: is set more than once (sightings.identity_name) with "
        "different values: keep one"
    ]


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("localhost:9200", "http://localhost:9200"),
        ("localhost", "http://localhost:9200"),
        ("10.0.0.5:9201", "http://10.0.0.5:9201"),
        ("[::1]", "http://[::1]:9200"),
    ],
)
def test_hosts_without_a_scheme_are_read_as_the_earlier_connector_read_them(
    written: str, read: str
) -> None:
    found = effective(Layer(FILE, {"output": {"elasticsearch": {"hosts": [written]}}}))
    assert found.config.elasticsearch.hosts == (read,)
    assert [str(note) for note in found.notes] == [
        f"{FILE} output.elasticsearch.hosts: {written!r} has no scheme: read as {read} (plain "
        "HTTP, as the earlier connector did); write https://... to use TLS"
    ]
    assert found.notes[0].warning


def test_hosts_with_a_scheme_give_no_note() -> None:
    found = effective(env_layer({"ELASTICSEARCH_HOSTS": "https://es.example.org:9200"}))
    assert found.notes == ()


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("1655890657402", 1655890657402),
        (1655890657402, 1655890657402),
        ("2022-05-22T09:17:08.520Z", 1653211028520),
        ("2022-05-22T11:17:08.520+02:00", 1653211028520),
        ("2022-05-22T09:17:08.520", 1653211028520),  # no offset: UTC
        (datetime.datetime(2022, 5, 22, 9, 17, 8, 520000, tzinfo=datetime.UTC), 1653211028520),
        (datetime.date(2022, 5, 22), 1653177600000),
    ],
)
def test_start_timestamps_as_epoch_milliseconds_or_iso_dates(raw: object, stored: int) -> None:
    found = effective(Layer(FILE, {"connector": {"live_stream_start_timestamp": raw}}))
    assert found.config.connector.live_stream_start_timestamp == stored


def test_an_unreadable_start_timestamp() -> None:
    assert failures(env_layer({"CONNECTOR_LIVE_STREAM_START_TIMESTAMP": "yesterday"})) == [
        "env CONNECTOR_LIVE_STREAM_START_TIMESTAMP: 'yesterday' is neither epoch milliseconds "
        "(e.g. 1655890657402) nor an ISO 8601 date (e.g. 2022-05-22T09:17:08.520Z)"
    ]


@given(st.integers(0, 2**44))
def test_an_iso_start_timestamp_is_the_same_instant_as_its_epoch_milliseconds(ms: int) -> None:
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    moment = epoch + datetime.timedelta(milliseconds=ms)
    text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert parse_start_timestamp(text).unwrap() == ms
    assert parse_start_timestamp(str(ms)).unwrap() == ms


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h", "d", "w"])),
        min_size=1,
        max_size=4,
    )
)
def test_a_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = "".join(f"{number}{unit}" for number, unit in parts)
    assert parse_seconds(text).unwrap() == pytest.approx(
        sum(number * factor[unit] for number, unit in parts)
    )


def test_warn_is_a_log_level() -> None:
    assert effective(env_layer({"CONNECTOR_LOG_LEVEL": "warn"})).config.connector.log_level == (
        "warning"
    )
    assert effective(env_layer({"CONNECTOR_LOG_LEVEL": "WARN"})).config.connector.log_level == (
        "warning"
    )


def test_notes_read_as_lines() -> None:
    assert str(ConfigNote(SOURCE_ENV, "X", "is old")) == "env X: is old"
    assert str(ConfigNote(SOURCE_ENV, "", "whole layer")) == "whole layer"


def test_the_7x_alerts_index_the_earlier_connector_documented_is_warned() -> None:
    found = effective(Layer(FILE, {"elastic": {"signals": {"signal_index": ".siem-signals-*"}}}))
    assert found.config.sightings.alerts_index == ".siem-signals-*"
    warnings = [str(note) for note in found.notes if note.warning]
    assert warnings == [
        f"{FILE} elastic.signals.signal_index: '.siem-signals-*' is where Elastic 7 wrote "
        "detection alerts; Elastic 8 and 9 write them to .alerts-security.alerts-<space>: leave "
        "the option unset to read those (the default)"
    ]
    assert not effective(env_layer({"SIGHTINGS_ALERTS_INDEX": "my-alerts-*"})).notes


def test_the_earlier_connectors_date_math_index_is_refused_with_what_to_do() -> None:
    (error,) = failures(env_layer({"ELASTICSEARCH_INDEX": "opencti-{now/d}"}))
    assert error.startswith("env ELASTICSEARCH_INDEX: 'opencti-{now/d}' is date math")
    assert "write a fixed name" in error
