"""OpenCTI fixtures: a running stand-in platform and real pycti helpers connected to it.

pycti reads ``OPENCTI_*``/``CONNECTOR_*``/``MQ_*``/``S3_*`` environment variables before its
config dict, so every fixture here clears them. Building a helper replaces ``sys.excepthook``
with a SIGTERM hook, may reconfigure the root logger, and starts a ping thread: the
``pycti_helper`` factory undoes all three.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

import pytest

from elastic_connector.demo.opencti_standin import OpenCTIStandin
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from pycti import OpenCTIConnectorHelper

_PYCTI_PREFIXES = ("OPENCTI_", "CONNECTOR_", "MQ_", "S3_")
_PYCTI_NAMES = ("QUEUE_PROTOCOL",)
_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class HelperFactory(Protocol):
    """``pycti_helper(...)``: a helper for ``config``, or for ``stream_connector_config``
    with these overrides."""

    def __call__(
        self,
        config: Mapping[str, Mapping[str, object]] | None = None,
        *,
        connector_id: str | None = None,
        token: str | None = None,
        **connector: object,
    ) -> OpenCTIConnectorHelper: ...


@pytest.fixture
def clean_opencti_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray pycti settings or proxies from the environment (loopback is never proxied)."""
    for name in list(os.environ):
        if name.startswith(_PYCTI_PREFIXES) or name in _PYCTI_NAMES or name in _PROXY_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def opencti_standin(clean_opencti_env: None) -> Iterator[OpenCTIStandin]:
    """A fresh stand-in platform on a free loopback port (heartbeats every 0.2 s)."""
    with OpenCTIStandin(heartbeat_interval=0.2) as standin:
        yield standin


def stream_connector_config(
    standin: OpenCTIStandin,
    *,
    connector_id: str | None = None,
    token: str | None = None,
    **connector: object,
) -> dict[str, dict[str, object]]:
    """The config dict a STREAM connector gives ``OpenCTIConnectorHelper``."""
    return {
        "opencti": {
            "url": standin.url,
            "token": token or standin.token,
            "json_logging": False,
            "ssl_verify": False,
        },
        "connector": {
            "id": connector_id or str(uuid.uuid4()),
            "type": "STREAM",
            "name": "Elastic",
            "scope": "elastic",
            "log_level": "error",
            "live_stream_id": "live",
            **connector,
        },
    }


@pytest.fixture
def pycti_helper(opencti_standin: OpenCTIStandin) -> Iterator[HelperFactory]:
    """Build real ``OpenCTIConnectorHelper``s against the stand-in; undone at teardown.

    Call it with ``stream_connector_config`` keyword overrides, or ``config=`` a whole dict.
    """
    from pycti import OpenCTIConnectorHelper
    from pycti.connector.opencti_connector_helper import PingAlive

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_hook = sys.excepthook
    helpers: list[OpenCTIConnectorHelper] = []

    def build(
        config: Mapping[str, Mapping[str, object]] | None = None,
        *,
        connector_id: str | None = None,
        token: str | None = None,
        **connector: object,
    ) -> OpenCTIConnectorHelper:
        if config is None:
            config = stream_connector_config(
                opencti_standin, connector_id=connector_id, token=token, **connector
            )
        try:
            helper = OpenCTIConnectorHelper(config)
        finally:
            sys.excepthook = saved_hook  # the helper installs a SIGTERM hook first thing
        helpers.append(helper)
        # The ping thread's first ping sends the state it read at start; letting it land
        # first keeps it from overwriting a state the test sets and pings itself.
        wait_until(
            lambda: opencti_standin.ping_count(helper.connector_id) >= 1, what="the first ping"
        )
        return helper

    yield build
    for helper in helpers:
        helper.ping.stop()
        helper.ping.join(5)
    sys.excepthook = saved_hook
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    stray = [t for t in threading.enumerate() if isinstance(t, PingAlive) and t.is_alive()]
    assert not stray, f"pycti threads outlived the test: {stray}"
