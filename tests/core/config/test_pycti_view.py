"""pycti reads our settings through its own ``get_config_variable``: it must see our values.

The oracle is pycti's real function, called exactly as ``OpenCTIConnectorHelper.__init__`` calls
it, once with the config dict alone (our variables removed from the environment) and once with
the environment alone (``pycti_environment``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import cast

from hypothesis import given

from elastic_connector.core.config import NO_RECOVER, Config
from elastic_connector.core.config.load import misspelled_env_vars
from elastic_connector.core.config.pycti_view import PYCTI_ENV_VARS, pycti_config, pycti_environment
from tests.core.config.test_properties import valid_configs

# Not in our pycti stubs (the connector never calls it): typed here for the test only.
get_config_variable = cast(
    Callable[..., object],
    importlib.import_module("pycti.connector.opencti_connector_helper").get_config_variable,
)

# (env var, YAML path, default) exactly as pycti 7.261026.0's helper reads them.
HELPER_READS: tuple[tuple[str, list[str], object], ...] = (
    ("OPENCTI_URL", ["opencti", "url"], None),
    ("OPENCTI_TOKEN", ["opencti", "token"], None),
    ("OPENCTI_SSL_VERIFY", ["opencti", "ssl_verify"], False),
    ("CONNECTOR_ID", ["connector", "id"], None),
    ("CONNECTOR_TYPE", ["connector", "type"], None),
    ("CONNECTOR_NAME", ["connector", "name"], None),
    ("CONNECTOR_SCOPE", ["connector", "scope"], "not-applicable"),
    ("CONNECTOR_LOG_LEVEL", ["connector", "log_level"], "ERROR"),
    ("CONNECTOR_LIVE_STREAM_ID", ["connector", "live_stream_id"], None),
    ("CONNECTOR_LIVE_STREAM_LISTEN_DELETE", ["connector", "live_stream_listen_delete"], True),
    ("CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES", ["connector", "live_stream_no_dependencies"], True),
    ("CONNECTOR_LIVE_STREAM_WITH_INFERENCES", ["connector", "live_stream_with_inferences"], False),
    ("CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE", ["connector", "live_stream_recover_iso_date"], None),
    ("CONNECTOR_LIVE_STREAM_START_TIMESTAMP", ["connector", "live_stream_start_timestamp"], None),
)


def test_the_oracle_covers_every_shared_variable() -> None:
    assert [name for name, _, _ in HELPER_READS] == list(PYCTI_ENV_VARS)


def meaning(config: Config) -> dict[str, object]:
    """What each shared setting must be once pycti has read it."""
    opencti, connector = config.opencti, config.connector
    recover = connector.live_stream_recover_iso_date
    return {
        "OPENCTI_URL": opencti.url,
        "OPENCTI_TOKEN": opencti.token.reveal() or None,
        "OPENCTI_SSL_VERIFY": (opencti.ca_certs or True) if opencti.ssl_verify else False,
        "CONNECTOR_ID": connector.id,
        "CONNECTOR_TYPE": "STREAM",
        "CONNECTOR_NAME": connector.name,
        "CONNECTOR_SCOPE": connector.scope,
        "CONNECTOR_LOG_LEVEL": connector.log_level.upper(),
        "CONNECTOR_LIVE_STREAM_ID": connector.live_stream_id,
        "CONNECTOR_LIVE_STREAM_LISTEN_DELETE": connector.live_stream_listen_delete,
        "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES": connector.live_stream_no_dependencies,
        "CONNECTOR_LIVE_STREAM_WITH_INFERENCES": connector.live_stream_with_inferences,
        "CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE": False if recover == NO_RECOVER else recover,
        "CONNECTOR_LIVE_STREAM_START_TIMESTAMP": connector.live_stream_start_timestamp,
    }


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``os.environ`` with the shared variables set to ``values`` (None: absent), then restored."""
    saved = {name: os.environ.get(name) for name in PYCTI_ENV_VARS}
    try:
        for name in PYCTI_ENV_VARS:
            value = values.get(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pycti_reads(dictionary: Mapping[str, object]) -> dict[str, object]:
    found = {}
    for name, path, default in HELPER_READS:
        value = get_config_variable(name, path, dictionary, False, default)
        if name == "CONNECTOR_LOG_LEVEL":
            value = str(value).upper()  # the helper upper-cases it
        if name == "CONNECTOR_LIVE_STREAM_START_TIMESTAMP" and isinstance(value, str):
            value = int(value)  # from the environment pycti keeps the text; it formats it later
        found[name] = value
    return found


@given(valid_configs())
def test_pycti_reads_our_values_from_the_config_dict(config: Config) -> None:
    with environment({}):
        assert pycti_reads(pycti_config(config)) == meaning(config)


@given(valid_configs())
def test_pycti_reads_our_values_from_the_environment(config: Config) -> None:
    with environment(pycti_environment(config)):
        assert pycti_reads({}) == meaning(config)


@given(valid_configs())
def test_environment_wins_in_pycti_so_both_must_agree(config: Config) -> None:
    # The daemon passes the dict while a user's variables may still be set: after applying
    # pycti_environment, both sources say the same thing whichever pycti picks.
    with environment(pycti_environment(config)):
        assert pycti_reads(pycti_config(config)) == meaning(config)


def test_no_variable_pycti_reads_is_reported_as_a_typo() -> None:
    source = inspect.getsource(importlib.import_module("pycti.connector.opencti_connector_helper"))
    read_by_pycti = set(re.findall(r'"((?:OPENCTI|CONNECTOR)_[A-Z0-9_]+)"', source))
    assert len(read_by_pycti) > 20  # the pattern still finds pycti's reads
    assert misspelled_env_vars(dict.fromkeys(read_by_pycti, "x")) == ()
