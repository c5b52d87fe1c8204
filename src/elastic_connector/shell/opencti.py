"""The OpenCTI side of the shell, through pycti: connector registration, state, markings.

pycti is used for what it does well — registering the connector, pinging the platform with the
connector state every 40 s, and GraphQL calls — but not for reading the stream (see
``shell.stream``). Three pycti behaviours shape this module:

* pycti reads its settings from environment variables that win over the config dict, so the
  effective values (which may come from our YAML file or ``CONNECTOR_JSON_CONFIG``) are written
  into ``os.environ`` before the helper is built;
* the helper replaces ``sys.excepthook`` with a hook that SIGTERMs the process; we put back one
  that only logs, so a bug surfaces as a log line and an orderly exit, not a silent kill;
* ``helper.stop()`` *deletes* the connector on the platform, saved state included: a clean
  shutdown only stops the ping thread, after one last ping that saves the state;
* ``helper.force_ping()`` pings a second time with the local state when the platform answers
  another one, which after a "reset state" in the OpenCTI UI writes the old position back:
  the last ping is ours (``final_ping``), and adopts the answer as the ping thread does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from elastic_connector.core.backoff import backoff_delay
from elastic_connector.core.config import Config
from elastic_connector.core.config.pycti_view import pycti_config, pycti_environment
from elastic_connector.core.policy.markings import MarkingLevel, tlp_of_marking
from elastic_connector.core.policy.tlp import STANDARD_MARKINGS
from elastic_connector.core.stix import MarkingDefinition
from elastic_connector.shell.stream import _ca_bundle

if TYPE_CHECKING:
    from pycti import OpenCTIApiClient, OpenCTIConnectorHelper

_log = logging.getLogger(__name__)

_PING: Final = """
mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) {
  pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state }
}"""


def apply_pycti_environment(config: Config) -> None:
    """Make the variables pycti reads agree with the effective configuration."""
    for name, value in pycti_environment(config).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    # Never pycti's JSON mode: it replaces the root handler (``basicConfig(force=True)``) while
    # the helper is built, so those lines would bypass our format and our secret masking. Our
    # handler, already on the root logger, formats pycti's records in the configured format.
    os.environ["OPENCTI_JSON_LOGGING"] = "false"


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    _log.critical("uncaught exception", exc_info=(kind, error, trace))


def connect(
    config: Config, stop: threading.Event, max_backoff: float
) -> OpenCTIConnectorHelper | None:
    """Register the connector with OpenCTI, waiting out an unreachable platform.

    Returns None only when ``stop`` is set while waiting.
    """
    from pycti import OpenCTIConnectorHelper

    from elastic_connector.shell.opencti_reach import opencti_problem

    apply_pycti_environment(config)
    attempt = 0
    while not stop.is_set():
        try:
            with _pycti_client_quiet(config):
                helper = OpenCTIConnectorHelper(pycti_config(config))
        except ValueError as error:
            delay = backoff_delay(attempt, random.random(), base=1.0, cap=max_backoff)
            attempt += 1
            _log.error(
                "cannot register with OpenCTI (retrying in %.0f s): %s",
                delay,
                opencti_problem(config) or f"OpenCTI at {config.opencti.url}: {_first_line(error)}",
            )
            stop.wait(delay)
            continue
        finally:
            sys.excepthook = _log_uncaught
        return helper
    return None


@contextlib.contextmanager
def _pycti_client_quiet(config: Config) -> Iterator[None]:
    """Below debug, silence pycti's API client while the helper registers: on failure it logs
    the request library's exception, then raises "not reachable"; ``connect`` says instead, in
    one line, what failed and which option to fix."""
    if config.connector.log_level == "debug":
        yield
        return
    client_log = logging.getLogger("api")  # pycti's OpenCTIApiClient logger
    level = client_log.level
    client_log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        client_log.setLevel(level)


def tls_problem(config: Config, timeout: float = 3.0) -> str | None:
    """Why OpenCTI's TLS certificate is not trusted, in one line naming the option to set; None
    when it is (or when the URL is not https, verification is off, or the handshake fails for
    another reason). pycti reports every failure as "not reachable": this tells them apart."""
    settings = config.opencti
    parts = urlsplit(settings.url)
    if parts.scheme != "https" or not settings.ssl_verify or not parts.hostname:
        return None
    context = ssl.create_default_context(cafile=_ca_bundle(settings.ca_certs))
    try:
        port = parts.port or 443
        with (
            socket.create_connection((parts.hostname, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=parts.hostname),
        ):
            return None
    except ssl.SSLCertVerificationError as error:
        reason = error.verify_message or _first_line(error)
        where = parts.netloc.rpartition("@")[2]
        if "mismatch" in reason.lower():
            return (
                f"TLS certificate of OpenCTI at {where} does not match the host name ({reason}); "
                "set opencti.url to a name the certificate lists"
            )
        return (
            f"TLS certificate verify failed for OpenCTI at {where} ({reason}); set "
            "opencti.ca_certs (OPENCTI_CA_CERTS) to the CA certificate that signed the "
            "platform's certificate"
        )
    except (OSError, ValueError):
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def load_marking_levels(api: OpenCTIApiClient) -> dict[str, MarkingLevel] | None:
    """Every marking definition the platform knows beyond the standard TLP ones: its TLP level,
    None when it is not a TLP marking (PAP, statements...), ``UNREADABLE`` when it is a TLP
    marking whose level cannot be read (withheld). None when the read failed.

    Read at start, and again whenever an object refers to a marking not known yet, so
    indicators streamed without their marking objects (pycti's default ``no-dependencies``)
    still resolve. Objects carrying an unknown marking are withheld meanwhile (fail closed).
    """
    try:
        records = api.marking_definition.list(first=5000)
    except (ValueError, OSError) as error:
        _log.warning("could not read marking definitions from OpenCTI: %s", _first_line(error))
        return None
    levels: dict[str, MarkingLevel] = {}
    for record in records:
        marking_id = record.get("standard_id")
        if not isinstance(marking_id, str) or marking_id in STANDARD_MARKINGS:
            continue
        marking = MarkingDefinition(
            id=marking_id,
            name=record.get("definition"),
            definition_type=record.get("definition_type"),
            definition=record.get("definition"),
        )
        levels[marking_id] = tlp_of_marking(marking)
    return levels


AUTHOR_ATTRIBUTES: Final = "id standard_id entity_type name"
"""What ``read_author_name`` selects of an identity (pycti's default selection is large)."""


def read_author_name(api: OpenCTIApiClient, identity_id: str) -> str | None:
    """The name of the identity ``identity_id`` (an indicator's ``created_by_ref``), read from
    the platform (``query Identity($id: String!) { identity(id: $id) {...} }``, which takes the
    STIX or the internal id). None when it does not exist, is not visible to the connector's
    user, or the read failed (logged)."""
    try:
        record = api.identity.read(id=identity_id, customAttributes=AUTHOR_ATTRIBUTES)
    except (ValueError, OSError) as error:
        _log.warning(
            "could not read the author %s from OpenCTI: %s", identity_id, _first_line(error)
        )
        return None
    name = record.get("name") if record is not None else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def final_ping(helper: OpenCTIConnectorHelper) -> None:
    """Send the state once more, as pycti's ping thread does, and adopt the state the platform
    answers when it differs.

    After "reset state" in the OpenCTI UI the platform empties the stored state and answers it
    once while ignoring the state sent (``domain/connector.ts``, ``connector_state_reset``):
    pinging again with the local state, as pycti's ``force_ping`` does, would undo the reset.
    Failures are logged, never raised (the previous ping's position stays saved).
    """
    state = helper.get_state()
    variables = {"id": helper.connector_id, "state": json.dumps(state), "connectorInfo": None}
    try:
        answer = helper.api.query(_PING, variables)
    except (ValueError, OSError) as error:
        _log.warning(
            "the final ping failed (%s): the position of the previous ping is kept",
            _first_line(error),
        )
        return
    data = answer.get("data")
    pinged = data.get("pingConnector") if isinstance(data, dict) else None
    stored = pinged.get("connector_state") if isinstance(pinged, dict) else None
    try:
        remote = json.loads(stored) if isinstance(stored, str) and stored else None
    except ValueError:
        remote = None
    if remote == state:
        return
    helper.set_state(remote if isinstance(remote, dict) else None)
    _log.warning(
        "the connector state was reset from OpenCTI: it is not written back, and the next "
        "start reads the stream from the configured start"
    )


def shutdown(helper: OpenCTIConnectorHelper, timeout: float) -> None:
    """Save the state on the platform (``final_ping``) and stop pinging (never
    ``helper.stop()``: it deletes the connector and its state). The ping gets at most
    ``timeout`` s: pycti's own request timeout is 300 s, far beyond any orchestrator's
    patience with a stopping container."""
    pinger = threading.Thread(target=final_ping, args=(helper,), name="final-ping", daemon=True)
    pinger.start()
    pinger.join(timeout)
    if pinger.is_alive():
        _log.warning(
            "OpenCTI did not answer the final ping within %.1f s: the position saved by the "
            "previous ping is kept, and the next start replays from there",
            timeout,
        )
    helper.ping.stop()
