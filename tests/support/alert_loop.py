"""One connector's alert loop for the tests: the poller with an in-memory connector state, a
settable clock, real pycti against the OpenCTI stand-in and elasticsearch-py."""

from __future__ import annotations

import copy
import logging
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from elasticsearch import Elasticsearch
from pycti import OpenCTIApiClient

from elastic_connector.core.config import (
    Config,
    ConnectorSettings,
    ElasticsearchSettings,
    KibanaSettings,
    OpenCTISettings,
    Secret,
    SightingsSettings,
)
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.alerts import (
    STATE_KEY,
    AlertPoller,
    PollPosition,
    PollReport,
    position_from_state,
)
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics

START = datetime(2024, 5, 1, tzinfo=UTC)
NOW = START + timedelta(hours=1)
LOOKBACK = 86_400.0


class MemoryStore:
    """The state side of pycti's helper, in memory (JSON round trip as pycti does)."""

    def __init__(self, state: dict[str, object] | None = None) -> None:
        self.state = copy.deepcopy(state)
        self.pings = 0

    def get_state(self) -> dict[str, object] | None:
        return msgspec.json.decode(msgspec.json.encode(self.state)) if self.state else None

    def set_state(self, state: dict[str, object] | None) -> None:
        self.state = copy.deepcopy(state) if isinstance(state, dict) else None

    def force_ping(self) -> None:
        self.pings += 1


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def api_for(standin: OpenCTIStandin) -> OpenCTIApiClient:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return OpenCTIApiClient(standin.url, standin.token, log_level="error", ssl_verify=False)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def config_for(
    standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    alerts_index: str,
    *,
    page_size: int = 100,
    initial_lookback: float = LOOKBACK,
    kibana_url: str | None = None,
    **sightings: object,
) -> Config:
    return Config(
        opencti=OpenCTISettings(url=standin.url, token=Secret(standin.token)),
        connector=ConnectorSettings(id=str(uuid.uuid4())),
        elasticsearch=msgspec.structs.replace(es_settings, retry_max_backoff=0.02),
        sightings=SightingsSettings(
            alerts_index=alerts_index,
            page_size=page_size,
            initial_lookback=initial_lookback,
            poll_interval=0.05,
            **sightings,  # type: ignore[arg-type]  # test keyword overrides
        ),
        kibana=KibanaSettings(url=kibana_url),
    )


class Loop:
    """One connector's alert loop: config, client, state, metrics and a poller factory."""

    def __init__(
        self,
        standin: OpenCTIStandin,
        client: Elasticsearch,
        config: Config,
        state: ConnectorState | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.standin = standin
        self.client = client
        self.config = config
        self.store = MemoryStore()
        self.state = state or ConnectorState(self.store)
        self.clock = clock or Clock()
        self.metrics = Metrics()
        self.api = api_for(standin)

    def poller(self, **options: object) -> AlertPoller:
        return AlertPoller(
            config=self.config,
            client=self.client,
            api=self.api,
            state=self.state,
            metrics=self.metrics,
            clock=self.clock,
            **options,  # type: ignore[arg-type]  # test-only keyword options
        )

    def poll(self, **options: object) -> PollReport:
        return self.poller(**options).poll_once()

    def saved(self) -> PollPosition:
        snapshot = self.state.snapshot() or {}
        position = position_from_state(snapshot.get(STATE_KEY))
        assert isinstance(position, PollPosition), position
        return position

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(f"elastic_connector_{name}", labels)
        return value or 0.0
