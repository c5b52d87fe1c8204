"""The names the settings had in the connector this one replaces, so its configuration drops in.

The earlier connector is Filigran's Elastic connector (OpenCTI-Platform/connectors,
``stream/elastic``, removed from that repository in 2025): its README's configuration table, its
``config.yml.sample`` and its ``docker-compose.yml``. Each of its keys is one of:

- the same option here (same YAML path and variable): nothing to declare;
- an ``Alias``: an earlier YAML path and/or variable for one of our options. It is read as that
  option (same parser, same checks), and its use gives one informational line naming ours;
- a ``Retired`` key: accepted and ignored, with one warning that says what replaces it (or, for
  ``connector.type``, checked: this is a stream connector).

``EARLIER_KEYS`` lists every key the earlier connector documented, so the migration guide and the
tests cover all of them. The option registry attaches aliases to their options (``Option.aliases``);
docs and ``config.reference.yml`` show them from there.
"""

from __future__ import annotations

from typing import Final

import msgspec
from returns.result import Failure, Result, Success

from elastic_connector.core.config.values import Parse, show

EARLIER_CONNECTOR: Final = (
    "the earlier Elastic connector (OpenCTI-Platform/connectors stream/elastic)"
)


class Alias(msgspec.Struct, frozen=True, kw_only=True):
    """An earlier name of one of our options."""

    option: str
    """Our YAML path (``sightings.confidence``)."""
    yaml_path: str | None = None
    """The earlier YAML path; None when it is ours."""
    env_var: str | None = None
    """The earlier environment variable; None when it is ours."""
    meaning: str = ""
    """How the meaning differs from the earlier one (for the migration guide); empty if it does
    not."""


def _must_be_stream(value: object) -> Result[object, str]:
    if isinstance(value, str) and value.strip().upper() == "STREAM":
        return Success(value)
    return Failure(
        f"{show(value)} is not STREAM: this connector only runs as a stream connector "
        "(remove the setting)"
    )


class Retired(msgspec.Struct, frozen=True, kw_only=True):
    """Earlier keys that no longer mean anything here: accepted, ignored, and said so once."""

    yaml_paths: tuple[str, ...]
    env_vars: tuple[str, ...] = ()
    replacement: str
    """What replaces them, in a sentence that ends the warning."""
    check: Parse | None = None
    """A condition every given value must meet (``connector.type`` must be STREAM)."""
    warning: bool = True
    """False: an informational line (the key is harmless), not a warning."""


ALIASES: Final[tuple[Alias, ...]] = (
    Alias(
        option="sightings.confidence",
        yaml_path="connector.confidence_level",
        env_var="CONNECTOR_CONFIDENCE_LEVEL",
        meaning="Since OpenCTI 6 the connector user's own confidence level caps it: a sighting "
        "is never more confident than the user that records it.",
    ),
    Alias(
        option="connector.live_stream_start_timestamp",
        yaml_path="connector.start_timestamp",
        env_var="CONNECTOR_START_TIMESTAMP",
    ),
    Alias(option="output.elasticsearch.api_key", env_var="ELASTICSEARCH_APIKEY"),
    Alias(
        option="sightings.identity_name",
        yaml_path="connector.entity_name",
        env_var="CONNECTOR_ENTITY_NAME",
        meaning="The identity is created with the type of sightings.identity_type "
        "(SecurityPlatform by default; the earlier connector created a System).",
    ),
    Alias(
        option="sightings.alerts_index",
        yaml_path="elastic.signals.signal_index",
        meaning="The default is Elastic 8's .alerts-security.alerts-* (the earlier documentation "
        "said .siem-signals-*, the 7.x index); reading alerts needs read on it and on "
        ".internal.alerts-security.alerts-*.",
    ),
    Alias(
        option="sightings.poll_interval",
        yaml_path="elastic.signals.query_interval",
        meaning="The default is 60 s (the earlier one, 5m).",
    ),
    Alias(
        option="sightings.initial_lookback",
        yaml_path="elastic.signals.lookback_interval",
        meaning="Alerts are read from a saved cursor, so none is missed between polls or while "
        "the connector is down: the look-back only applies to the first start.",
    ),
    Alias(
        option="sightings.tlp",
        yaml_path="elastic.sightings_tlp",
        meaning="The default is TLP:AMBER (the earlier connector set no marking).",
    ),
)

