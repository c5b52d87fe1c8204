"""Property tests of the settings loader: precedence, totality, secrecy, round trips."""

from __future__ import annotations

import base64
import datetime
import enum
import json
import string
from collections.abc import Mapping
from typing import cast

from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from elastic_connector.core.config import (
    OPTIONS,
    Config,
    InitialSync,
    LogFormat,
    Mode,
    Option,
    Secret,
)
from elastic_connector.core.config.export import config_to_env, config_to_mapping
from elastic_connector.core.config.load import (
    SOURCE_ENV,
    SOURCE_JSON,
    ConfigError,
    Layer,
    build_config,
    env_layer,
    file_layer,
    json_layer,
)
from elastic_connector.core.config.observable_types import OPENCTI_OBSERVABLE_TYPES
from elastic_connector.core.policy.tlp import Tlp

# --- valid values, per option --------------------------------------------------------------

_WORD = string.ascii_letters + string.digits
PYCTI_BOOLEAN_WORDS = {"yes", "true", "True", "no", "false", "False"}  # pycti reads them as bools
words = st.text(_WORD, min_size=1, max_size=12).filter(lambda text: text not in PYCTI_BOOLEAN_WORDS)
# Free text as people type it into names: inner spaces, punctuation, non-ASCII letters.
names = (
    st.text(
        st.characters(
            categories=("L", "N", "Zs"), include_characters="-_.'()/", max_codepoint=0x2FFF
        ),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(lambda text: text and text not in PYCTI_BOOLEAN_WORDS)
)
host_names = st.lists(
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8), min_size=1, max_size=3
).map(".".join)
ports = st.integers(1, 65535)


@st.composite
def urls(draw: st.DrawFn, *, http_needs_port: bool = False) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.one_of(host_names, st.just("[::1]"), st.just("10.1.2.3")))
    port = draw(ports) if scheme == "http" and http_needs_port else draw(st.none() | ports)
    path = draw(st.sampled_from(["", "/", "/opencti", "/a/b"]))
    return f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"


# Generated secrets carry a marker so that tests can look for them in any text without a short
# secret ("0000") matching ordinary output by chance.
SECRET_MARK = "Qz7"
secret_texts = st.text(_WORD + "-_.!$%&*+/=?^~", max_size=24).map(lambda text: SECRET_MARK + text)


def encoded_api_key(pair: tuple[str, str]) -> Secret:
    return Secret(base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode())


def make_cloud_id(name: str, host: str, es_uuid: str) -> str:
    return f"{name}:" + base64.b64encode(f"{host}${es_uuid}$kib".encode()).decode()


iso_dates = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)
).map(lambda moment: moment.replace(microsecond=0).isoformat() + "Z")
index_names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True)
positive_seconds = st.floats(min_value=0.001, max_value=1e9, allow_nan=False)

