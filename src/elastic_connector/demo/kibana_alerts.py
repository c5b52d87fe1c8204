"""Kibana's security alert indices, as far as the connector reads them (demo and tests).

The mappings follow Kibana's: 8.x/9.x ``.internal.alerts-security.alerts-<space>-000001`` behind
the alias ``.alerts-security.alerts-<space>``, ``dynamic: false``, ``kibana.alert.*`` keywords
and dates (alerts-as-data field map), the ECS ``threat.enrichments`` as ``nested``, and the
legacy ``signal.rule.type`` as an alias of ``kibana.alert.rule.type``; 7.x
``.siem-signals-<space>-000001`` with ``signal.*`` objects. Kibana creates these indices itself;
the demo and the tests create them the same way so sorting on ``kibana.alert.uuid`` works.
Index names and what reading them needs: shared/reference/elastic.md ("Reading alerts"); the
alerts-as-data layout: docs/sightings.md and Kibana's field map.
"""

from __future__ import annotations

_KEYWORD: dict[str, object] = {"type": "keyword"}
_DATE: dict[str, object] = {"type": "date"}

_ENRICHMENTS: dict[str, object] = {
    "type": "nested",
    "properties": {
        "feed": {"properties": {"name": _KEYWORD}},
        "indicator": {"type": "object", "dynamic": False},
        "matched": {
            "properties": {
                "atomic": _KEYWORD,
                "field": _KEYWORD,
                "id": _KEYWORD,
                "index": _KEYWORD,
                "occurred": _DATE,
                "type": _KEYWORD,
            }
        },
    },
}
_SOURCE_EVENT: dict[str, object] = {
    "source": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}}},
    "destination": {"properties": {"ip": {"type": "ip"}}},
    "host": {"properties": {"name": _KEYWORD}},
    "agent": {"properties": {"type": _KEYWORD}},
}

ALERTS_MAPPINGS: dict[str, object] = {
    "dynamic": False,
    "properties": {
        "@timestamp": _DATE,
        "event": {"properties": {"kind": _KEYWORD, "category": _KEYWORD}},
        "kibana": {
            "properties": {
                "space_ids": _KEYWORD,
                "version": _KEYWORD,
                "alert": {
                    "properties": {
                        "uuid": _KEYWORD,
                        "original_time": _DATE,
                        "start": _DATE,
                        "last_detected": _DATE,
                        "status": _KEYWORD,
                        "workflow_status": _KEYWORD,
                        "building_block_type": _KEYWORD,
                        "instance": {"properties": {"id": _KEYWORD}},
                        "suppression": {
                            "properties": {
                                "docs_count": {"type": "long"},
                                "start": _DATE,
                                "end": _DATE,
                                "terms": {"properties": {"field": _KEYWORD, "value": _KEYWORD}},
                            }
                        },
                        "depth": {"type": "long"},
                        "url": {"type": "keyword", "index": False},
                        "ancestors": {
                            "properties": {
                                "id": _KEYWORD,
                                "index": _KEYWORD,
                                "type": _KEYWORD,
                                "depth": {"type": "long"},
                            }
                        },
                        "rule": {
                            "properties": {
                                "name": _KEYWORD,
                                "uuid": _KEYWORD,
                                "type": _KEYWORD,
                                "category": _KEYWORD,
                                "rule_type_id": _KEYWORD,
                                "interval": _KEYWORD,
                            }
                        },
                    }
                },
            }
        },
        # Kibana keeps the 7.x names as aliases so that old queries still work.
        "signal": {
            "properties": {
                "rule": {
                    "properties": {"type": {"type": "alias", "path": "kibana.alert.rule.type"}}
                }
            }
        },
        "threat": {"properties": {"enrichments": _ENRICHMENTS}},
        **_SOURCE_EVENT,
    },
}
"""The 8.x/9.x security alerts index mapping (the part that matters here)."""

SIGNALS_MAPPINGS: dict[str, object] = {
    "dynamic": False,
    "properties": {
        "@timestamp": _DATE,
        "event": {"properties": {"kind": _KEYWORD}},
        "signal": {
            "properties": {
                "original_time": _DATE,
                "status": _KEYWORD,
                "depth": {"type": "long"},
                "rule": {
                    "properties": {
                        "id": _KEYWORD,
                        "rule_id": _KEYWORD,
                        "name": _KEYWORD,
                        "type": _KEYWORD,
                    }
                },
            }
        },
        "threat": {"properties": {"enrichments": _ENRICHMENTS}},
        **_SOURCE_EVENT,
    },
}
"""A 7.x ``.siem-signals-<space>-*`` mapping."""
