"""TLS verification is on by default towards OpenCTI and Elasticsearch, fails with one readable
line when the server's CA is not trusted, and works end to end once the CA is pinned.

A private CA is made in the test (trustme); the OpenCTI stand-in serves HTTPS with a
certificate it signed, and Elasticsearch is reached through the fault proxy serving HTTPS the
same way. Nothing in the connector's environment points at that CA unless a test says so
(``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` are not inherited by the harness).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pytest
import trustme

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.demo.opencti_data import make_indicator
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from tests.e2e.harness import ConnectorHarness, doc_id
from tests.support.faulty_proxy import FaultyProxy

Harnesses = Callable[..., ConnectorHarness]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def tls_standin(ca: trustme.CA) -> Iterator[OpenCTIStandin]:
    with OpenCTIStandin(heartbeat_interval=0.2, ssl_context=server_context(ca)) as standin:
        yield standin


@pytest.fixture
def tls_elasticsearch(ca: trustme.CA, elasticsearch_url: str) -> Iterator[FaultyProxy]:
    parts = urlsplit(elasticsearch_url)
    upstream = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))
    with FaultyProxy(upstream, server_ssl=server_context(ca)) as proxy:
        yield proxy


def one_error_line(output: str, pattern: str) -> str:
    """The single log line matching ``pattern``; no traceback anywhere."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if re.search(pattern, line)]
    assert lines, f"no line matches {pattern!r}:\n{output}"
    return lines[0]


def test_an_untrusted_opencti_certificate_is_refused_with_one_clear_line(
    e2e_harness: Harnesses, tls_standin: OpenCTIStandin
) -> None:
    connector = e2e_harness(standin=tls_standin)
    daemon = connector.spawn("run")
    line = daemon.wait_for_line(r"ERROR .*OpenCTI", timeout=30).string
    host = urlsplit(tls_standin.url).netloc
    assert host in line or tls_standin.url in line, line
    assert "certificate verify failed" in line.lower() or "certificate" in line.lower(), line
    assert "opencti.ca_certs" in line, line
    assert daemon.running, "an untrusted certificate must be waited out, not a crash"
    assert daemon.terminate() == 0
    assert "Traceback" not in daemon.output(), daemon.output()
    assert not tls_standin.graphql_requests  # nothing was sent over the untrusted channel


def test_an_untrusted_elasticsearch_certificate_is_refused_with_one_clear_line(
    e2e_harness: Harnesses, tls_elasticsearch: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    connector = e2e_harness()
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(tls_elasticsearch.url,))
    process = connector.run("run", timeout=30)
    assert process.returncode == 1
    line = one_error_line(process.output(), r"ERROR .*Elasticsearch")
    assert urlsplit(tls_elasticsearch.url).netloc in line, line
    assert "certificate verify failed" in line, line
    assert "output.elasticsearch.ca_certs" in line, line
    assert "ELASTICSEARCH_CA_CERTS" in line, line
    assert not [r for r in tls_elasticsearch.requests if r.path != "/"], "sent over untrusted TLS"


def test_pinned_cas_work_end_to_end(
    e2e_harness: Harnesses,
    tls_standin: OpenCTIStandin,
    tls_elasticsearch: FaultyProxy,
    es_settings: ElasticsearchSettings,
    ca_file: Path,
) -> None:
    connector = e2e_harness(standin=tls_standin, env={"OPENCTI_CA_CERTS": str(ca_file)})
    connector.es_settings = msgspec.structs.replace(
        es_settings, hosts=(tls_elasticsearch.url,), ca_certs=str(ca_file)
    )
    daemon = connector.start()
    indicator = make_indicator("[ipv4-addr:value = '203.0.113.9']")
    connector.publish_and_ack("create", indicator)
    assert doc_id(indicator) in connector.documents()
    assert any("/_bulk" in r.path for r in tls_elasticsearch.requests)
    assert tls_standin.stream_requests, "the stream was read over TLS"
    output = daemon.output()
    assert "verification is OFF" not in output
    assert "verification is off" not in output
    assert daemon.terminate() == 0
