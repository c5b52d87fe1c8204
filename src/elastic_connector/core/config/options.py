"""The option registry: every setting with its YAML path, environment variable, type, default
and description.

``OPTIONS`` is derived from the ``Config`` Struct fields plus one description per field
(``_SPECS``): the loader, ``config.reference.yml`` and the option table all come from it, so they
cannot drift apart. Each option has exactly one YAML path and one environment variable, plus
the earlier names it is still read under (``aliases``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec
from returns.result import Result

from elastic_connector.core.config.aliases import ALIASES, Alias
from elastic_connector.core.config.model import DEFAULT_ECS_INDEX, DEFAULT_STIX_INDEX, Config
from elastic_connector.core.config.values import (
    IDENTITY_TYPES,
    Parse,
    api_key,
    base_parser,
    between,
    cloud_auth,
    cloud_id,
    connector_id,
    elasticsearch_hosts,
    greater_than_zero,
    identity_type,
    index_name,
    kibana_space,
    labels,
    log_level,
    not_a_pycti_boolean,
    not_negative,
    observable_types,
    parse_recover_date,
    parse_seconds,
    parse_start_timestamp,
    token,
    url,
    username,
)


class _Spec(msgspec.Struct, frozen=True):
    description: str
    type_name: str | None = None
    """Shown in the docs instead of the name derived from the field's type."""
    refine: Parse | None = None
    """Runs on the parsed value: further checks, normalisation."""
    parse: Parse | None = None
    """Replaces the parser derived from the field's type."""


_SECONDS: Final = "seconds, or a duration (30s, 5m, 1h)"
"""Options of this type read seconds as a number or as a duration (``parse_seconds``)."""

