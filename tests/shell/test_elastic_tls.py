"""TLS settings of the client, against a real TLS endpoint (the proxy serving a test CA's
certificate in front of noida-db): CA file, verification switch, host name check, mutual TLS,
and Cloud ID."""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trustme
from elastic_transport import TlsError
from elasticsearch import Elasticsearch

from elastic_connector.core.config import CloudSettings, ElasticsearchSettings
from elastic_connector.shell import elastic
from elastic_connector.shell.elastic import (
    ErrorClass,
    build_client,
    classify_error,
    describe_error,
)
from tests.support.faulty_proxy import FaultyProxy


class Pki(msgspec.Struct, frozen=True):
    ca: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    client = ca.issue_cert("connector@example.org")
    paths = Pki(folder / "ca.pem", folder / "client.pem", folder / "client.key")
    ca.cert_pem.write_to_path(str(paths.ca))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    return paths


def _server_context(ca: trustme.CA, *, require_client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)  # IP only: "localhost" must not match
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _upstream(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


@pytest.fixture
def tls_proxy(ca: trustme.CA, elasticsearch_url: str) -> Iterator[FaultyProxy]:
    context = _server_context(ca, require_client_cert=False)
    with FaultyProxy(_upstream(elasticsearch_url), server_ssl=context) as proxy:
        yield proxy


@pytest.fixture
def mtls_proxy(ca: trustme.CA, elasticsearch_url: str) -> Iterator[FaultyProxy]:
    context = _server_context(ca, require_client_cert=True)
    with FaultyProxy(_upstream(elasticsearch_url), server_ssl=context) as proxy:
        yield proxy


def _settings(url: str, **changes: object) -> ElasticsearchSettings:
    return msgspec.structs.replace(
        ElasticsearchSettings(hosts=(url,), request_timeout=10.0), **changes
    )


def _fails(client: Elasticsearch) -> Exception:
    with pytest.raises(TlsError) as info:
        client.options(max_retries=0).info()
    return info.value


def test_unknown_ca_is_refused_and_the_message_points_at_ca_certs(tls_proxy: FaultyProxy) -> None:
    exc = _fails(build_client(_settings(tls_proxy.url), CloudSettings()))
    message = describe_error(exc, [tls_proxy.url])
    assert "certificate verify failed" in message
    assert "ca_certs" in message
    assert tls_proxy.url in message
    assert classify_error(exc) is ErrorClass.PERMANENT


def test_ca_certs_makes_the_connection_work(tls_proxy: FaultyProxy, pki: Pki) -> None:
    client = build_client(_settings(tls_proxy.url, ca_certs=str(pki.ca)), CloudSettings())
    assert client.info().meta.status == 200


def test_host_name_mismatch_is_explained(tls_proxy: FaultyProxy, pki: Pki) -> None:
    url = tls_proxy.url.replace("127.0.0.1", "localhost")
    exc = _fails(build_client(_settings(url, ca_certs=str(pki.ca)), CloudSettings()))
    assert "does not match the host name" in describe_error(exc, [url])


def test_verification_can_be_switched_off_with_a_warning(
    tls_proxy: FaultyProxy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(elastic, "_insecure_warning_given", False)
    with caplog.at_level(logging.WARNING, logger="elastic_connector.shell.elastic"):
        client = build_client(_settings(tls_proxy.url, ssl_verify=False), CloudSettings())
        assert client.info().meta.status == 200
    assert "verification is OFF" in caplog.text


def test_mutual_tls_needs_the_client_certificate(mtls_proxy: FaultyProxy, pki: Pki) -> None:
    without = build_client(_settings(mtls_proxy.url, ca_certs=str(pki.ca)), CloudSettings())
    with pytest.raises(Exception) as info:  # noqa: PT011  (TLS alert or reset, by OpenSSL build)
        without.options(max_retries=0).info()
    message = describe_error(info.value, [mtls_proxy.url])
    assert mtls_proxy.url in message
    assert "client_cert" in message

    settings = _settings(
        mtls_proxy.url,
        ca_certs=str(pki.ca),
        client_cert=str(pki.client_cert),
        client_key=str(pki.client_key),
    )
    assert build_client(settings, CloudSettings()).info().meta.status == 200


def test_cloud_id_wins_over_hosts(tls_proxy: FaultyProxy, pki: Pki) -> None:
    # A Cloud ID is base64("<domain>:<port>$<es id>$<kibana id>") and the client connects to
    # https://<es id>.<domain>:<port>; "127" + "0.0.1" spells the proxy's address.
    port = tls_proxy.url.rsplit(":", 1)[1]
    cloud_id = "test:" + base64.b64encode(f"0.0.1:{port}$127$kibana".encode()).decode()
    settings = _settings("http://127.0.0.1:9", ca_certs=str(pki.ca))
    client = build_client(settings, CloudSettings(id=cloud_id))
    assert client.info().meta.status == 200
    assert tls_proxy.requests, "the request went through the Cloud ID endpoint"
