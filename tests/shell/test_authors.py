"""``threat.indicator.provider``: author names from the stream, a bounded cache, and one read
from OpenCTI (through real pycti against the stand-in) for an author never streamed."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import pytest

from elastic_connector.core.actions import Skip
from elastic_connector.core.events import Plan, PlannerState
from elastic_connector.demo.opencti_data import identity_standard_id, make_indicator
from elastic_connector.shell import authors as authors_module
from elastic_connector.shell.authors import AuthorNames
from elastic_connector.shell.opencti import read_author_name

if TYPE_CHECKING:
    from elastic_connector.demo.opencti_standin import OpenCTIStandin
    from tests.support.opencti import HelperFactory

_STATE = PlannerState()


def plan(seen: tuple[tuple[str, str], ...] = (), missing: tuple[str, ...] = ()) -> Plan:
    return Plan((Skip("1-0", "", "x", "x"),), _STATE, seen, missing)


class Lookups:
    """A fake OpenCTI: names by id, and every id asked for."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    def __call__(self, identity_id: str) -> str | None:
        self.asked.append(identity_id)
        return self.names.get(identity_id)


def test_names_seen_on_the_stream_are_kept_and_bounded() -> None:
    cache = AuthorNames(capacity=2)
    cache.learn(plan((("identity--a", "A"), ("identity--b", "B"))))
    cache.learn(plan((("identity--c", "C"),)))
    assert dict(cache.names) == {"identity--b": "B", "identity--c": "C"}
    assert cache.fetch_missing() is False  # no lookup: nothing to fetch


def test_a_missing_author_is_read_once_and_a_failed_one_not_before_the_retry_delay() -> None:
    now = [0.0]
    lookups = Lookups({"identity--known": "ACME CERT"})
    cache = AuthorNames(lookups, retry_after=600, clock=lambda: now[0])
    cache.learn(plan(missing=("identity--known", "identity--hidden")))
    assert cache.fetch_missing() is True
    assert cache.names == {"identity--known": "ACME CERT"}
    # Known now: never asked again; the hidden one not before the retry delay.
    cache.learn(plan(missing=("identity--known", "identity--hidden")))
    assert cache.fetch_missing() is False
    now[0] = 601.0
    cache.learn(plan(missing=("identity--hidden",)))
    assert cache.fetch_missing() is False
    assert lookups.asked == ["identity--known", "identity--hidden", "identity--hidden"]


def test_lookups_per_batch_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authors_module, "MAX_LOOKUPS", 2)
    lookups = Lookups({})
    cache = AuthorNames(lookups)
    cache.learn(plan(missing=("identity--1", "identity--2", "identity--3")))
    cache.fetch_missing()
    assert lookups.asked == ["identity--1", "identity--2"]
    cache.fetch_missing()  # the rest at the next batch
    assert lookups.asked == ["identity--1", "identity--2", "identity--3"]


def test_the_author_is_read_from_the_platform_by_either_id(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    streamed = {
        "type": "identity",
        "spec_version": "2.1",
        "id": identity_standard_id("CERT-EU", "organization"),
        "name": "CERT-EU",
        "identity_class": "organization",
    }
    opencti_standin.store_only(streamed)
    created = helper.api.identity.create(type="Individual", name="Jane Analyst")
    assert created is not None

    assert read_author_name(helper.api, str(streamed["id"])) == "CERT-EU"
    assert read_author_name(helper.api, created["standard_id"]) == "Jane Analyst"
    assert read_author_name(helper.api, created["id"]) == "Jane Analyst"
    assert read_author_name(helper.api, f"identity--{uuid.uuid4()}") is None
    # Not an identity: the platform answers null.
    indicator = make_indicator("[ipv4-addr:value = '192.0.2.7']")
    opencti_standin.publish("create", indicator)
    assert read_author_name(helper.api, str(indicator["id"])) is None
    sent = [r for r in opencti_standin.graphql_requests if r.fields == ("identity",)]
    assert sent
    assert all("identity(id: $id)" in r.operation for r in sent)


def test_a_failed_read_is_none_and_logged(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory, caplog: pytest.LogCaptureFixture
) -> None:
    helper = pycti_helper()
    opencti_standin.fail_graphql(fields=("identity",), times=1, status=None)
    with caplog.at_level(logging.WARNING, logger="elastic_connector.shell.opencti"):
        assert read_author_name(helper.api, "identity--x") is None
    assert "could not read the author identity--x" in caplog.text
