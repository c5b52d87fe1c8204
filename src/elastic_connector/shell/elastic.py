"""The Elasticsearch client built from the connector's settings, and what its errors mean.

Three jobs:

* ``build_client``: one ``Elasticsearch`` object from ``ElasticsearchSettings`` and
  ``CloudSettings`` (hosts or Cloud ID; API key, Cloud auth or basic auth; CA file, client
  certificate, verification switch; timeout; modest transport retries).
* ``describe_error``: any exception the client raises -> one plain sentence an operator can act
  on, naming the endpoint and never a secret.
* ``classify_error``: transient (wait and retry) or permanent (retrying cannot help), which is
  what the bulk writer and the daemon's retry loops decide on.
"""

from __future__ import annotations

import enum
import logging
import re
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from elastic_transport import (
    ApiError,
    ConnectionError,
    ConnectionTimeout,
    NdjsonSerializer,
    SerializationError,
    TlsError,
)
from elasticsearch import Elasticsearch, UnsupportedProductError

from elastic_connector.core.config import CloudSettings, ElasticsearchSettings

__all__ = [
    "ErrorClass",
    "PermanentElasticsearchError",
    "build_client",
    "classify_error",
    "classify_status",
    "cluster_version",
    "describe_error",
    "describe_response",
    "redact_url",
]

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=BaseException)

TRANSPORT_MAX_RETRIES = 2
"""Immediate transport-level retries for ordinary calls (setup, sweeps, searches).

The bulk writer turns these off and retries with its own backoff instead."""

TRANSPORT_RETRY_ON_STATUS = (502, 503, 504)

_MAX_REASON_CHARS = 300

_insecure_warning_lock = threading.Lock()
_insecure_warning_given = False


class ErrorClass(enum.Enum):
    """Whether waiting and retrying can make a failed request succeed."""

    TRANSIENT = "transient"
    """Connection refused/reset, timeout, 429, 5xx: the cluster may come back."""
    PERMANENT = "permanent"
    """Bad credentials, missing privilege, bad request, missing index, TLS misconfiguration."""


class PermanentElasticsearchError(Exception):
    """Elasticsearch refused in a way that retrying cannot fix; ``message`` says what to change."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# ---------------------------------------------------------------------------------------------
# Client


def build_client(settings: ElasticsearchSettings, cloud: CloudSettings) -> Elasticsearch:
    """An Elasticsearch client for ``settings`` (and ``cloud``, which wins over ``hosts``).

    Authentication, first match wins: API key (the encoded form), ``cloud.auth`` (``user:pass``),
    ``username``/``password``. TLS verification stays on unless ``ssl_verify`` is false, which
    is logged once per process as a warning.
    """
    kwargs: dict[str, Any] = {
        "request_timeout": settings.request_timeout,
        "max_retries": TRANSPORT_MAX_RETRIES,
        "retry_on_status": TRANSPORT_RETRY_ON_STATUS,
        "retry_on_timeout": True,
    }
    if cloud.id:
        kwargs["cloud_id"] = cloud.id
    else:
        kwargs["hosts"] = list(settings.hosts)

    if settings.api_key is not None:
        kwargs["api_key"] = settings.api_key.reveal()
    elif cloud.auth is not None:
        user, _, password = cloud.auth.reveal().partition(":")
        kwargs["basic_auth"] = (user, password)
    elif settings.username:
        password = settings.password.reveal() if settings.password is not None else ""
        kwargs["basic_auth"] = (settings.username, password)

    if settings.ca_certs:
        kwargs["ca_certs"] = settings.ca_certs
    if settings.client_cert:
        kwargs["client_cert"] = settings.client_cert
    if settings.client_key:
        kwargs["client_key"] = settings.client_key
    if not settings.ssl_verify:
        kwargs["verify_certs"] = False
        # The transport would warn on every connection; one clear line is enough.
        kwargs["ssl_show_warn"] = False
        _warn_insecure_once()

    has_credentials = any(k in kwargs for k in ("api_key", "basic_auth"))
    if has_credentials and not cloud.id:
        plain = [redact_url(h) for h in settings.hosts if h.lower().startswith("http://")]
        if plain:
            log.warning(
                "credentials are sent to Elasticsearch without TLS (%s); use https:// hosts",
                ", ".join(plain),
            )
    kwargs["serializers"] = {"application/x-ndjson": _FramedNdjson()}
    return Elasticsearch(**kwargs)


class _FramedNdjson(NdjsonSerializer):
    """Bulk bodies arrive as bytes already framed as NDJSON (``core.elastic.bulk_lines``):
    sent as they are. The transport's serializer copies such a body twice (into a bytearray,
    then back to bytes), 4 % of the writer thread's time at 19,000 documents/s (py-spy)."""

    def dumps(self, data: object) -> bytes:
        if isinstance(data, bytes) and data.endswith(b"\n"):
            return data
        return super().dumps(data)


