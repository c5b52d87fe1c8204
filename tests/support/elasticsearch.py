"""Elasticsearch for the test suite (a pytest plugin, registered in ``tests/conftest.py``).

* ``elasticsearch_url`` (session): ``ELASTICSEARCH_TEST_URL`` when set, so the same tests run
  unchanged against a real cluster; otherwise a private ``noida-db`` on a free loopback port with
  a fresh data directory, stopped with ``noida-db down`` at the end.
* ``es_settings`` / ``es_client`` (session): connector settings and a client for that URL
  (``ELASTICSEARCH_TEST_API_KEY``, ``ELASTICSEARCH_TEST_CA_CERTS`` and user-info in the URL are
  honoured for real clusters).
* ``es_prefix`` (function): a unique lower-case name prefix without dashes (``ectest_<hex>``);
  every index, alias, data stream and index template whose name contains it is deleted after the
  test.
* ``faulty_proxy`` (function): a ``FaultyProxy`` in front of the cluster.
* ``real_cluster`` marker: such tests are skipped unless ``ELASTICSEARCH_TEST_URL`` is set.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec
import pytest
from elasticsearch import ApiError, Elasticsearch

from elastic_connector.core.config import CloudSettings, ElasticsearchSettings, Secret
from elastic_connector.demo.noida import NoidaServer
from elastic_connector.shell.elastic import build_client
from tests.support.faulty_proxy import FaultyProxy

TEST_URL_ENV = "ELASTICSEARCH_TEST_URL"


def real_cluster_url() -> str | None:
    """The real cluster the suite was pointed at, or None when it runs against noida-db."""
    return os.environ.get(TEST_URL_ENV) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if real_cluster_url() is not None:
        return
    skip = pytest.mark.skip(reason=f"needs a real Elasticsearch cluster ({TEST_URL_ENV})")
    for item in items:
        if "real_cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """Base URL of the Elasticsearch the suite talks to (may carry user-info for real ones)."""
    url = real_cluster_url()
    if url is not None:
        yield url
        return
    server = NoidaServer()
    try:
        yield server.start()
    finally:
        server.stop()
        server.remove()


def settings_for(url: str) -> ElasticsearchSettings:
    """Connector settings for ``url``: user-info becomes username/password; the TLS and API key
    environment variables of the real-cluster mode are applied."""
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username else None
    password = Secret(unquote(parts.password)) if parts.password else None
    host = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
    api_key = os.environ.get("ELASTICSEARCH_TEST_API_KEY")
    return ElasticsearchSettings(
        hosts=(host,),
        username=username,
        password=password,
        api_key=Secret(api_key) if api_key else None,
        ca_certs=os.environ.get("ELASTICSEARCH_TEST_CA_CERTS") or None,
        request_timeout=30.0,
    )


@pytest.fixture(scope="session")
def es_settings(elasticsearch_url: str) -> ElasticsearchSettings:
    return settings_for(elasticsearch_url)


@pytest.fixture(scope="session")
def es_client(es_settings: ElasticsearchSettings) -> Iterator[Elasticsearch]:
    client = build_client(es_settings, CloudSettings())
    try:
        yield client
    finally:
        client.close()


def delete_everything_named(client: Elasticsearch, fragment: str) -> None:
    """Delete the indices, data streams and index templates whose name contains ``fragment``.

    Names are listed first and deleted one by one: real clusters refuse wildcard deletes
    (``action.destructive_requires_name``).
    """
    pattern = f"*{fragment}*"
    try:
        resolved = client.indices.resolve_index(name=pattern, expand_wildcards="all").body
    except ApiError:
        resolved = {}
    for stream in resolved.get("data_streams", []):
        with contextlib.suppress(ApiError):
            client.indices.delete_data_stream(name=stream["name"])
    for index in resolved.get("indices", []):
        with contextlib.suppress(ApiError):
            client.indices.delete(index=index["name"])
    try:
        templates = client.indices.get_index_template(name=pattern).body
    except ApiError:
        templates = {}
    for template in templates.get("index_templates", []):
        with contextlib.suppress(ApiError):
            client.indices.delete_index_template(name=template["name"])


@pytest.fixture
def es_prefix(es_client: Elasticsearch) -> Iterator[str]:
    """A unique name prefix (``ectest_<hex>``); everything named with it is removed afterwards.

    No dash inside, so ``logs-ti_<prefix>.indicator`` has the same shape as the default index
    name (it does not match the built-in ``logs-*-*`` pattern, its backing indices do)."""
    prefix = f"ectest_{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        delete_everything_named(es_client, prefix)


@pytest.fixture
def faulty_proxy(elasticsearch_url: str) -> Iterator[FaultyProxy]:
    """A fault-injecting proxy in front of the test cluster (plain HTTP towards the client)."""
    parts = urlsplit(elasticsearch_url)
    upstream = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))
    with FaultyProxy(upstream) as proxy:
        yield proxy


@pytest.fixture
def proxied_settings(
    faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> ElasticsearchSettings:
    """``es_settings`` pointed at the ``faulty_proxy`` (credentials and timeouts kept)."""
    return msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,))
