"""End-to-end fixtures: the harness's (``tests/e2e/harness.py``) and proxies that enforce a role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.harness import e2e_harness
from tests.support.es_roles import Role
from tests.support.faulty_proxy import FaultyProxy

__all__ = ["e2e_harness", "role_proxy"]


@pytest.fixture
def role_proxy(elasticsearch_url: str) -> Iterator[Callable[[Role], FaultyProxy]]:
    """Proxies in front of the test cluster, each enforcing one role."""
    parts = urlsplit(elasticsearch_url)
    upstream = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))
    proxies: list[FaultyProxy] = []

    def start(role: Role) -> FaultyProxy:
        proxy = FaultyProxy(upstream, role=role).start()
        proxies.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in proxies:
            proxy.stop()