RETIRED: Final[tuple[Retired, ...]] = (
    Retired(
        yaml_paths=("connector.type",),
        env_vars=("CONNECTOR_TYPE",),
        replacement="this connector is always a STREAM connector; the setting can be removed",
        check=_must_be_stream,
        warning=False,
    ),
    Retired(
        yaml_paths=("connector.entity_description",),
        env_vars=("CONNECTOR_ENTITY_DESCRIPTION",),
        replacement="the sighting identity (sightings.identity_name) is created with a fixed "
        "description; edit it in OpenCTI if you want another",
    ),
    Retired(
        yaml_paths=("output.include_labels",),
        replacement="labels are always written, to the ECS field tags",
    ),
    Retired(
        yaml_paths=(
            "setup.ilm.enabled",
            "setup.ilm.policy_name",
            "setup.ilm.rollover_alias",
            "setup.ilm.pattern",
            "setup.ilm.overwrite",
        ),
        replacement="the connector writes through the write alias output.elasticsearch.index "
        "and creates its first backing index itself; attach an ILM policy in Kibana if you "
        "want rollover",
    ),
    Retired(
        yaml_paths=(
            "setup.template.enabled",
            "setup.template.name",
            "setup.template.pattern",
            "setup.template.overwrite",
        ),
        replacement="the connector installs its own index template for output.elasticsearch.index "
        "(`elastic-connector setup`, or at start)",
    ),
    Retired(
        yaml_paths=("elastic.signals.query",),
        replacement="alerts are selected by rule type (indicator match) and by the connector's "
        "indicator index; choose the alerts with sightings.alerts_index",
    ),
)

EARLIER_KEYS: Final[tuple[tuple[str | None, str | None], ...]] = (
    # Its README's configuration table: (YAML path, environment variable).
    ("opencti.token", "OPENCTI_TOKEN"),
    ("opencti.url", "OPENCTI_URL"),
    ("opencti.ssl_verify", "OPENCTI_SSL_VERIFY"),
    ("connector.confidence_level", "CONNECTOR_CONFIDENCE_LEVEL"),
    ("connector.id", "CONNECTOR_ID"),
    ("connector.log_level", "CONNECTOR_LOG_LEVEL"),
    ("connector.mode", "CONNECTOR_MODE"),
    ("connector.name", "CONNECTOR_NAME"),
    ("connector.scope", "CONNECTOR_SCOPE"),
    ("connector.start_timestamp", "CONNECTOR_START_TIMESTAMP"),
    ("connector.live_stream_id", "CONNECTOR_LIVE_STREAM_ID"),
    ("connector.live_stream_start_timestamp", "CONNECTOR_LIVE_STREAM_START_TIMESTAMP"),
    ("cloud.auth", "CLOUD_AUTH"),
    ("cloud.id", "CLOUD_ID"),
    ("output.elasticsearch.api_key", "ELASTICSEARCH_APIKEY"),
    ("output.elasticsearch.hosts", "ELASTICSEARCH_HOSTS"),
    ("output.elasticsearch.password", "ELASTICSEARCH_PASSWORD"),
    ("output.elasticsearch.username", "ELASTICSEARCH_USERNAME"),
    ("output.elasticsearch.ssl_verify", "ELASTICSEARCH_SSL_VERIFY"),
    ("output.elasticsearch.reduced_privileges", "ELASTICSEARCH_REDUCED_PRIVILEGES"),
    # Its config.yml.sample and docker-compose.yml (and the defaults its code reads).
    ("connector.type", "CONNECTOR_TYPE"),
    ("connector.entity_name", "CONNECTOR_ENTITY_NAME"),
    ("connector.entity_description", "CONNECTOR_ENTITY_DESCRIPTION"),
    ("connector.live_stream_listen_delete", "CONNECTOR_LIVE_STREAM_LISTEN_DELETE"),
    ("connector.live_stream_no_dependencies", "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES"),
    ("output.elasticsearch.index", None),
    ("output.include_labels", None),
    ("setup.ilm.enabled", None),
    ("setup.ilm.policy_name", None),
    ("setup.ilm.rollover_alias", None),
    ("setup.ilm.pattern", None),
    ("setup.ilm.overwrite", None),
    ("setup.template.enabled", None),
    ("setup.template.name", None),
    ("setup.template.pattern", None),
    ("setup.template.overwrite", None),
    ("elastic.signals.query_interval", None),
    ("elastic.signals.lookback_interval", None),
    ("elastic.signals.signal_index", None),
    ("elastic.signals.query", None),
    ("elastic.sightings_tlp", None),
)
"""Every key the earlier connector documented, in the order of its docs."""

SAME_NAME_CHANGES: Final[dict[str, str]] = {
    "connector.id": "Must be a UUID (OpenCTI requires one): replace a `ChangeMe` placeholder.",
    "connector.log_level": "`warn` is read as `warning`.",
    "connector.live_stream_start_timestamp": "Epoch milliseconds or an ISO 8601 date, as before.",
    "output.elasticsearch.hosts": "`host:port` without a scheme is read as `http://host:port` "
    "(port 9200 when none), as before, with a warning: write `https://` to use TLS.",
    "output.elasticsearch.api_key": "`id:api_key`, or the base64 encoded form Kibana shows.",
    "output.elasticsearch.index": "**Changes meaning.** Default `logs-ti_opencti_connector."
    "indicator` (a write alias, under `logs-ti_*`, which Kibana's Intelligence page and prebuilt "
    "rules read), not `opencti-{now/d}` behind the ILM alias `opencti`. A name, not date math.",
}
"""Keys with the same name here whose accepted values or meaning differ (migration guide)."""
