"""Realistic Elastic Security indicator-match alerts, as hypothesis strategies and plain builders.

An ``AlertSpec`` is the meaning of one alert (who, when, which indicators matched on which
fields); the renderers write it the way Kibana does:

* ``render_8x``: an 8.x/9.x ``.alerts-security.alerts-<space>`` hit, ``kibana.alert.*`` and
  ``event.*`` as flattened dotted keys, the source event nested, ``threat.enrichments`` a nested
  array (shape ``"kibana"``), or fully nested (``"nested"``), or any mixture (``shapes()``);
* ``render_7x``: a 7.x ``.siem-signals-<space>-000001`` hit with nested ``signal.*``.

Enrichments follow Kibana's indicator-match tests: one per matched field, not merged (the same
indicator can appear on ``source.ip`` and on ``source.port``, where ``matched.atomic`` is a
number); ``indicator`` is a copy of the indicator document's ``threat.indicator``. Kinds:
``ours`` (matched.index is our index or one of its backing indices), ``copy`` (another index,
but the indicator copy carries our ``id`` signature [internal id, standard id]) and ``foreign``
(another feed). ``expected_pairs`` is the oracle: the (alert, indicator) pairs that must count.

Reused by the integration tests and the benchmarks: ``build_alert_specs`` and ``render_8x`` /
``render_7x`` work without hypothesis.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

from hypothesis import strategies as st

JsonObject: TypeAlias = dict[str, object]
Kind: TypeAlias = Literal["ours", "copy", "foreign"]
Shape: TypeAlias = Literal["kibana", "nested", "dotted"]
Cut: TypeAlias = Callable[[str], int]

OUR_INDEX = "logs-ti_opencti_connector.indicator"
"""The default ECS indicator index (``config.DEFAULT_ECS_INDEX``)."""
OUR_CONCRETE_INDICES = (OUR_INDEX, f"{OUR_INDEX}-000001", f"{OUR_INDEX}-000042")
COPY_INDICES = ("restored-opencti-indicators", "ti-archive-2024")
FOREIGN_INDICES = (
    "filebeat-8.0.0-2021.01.26-000001",
    ".ds-logs-ti_abusech.malware-default-2024.05.01-000001",
    "logs-ti_misp.threat-default",
)
SPACES = ("default", "soc", "team-2")
RULES = (
    ("Threat Intel IP Address Indicator Match", "0c2e4a0b-4b4f-4e2a-9a5e-0a8a4b1f1c01"),
    ("Threat Intel URL Indicator Match", "0c2e4a0b-4b4f-4e2a-9a5e-0a8a4b1f1c02"),
    ("OpenCTI hashes", "0c2e4a0b-4b4f-4e2a-9a5e-0a8a4b1f1c03"),
)
MATCHES: tuple[tuple[str, str | int, str], ...] = (
    # (matched.field, matched.atomic, indicator type)
    ("source.ip", "45.115.45.3", "ipv4-addr"),
    ("source.port", 57324, "ipv4-addr"),
    ("destination.ip", "159.89.119.67", "ipv4-addr"),
    ("url.full", "http://159.89.119.67:59600/bin.sh", "url"),
    (
        "file.hash.sha256",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "file",
    ),
    ("dns.question.name", "evil.example", "domain-name"),
)
_NAMESPACE = uuid.UUID("d8a2a1c4-7f9e-4c1b-8d0e-3f3b9a4c2e10")
INDICATORS = tuple(str(uuid.uuid5(_NAMESPACE, f"indicator-{n}")) for n in range(6))
"""A small pool of OpenCTI internal ids, so that alerts share indicators."""
BASE_TIME = datetime(2024, 5, 1, tzinfo=UTC)


def standard_id(internal_id: str) -> str:
    """A deterministic STIX standard id for an internal id (shape only; not OpenCTI's rule)."""
    return f"indicator--{uuid.uuid5(_NAMESPACE, internal_id)}"


@dataclass(frozen=True)
class EnrichmentSpec:
    kind: Kind
    indicator: str
    """OpenCTI internal id (ours/copy) or a foreign feed's document id."""
    field: str
    atomic: str | int
    indicator_type: str
    index: str
    with_matched_id: bool = True
    with_indicator_ids: bool = True

    @property
    def sighted(self) -> str | None:
        """The OpenCTI indicator this enrichment must sight (None: not ours)."""
        return None if self.kind == "foreign" else self.indicator

    def flat(self) -> JsonObject:
        """The enrichment as flat dotted keys (rendered into a shape by ``shape``)."""
        doc: JsonObject = {
            "matched.atomic": self.atomic,
            "matched.field": self.field,
            "matched.index": self.index,
            "matched.type": "indicator_match_rule",
            "indicator.type": self.indicator_type,
            "indicator.provider": "OpenCTI" if self.kind != "foreign" else "abuse.ch",
            "indicator.confidence": "High",
        }
        if self.kind == "foreign":
            doc["matched.id"] = self.indicator
            if self.with_indicator_ids:
                doc["indicator.id"] = [self.indicator]
            doc["feed.name"] = "AbuseCH Malware"
            return doc
        if self.with_matched_id:
            # Our document _id is the OpenCTI internal id; a copied index keeps its own _ids.
            doc["matched.id"] = self.indicator if self.kind == "ours" else f"copy-{self.indicator}"
        if self.with_indicator_ids:
            doc["indicator.id"] = [self.indicator, standard_id(self.indicator)]
        doc["feed.name"] = "OpenCTI"
        return doc


@dataclass(frozen=True)
class SuppressionSpec:
    """Alert suppression as Kibana writes it on an alert (``kibana.alert.suppression.*``,
    ``kibana.alert.last_detected``, the rule's ``alert_suppression`` parameters): the alert stands
    for ``1 + docs_count`` matches and is updated in place while its window is open
    (``create_persistence_rule_type_wrapper.ts``)."""

    docs_count: int
    start: datetime
    end: datetime
    last_detected: datetime
    window: tuple[int, str] | None = (1, "h")
    """The rule's ``duration`` (value, unit ``s``/``m``/``h``); None: per rule execution."""
    group_by: tuple[str, ...] = ("source.ip",)

    def flat(self, spec: AlertSpec) -> JsonObject:
        doc: JsonObject = {
            "kibana.alert.suppression.docs_count": self.docs_count,
            "kibana.alert.suppression.start": iso(self.start),
            "kibana.alert.suppression.end": iso(self.end),
            "kibana.alert.suppression.terms": [
                {"field": name, "value": ["45.115.45.3"]} for name in self.group_by
            ],
            "kibana.alert.instance.id": hashlib.sha256(spec.rule_uuid.encode()).hexdigest(),
            "kibana.alert.last_detected": iso(self.last_detected),
        }
        return doc

    def parameters(self) -> JsonObject:
        """The rule's ``alert_suppression`` (snake case) in ``kibana.alert.rule.parameters``."""
        suppression: JsonObject = {
            "group_by": list(self.group_by),
            "missing_fields_strategy": "suppress",
        }
        if self.window is not None:
            suppression["duration"] = {"value": self.window[0], "unit": self.window[1]}
        return suppression


@dataclass(frozen=True)
class AlertSpec:
    uuid: str
    timestamp: datetime
    """Alert creation (``@timestamp``), millisecond precision, UTC."""
    original_time: datetime | None
    rule_name: str
    rule_uuid: str
    space: str
    enrichments: tuple[EnrichmentSpec, ...] = field(default=())
    workflow_status: str = "open"
    building_block: bool = False
    suppression: SuppressionSpec | None = None
    rule_interval: str = "5m"

    @property
    def matches(self) -> int:
        """How many matches this alert stands for (itself and what it suppressed)."""
        return 1 + (self.suppression.docs_count if self.suppression is not None else 0)

    @property
    def seen(self) -> datetime:
        return self.original_time if self.original_time is not None else self.timestamp

    @property
    def timestamp_ms(self) -> int:
        return (self.timestamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def iso(moment: datetime) -> str:
    """``Date.toISOString()``: what Kibana writes."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def expected_pairs(specs: Iterable[AlertSpec]) -> set[tuple[str, str]]:
    """Oracle: the distinct (alert id, OpenCTI indicator id) pairs that are sightings."""
    return {
        (spec.uuid, sighted)
        for spec in specs
        for enrichment in spec.enrichments
        if (sighted := enrichment.sighted) is not None
    }


# --- rendering ------------------------------------------------------------------------------


def shape(flat: Mapping[str, object], cut: Cut) -> JsonObject:
    """Write flat dotted keys as a document: ``cut(path)`` leading parts become nested objects
    and the rest stays one dotted key (0: fully dotted; len-1: fully nested)."""
    root: JsonObject = {}
    for path, value in flat.items():
        parts = path.split(".")
        depth = max(0, min(cut(path), len(parts) - 1))
        node = root
        for part in parts[:depth]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict), f"{path} collides with a leaf"
            node = child
        node[".".join(parts[depth:])] = value
    return root


def nested(path: str) -> int:
    return len(path.split(".")) - 1


def dotted(_path: str) -> int:
    return 0


def kibana_cut(path: str) -> int:
    """How Kibana 8.x writes an alert: its own fields flattened, the rest nested."""
    return 0 if path.startswith(("kibana.", "event.")) else nested(path)


_CUTS: dict[Shape, Cut] = {"kibana": kibana_cut, "nested": nested, "dotted": dotted}


def _source_event(spec: AlertSpec) -> JsonObject:
    """Fields of the source event that stay in the alert (nested in Kibana's writing)."""
    flat: JsonObject = {"host.name": "zeek-sensor-amsterdam", "agent.type": "auditbeat"}
    for enrichment in spec.enrichments:
        flat[enrichment.field] = enrichment.atomic
    return flat


def _enrichments(spec: AlertSpec, enrichment_cut: Cut) -> list[JsonObject]:
    return [shape(e.flat(), enrichment_cut) for e in spec.enrichments]


def flat_8x(spec: AlertSpec, enrichment_cut: Cut = nested) -> JsonObject:
    """An 8.x alert ``_source`` as flat dotted keys."""
    flat: JsonObject = {
        "@timestamp": iso(spec.timestamp),
        "kibana.alert.uuid": spec.uuid,
        "kibana.alert.rule.name": spec.rule_name,
        "kibana.alert.rule.uuid": spec.rule_uuid,
        "kibana.alert.rule.type": "threat_match",
        "kibana.alert.rule.category": "Indicator Match Rule",
        "kibana.alert.rule.rule_type_id": "siem.indicatorRule",
        "kibana.alert.workflow_status": spec.workflow_status,
        "kibana.alert.status": "active",
        "kibana.alert.start": iso(spec.timestamp),
        "kibana.alert.last_detected": iso(spec.timestamp),
        "kibana.alert.rule.interval": spec.rule_interval,
        "kibana.alert.depth": 1,
        "kibana.alert.ancestors": [
            {"id": f"evt-{spec.uuid[:8]}", "type": "event", "index": "auditbeat-8", "depth": 0}
        ],
        "kibana.space_ids": [spec.space],
        "kibana.version": "8.15.0",
        "event.kind": "signal",
        "event.category": "network",
        "threat.enrichments": _enrichments(spec, enrichment_cut),
    }
    if spec.original_time is not None:
        flat["kibana.alert.original_time"] = iso(spec.original_time)
    if spec.building_block:
        flat["kibana.alert.building_block_type"] = "default"
    parameters: JsonObject = {"type": "threat_match", "threat_indicator_path": "threat.indicator"}
    if spec.suppression is not None:
        flat.update(spec.suppression.flat(spec))
        parameters["alert_suppression"] = spec.suppression.parameters()
    # A flattened field: one object under one dotted key, as Kibana writes it.
    flat["kibana.alert.rule.parameters"] = parameters
    flat.update(_source_event(spec))
    return flat


def flat_7x(spec: AlertSpec, enrichment_cut: Cut = nested) -> JsonObject:
    """A 7.x signal ``_source`` as flat dotted keys."""
    flat: JsonObject = {
        "@timestamp": iso(spec.timestamp),
        "signal.rule.name": spec.rule_name,
        "signal.rule.id": spec.rule_uuid,
        "signal.rule.rule_id": f"rule-{spec.rule_uuid[-2:]}",
        "signal.rule.type": "threat_match",
        "signal.status": "open",
        "signal.depth": 1,
        "signal.ancestors": [{"id": f"evt-{spec.uuid[:8]}", "type": "event", "depth": 0}],
        "event.kind": "signal",
        "threat.enrichments": _enrichments(spec, enrichment_cut),
    }
    if spec.original_time is not None:
        flat["signal.original_time"] = iso(spec.original_time)
    flat.update(_source_event(spec))
    return flat


def _hit(index: str, doc_id: str, source: JsonObject, sort: list[object] | None) -> JsonObject:
    hit: JsonObject = {"_index": index, "_id": doc_id, "_score": None, "_source": source}
    if sort is not None:
        hit["sort"] = sort
    return hit


def render_8x(
    spec: AlertSpec,
    shape_name: Shape = "kibana",
    *,
    cut: Cut | None = None,
    enrichment_cut: Cut = nested,
    with_sort: bool = True,
) -> JsonObject:
    """An 8.x search hit on ``.alerts-security.alerts-<space>`` (``sort``: [ms, uuid])."""
    source = shape(flat_8x(spec, enrichment_cut), cut or _CUTS[shape_name])
    sort: list[object] | None = [spec.timestamp_ms, spec.uuid] if with_sort else None
    return _hit(f".internal.alerts-security.alerts-{spec.space}-000001", spec.uuid, source, sort)


def render_7x(
    spec: AlertSpec,
    *,
    cut: Cut = nested,
    enrichment_cut: Cut = nested,
    with_sort: bool = True,
) -> JsonObject:
    """A 7.x search hit on ``.siem-signals-<space>-000001`` (``sort``: [ms, _id])."""
    source = shape(flat_7x(spec, enrichment_cut), cut)
    sort: list[object] | None = [spec.timestamp_ms, spec.uuid] if with_sort else None
    return _hit(f".siem-signals-{spec.space}-000001", spec.uuid, source, sort)


# --- plain builders (benchmarks, integration tests) -----------------------------------------


def build_alert_specs(
    count: int,
    *,
    indicators: tuple[str, ...] = INDICATORS,
    start: datetime = BASE_TIME,
    step: timedelta = timedelta(milliseconds=250),
    foreign_every: int = 3,
) -> list[AlertSpec]:
    """``count`` deterministic alerts, each matching one of ``indicators`` on two fields (ip and
    port, like Kibana's own test) and, every ``foreign_every`` alerts, a foreign feed too."""
    specs: list[AlertSpec] = []
    for n in range(count):
        indicator = indicators[n % len(indicators)]
        rule_name, rule_uuid = RULES[n % len(RULES)]
        enrichments = [
            EnrichmentSpec("ours", indicator, "source.ip", "45.115.45.3", "ipv4-addr", OUR_INDEX),
            EnrichmentSpec("ours", indicator, "source.port", 57324, "ipv4-addr", OUR_INDEX),
        ]
        if foreign_every and n % foreign_every == 0:
            enrichments.append(
                EnrichmentSpec(
                    "foreign", "978785", "source.ip", "45.115.45.3", "ipv4-addr", FOREIGN_INDICES[0]
                )
            )
        moment = start + n * step
        specs.append(
            AlertSpec(
                uuid=str(uuid.uuid5(_NAMESPACE, f"alert-{n}")),
                timestamp=moment,
                original_time=moment - timedelta(seconds=30),
                rule_name=rule_name,
                rule_uuid=rule_uuid,
                space=SPACES[0],
                enrichments=tuple(enrichments),
            )
        )
    return specs


# --- hypothesis strategies ------------------------------------------------------------------

_MILLIS_2020 = 1_577_836_800_000
_MILLIS_2030 = 1_893_456_000_000


def millis_times(low: int = _MILLIS_2020, high: int = _MILLIS_2030) -> st.SearchStrategy[datetime]:
    """UTC datetimes with millisecond precision (what an Elasticsearch ``date`` keeps)."""
    return st.integers(low, high).map(
        lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    )


@st.composite
def enrichment_specs(
    draw: st.DrawFn, kinds: tuple[Kind, ...] = ("ours", "copy", "foreign")
) -> EnrichmentSpec:
    kind = draw(st.sampled_from(kinds))
    field_name, atomic, indicator_type = draw(st.sampled_from(MATCHES))
    if kind == "foreign":
        return EnrichmentSpec(
            kind,
            draw(st.sampled_from(("978785", "978787", "a1b2c3", *INDICATORS[:1]))),
            field_name,
            atomic,
            indicator_type,
            draw(st.sampled_from(FOREIGN_INDICES)),
            with_indicator_ids=draw(st.booleans()),
        )
    indicator = draw(st.sampled_from(INDICATORS))
    if kind == "copy":
        index = draw(st.sampled_from(COPY_INDICES))
        return EnrichmentSpec(
            kind, indicator, field_name, atomic, indicator_type, index, draw(st.booleans())
        )
    with_matched_id, with_ids = draw(st.sampled_from(((True, True), (True, False), (False, True))))
    index = draw(st.sampled_from(OUR_CONCRETE_INDICES))
    return EnrichmentSpec(
        kind, indicator, field_name, atomic, indicator_type, index, with_matched_id, with_ids
    )


@st.composite
def alert_specs(
    draw: st.DrawFn,
    kinds: tuple[Kind, ...] = ("ours", "copy", "foreign"),
    times: st.SearchStrategy[datetime] | None = None,
) -> AlertSpec:
    """One alert with 0-4 enrichments drawn from a small indicator pool (duplicates likely)."""
    timestamp = draw(times if times is not None else millis_times())
    original = draw(
        st.one_of(
            st.none(),
            st.integers(0, 86_400_000).map(lambda ms: timestamp - timedelta(milliseconds=ms)),
        )
    )
    rule_name, rule_uuid = draw(st.sampled_from(RULES))
    return AlertSpec(
        uuid=str(draw(st.uuids())),
        timestamp=timestamp,
        original_time=original,
        rule_name=rule_name,
        rule_uuid=rule_uuid,
        space=draw(st.sampled_from(SPACES)),
        enrichments=tuple(draw(st.lists(enrichment_specs(kinds), max_size=4))),
    )


def alert_spec_lists(
    max_size: int = 12, times: st.SearchStrategy[datetime] | None = None
) -> st.SearchStrategy[list[AlertSpec]]:
    """Alerts with distinct ids (timestamps may collide: the tiebreaker must break ties)."""
    return st.lists(alert_specs(times=times), max_size=max_size, unique_by=lambda s: s.uuid)


@st.composite
def cuts(draw: st.DrawFn) -> Cut:
    """A random mixture of dotted and nested writing, fixed per path within one document."""
    chosen: dict[str, int] = {}
    seed = draw(st.integers(0, 2**32 - 1))

    def cut(path: str) -> int:
        if path not in chosen:
            # A stable digest, not hash(): str hashes change between runs and break replays.
            digest = hashlib.sha256(f"{seed}:{path}".encode()).digest()
            chosen[path] = int.from_bytes(digest[:4], "big") % len(path.split("."))
        return chosen[path]

    return cut


@st.composite
def alert_hits(draw: st.DrawFn, specs: st.SearchStrategy[AlertSpec] | None = None) -> JsonObject:
    """A realistic hit in any generation and writing: 8.x (Kibana's, nested, mixed) or 7.x."""
    spec = draw(specs if specs is not None else alert_specs())
    generation = draw(st.sampled_from(("8x", "8x-mixed", "7x")))
    enrichment_cut = draw(st.sampled_from((nested, dotted)))
    with_sort = draw(st.booleans())
    if generation == "7x":
        return render_7x(spec, enrichment_cut=enrichment_cut, with_sort=with_sort)
    if generation == "8x-mixed":
        return render_8x(spec, cut=draw(cuts()), enrichment_cut=enrichment_cut, with_sort=with_sort)
    return render_8x(spec, enrichment_cut=enrichment_cut, with_sort=with_sort)


json_scalars: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values: st.SearchStrategy[object] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)
"""Arbitrary JSON values."""

_KEYS = (
    "@timestamp",
    "_id",
    "_index",
    "_source",
    "kibana.alert.uuid",
    "kibana.alert.original_time",
    "kibana.alert.rule.name",
    "kibana.space_ids",
    "signal",
    "threat",
    "threat.enrichments",
    "matched",
    "matched.id",
    "indicator.id",
)


@st.composite
def alert_like_json(draw: st.DrawFn) -> object:
    """JSON that looks like an alert but has arbitrary values in the fields the decoder reads
    (the decoder's error paths), sometimes starting from a real hit."""
    if draw(st.booleans()):
        hit = draw(alert_hits())
        source = hit["_source"]
        assert isinstance(source, dict)
        for key in draw(st.lists(st.sampled_from(_KEYS), max_size=3)):
            source[key] = draw(json_values)
        if draw(st.booleans()):
            hit[draw(st.sampled_from(("_id", "_index", "_source", "sort")))] = draw(json_values)
        return hit
    return draw(st.dictionaries(st.sampled_from(_KEYS), json_values, max_size=6))