VALUES: Mapping[str, st.SearchStrategy[object]] = {
    "opencti.url": urls(),
    "opencti.token": words.map(lambda word: Secret(SECRET_MARK + word)),
    "opencti.ssl_verify": st.booleans(),
    "opencti.ca_certs": words.map(lambda name: f"/certs/{name}.pem"),
    "connector.id": st.uuids().map(str),
    "connector.name": names,
    "connector.scope": names,
    "connector.mode": st.sampled_from(Mode),
    "connector.log_level": st.sampled_from(["debug", "info", "warning", "error"]),
    "connector.log_format": st.sampled_from(LogFormat),
    "connector.live_stream_id": words,
    "connector.live_stream_listen_delete": st.booleans(),
    "connector.live_stream_no_dependencies": st.booleans(),
    "connector.live_stream_with_inferences": st.booleans(),
    "connector.live_stream_recover_iso_date": st.one_of(iso_dates, st.just("false")),
    "connector.live_stream_start_timestamp": st.integers(0, 2**53),
    "connector.stream_heartbeat_margin": positive_seconds,
    "connector.stream_queue_full_timeout": positive_seconds,
    "connector.max_tlp": st.sampled_from([level for level in Tlp if level is not Tlp.WHITE]),
    "connector.require_detection": st.booleans(),
    "connector.min_score": st.integers(0, 100),
    "connector.min_confidence": st.integers(0, 100),
    "connector.labels_include": st.lists(words, min_size=1, max_size=3, unique_by=str.lower).map(
        tuple
    ),
    "connector.labels_exclude": st.lists(words, min_size=1, max_size=3, unique_by=str.lower).map(
        tuple
    ),
    "connector.indicator_types": st.lists(
        st.sampled_from(OPENCTI_OBSERVABLE_TYPES), min_size=1, max_size=3, unique=True
    ).map(tuple),
    "connector.indicator_ttl": positive_seconds,
    "connector.expiry_sweep_interval": positive_seconds,
    "connector.progress_interval": positive_seconds,
    "connector.reconcile_interval": positive_seconds,
    "connector.initial_sync": st.sampled_from(InitialSync),
    "connector.planning_process": st.booleans(),
    "connector.metrics_port": ports,
    "connector.metrics_host": st.sampled_from(["0.0.0.0", "127.0.0.1", "::", "metrics.local"]),
    "cloud.id": st.builds(make_cloud_id, words, host_names, words),
    "cloud.auth": st.tuples(words, secret_texts).map(lambda pair: Secret(f"{pair[0]}:{pair[1]}")),
    "output.elasticsearch.hosts": st.lists(urls(http_needs_port=True), min_size=1, max_size=3).map(
        tuple
    ),
    "output.elasticsearch.username": words,
    "output.elasticsearch.password": secret_texts.map(Secret),
    "output.elasticsearch.api_key": st.tuples(words, secret_texts).map(encoded_api_key),
    "output.elasticsearch.ca_certs": words.map(lambda name: f"/certs/{name}-ca.pem"),
    "output.elasticsearch.client_cert": words.map(lambda name: f"/certs/{name}.crt"),
    "output.elasticsearch.client_key": words.map(lambda name: f"/certs/{name}.key"),
    "output.elasticsearch.ssl_verify": st.booleans(),
    "output.elasticsearch.index": index_names,
    "output.elasticsearch.reduced_privileges": st.booleans(),
    "output.elasticsearch.bulk_max_actions": st.integers(1, 2**40),
    "output.elasticsearch.bulk_max_bytes": st.integers(1, 2**40),
    "output.elasticsearch.bulk_flush_interval": positive_seconds,
    "output.elasticsearch.retry_max_backoff": positive_seconds,
    "output.elasticsearch.request_timeout": positive_seconds,
    "output.elasticsearch.dead_letter_index": index_names,
    "output.lookup.index": index_names,
    "sightings.alerts_index": st.sampled_from([".alerts-security.alerts-*", ".siem-signals-*"]),
    "sightings.poll_interval": positive_seconds,
    "sightings.page_size": st.integers(1, 10_000),
    "sightings.initial_lookback": st.floats(min_value=0, max_value=1e9, allow_nan=False),
    "sightings.identity_name": names,
    "sightings.identity_type": st.sampled_from(
        ["Organization", "System", "SecurityPlatform", "Individual"]
    ),
    "sightings.tlp": st.sampled_from([level for level in Tlp if level is not Tlp.WHITE]),
    "sightings.confidence": st.integers(0, 100),
    "sightings.settle_delay": positive_seconds,
    "sightings.include_closed": st.booleans(),
    "kibana.url": urls(),
    "kibana.space": st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True),
}  # fmt: skip

BY_PATH = {option.yaml_path: option for option in OPTIONS}
REQUIRED_VALUES: Mapping[str, object] = {
    "opencti.url": "https://opencti.example.com",
    "opencti.token": "required-token",
    "connector.id": "7b1f1a44-28a7-4bb2-9f0d-3f1c1b4a5a10",
}
# Options only valid together with another: the base layer sets both, so each option alone
# can be unset in every upper layer (and fall through to its base value).
_BASIC = {"output.elasticsearch.username": "user", "output.elasticsearch.password": "pw"}
_CLIENT = {
    "output.elasticsearch.client_cert": "/c.pem",
    "output.elasticsearch.client_key": "/k.pem",
}
_CLOUD = {"cloud.id": make_cloud_id("n", "example.com", "abc"), "cloud.auth": "u:p"}
PARTNERS: Mapping[str, Mapping[str, object]] = {
    "output.elasticsearch.username": _BASIC,
    "output.elasticsearch.password": _BASIC,
    "output.elasticsearch.client_cert": _CLIENT,
    "output.elasticsearch.client_key": _CLIENT,
    "cloud.auth": _CLOUD,
}
CONSTRAINED = {*PARTNERS, "cloud.id", "output.elasticsearch.api_key", "output.elasticsearch.hosts"}
INDEPENDENT = [option for option in OPTIONS if option.yaml_path not in CONSTRAINED]


