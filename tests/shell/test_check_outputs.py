"""`check` reports the ES|QL lookup index and the dead-letter index when they are configured."""

from __future__ import annotations

import io

import msgspec
from elasticsearch import Elasticsearch

from elastic_connector.core.config.model import (
    Config,
    ConnectorSettings,
    ElasticsearchSettings,
    LookupSettings,
    Mode,
    OpenCTISettings,
    Secret,
)
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.check import run_check


def _lines(
    opencti: OpenCTIStandin, es_settings: ElasticsearchSettings, prefix: str, **changes: object
) -> list[str]:
    config = Config(
        opencti=OpenCTISettings(url=opencti.url, token=Secret(opencti.token)),
        connector=ConnectorSettings(
            id="5bd4ad4e-8bd8-4d8d-9d4e-62a4b4a1d3f0", mode=Mode.ECS_NO_SIGNALS
        ),
        elasticsearch=msgspec.structs.replace(
            es_settings, index=f"{prefix}.ti", dead_letter_index=f"{prefix}.dead", **changes
        ),
        elasticsearch_lookup=LookupSettings(index=f"{prefix}.lookup"),
    )
    out = io.StringIO()
    run_check(config, out)
    return [line for line in out.getvalue().splitlines() if "lookup:" in line or "letters:" in line]


def test_check_reports_both_indices(
    opencti_standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    es_client: Elasticsearch,
    es_prefix: str,
) -> None:
    assert _lines(opencti_standin, es_settings, es_prefix) == [
        f"OK   lookup: {es_prefix}.lookup does not exist yet; it is created at start",
        f"OK   dead letters: {es_prefix}.dead does not exist yet; it is created at start",
    ]
    es_client.indices.create(index=f"{es_prefix}.lookup")
    assert _lines(opencti_standin, es_settings, es_prefix, reduced_privileges=True) == [
        f"WARN lookup: {es_prefix}.lookup is not a lookup-mode index (index.mode: standard): "
        "ES|QL LOOKUP JOIN refuses it; delete it and run `elastic-connector setup`",
        f"FAIL dead letters: {es_prefix}.dead does not exist: run `elastic-connector setup` once",
    ]
