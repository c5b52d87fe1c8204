"""Section 4: alert polling, alerts -> sightings in the pure core.

Hits are 8.x indicator-match alerts as Kibana writes them (built by the test suite's
``build_alert_specs``/``render_8x``: each alert matches one of six indicators on two fields,
every third one also a foreign feed). A poll reads pages of ``page_size`` hits; each page is
decoded (``core.sightings.alerts.decode_hit``) and aggregated into sightings
(``core.sightings.aggregate``).
Two inputs are timed: the hits as decoded dicts (what the poller gets from the Elasticsearch
client) and as JSON lines (what ``elastic-connector sightings`` reads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
from returns.result import Success

from benchmarks.mapping import best_time
from elastic_connector.core.config import DEFAULT_ECS_INDEX
from elastic_connector.core.sightings import Alert, OwnershipRule, aggregate, decode_hit

PAGE_SIZE = 1000
"""``sightings.page_size`` default."""
KIBANA_URL = "https://kibana.example.org"
_OURS = OwnershipRule(indices=(DEFAULT_ECS_INDEX,))


class AlertsResult(msgspec.Struct, frozen=True):
    alerts: int
    page_size: int
    sightings_per_page: float
    alerts_per_s: float
    us_per_alert: float
    alerts_per_s_from_json: float
    us_per_alert_from_json: float


def build_hits(count: int) -> list[dict[str, object]]:
    """``count`` deterministic 8.x alert hits (see the module documentation)."""
    # The builders live with the alert test strategies; they need no hypothesis at run time
    # but import it, which the benchmark environment (extra ``test``) has.
    from tests.core.sightings.alert_strategies import build_alert_specs, render_8x

    return [render_8x(spec) for spec in build_alert_specs(count)]


Hit = bytes | Mapping[str, object]


def _poll(pages: Sequence[Sequence[Hit]]) -> int:
    sightings = 0
    for page in pages:
        alerts: list[Alert] = []
        for hit in page:
            decoded = decode_hit(hit)
            if isinstance(decoded, Success):
                alerts.append(decoded.unwrap())
        sightings += len(aggregate(alerts, _OURS, KIBANA_URL).sightings)
    return sightings


def _pages(items: Sequence[Hit], size: int) -> list[Sequence[Hit]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def run_alerts(count: int, repeats: int, page_size: int = PAGE_SIZE) -> AlertsResult:
    """Section 4 over ``count`` alerts."""
    hits = build_hits(count)
    lines = [msgspec.json.encode(hit) for hit in hits]
    dict_pages = _pages(hits, page_size)
    json_pages = _pages(lines, page_size)
    sightings = _poll(dict_pages)
    from_dicts = best_time(lambda: _poll(dict_pages), repeats)
    from_json = best_time(lambda: _poll(json_pages), repeats)
    return AlertsResult(
        alerts=count,
        page_size=page_size,
        sightings_per_page=sightings / max(1, len(dict_pages)),
        alerts_per_s=count / from_dicts,
        us_per_alert=from_dicts / count * 1e6,
        alerts_per_s_from_json=count / from_json,
        us_per_alert_from_json=from_json / count * 1e6,
    )