_SPECS: Final[Mapping[str, _Spec]] = {
    # opencti
    "opencti.url": _Spec("URL of the OpenCTI platform.", "URL", url),
    "opencti.token": _Spec("API token of the OpenCTI user the connector runs as.", refine=token),
    "opencti.ssl_verify": _Spec("Verify OpenCTI's TLS certificate."),
    "opencti.ca_certs": _Spec(
        "CA bundle (PEM file) that signs OpenCTI's certificate; unset = the system CAs.",
        "file path",
    ),
    # connector
    "connector.id": _Spec(
        "Unique id of this connector instance in OpenCTI (a UUID you generate once).",
        "UUID",
        connector_id,
    ),
    "connector.name": _Spec("Name shown in OpenCTI's connector list.", refine=not_a_pycti_boolean),
    "connector.scope": _Spec("Connector scope registered in OpenCTI.", refine=not_a_pycti_boolean),
    "connector.mode": _Spec(
        "ecs: indicators as ECS documents and alerts back as sightings; ecs_no_signals: "
        "indicators only; stix: every streamed STIX object indexed as is."
    ),
    "connector.log_level": _Spec("Log level.", "debug / info / warning (warn) / error", log_level),
    "connector.log_format": _Spec("Log line format: text, or json (one object per line)."),
    "connector.live_stream_id": _Spec(
        "OpenCTI stream to follow: the id of a live stream (Data sharing > Live streams; "
        "recommended: one filtered on indicators), or `live` for the whole live knowledge "
        "(needs the BYPASS capability).",
        refine=not_a_pycti_boolean,
    ),
    "connector.live_stream_listen_delete": _Spec(
        "Receive delete events (and remove the documents of deleted indicators)."
    ),
    "connector.live_stream_no_dependencies": _Spec(
        "Do not receive the objects an event refers to as extra create events."
    ),
    "connector.live_stream_with_inferences": _Spec("Include inferred knowledge."),
    "connector.live_stream_recover_iso_date": _Spec(
        "First start only: replay the knowledge base up to this ISO 8601 date; unset = up to "
        "now; false = no replay, live events only.",
        "ISO date or false",
        parse=parse_recover_date,
    ),
    "connector.live_stream_start_timestamp": _Spec(
        "First start only: stream position to start from; unset = the beginning.",
        "epoch milliseconds or ISO 8601 date",
        not_negative,
        parse_start_timestamp,
    ),
    "connector.stream_heartbeat_margin": _Spec(
        "A stream position taken from a heartbeat is saved this much earlier: the platform "
        "takes idle heartbeat ids from its own clock, and events may still come with ids "
        "below them (replayed events are rewritten, never duplicated).",
        _SECONDS,
        greater_than_zero,
    ),
    "connector.stream_queue_full_timeout": _Spec(
        "When Elasticsearch has taken nothing for this long, disconnect from the stream and "
        "resume later, rather than let OpenCTI buffer it in memory.",
        _SECONDS,
        greater_than_zero,
    ),
    "connector.max_tlp": _Spec(
        "Most restrictive TLP marking an indicator may carry to be exported to Elastic."
    ),
    "connector.require_detection": _Spec(
        "Export only indicators whose OpenCTI detection flag is set."
    ),
    "connector.min_score": _Spec(
        "Export only indicators whose OpenCTI score is at least this (0-100); an indicator "
        "without a score is withheld. Unset = any score.",
        refine=between(0, 100),
    ),
    "connector.min_confidence": _Spec(
        "Export only indicators whose confidence is at least this (0-100); an indicator "
        "without a confidence is withheld. Unset = any confidence.",
        refine=between(0, 100),
    ),
    "connector.labels_include": _Spec(
        "Export only indicators carrying at least one of these labels (any case; "
        "comma-separated in the environment). Unset = any labels.",
        refine=labels,
    ),
    "connector.labels_exclude": _Spec(
        "Never export indicators carrying one of these labels (any case; wins over "
        "labels_include).",
        refine=labels,
    ),
    "connector.indicator_types": _Spec(
        "Export only indicators whose OpenCTI main observable type is one of these "
        "(IPv4-Addr, IPv6-Addr, Domain-Name, Hostname, Url, StixFile, Email-Addr...). "
        "Unset = every type.",
        "list of OpenCTI observable types",
        observable_types,
    ),
    "connector.indicator_ttl": _Spec(
        "Lifetime of indicators without valid_until: they expire this long after valid_from "
        "(else created), e.g. 90d. Unset = they never expire.",
        _SECONDS,
        greater_than_zero,
    ),
    "connector.expiry_sweep_interval": _Spec(
        "How often documents of expired indicators (valid_until passed, or indicator_ttl "
        "elapsed) are removed.",
        _SECONDS,
        greater_than_zero,
    ),
    "connector.progress_interval": _Spec(
        "How often a progress line is logged while there is work (a replay of the knowledge "
        "base, a catch-up, events to write), checked every second; none while idle.",
        _SECONDS,
        greater_than_zero,
    ),
    "connector.reconcile_interval": _Spec(
        "How often the index is reconciled with what OpenCTI holds (every indicator read, "
        "documents missing, stale or orphaned repaired; see docs/reconcile.md); unset = never "
        "on a schedule (a stream gap still triggers one).",
        _SECONDS,
        greater_than_zero,
    ),
    "connector.initial_sync": _Spec(
        "How a first start fills the index: stream (the platform replays the knowledge base "
        "as events) or reconcile (a reconciliation while the live stream is followed from "
        "now; resumes after a crash instead of starting over)."
    ),
    "connector.planning_process": _Spec(
        "Plan a backlog (the first replay, a catch-up after an outage) in a second process, "
        "up to two batches ahead of the writes, when the connector may use more than one CPU "
        "(about +20-30% documents/s on two; see docs/performance.md); false = plan everything "
        "in the connector's own process."
    ),
    "connector.metrics_port": _Spec(
        "Port of the Prometheus /metrics endpoint; unset = no endpoint. Leave pycti's "
        "CONNECTOR_EXPOSE_METRICS unset: pycti would serve its own metrics on this port.",
        "port",
        between(1, 65535),
    ),
    "connector.metrics_host": _Spec("Address the metrics endpoint listens on."),
    # cloud
    "cloud.id": _Spec(
        "Elastic Cloud deployment id (Cloud console); replaces output.elasticsearch.hosts.",
        "Cloud ID",
        cloud_id,
    ),
    "cloud.auth": _Spec(
        "user:password for the Elastic Cloud deployment (an API key is preferred).",
        "user:password",
        cloud_auth,
    ),
    # output.elasticsearch
    "output.elasticsearch.hosts": _Spec(
        "Elasticsearch URLs (comma-separated in the environment); not with cloud.id.",
        "list of URLs",
        elasticsearch_hosts,
    ),
    "output.elasticsearch.username": _Spec(
        "User for HTTP basic authentication (needs password).", refine=username
    ),
    "output.elasticsearch.password": _Spec("Password of that user."),
    "output.elasticsearch.api_key": _Spec(
        "API key: id:api_key, or the base64 encoded form Kibana shows.", refine=api_key
    ),
    "output.elasticsearch.ca_certs": _Spec(
        "CA bundle (PEM file) that signs Elasticsearch's certificate; unset = the system CAs.",
        "file path",
    ),
    "output.elasticsearch.client_cert": _Spec(
        "Client certificate (PEM) for TLS client authentication (needs client_key).", "file path"
    ),
    "output.elasticsearch.client_key": _Spec("Private key (PEM) of client_cert.", "file path"),
    "output.elasticsearch.ssl_verify": _Spec("Verify Elasticsearch's TLS certificate."),
    "output.elasticsearch.index": _Spec(
        f"Index or alias written to; unset = {DEFAULT_ECS_INDEX} (ecs modes) or "
        f"{DEFAULT_STIX_INDEX} (stix).",
        refine=index_name,
    ),
    "output.elasticsearch.reduced_privileges": _Spec(
        "Do not create index templates or indices at start (they must exist); the API key then "
        "needs only write access to the index."
    ),
    "output.elasticsearch.bulk_max_actions": _Spec(
        "Documents per bulk request at most.", refine=greater_than_zero
    ),
    "output.elasticsearch.bulk_max_bytes": _Spec(
        "Bytes per bulk request at most.", refine=greater_than_zero
    ),
    "output.elasticsearch.bulk_flush_interval": _Spec(
        "Longest time a document waits for its bulk request.", _SECONDS, greater_than_zero
    ),
    "output.elasticsearch.retry_max_backoff": _Spec(
        "Longest wait between retries of a failed request (exponential backoff with jitter).",
        _SECONDS,
        greater_than_zero,
    ),
    "output.elasticsearch.request_timeout": _Spec(
        "Timeout of one Elasticsearch request.", _SECONDS, greater_than_zero
    ),
    "output.elasticsearch.dead_letter_index": _Spec(
        "Index (an alias, set up like the indicator index) where documents Elasticsearch "
        "refuses (HTTP 400) are kept with the reason, the OpenCTI id and the stream position; "
        "unset = refusals are only logged and counted.",
        refine=index_name,
    ),
    # output.lookup
    "output.lookup.index": _Spec(
        "ES|QL LOOKUP JOIN index (index.mode: lookup, Elasticsearch 8.18+) kept in step "
        "with the indicator index: one row per exact value (IP, domain, URL, e-mail, file "
        "hash); ecs modes only. Unset = none.",
        refine=index_name,
    ),
    # sightings
    "sightings.alerts_index": _Spec(
        "Index pattern of the Elastic Security alerts read for indicator matches."
    ),
    "sightings.poll_interval": _Spec(
        "Time between two polls of the alerts index.", _SECONDS, greater_than_zero
    ),
    "sightings.page_size": _Spec("Alerts read per search page.", refine=between(1, 10_000)),
    "sightings.initial_lookback": _Spec(
        "First start only: how far back alerts are read.", _SECONDS, not_negative
    ),
    "sightings.identity_name": _Spec(
        "OpenCTI identity recorded as where indicators were sighted (created if missing)."
    ),
    "sightings.identity_type": _Spec(
        "Entity type of that identity (SecurityPlatform needs OpenCTI 6.9+).",
        " / ".join(IDENTITY_TYPES),
        identity_type,
    ),
    "sightings.tlp": _Spec("TLP marking of the sightings created in OpenCTI."),
    "sightings.confidence": _Spec(
        "Confidence (0-100) of created sightings; unset = the OpenCTI user's default. Since "
        "OpenCTI 6 the connector user's own confidence level caps it.",
        refine=between(0, 100),
    ),
    "sightings.settle_delay": _Spec(
        "How long after its @timestamp an alert is assumed searchable: alerts younger than "
        "this are left for a later poll (Kibana can write an alert minutes after stamping it).",
        _SECONDS,
        greater_than_zero,
    ),
    "sightings.include_closed": _Spec(
        "Also count alerts an analyst closed (kibana.alert.workflow_status: closed)."
    ),
    # kibana
    "kibana.url": _Spec("Kibana URL, for the commands that talk to Kibana.", "URL", url),
    "kibana.space": _Spec("Kibana space of the detection rules and alerts.", refine=kibana_space),
}

