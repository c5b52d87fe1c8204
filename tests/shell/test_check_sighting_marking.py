"""`check` verifies that the connector's OpenCTI user may use the marking ``sightings.tlp``:
without it the platform refuses every sighting (``MISSING_REFERENCE_ERROR`` without
``unresolvedIds``), which the connector would only learn at its first write."""

from __future__ import annotations

import io

import pytest

from elastic_connector.core.config import (
    Config,
    ConnectorSettings,
    OpenCTISettings,
    Secret,
    SightingsSettings,
)
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.check import Report, check_sighting_marking
from elastic_connector.shell.logs import SecretMask
from elastic_connector.shell.sightings_writer import marking_id
from tests.support.memory_alerts import IN_PROCESS_URL, in_process_api


@pytest.fixture
def standin() -> OpenCTIStandin:
    return OpenCTIStandin()  # answered in-process


def check(standin: OpenCTIStandin, token: str | None, tlp: Tlp) -> tuple[str, bool]:
    config = Config(
        opencti=OpenCTISettings(url=IN_PROCESS_URL, token=Secret(token or standin.token)),
        connector=ConnectorSettings(id="00000000-0000-4000-8000-000000000002"),
        sightings=SightingsSettings(tlp=tlp),
    )
    out = io.StringIO()
    report = Report(out, SecretMask([]))
    check_sighting_marking(in_process_api(standin, token), config, report)
    return out.getvalue(), report.failed


def test_a_user_allowed_the_marking_passes(standin: OpenCTIStandin) -> None:
    standin.add_user(
        "amber", name="connector", capabilities=["KNOWLEDGE_KNUPDATE"],
        allowed_markings=[marking_id(Tlp.GREEN), marking_id(Tlp.AMBER)],
    )  # fmt: skip
    text, failed = check(standin, "amber", Tlp.AMBER)
    assert (text, failed) == (
        "OK   sightings: the user may mark sightings TLP:AMBER (sightings.tlp)\n",
        False,
    )


def test_a_user_not_allowed_the_marking_fails_naming_the_option(standin: OpenCTIStandin) -> None:
    standin.add_user(
        "green", name="connector", capabilities=["KNOWLEDGE_KNUPDATE"],
        allowed_markings=[marking_id(Tlp.GREEN)],
    )  # fmt: skip
    text, failed = check(standin, "green", Tlp.AMBER)
    assert failed
    assert text.startswith("FAIL sightings: the OpenCTI user may not use the marking TLP:AMBER")
    assert "(sightings.tlp)" in text


def test_an_administrator_may_use_every_marking(standin: OpenCTIStandin) -> None:
    text, failed = check(standin, None, Tlp.RED)
    assert not failed
    assert text.startswith("OK   sightings:")


def test_an_unanswered_question_is_a_warning(standin: OpenCTIStandin) -> None:
    standin.fail_graphql(status=None, code="INTERNAL_SERVER_ERROR", fields=["me"])
    text, failed = check(standin, None, Tlp.AMBER)
    assert not failed
    assert text.startswith("WARN sightings: cannot tell whether the user may use TLP:AMBER")