def test_every_option_has_a_value_strategy() -> None:
    assert set(VALUES) == set(BY_PATH)


# --- how a typed value is written in each kind of layer (an oracle independent of the code) -


def plain(value: object) -> object:
    """The YAML/JSON spelling of a typed value."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Tlp):
        return value.label
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


@st.composite
def env_text(draw: st.DrawFn, value: object) -> str:
    """One of the ways a person may write ``value`` in an environment variable."""
    data = plain(value)
    if isinstance(data, bool):
        words_for = (
            ["true", "True", "TRUE", "yes", "Yes", "1"]
            if data
            else ["false", "False", "no", "NO", "0"]
        )
        return draw(st.sampled_from(words_for))
    if isinstance(data, list):
        return draw(st.sampled_from([",", ", ", " ,"])).join(str(item) for item in data)
    if isinstance(data, str) and isinstance(value, enum.Enum):
        return draw(st.sampled_from([data, data.lower(), data.upper()]))
    if isinstance(data, float):
        return repr(data)
    return str(data)


def nested(entries: Mapping[str, object]) -> dict[str, object]:
    tree: dict[str, object] = {}
    for path, value in entries.items():
        *sections, leaf = path.split(".")
        node = tree
        for key in sections:
            node = cast(dict[str, object], node.setdefault(key, {}))
        node[leaf] = value
    return tree


def field(config: Config, option: Option) -> object:
    return getattr(getattr(config, option.section), option.name)


# A layer state for one option: absent, present but empty, or a value.
ABSENT, EMPTY = "absent", "empty"


@st.composite
def layer_states(draw: st.DrawFn, option: Option) -> dict[str, object]:
    """What the file, env and JSON layers hold for ``option``: ABSENT, EMPTY or a typed value."""
    return {
        kind: draw(st.one_of(st.just(ABSENT), st.just(EMPTY), VALUES[option.yaml_path]))
        for kind in ("file", "env", "json")
    }


@st.composite
def layers_for(draw: st.DrawFn, states: Mapping[str, Mapping[str, object]]) -> list[Layer]:
    """Real file/env/JSON layers (through env_layer and json_layer) from per-option states."""
    file_entries: dict[str, object] = {}
    env: dict[str, str] = {}
    json_entries: dict[str, object] = {}
    for path, state in states.items():
        option = BY_PATH[path]
        for kind, value in state.items():
            if value == ABSENT:
                continue
            if kind == "env":
                env[option.env_var] = "" if value == EMPTY else draw(env_text(value))
                continue
            empty: object = draw(
                st.sampled_from(
                    [None, "", " "] + ([[]] if option.type_name.startswith("list") else [])
                )
            )
            target = file_entries if kind == "file" else json_entries
            target[path] = empty if value == EMPTY else plain(value)
    json_result = json_layer(json.dumps(nested(json_entries)))
    assert isinstance(json_result, Success)
    return [Layer("file config.yml", nested(file_entries)), env_layer(env), json_result.unwrap()]


def expected(state: Mapping[str, object], fallback: object) -> object:
    for kind in ("json", "env", "file"):
        if state[kind] not in (ABSENT, EMPTY):
            return state[kind]
    return fallback


def base_entries(*paths: str) -> dict[str, object]:
    entries = dict(REQUIRED_VALUES)
    for path in paths:
        entries |= PARTNERS.get(path, {})
    return entries


def fallback_value(option: Option, base: Mapping[str, object]) -> object:
    """What an option is when no upper layer sets it: its base-layer value or its default."""
    if option.yaml_path not in base:
        return option.default
    value = base[option.yaml_path]
    return Secret(str(value)) if option.secret else value


def ok(result: Result[Config, tuple[ConfigError, ...]]) -> Config:
    config = result.value_or(None)
    assert config is not None, result
    return config


# --- precedence ----------------------------------------------------------------------------


@given(st.data())
def test_precedence_of_one_option_over_all_layer_combinations(data: st.DataObject) -> None:
    option = data.draw(st.sampled_from(OPTIONS))
    state = data.draw(layer_states(option))
    layers = data.draw(layers_for({option.yaml_path: state}))
    base = base_entries(option.yaml_path)
    config = ok(build_config([Layer("file base.yml", nested(base)), *layers]))
    assert field(config, option) == expected(state, fallback_value(option, base))


@given(st.data())
def test_precedence_of_many_options_at_once(data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(INDEPENDENT), unique=True, min_size=2, max_size=15))
    unset: dict[str, object] = dict.fromkeys(("file", "env", "json"), ABSENT)
    states = {option.yaml_path: unset for option in INDEPENDENT}
    states |= {option.yaml_path: data.draw(layer_states(option)) for option in chosen}
    base = base_entries()
    config = ok(
        build_config([Layer("file base.yml", nested(base)), *data.draw(layers_for(states))])
    )
    for option in INDEPENDENT:
        assert field(config, option) == expected(
            states[option.yaml_path], fallback_value(option, base)
        )


# --- valid configurations and round trips --------------------------------------------------


@st.composite
def valid_configs(draw: st.DrawFn) -> Config:
    """Any valid Config: a subset of independent options plus one way to reach Elasticsearch."""
    entries: dict[str, object] = {
        path: plain(draw(VALUES[path])) for path in ("opencti.url", "opencti.token", "connector.id")
    }
    for option in draw(st.lists(st.sampled_from(INDEPENDENT), unique=True)):
        entries[option.yaml_path] = plain(draw(VALUES[option.yaml_path]))
    es = "output.elasticsearch."
    connection = draw(st.sampled_from(["hosts", "cloud"]))
    if connection == "hosts" and draw(st.booleans()):
        entries[f"{es}hosts"] = plain(draw(VALUES[f"{es}hosts"]))
    if connection == "cloud":
        entries["cloud.id"] = draw(VALUES["cloud.id"])
    auth = draw(
        st.sampled_from(
            ["none", "api_key", "basic", "cloud"]
            if connection == "cloud"
            else ["none", "api_key", "basic"]
        )
    )
    partners = {
        "api_key": [f"{es}api_key"],
        "basic": [f"{es}username", f"{es}password"],
        "cloud": ["cloud.auth"],
        "none": [],
    }
    for path in partners[auth]:
        entries[path] = plain(draw(VALUES[path]))
    if draw(st.booleans()):
        for path in (f"{es}client_cert", f"{es}client_key"):
            entries[path] = plain(draw(VALUES[path]))
    return ok(build_config([Layer("file generated.yml", nested(entries))]))  # fmt: skip


@given(valid_configs())
def test_round_trip_through_a_yaml_mapping(config: Config) -> None:
    mapping = config_to_mapping(config, reveal_secrets=True)
    assert ok(build_config([file_layer("again.yml", mapping).unwrap()])) == config


@given(valid_configs())
def test_round_trip_through_json(config: Config) -> None:
    text = json.dumps(config_to_mapping(config, reveal_secrets=True))
    assert ok(build_config([json_layer(text).unwrap()])) == config


@given(valid_configs())
def test_round_trip_through_the_environment(config: Config) -> None:
    environ = config_to_env(config, reveal_secrets=True)
    assert ok(build_config([env_layer(environ)])) == config


@given(valid_configs())
def test_config_repr_and_renderings_never_show_secrets(config: Config) -> None:
    shown = [
        repr(config),
        str(config),
        repr(config_to_mapping(config)),
        repr(config_to_env(config)),
    ]
    for secret in (
        config.opencti.token,
        config.elasticsearch.password,
        config.elasticsearch.api_key,
        config.cloud.auth,
    ):
        if secret is not None:
            assert not any(secret.reveal() in text for text in shown)


# --- never raises --------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**5000),
    st.floats(),
    st.text(),
    st.binary(max_size=8),
    st.dates(),
    st.datetimes(),
    st.sampled_from(["", " ", "yes", "TLP:WHITE", "https://u:p@h", "id:key", "0", "-1", "1e999"]),
)
anything = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=12,
)
keys_here = st.sampled_from(
    sorted({part for option in OPTIONS for part in option.yaml_path.split(".")})
)


@st.composite
def option_shaped(draw: st.DrawFn) -> dict[str, object]:
    """Nested data that mostly follows the YAML shape, with arbitrary values and stray keys."""
    chosen = draw(st.lists(st.sampled_from(OPTIONS), max_size=10))
    tree = nested({option.yaml_path: draw(anything) for option in chosen})
    for _ in range(draw(st.integers(0, 3))):
        tree[draw(st.one_of(keys_here, st.text(max_size=6)))] = draw(anything)
    return tree


@given(
    st.lists(
        st.tuples(
            st.one_of(st.just(SOURCE_ENV), st.just(SOURCE_JSON), st.text(max_size=10)),
            st.one_of(option_shaped(), anything),
        ),
        max_size=4,
    ),
    st.booleans(),
)
def test_build_config_never_raises(sources: list[tuple[str, object]], offline: bool) -> None:
    layers = [Layer(source, cast(Mapping[str, object], values)) for source, values in sources]
    result = build_config(layers, offline=offline)
    assert isinstance(result, (Success, Failure))
    if isinstance(result, Failure):
        for error in result.failure():
            assert isinstance(error, ConfigError)
            assert str(error)
            assert repr(error)


@given(
    st.dictionaries(st.sampled_from([option.env_var for option in OPTIONS]), st.text()),
    st.booleans(),
)
def test_any_environment_gives_a_config_or_errors(environ: dict[str, str], offline: bool) -> None:
    result = build_config([env_layer(environ)], offline=offline)
    assert isinstance(result, (Success, Failure))


@given(st.text())
def test_json_layer_never_raises(text: str) -> None:
    assert isinstance(json_layer(text), (Success, Failure))


@given(anything)
def test_file_layer_never_raises(document: object) -> None:
    assert isinstance(file_layer("x.yml", document), (Success, Failure))


# --- secrets never leak --------------------------------------------------------------------

# A recognisable prefix keeps a short secret from matching ordinary message text by chance.
marked_secrets = st.text(_WORD, min_size=4, max_size=16).map(lambda text: "Qz7" + text)


@st.composite
def secret_placements(draw: st.DrawFn, secret: str) -> list[Layer]:
    """Layers that carry ``secret`` where people put secrets, valid or not, right or wrong."""
    spelled = draw(
        st.sampled_from(
            [
                secret,
                f" {secret}",
                f"{secret}\n",
                f"id:{secret}",
                f"{secret}:",
                f"user:{secret}",
                f"{secret}$%",
            ]
        )
    )
    es = "output.elasticsearch."
    paths = draw(
        st.lists(
            st.sampled_from(
                [
                    "opencti.token",
                    f"{es}password",
                    f"{es}api_key",
                    "cloud.auth",
                    f"{es}api_kye",
                    "opencti.tokn",
                    "secrets.token",
                ]
            ),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    entries: dict[str, object] = dict.fromkeys(paths, spelled)
    if draw(st.booleans()):  # a credential inside a URL
        entries[draw(st.sampled_from(["opencti.url", "kibana.url", f"{es}hosts"]))] = (
            f"https://user:{secret}@host.example:9200"
        )
    noise = {
        path: plain(draw(anything))
        for path in draw(st.lists(st.sampled_from(sorted(BY_PATH)), max_size=3))
        if not BY_PATH[path].secret
    }
    where = draw(st.sampled_from(["file", "env", "json"]))
    if where == "env":
        environ = {
            BY_PATH[path].env_var: str(value) for path, value in entries.items() if path in BY_PATH
        }
        return [
            Layer("file noise.yml", nested(noise)),
            env_layer(environ),
            Layer("file typo.yml", nested({p: v for p, v in entries.items() if p not in BY_PATH})),
        ]
    source = "file config.yml" if where == "file" else SOURCE_JSON
    return [Layer("file noise.yml", nested(noise)), Layer(source, nested(entries))]  # fmt: skip


@given(st.data(), marked_secrets, st.booleans())
def test_no_secret_in_any_error_or_repr(data: st.DataObject, secret: str, offline: bool) -> None:
    layers = data.draw(secret_placements(secret))
    result = build_config(layers, offline=offline)
    encoded = base64.b64encode(f"id:{secret}".encode()).decode()
    texts = [repr(result)]
    if isinstance(result, Failure):
        texts += [str(error) for error in result.failure()] + [repr(result.failure())]
    else:
        config = result.unwrap()
        texts += [str(config), repr(config_to_mapping(config)), repr(config_to_env(config))]
    for text in texts:
        assert secret not in text
        assert encoded not in text
