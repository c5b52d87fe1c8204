"""`check` recognises credentials made for the earlier connector (an API key whose role grants
only ``opencti*``, and read on the 7.x ``.siem-signals-*``) and says exactly what to change:
the role, or ``output.elasticsearch.index``; the alerts privileges."""

from __future__ import annotations

import io

from elastic_connector.core.config import (
    DEFAULT_ECS_INDEX,
    Config,
    ConnectorSettings,
    ElasticsearchSettings,
    OpenCTISettings,
    Secret,
)
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.check import run_check
from tests.support.faulty_proxy import FaultyProxy, Reply

ALERTS = ".alerts-security.alerts-*"
EVERYTHING = ("index", "delete", "write", "create_index", "view_index_metadata", "manage", "read")


def config_for(opencti: OpenCTIStandin, elasticsearch: ElasticsearchSettings) -> Config:
    return Config(
        opencti=OpenCTISettings(url=opencti.url, token=Secret(opencti.token)),
        connector=ConnectorSettings(id="5bd4ad4e-8bd8-4d8d-9d4e-62a4b4a1d3f0"),
        elasticsearch=elasticsearch,
    )


def has_privileges_answer(granted: dict[str, tuple[str, ...]]) -> dict[str, object]:
    """POST _security/user/_has_privileges as Elasticsearch answers it, for every index name the
    connector may ask about; ``granted``: name -> the privileges the role gives on it."""
    names = [DEFAULT_ECS_INDEX, f"{DEFAULT_ECS_INDEX}-*", ALERTS, "opencti*", ".siem-signals-*"]
    return {
        "username": "connector",
        "has_all_requested": False,
        "cluster": {"manage_index_templates": True, "monitor": True},
        "index": {
            name: {privilege: privilege in granted.get(name, ()) for privilege in EVERYTHING}
            for name in names
        },
        "application": {},
    }


FORBIDDEN = Reply(
    403,
    {
        "error": {
            "type": "security_exception",
            "reason": "action [indices:admin/resolve/index] is unauthorized for API key id "
            f"[x1] of user [connector] on indices [{DEFAULT_ECS_INDEX}], this action is granted "
            "by the index privileges [view_index_metadata,manage,read,all]",
        },
        "status": 403,
    },
)


def check_lines(config: Config) -> list[str]:
    out = io.StringIO()
    assert run_check(config, out) == 1
    return out.getvalue().splitlines()


def test_a_key_limited_to_opencti_indices_is_recognised(
    opencti_standin: OpenCTIStandin,
    proxied_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
) -> None:
    # The role the earlier connector's README showed: all on opencti*, read on .siem-signals-*.
    earlier_role = {"opencti*": EVERYTHING, ".siem-signals-*": ("read",)}
    faulty_proxy.inject(
        Reply(200, has_privileges_answer(earlier_role)),
        times=None,
        path="/_security/user/_has_privileges",
    )
    faulty_proxy.inject(FORBIDDEN, times=None, path="/_resolve/index/")

    lines = check_lines(config_for(opencti_standin, proxied_settings))

    fails = [line for line in lines if line.startswith("FAIL")]
    assert fails[-3:] == [
        "FAIL privileges: these credentials may write only to opencti* indices (the role the "
        f"earlier connector's docs showed), not to {DEFAULT_ECS_INDEX}: either add "
        f"{DEFAULT_ECS_INDEX}* to the index names of their role "
        "(docs/elasticsearch-privileges.md), or set output.elasticsearch.index "
        "(ELASTICSEARCH_INDEX) to a name under opencti*, e.g. opencti-indicators (Kibana's "
        "Intelligence page and prebuilt rules only read logs-ti_*: docs/migration.md)",
        "FAIL alerts: these credentials may read only .siem-signals-* (the 7.x alerts index the "
        f"earlier connector's docs granted), not {ALERTS}: grant read on {ALERTS} and "
        ".internal.alerts-security.alerts-* (docs/elasticsearch-privileges.md), or set "
        "sightings.alerts_index (SIGHTINGS_ALERTS_INDEX) if your alerts are elsewhere",
        f"FAIL index: {DEFAULT_ECS_INDEX}: access refused (HTTP 403), as said above",
    ]
    assert all(line.startswith("FAIL privileges: missing ") for line in fails[:-3])
    assert "security_exception" not in "\n".join(lines)


def test_other_missing_privileges_get_no_earlier_role_hint(
    opencti_standin: OpenCTIStandin,
    proxied_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
) -> None:
    # A role that grants nothing anywhere: the plain 403 is reported as it is.
    faulty_proxy.inject(
        Reply(200, has_privileges_answer({})),
        times=None,
        path="/_security/user/_has_privileges",
    )
    faulty_proxy.inject(FORBIDDEN, times=None, path="/_resolve/index/")

    lines = check_lines(config_for(opencti_standin, proxied_settings))

    assert not [line for line in lines if "earlier connector" in line]
    assert lines[-1].startswith("FAIL elasticsearch: ")
    assert "403" in lines[-1]


def test_the_index_hint_alone_when_only_the_index_is_out_of_reach(
    opencti_standin: OpenCTIStandin,
    proxied_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
) -> None:
    role = {"opencti*": EVERYTHING, ALERTS: ("read",), ".siem-signals-*": ("read",)}
    faulty_proxy.inject(
        Reply(200, has_privileges_answer(role)),
        times=None,
        path="/_security/user/_has_privileges",
    )

    lines = check_lines(config_for(opencti_standin, proxied_settings))

    hints = [line for line in lines if "earlier connector" in line]
    assert len(hints) == 1
    assert hints[0].startswith("FAIL privileges: these credentials may write only to opencti*")