def _warn_insecure_once() -> None:
    global _insecure_warning_given  # noqa: PLW0603  (one warning per process, by design)
    with _insecure_warning_lock:
        if _insecure_warning_given:
            return
        _insecure_warning_given = True
    log.warning(
        "TLS certificate verification is OFF for Elasticsearch (ssl_verify: false): anyone on "
        "the network path can read and alter the traffic, including credentials; set ca_certs "
        "instead"
    )


def cluster_version(client: Elasticsearch) -> str:
    """The cluster's version number after checking the connector supports it (8.x or 9.x).

    Raises ``PermanentElasticsearchError`` for other versions; lets client errors through
    (give them to ``describe_error``).
    """
    info = client.info()
    version = info.body.get("version", {})
    number = str(version.get("number", "")) if isinstance(version, Mapping) else ""
    major_text = number.split(".", 1)[0]
    if not major_text.isdigit():
        raise PermanentElasticsearchError(
            f"the server did not report an Elasticsearch version (got {number!r})"
        )
    major = int(major_text)
    if major < 8:
        raise PermanentElasticsearchError(
            f"Elasticsearch {number} is too old: the connector needs Elasticsearch 8.x or 9.x"
        )
    if major > 9:
        log.warning("Elasticsearch %s is newer than the versions tested (8.x, 9.x)", number)
    return number


# ---------------------------------------------------------------------------------------------
# Classification


def classify_status(status: int) -> ErrorClass:
    """Transient for request timeout (408), too many requests (429) and server errors (5xx)."""
    if status in (408, 429) or 500 <= status <= 599:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def classify_error(exc: BaseException) -> ErrorClass:
    """Whether retrying the request that raised ``exc`` may succeed.

    TLS failures are permanent: a certificate problem does not heal by waiting, and retrying
    would hide a configuration mistake behind endless "connection" warnings.
    """
    if isinstance(exc, PermanentElasticsearchError | TlsError | UnsupportedProductError):
        return ErrorClass.PERMANENT
    if isinstance(exc, ApiError):
        return classify_status(exc.meta.status)
    if isinstance(exc, ConnectionError | ConnectionTimeout | SerializationError):
        # A truncated or garbled response is what an overloaded proxy produces.
        return ErrorClass.TRANSIENT
    if isinstance(exc, TimeoutError | OSError):
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


# ---------------------------------------------------------------------------------------------
# Descriptions

_UNAUTHORIZED_RE = re.compile(
    r"action \[(?P<action>\S+?)\] is unauthorized for "
    r"(?:API key id \[(?P<key>[^\]]*)\] of user \[(?P<key_user>[^\]]*)\]"
    r"|user \[(?P<user>[^\]]*)\])"
    r"(?:.*? on indices \[(?P<indices>[^\]]*)\])?"
    r"(?:.*?this action is granted by the (?P<kind>index|cluster) privileges "
    r"\[(?P<privileges>[^\]]*)\])?",
    re.DOTALL,
)
_HOST_PORT_RE = re.compile(r"host='(?P<host>[^']*)', port=(?P<port>\d+)")
_RESOLVE_RE = re.compile(r"Failed to resolve '(?P<host>[^']*)'")


def describe_error(exc: BaseException, hosts: Sequence[str] = ()) -> str:
    """One plain line saying what went wrong talking to Elasticsearch and what to check.

    ``hosts`` (the configured hosts) names the endpoint when the exception itself does not
    (TLS errors carry no address). Credentials never appear: URLs lose their user-info part and
    no request header or body is quoted.
    """
    if isinstance(exc, PermanentElasticsearchError):
        return exc.message
    if isinstance(exc, UnsupportedProductError):
        where = _node_name(exc) or _hosts_name(hosts)
        return (
            f"the server at {where} is not Elasticsearch (no 'X-Elastic-Product: "
            "Elasticsearch' header); check output.elasticsearch.hosts"
        )
    if isinstance(exc, ApiError):
        return _describe_api_error(exc, hosts)
    if isinstance(exc, TlsError):
        return _describe_tls_error(exc, hosts)
    if isinstance(exc, ConnectionTimeout):
        where = _endpoint_from_chain(exc) or _hosts_name(hosts)
        return (
            f"Elasticsearch at {where} did not answer within the request timeout "
            "(output.elasticsearch.request_timeout); it may be overloaded or unreachable"
        )
    if isinstance(exc, ConnectionError):
        return _describe_connection_error(exc, hosts)
    if isinstance(exc, SerializationError):
        return f"Elasticsearch at {_hosts_name(hosts)} sent a response that is not valid JSON"
    text = _first_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe_api_error(exc: ApiError, hosts: Sequence[str]) -> str:
    return describe_response(exc.meta.status, exc.body, _node_name(exc) or _hosts_name(hosts))


