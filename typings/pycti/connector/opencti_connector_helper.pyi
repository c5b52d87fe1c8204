import threading
from collections.abc import Callable, Mapping

from pycti._types import AppLogger
from pycti.api.opencti_api_client import OpenCTIApiClient
from pycti.connector.opencti_metric_handler import OpenCTIMetricHandler

class ConnectorInfo:
    """Opaque: only passed back to pycti."""

class PingAlive(threading.Thread):
    """The helper's ping thread: at start and then every 40 s it sends ``get_state()`` and,
    when the platform answers another state (an empty one after a reset in the UI), adopts it
    through ``set_state``. A daemon thread; ``stop()`` ends it at once."""

    def __init__(
        self,
        connector_logger: AppLogger,
        connector_id: str,
        api: OpenCTIApiClient,
        get_state: Callable[[], dict[str, object] | None],
        set_state: Callable[[dict[str, object] | None], None],
        metric: OpenCTIMetricHandler,
        connector_info: ConnectorInfo,
    ) -> None: ...
    def stop(self) -> None: ...

class OpenCTIConnectorHelper:
    """Importing pycti's helper module builds a FastAPI app and the helper's logger calls
    ``logging.basicConfig(force=True)``. Construction replaces ``sys.excepthook`` with a hook
    that SIGTERMs the process, checks the platform (twice), registers the connector and starts
    ``ping``. ``stop()`` stops ``ping`` and DELETES the connector on the platform (its saved
    state included)."""

    api: OpenCTIApiClient
    api_impersonate: OpenCTIApiClient
    connector_logger: AppLogger
    connector_info: ConnectorInfo
    metric: OpenCTIMetricHandler
    connector_id: str
    connect_id: str | bool | int | None
    connect_name: str | bool | int | None
    connect_live_stream_id: str | bool | int | None
    connect_live_stream_listen_delete: str | bool | int | None
    connect_live_stream_no_dependencies: str | bool | int | None
    connect_live_stream_with_inferences: str | bool | int | None
    connect_live_stream_recover_iso_date: str | bool | int | None
    connect_live_stream_start_timestamp: str | bool | int | None
    opencti_ssl_verify: str | bool | int | None
    applicant_id: str
    connector_state: str | None
    ping: PingAlive
    def __init__(
        self, config: Mapping[str, Mapping[str, object]], playbook_compatible: bool = False
    ) -> None:
        """``config`` is ``{"opencti": {"url", "token", ...}, "connector": {...}}``; environment
        variables (``OPENCTI_URL``, ``CONNECTOR_ID``...) override it. Raises ``ValueError`` when
        the platform is unreachable or refuses the token."""
    def get_state(self) -> dict[str, object] | None:
        """The state (None when unset or empty). Only a ping sends it to the platform."""
    def set_state(self, state: dict[str, object] | None) -> None:
        """Replace the in-memory state (anything but a dict clears it)."""
    def force_ping(self) -> None:
        """Send the state now (errors are logged, never raised)."""
    def stop(self) -> None: ...
    def get_opencti_url(self) -> str | bool | int | None: ...
    def get_opencti_token(self) -> str | bool | int | None: ...
    def get_name(self) -> str | bool | int | None: ...
