"""docs/elasticsearch-privileges.md, ``check`` and Elasticsearch's own privilege definitions agree.

* The "What each privilege is for" table is ``core.elastic.privileges.REQUIREMENTS``, row by row:
  ``check`` asks for exactly those rows and words a missing one with the row's purpose.
* The role JSON blocks are the roles built from those rows (with and without setup).
* The action table: every action is granted by the privilege it names according to
  Elasticsearch's definitions (``tests/support/es_roles.py``), the documented roles grant it on
  the names it names, and the role-enforcing gate models every action listed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

import pytest

from elastic_connector.core.elastic.privileges import REQUIREMENTS, Need, Requirement, Target, role
from tests.support.es_roles import (
    CLOSE_PIT_ACTION,
    HAS_PRIVILEGES_ACTION,
    Role,
    cluster_privileges_granting,
    index_privileges_granting,
    is_cluster_action,
    roles_in_markdown,
)

DOC: Final = Path(__file__).resolve().parents[1] / "docs" / "elasticsearch-privileges.md"
INDEX: Final = "logs-ti_opencti_connector.indicator"
ALERTS: Final = ".alerts-security.alerts-*"

LOOKUP: Final = "opencti-lookup"
DEAD: Final = "opencti-dead-letters"
_ON: Final = {
    Target.CLUSTER: "cluster",
    Target.INDICATORS: "<index>, <index>-*",
    Target.ALERTS: ".alerts-security.alerts-*",
    Target.ALERT_BACKING: ".internal.alerts-security.alerts-*",
    Target.LOOKUP: "<lookup index>",
    Target.DEAD_LETTERS: "<dead-letter index>, <dead-letter index>-*",
}
_WHEN: Final = {
    Need.ALWAYS: "always",
    Need.SETUP: "setup",
    Need.SIGHTINGS: "ecs mode",
    Need.LOOKUP: "lookup index",
    Need.LOOKUP_SETUP: "lookup index, setup",
    Need.DEAD_LETTERS: "dead letters",
    Need.DEAD_LETTERS_SETUP: "dead letters, setup",
}
SAMPLE_NAMES: Final = {
    # A concrete name each documented target stands for.
    "<index>": INDEX,
    "<index>-*": f"{INDEX}-000001",
    ".alerts-security.alerts-*": ".alerts-security.alerts-default",
    ".internal.alerts-security.alerts-*": ".internal.alerts-security.alerts-default-000001",
    "<lookup index>": LOOKUP,
    "<dead-letter index>": DEAD,
    "<dead-letter index>-*": f"{DEAD}-000001",
}


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text``: rows (header and separator dropped) of plain cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip().replace("`", "") for c in line.strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def _table_after(heading: str) -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    return _tables(text[start:])[0]


def _row(requirement: Requirement) -> list[str]:
    return [
        requirement.privilege,
        _ON[requirement.target],
        _WHEN[requirement.need],
        requirement.purpose,
    ]


def test_the_privilege_table_is_what_check_asks_for_row_by_row() -> None:
    documented = _table_after("## What each privilege is for")
    assert documented == [_row(r) for r in REQUIREMENTS]


def test_the_role_json_is_the_role_check_asks_for() -> None:
    roles = roles_in_markdown(DOC)
    assert set(roles) == {
        "opencti_connector",
        "opencti_connector_reduced",
        "opencti_connector_outputs",
    }
    assert roles["opencti_connector"].descriptor() == role(INDEX, ALERTS, setup=True)
    assert roles["opencti_connector_reduced"].descriptor() == role(INDEX, ALERTS, setup=False)
    assert roles["opencti_connector_outputs"].descriptor() == role(
        INDEX, ALERTS, setup=True, lookup_index=LOOKUP, dead_letter_index=DEAD
    )


SETUP_ONLY: Final = ("create_index", "manage")


def cut_for_reduced_privileges(documented: Role) -> Role:
    """A role with setup cut down as the page says for ``reduced_privileges``: no
    ``create_index`` or ``manage`` in any entry, no cluster privilege."""
    indices = [
        {"names": list(g.names), "privileges": [p for p in g.privileges if p not in SETUP_ONLY]}
        for g in documented.indices
    ]
    return Role.from_descriptor(f"{documented.name}_reduced", {"cluster": [], "indices": indices})


def test_the_outputs_role_cut_for_reduced_privileges_is_what_check_asks_for() -> None:
    outputs = roles_in_markdown(DOC)["opencti_connector_outputs"]
    assert cut_for_reduced_privileges(outputs).descriptor() == role(
        INDEX, ALERTS, setup=False, lookup_index=LOOKUP, dead_letter_index=DEAD
    )
    with_setup = roles_in_markdown(DOC)["opencti_connector"]
    reduced = roles_in_markdown(DOC)["opencti_connector_reduced"]
    assert cut_for_reduced_privileges(with_setup).descriptor() == reduced.descriptor()


def test_the_api_key_example_holds_the_role_with_setup() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```json\nPOST /_security/api_key\n(.*?)\n```", text, re.DOTALL)
    assert block is not None
    descriptors = json.loads(block[1])["role_descriptors"]
    assert descriptors == {"opencti_connector": role(INDEX, ALERTS, setup=True)}


def _action_rows() -> list[list[str]]:
    return _table_after("## Every Elasticsearch action the connector performs")


def _names(on: str) -> list[str]:
    return [SAMPLE_NAMES[n.strip()] for n in on.split(",")] if on not in ("cluster", "—") else []


@pytest.mark.parametrize("row", _action_rows(), ids=lambda row: f"{row[0]}@{row[2]}")
def test_each_action_is_granted_by_its_documented_privilege(row: list[str]) -> None:
    action, privilege, on, when, _calls = row
    documented = roles_in_markdown(DOC)
    with_setup = documented["opencti_connector"]
    reduced = documented["opencti_connector_reduced"]
    outputs = documented["opencti_connector_outputs"]
    if privilege == "none":
        # Elasticsearch authorizes these without any privilege (RBACEngine: same-user
        # actions, and ClosePointInTime is ALLOW_NO_INDICES).
        assert action in (HAS_PRIVILEGES_ACTION, CLOSE_PIT_ACTION)
        return
    every = (with_setup, reduced, outputs)
    if on == "cluster":
        assert is_cluster_action(action)
        assert privilege in cluster_privileges_granting(action)
        holders = [r for r in every if r.allows_cluster(action)]
    else:
        assert not is_cluster_action(action)
        assert privilege in index_privileges_granting(action)
        holders = [r for r in every if all(r.allows(action, n) for n in _names(on))]
    if when.startswith(("lookup index", "dead letters")):
        # Only the role with those indices must hold these (the others may, by another row).
        assert outputs in holders
        return
    expected: dict[str, list[Role]] = {
        "always": [with_setup, reduced, outputs],
        "ecs mode": [with_setup, reduced, outputs],
        "setup": [with_setup, outputs],
        "check": [],  # GET / (monitor): the documented roles do not grant it
    }
    assert holders == expected[when]


def documented_actions() -> set[str]:
    """Every action the page lists (the role tests check the connector performs no other)."""
    return {row[0] for row in _action_rows()}


def test_the_model_words_denials_as_elasticsearch_does() -> None:
    # Lists quoted from real 403s (the first is the example of the page's last section).
    assert index_privileges_granting("indices:data/write/bulk[s]") == [
        "create_doc",
        "create",
        "delete",
        "index",
        "write",
        "all",
    ]
    assert index_privileges_granting("indices:data/read/search") == ["read", "all"]
    assert index_privileges_granting("indices:admin/refresh") == ["maintenance", "manage", "all"]
    assert cluster_privileges_granting("cluster:monitor/main") == ["monitor", "manage", "all"]


def test_has_privileges_compares_what_privileges_allow_not_their_names() -> None:
    roles = roles_in_markdown(DOC)
    with_setup = roles["opencti_connector"]
    # manage holds indices:admin/create; manage + read hold view_index_metadata's actions.
    bare = with_setup.without("create_index", names=INDEX).without(
        "view_index_metadata", names=INDEX
    )
    assert bare.has_index_privilege(INDEX, "create_index")
    assert bare.has_index_privilege(f"{INDEX}-*", "view_index_metadata")
    assert not roles["opencti_connector_reduced"].has_index_privilege(INDEX, "create_index")
    # read on the alert alias pattern says nothing about the backing indices.
    alias_only = roles["opencti_connector_reduced"].without_name(
        ".internal.alerts-security.alerts-*"
    )
    assert alias_only.has_index_privilege(".alerts-security.alerts-*", "read")
    assert not alias_only.has_index_privilege(".internal.alerts-security.alerts-*", "read")
    assert not alias_only.allows(
        "indices:data/read/search", ".internal.alerts-security.alerts-default-000001"
    )
