"""Why OpenCTI cannot be used, in one line that names the URL, the error and the option to fix.

pycti reports every failure to reach the platform as "OpenCTI API is not reachable", after
logging the client library's exception (with its traceback): the operator learns neither what
went wrong nor what to change. ``opencti_problem`` asks the platform the question pycti's health
check asks, itself, and says what the answer means.
"""

from __future__ import annotations

from typing import Final

import msgspec
import urllib3

from elastic_connector.core.config import Config
from elastic_connector.shell.opencti import tls_problem
from elastic_connector.shell.stream import _ca_bundle, _proxy_for

_HEALTH_QUERY: Final = "query healthCheck { about { version } }"
_URL_OPTION: Final = "opencti.url (OPENCTI_URL)"
_TOKEN_OPTION: Final = "opencti.token (OPENCTI_TOKEN)"  # noqa: S105  (an option name)
_TLS_OPTIONS: Final = "opencti.ca_certs (OPENCTI_CA_CERTS) or opencti.ssl_verify"

# Phrases of the operating system's socket errors (as urllib3 words them) -> plain words.
_CONNECTION_REASONS: Final = (
    ("connection refused", "connection refused"),
    ("name or service not known", "the host name does not resolve"),
    ("nodename nor servname", "the host name does not resolve"),
    ("temporary failure in name resolution", "the host name does not resolve (DNS failure)"),
    ("getaddrinfo failed", "the host name does not resolve"),
    ("no address associated", "the host name does not resolve"),
    ("network is unreachable", "the network is unreachable"),
    ("no route to host", "no route to the host"),
    ("connection reset", "the connection was reset"),
    ("remotedisconnected", "the server closed the connection without answering"),
    ("timed out", "the connection timed out"),
)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def connection_reason(error: BaseException) -> str:
    """The socket-level reason inside a requests/urllib3 connection error, in plain words."""
    text = str(error).lower()
    for phrase, words in _CONNECTION_REASONS:
        if phrase in text:
            return words
    return _first_line(error)


def _pool(config: Config) -> urllib3.PoolManager:
    """A connection pool that trusts and proxies as pycti's requests session does."""
    settings = config.opencti
    cert_reqs = "CERT_REQUIRED" if settings.ssl_verify else "CERT_NONE"
    ca_certs = _ca_bundle(settings.ca_certs) if settings.ssl_verify else None
    proxy = _proxy_for(settings.url)
    if proxy is not None:
        return urllib3.ProxyManager(proxy, cert_reqs=cert_reqs, ca_certs=ca_certs)
    return urllib3.PoolManager(cert_reqs=cert_reqs, ca_certs=ca_certs)


def _graphql_error_code(body: object) -> str | None:
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    extensions = first.get("extensions")
    code = first.get("name") or (extensions.get("code") if isinstance(extensions, dict) else None)
    return str(code or first.get("message") or "error")


def opencti_problem(config: Config, timeout: float = 15.0) -> str | None:
    """Why the OpenCTI API at ``opencti.url`` cannot be used with the configured token, in one
    line naming the URL, the error and the option to fix; None when it answers as it should."""
    url = config.opencti.url
    endpoint = f"{url.rstrip('/')}/graphql"
    pool = _pool(config)
    try:
        response = pool.request(
            "POST",
            endpoint,
            body=msgspec.json.encode({"query": _HEALTH_QUERY}),
            headers={
                "Authorization": f"Bearer {config.opencti.token.reveal()}",
                "Content-Type": "application/json",
            },
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
        )
    except urllib3.exceptions.SSLError as error:
        return tls_problem(config) or (
            f"TLS with OpenCTI at {url} failed ({connection_reason(error)}); check {_TLS_OPTIONS}"
        )
    except urllib3.exceptions.NewConnectionError as error:  # before TimeoutError: a subclass
        return (
            f"cannot reach OpenCTI at {url}: {connection_reason(error)}; is the platform "
            f"running there? check {_URL_OPTION}"
        )
    except urllib3.exceptions.TimeoutError:
        return (
            f"OpenCTI at {url} did not answer within {timeout:.0f} s; check {_URL_OPTION} and "
            "the network path (proxy, firewall)"
        )
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        return f"cannot reach OpenCTI at {url}: {connection_reason(error)}; check {_URL_OPTION}"
    finally:
        pool.clear()
    try:
        body: object = msgspec.json.decode(response.data)
    except msgspec.DecodeError:
        body = None
    code = _graphql_error_code(body)
    if response.status in (401, 403) or code in ("AUTH_REQUIRED", "FORBIDDEN_ACCESS"):
        return (
            f"OpenCTI at {url} refused the token ({code or f'HTTP {response.status}'}); "
            f"check {_TOKEN_OPTION}"
        )
    if response.status != 200:
        return (
            f"OpenCTI at {url} answered HTTP {response.status} on /graphql; check "
            f"{_URL_OPTION} (the platform's base URL) and the platform's health"
        )
    if code is not None:
        return f"OpenCTI at {url} answered with the error {code}; check {_TOKEN_OPTION}"
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("about"), dict):
        return (
            f"{url} answered, but not as the OpenCTI API (/graphql); check {_URL_OPTION} "
            "(the platform's base URL)"
        )
    return None
