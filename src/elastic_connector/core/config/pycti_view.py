"""The settings as pycti must see them: the config dict for its connector helper, and its
environment variables.

pycti reads some of our settings' environment variables itself, and they win over the config
dict it is given: ``pycti_environment`` says what each must hold so that both agree.
"""

from __future__ import annotations

from typing import Final

from elastic_connector.core.config.export import env_text
from elastic_connector.core.config.model import NO_RECOVER, Config, OpenCTISettings

PYCTI_ENV_VARS: Final[tuple[str, ...]] = (
    "OPENCTI_URL",
    "OPENCTI_TOKEN",
    "OPENCTI_SSL_VERIFY",
    "CONNECTOR_ID",
    "CONNECTOR_TYPE",
    "CONNECTOR_NAME",
    "CONNECTOR_SCOPE",
    "CONNECTOR_LOG_LEVEL",
    "CONNECTOR_LIVE_STREAM_ID",
    "CONNECTOR_LIVE_STREAM_LISTEN_DELETE",
    "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES",
    "CONNECTOR_LIVE_STREAM_WITH_INFERENCES",
    "CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE",
    "CONNECTOR_LIVE_STREAM_START_TIMESTAMP",
)
"""Our settings whose environment variables pycti also reads on its own (env wins over its
config dict): ``pycti_environment`` gives the values they must hold. ``CONNECTOR_TYPE`` (the
earlier connector's, accepted when ``STREAM`` in any case) is always given to pycti as
``STREAM``, the spelling the platform registers."""


def _pycti_ssl_verify(settings: OpenCTISettings) -> bool | str:
    # pycti hands ssl_verify to requests as `verify`, which also takes a CA bundle path.
    if settings.ssl_verify and settings.ca_certs:
        return settings.ca_certs
    return settings.ssl_verify


def pycti_config(config: Config) -> dict[str, dict[str, object]]:
    """The config dict for ``OpenCTIConnectorHelper`` (unset options are left to pycti).

    pycti lets its environment variables (``PYCTI_ENV_VARS``) override this dict: the caller
    must also make the environment agree, e.g. with ``pycti_environment``.
    """
    connector = config.connector
    recover: object = connector.live_stream_recover_iso_date
    if recover == NO_RECOVER:
        recover = False
    entries: dict[str, object] = {
        "id": connector.id,
        "type": "STREAM",
        "name": connector.name,
        "scope": connector.scope,
        "log_level": connector.log_level,
        "live_stream_id": connector.live_stream_id,
        "live_stream_listen_delete": connector.live_stream_listen_delete,
        "live_stream_no_dependencies": connector.live_stream_no_dependencies,
        "live_stream_with_inferences": connector.live_stream_with_inferences,
        "live_stream_recover_iso_date": recover,
        "live_stream_start_timestamp": connector.live_stream_start_timestamp,
    }
    return {
        "opencti": {
            "url": config.opencti.url,
            "token": config.opencti.token.reveal(),
            "ssl_verify": _pycti_ssl_verify(config.opencti),
        },
        "connector": {key: value for key, value in entries.items() if value is not None},
    }


def pycti_environment(config: Config) -> dict[str, str | None]:
    """What each of ``PYCTI_ENV_VARS`` must hold so pycti reads our values (None: unset it).

    pycti reads these variables itself, only understands yes/true/True and no/false/False, and
    turns an empty CONNECTOR_LIVE_STREAM_START_TIMESTAMP into a crash (``int("")``).
    """
    dictionary = pycti_config(config)
    flat = {f"OPENCTI_{key.upper()}": value for key, value in dictionary["opencti"].items()}
    flat |= {f"CONNECTOR_{key.upper()}": value for key, value in dictionary["connector"].items()}
    environment: dict[str, str | None] = {}
    for name in PYCTI_ENV_VARS:
        value = flat.get(name)
        environment[name] = None if value is None else env_text(value)
    return environment
