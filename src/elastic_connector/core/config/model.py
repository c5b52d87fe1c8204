"""The connector's settings: one typed, immutable ``Config`` and its sections.

This is what the rest of the code imports: the settings Structs, ``Secret`` (a string that never
shows itself), ``Mode``, ``LogFormat``, and the values a Config may hold that callers must
recognise (the default indices, ``NO_RECOVER``, the offline placeholders). It imports no other
config module, so each of them can build on it:

- ``values``: parsers and checks, raw YAML/JSON/env value -> typed value;
- ``options``: the option registry (YAML path, environment variable, description);
- ``load``: layers, precedence and ``build_config``, with its ``ConfigError``s;
- ``export``: a Config written back as YAML data or environment variables;
- ``docs``: the option table (``docs/config-table.md``) and ``config.reference.yml``;
- ``pycti_view``: the settings as pycti must see them.

The Struct fields below are the single source of the options: the registry is derived from them.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

from elastic_connector.core.policy.tlp import Tlp


class Secret:
    """A string that never shows itself: ``repr``/``str`` give ``***``; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Mode(enum.Enum):
    ECS = "ecs"
    """Indicators as ECS documents, plus the alert -> sighting loop."""
    ECS_NO_SIGNALS = "ecs_no_signals"
    """Indicators as ECS documents, no sightings."""
    STIX = "stix"
    """Every STIX object indexed as streamed."""


class InitialSync(enum.Enum):
    """How a first start (no saved stream position) fills the index."""

    STREAM = "stream"
    """The platform's recovery replay: the whole knowledge base as stream events."""
    RECONCILE = "reconcile"
    """A reconciliation, with the live stream followed from the moment it starts."""


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


DEFAULT_ECS_INDEX = "logs-ti_opencti_connector.indicator"
DEFAULT_STIX_INDEX = "opencti-stix"


class OpenCTISettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    token: Secret
    ssl_verify: bool = True
    ca_certs: str | None = None


class ConnectorSettings(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str = "Elastic"
    scope: str = "elastic"
    mode: Mode = Mode.ECS
    log_level: str = "info"
    log_format: LogFormat = LogFormat.TEXT
    live_stream_id: str | None = "live"
    live_stream_listen_delete: bool = True
    live_stream_no_dependencies: bool = True
    live_stream_with_inferences: bool = False
    live_stream_recover_iso_date: str | None = None
    live_stream_start_timestamp: int | None = None
    stream_heartbeat_margin: float = 60.0
    stream_queue_full_timeout: float = 30.0
    max_tlp: Tlp = Tlp.AMBER_STRICT
    require_detection: bool = False
    min_score: int | None = None
    min_confidence: int | None = None
    labels_include: tuple[str, ...] | None = None
    labels_exclude: tuple[str, ...] | None = None
    indicator_types: tuple[str, ...] | None = None
    """OpenCTI main observable type names, in their canonical spelling (``IPv4-Addr``)."""
    indicator_ttl: float | None = None
    """Seconds an indicator without ``valid_until`` lives after ``valid_from`` (else
    ``created``); None: forever."""
    expiry_sweep_interval: float = 3600.0
    progress_interval: float = 30.0
    reconcile_interval: float | None = None
    initial_sync: InitialSync = InitialSync.STREAM
    planning_process: bool = True
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"  # noqa: S104  (a container's metrics must be reachable)


class CloudSettings(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    auth: Secret | None = None


class ElasticsearchSettings(msgspec.Struct, frozen=True, kw_only=True):
    hosts: tuple[str, ...] = ("https://localhost:9200",)
    username: str | None = None
    password: Secret | None = None
    api_key: Secret | None = None
    """Always the encoded form (base64 of ``id:key``); ``id:key`` input is converted."""
    ca_certs: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    ssl_verify: bool = True
    index: str | None = None
    """None means the mode's default (see ``Config.index``)."""
    reduced_privileges: bool = False
    bulk_max_actions: int = 500
    bulk_max_bytes: int = 5_000_000
    bulk_flush_interval: float = 1.0
    retry_max_backoff: float = 60.0
    request_timeout: float = 30.0
    dead_letter_index: str | None = None
    """Where documents Elasticsearch refuses are kept (an alias, like ``index``); None: only
    logged and counted."""


class LookupSettings(msgspec.Struct, frozen=True, kw_only=True):
    """YAML ``output.lookup``, environment ``ELASTICSEARCH_LOOKUP_*``."""

    index: str | None = None
    """The ES|QL lookup index (``index.mode: lookup``); None: no lookup rows."""


class SightingsSettings(msgspec.Struct, frozen=True, kw_only=True):
    alerts_index: str = ".alerts-security.alerts-*"
    poll_interval: float = 60.0
    page_size: int = 1000
    initial_lookback: float = 86400.0
    identity_name: str = "Elastic Security"
    identity_type: str = "SecurityPlatform"
    tlp: Tlp = Tlp.AMBER
    confidence: int | None = None
    settle_delay: float = 600.0
    include_closed: bool = False


class KibanaSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None = None
    space: str = "default"


class Config(msgspec.Struct, frozen=True, kw_only=True):
    opencti: OpenCTISettings
    connector: ConnectorSettings
    cloud: CloudSettings = CloudSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    """YAML ``output.elasticsearch``, environment ``ELASTICSEARCH_*``."""
    elasticsearch_lookup: LookupSettings = LookupSettings()
    """YAML ``output.lookup``, environment ``ELASTICSEARCH_LOOKUP_*``."""
    sightings: SightingsSettings = SightingsSettings()
    kibana: KibanaSettings = KibanaSettings()

    @property
    def index(self) -> str:
        """Where documents go: the configured index, else the mode's default."""
        if self.elasticsearch.index:
            return self.elasticsearch.index
        if self.connector.mode is Mode.STIX:
            return DEFAULT_STIX_INDEX
        return DEFAULT_ECS_INDEX


# ---------------------------------------------------------------------------------------------
# Values a Config may hold that callers must recognise

NO_RECOVER: Final = "false"
"""``connector.live_stream_recover_iso_date`` value meaning "do not replay the knowledge base on
the first start" (pycti skips ``?recover=`` when the setting is false/no/none)."""

# Offline commands (`map`, `sightings`) never contact OpenCTI; when the connection settings are
# missing they get these placeholders (`build_config(..., offline=True)`). `.invalid` is reserved
# (RFC 6761): it never resolves, so a placeholder reaching the network fails at once instead of
# talking to a real host. Defined here, not with the loader, so code that meets a placeholder can
# recognise it without importing the loader.
OFFLINE_OPENCTI_URL: Final = "http://opencti.invalid"
OFFLINE_OPENCTI_TOKEN: Final = Secret("")
OFFLINE_CONNECTOR_ID: Final = "00000000-0000-0000-0000-000000000000"