# The Config attributes `elasticsearch` and `elasticsearch_lookup` live under `output:` in YAML
# (Beats-style); every other section's YAML key is its attribute name. The environment prefix
# is always the attribute name (`ELASTICSEARCH_LOOKUP_INDEX`).
_YAML_PREFIX: Final[Mapping[str, str]] = {
    "elasticsearch": "output.elasticsearch",
    "elasticsearch_lookup": "output.lookup",
}


class Option(msgspec.Struct, frozen=True, kw_only=True):
    """One setting: its YAML path, environment variable, type, default and description."""

    section: str
    """Attribute of ``Config`` holding it (``elasticsearch``)."""
    name: str
    """Attribute of that section (``api_key``)."""
    yaml_path: str
    env_var: str
    type_name: str
    required: bool
    default: object
    """The typed default; None when required or unset by default."""
    secret: bool
    description: str
    aliases: tuple[Alias, ...] = ()
    """Earlier names it is also read under (``aliases``)."""


def _build_registry() -> tuple[tuple[Option, ...], Mapping[str, Parse]]:
    options: list[Option] = []
    parsers: dict[str, Parse] = {}
    for section in msgspec.structs.fields(Config):
        section_type = section.type
        if not (isinstance(section_type, type) and issubclass(section_type, msgspec.Struct)):
            raise TypeError(f"Config.{section.name} is not a settings Struct")
        prefix = _YAML_PREFIX.get(section.name, section.name)
        for field in msgspec.structs.fields(section_type):
            path = f"{prefix}.{field.name}"
            spec = _SPECS[path]  # a field without a description fails here, at import
            parse, type_name, secret = base_parser(field.type)
            if spec.parse is None and spec.type_name == _SECONDS:
                parse = parse_seconds
            parsers[path] = _refined(spec.parse or parse, spec.refine)
            required = field.default is msgspec.NODEFAULT
            options.append(
                Option(
                    section=section.name,
                    name=field.name,
                    yaml_path=path,
                    env_var=f"{section.name}_{field.name}".upper(),
                    type_name=spec.type_name or type_name,
                    required=required,
                    default=None if required else field.default,
                    secret=secret,
                    description=spec.description,
                    aliases=tuple(alias for alias in ALIASES if alias.option == path),
                )
            )
    stale = set(_SPECS) - set(parsers)
    if stale:
        raise TypeError(f"config descriptions without a field: {sorted(stale)}")
    orphans = [alias.option for alias in ALIASES if alias.option not in parsers]
    if orphans:
        raise TypeError(f"config aliases of no option: {orphans}")
    return tuple(options), parsers


def _refined(parse: Parse, refine: Parse | None) -> Parse:
    if refine is None:
        return parse
    then = refine

    def parse_and_refine(raw: object) -> Result[object, str]:
        return parse(raw).bind(then)

    return parse_and_refine


_REGISTRY: Final = _build_registry()
OPTIONS: Final[tuple[Option, ...]] = _REGISTRY[0]
"""Every setting, in the order of the YAML reference."""
PARSERS: Final[Mapping[str, Parse]] = _REGISTRY[1]
"""Each option's parser (its type's, then its own checks), by YAML path."""


def put_at_path(values: dict[str, object], path: str, value: object) -> None:
    """Set ``value`` under its YAML path (``output.elasticsearch.hosts``) in nested dicts."""
    *sections, leaf = path.split(".")
    node = values
    for key in sections:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):  # only this function fills `values`: cannot happen
            raise TypeError(path)
        node = child
    node[leaf] = value