def describe_response(status: int, body: object, where: str) -> str:
    """One plain line for an Elasticsearch error answer: HTTP ``status`` and its ``body`` (the
    usual ``{"error": {"type", "reason"}}`` shape, or text) received from ``where``."""
    err_type, reason = _error_type_and_reason(body)
    detail = f"{err_type}: {reason}" if err_type and reason else (reason or err_type or "")

    if status == 401:
        return (
            f"Elasticsearch at {where} rejected the credentials (HTTP 401{_colon(reason)}); "
            "check output.elasticsearch.api_key, or username/password, or cloud.auth"
        )
    if status == 403:
        return _describe_forbidden(where, err_type, reason)
    if status == 404 and err_type == "index_not_found_exception":
        index = _error_field(body, "index") or _bracketed(reason) or "?"
        return (
            f"index {index} does not exist on {where} (HTTP 404); run `elastic-connector setup`"
            " or check output.elasticsearch.index"
        )
    if err_type == "index_closed_exception":
        index = _error_field(body, "index") or _bracketed(reason) or "?"
        return (
            f"index {index} is closed on {where} (HTTP {status}); open it (POST /{index}/_open)"
            " or point the alias's write index at an open index"
        )
    if "no write index is defined for alias" in reason:
        alias = _bracketed(reason) or "?"
        return (
            f"alias {alias} on {where} has no write index (HTTP {status}); mark one of its "
            "indices with is_write_index: true (`elastic-connector setup` checks it)"
        )
    if status in (400, 406) and (
        err_type == "media_type_header_exception"
        or "compatible-with" in reason
        or (status == 406 and not err_type)
    ):
        return (
            f"the server at {where} refused the 8.x client's compatibility headers (HTTP "
            f"{status}): the connector needs Elasticsearch 8.x or 9.x, not 7.x or OpenSearch"
        )
    if status == 400 and reason.startswith("no handler found for uri"):
        return (
            f"the server at {where} does not implement this Elasticsearch API ({reason}); "
            "it may be an Elasticsearch-compatible server with fewer features"
        )
    if status == 413:
        return (
            f"Elasticsearch at {where} refused a request as too large (HTTP 413); lower "
            "output.elasticsearch.bulk_max_bytes below the cluster's http.max_content_length"
        )
    if status == 429:
        return (
            f"Elasticsearch at {where} is overloaded (HTTP 429{_colon(detail)}); "
            "retrying with backoff"
        )
    if 500 <= status <= 599:
        return f"Elasticsearch at {where} failed (HTTP {status}{_colon(detail)})"
    return f"Elasticsearch at {where} refused the request (HTTP {status}{_colon(detail)})"


def _describe_forbidden(where: str, err_type: str, reason: str) -> str:
    if err_type == "cluster_block_exception":
        return (
            f"Elasticsearch at {where} blocks writes (HTTP 403: {reason}); the index is "
            "read-only (disk watermark or index.blocks.write): free disk space or lift the block"
        )
    match = _UNAUTHORIZED_RE.search(reason)
    if match is None:
        return (
            f"Elasticsearch at {where} denied the request (HTTP 403{_colon(reason)}); "
            "the connector's user or API key lacks a privilege "
            "(see docs/elasticsearch-privileges.md)"
        )
    who = (
        f"API key {match['key']} of user {match['key_user']}"
        if match["key"] is not None
        else f"user {match['user']}"
    )
    action = match["action"]
    indices = match["indices"]
    target = f" on {indices}" if indices else ""
    if match["privileges"]:
        grant = f"grant one of the {match['kind']} privileges {_listed(match['privileges'])}"
        grant += target
    else:
        grant = "grant the privilege that allows it"
    return (
        f"Elasticsearch at {where} denied {who} the action {action}{target} (HTTP 403): "
        f"missing privilege; {grant} (see docs/elasticsearch-privileges.md)"
    )


def _listed(privileges: str) -> str:
    return ", ".join(p.strip() for p in privileges.split(",") if p.strip()) or "?"


