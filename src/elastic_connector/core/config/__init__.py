"""The connector's settings.

- ``model``: the typed, immutable ``Config`` and its sections;
- ``options``: the option registry (YAML path, environment variable, type, default, text);
- ``values``: the parsers and checks of single values;
- ``aliases``: the names of the connector this one replaces, so its configuration drops in;
- ``load``: a ``Config`` built from its sources (``build_config``), or why it could not be;
- ``export``: a ``Config`` written back out (YAML, environment, ``elastic-connector config``);
- ``pycti_view``: the settings as pycti's connector helper must see them;
- ``docs``: ``docs/config-table.md``, ``config.reference.yml`` and the migration table;
- ``catalog``: OpenCTI's connector catalog files (``__metadata__/``), from the registry;
- ``observable_types``: OpenCTI's main observable types, as the export filters name them.

Exports, from ``model``: ``Config`` and its sections (``OpenCTISettings``, ``ConnectorSettings``,
``CloudSettings``, ``ElasticsearchSettings``, ``SightingsSettings``, ``KibanaSettings``),
``Mode``, ``LogFormat``, ``InitialSync``, ``Secret``, the defaults ``DEFAULT_ECS_INDEX``,
``DEFAULT_STIX_INDEX`` and ``NO_RECOVER``, and the placeholders of offline commands
(``OFFLINE_OPENCTI_URL``, ``OFFLINE_OPENCTI_TOKEN``, ``OFFLINE_CONNECTOR_ID``); from ``load``:
``build_config`` and ``ConfigError``; from ``options``: the registry ``OPTIONS`` of ``Option``.
"""

from elastic_connector.core.config.load import ConfigError, build_config
from elastic_connector.core.config.model import (
    DEFAULT_ECS_INDEX,
    DEFAULT_STIX_INDEX,
    NO_RECOVER,
    OFFLINE_CONNECTOR_ID,
    OFFLINE_OPENCTI_TOKEN,
    OFFLINE_OPENCTI_URL,
    CloudSettings,
    Config,
    ConnectorSettings,
    ElasticsearchSettings,
    InitialSync,
    KibanaSettings,
    LogFormat,
    Mode,
    OpenCTISettings,
    Secret,
    SightingsSettings,
)
from elastic_connector.core.config.options import OPTIONS, Option

__all__ = [
    "DEFAULT_ECS_INDEX",
    "DEFAULT_STIX_INDEX",
    "NO_RECOVER",
    "OFFLINE_CONNECTOR_ID",
    "OFFLINE_OPENCTI_TOKEN",
    "OFFLINE_OPENCTI_URL",
    "OPTIONS",
    "CloudSettings",
    "Config",
    "ConfigError",
    "ConnectorSettings",
    "ElasticsearchSettings",
    "InitialSync",
    "KibanaSettings",
    "LogFormat",
    "Mode",
    "OpenCTISettings",
    "Option",
    "Secret",
    "SightingsSettings",
    "build_config",
]