def _describe_tls_error(exc: TlsError, hosts: Sequence[str]) -> str:
    where = _endpoint_from_chain(exc) or _hosts_name(hosts)
    verify = _find_in_chain(exc, ssl.SSLCertVerificationError)
    if verify is not None:
        message = verify.verify_message or _first_line(str(verify))
        if "hostname mismatch" in message.lower() or "ip address mismatch" in message.lower():
            return (
                f"TLS certificate of Elasticsearch at {where} does not match the host name "
                f"({message}); connect with a name the certificate lists"
            )
        if "expired" in message.lower():
            return f"TLS certificate of Elasticsearch at {where} has expired ({message})"
        return (
            f"TLS certificate verify failed for Elasticsearch at {where} ({message}); set "
            "output.elasticsearch.ca_certs (ELASTICSEARCH_CA_CERTS) to the CA certificate that "
            "signed the cluster's certificate"
        )
    messages = [str(e) for e in _chain(exc) if str(e)]
    text = messages[-1] if messages else type(exc).__name__
    lowered = " ".join(messages).lower()
    if "wrong_version_number" in lowered or "wrong version number" in lowered:
        return (
            f"Elasticsearch at {where} does not speak TLS; use an http:// host or enable TLS "
            "on the cluster"
        )
    if "certificate required" in lowered or "certificate_required" in lowered:
        return (
            f"Elasticsearch at {where} requires a client certificate; set "
            "output.elasticsearch.client_cert and client_key"
        )
    return (
        f"TLS handshake with Elasticsearch at {where} failed ({_first_line(text)}); check "
        "ca_certs, client_cert/client_key and that the host speaks https"
    )


def _describe_connection_error(exc: ConnectionError, hosts: Sequence[str]) -> str:
    where = _endpoint_from_chain(exc) or _hosts_name(hosts)
    text = " ".join(str(e) for e in _chain(exc))
    lowered = text.lower()
    if "connection refused" in lowered:
        return (
            f"cannot connect to Elasticsearch at {where}: connection refused (is it running "
            "and listening on that address?)"
        )
    resolve = _RESOLVE_RE.search(text)
    if resolve is not None or "name or service not known" in lowered:
        host = resolve["host"] if resolve is not None else where
        return f"cannot connect to Elasticsearch at {where}: DNS cannot resolve {host}"
    if "timed out" in lowered:
        return f"cannot connect to Elasticsearch at {where}: connection timed out"
    if "reset by peer" in lowered or "remote end closed" in lowered or "aborted" in lowered:
        return (
            f"Elasticsearch at {where} closed the connection before answering (restarting, "
            "overloaded, or a proxy in between)"
        )
    if "no route to host" in lowered or "network is unreachable" in lowered:
        return f"cannot connect to Elasticsearch at {where}: network unreachable"
    return f"cannot connect to Elasticsearch at {where}: {_first_line(str(exc))}"


# ---------------------------------------------------------------------------------------------
# Helpers


def redact_url(url: str) -> str:
    """``url`` without its user-info part (``https://user:pw@h:9200`` -> ``https://h:9200``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username is None and parts.password is None and "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _hosts_name(hosts: Sequence[str]) -> str:
    if not hosts:
        return "the configured hosts"
    return ", ".join(redact_url(h) for h in hosts)


def _node_name(exc: ApiError) -> str | None:
    node = getattr(exc.meta, "node", None)
    host = getattr(node, "host", None)
    if not host:
        return None
    scheme = getattr(node, "scheme", "http")
    port = getattr(node, "port", None)
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _find_in_chain(exc: BaseException, kind: type[_E]) -> _E | None:
    for item in _chain(exc):
        if isinstance(item, kind):
            return item
    return None


def _endpoint_from_chain(exc: BaseException) -> str | None:
    """``host:port`` from urllib3's exceptions (they hold the connection or the pool)."""
    for item in _chain(exc):
        for attr in ("conn", "pool"):
            holder = getattr(item, attr, None)
            host = getattr(holder, "host", None)
            port = getattr(holder, "port", None)
            if isinstance(host, str) and host:
                return f"{host}:{port}" if isinstance(port, int) else host
        match = _HOST_PORT_RE.search(str(item))
        if match is not None:
            return f"{match['host']}:{match['port']}"
    return None


def _error_type_and_reason(body: object) -> tuple[str, str]:
    """(type, reason) from an Elasticsearch error body, preferring the root cause's reason."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            err_type = error.get("type")
            reason = error.get("reason")
            return (
                _clip(err_type) if isinstance(err_type, str) else "",
                _clip(reason) if isinstance(reason, str) else "",
            )
        if isinstance(error, str):
            return "", _clip(error)
        return "", ""
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return "", _clip(_first_line(text))
    return "", ""


def _error_field(body: object, name: str) -> str | None:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            value = error.get(name)
            if isinstance(value, str):
                return value
    return None


def _bracketed(text: str) -> str | None:
    match = re.search(r"\[([^\]]+)\]", text)
    return match[1] if match is not None else None


def _colon(text: str) -> str:
    return f": {text}" if text else ""


def _first_line(text: str) -> str:
    return _clip(text.strip().splitlines()[0] if text.strip() else "")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_REASON_CHARS:
        return text
    return text[: _MAX_REASON_CHARS - 3] + "..."
