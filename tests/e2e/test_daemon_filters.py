"""Export filters (docs/export-filters.md) through the running daemon, configured from the
environment as a deployment sets them: an indicator that passes is indexed, one that fails any
filter is not, an update that makes an indexed indicator fail one deletes its document (as a
TLP raise does), and one that makes a withheld indicator pass writes it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from elastic_connector.demo.opencti_data import OPENCTI_EXTENSION, Json, make_indicator
from tests.e2e.harness import ConnectorHarness, doc_id, updated

Harnesses = Callable[..., ConnectorHarness]

FILTERS = {
    "CONNECTOR_MIN_SCORE": "50",
    "CONNECTOR_MIN_CONFIDENCE": "40",
    "CONNECTOR_LABELS_INCLUDE": "malicious,c2",
    "CONNECTOR_LABELS_EXCLUDE": "false-positive,internal",
    "CONNECTOR_INDICATOR_TYPES": "ipv4-addr,StixFile",
}


def indicator(
    n: int,
    *,
    score: int = 80,
    confidence: int = 75,
    labels: Sequence[str] = ("Malicious",),
    domain: bool = False,
) -> Json:
    pattern = (
        f"[domain-name:value = 'filtered-{n}.example']"
        if domain
        else f"[ipv4-addr:value = '192.0.2.{n}']"
    )
    return make_indicator(
        pattern,
        score=score,
        confidence=confidence,
        labels=labels,
        main_observable_type="Domain-Name" if domain else "IPv4-Addr",
    )


def changed(
    stix: Mapping[str, object], *, score: int | None = None, **fields: object
) -> tuple[Json, dict[str, object]]:
    """The object after an update in OpenCTI (same ids, newer ``modified``), and the event's
    context (its patch)."""
    result = updated(stix, **fields)
    extensions = result["extensions"]
    assert isinstance(extensions, dict)
    extension = extensions[OPENCTI_EXTENSION]
    operations = [{"op": "replace", "path": f"/{name}", "value": v} for name, v in fields.items()]
    if score is not None:
        extension["score"] = score
        operations.append({"op": "replace", "path": "/x_opencti_score", "value": score})
    return result, {"patch": operations, "reverse_patch": []}


def test_the_export_filters_decide_what_is_indexed_and_an_update_failing_them_deletes(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness(env=FILTERS)
    connector.start()
    passing = indicator(1)
    also_passing = indicator(2, labels=("c2",))
    withheld = {
        "min_score": indicator(3, score=49),
        "min_confidence": indicator(4, confidence=39),
        "labels": indicator(5, labels=("malicious", "false-positive")),  # exclude wins
        "indicator_type": indicator(6, domain=True),
    }
    no_label = indicator(7, labels=())
    everything = [passing, also_passing, *withheld.values(), no_label]
    for stix in everything:
        last = connector.publish("create", stix)
    connector.wait_for_ack(last)

    assert set(connector.documents()) == {doc_id(passing), doc_id(also_passing)}
    daemon = connector.daemon
    for code in ("min_score", "min_confidence", "indicator_type"):
        assert daemon.metric("documents_deleted", code=code) == 1, code
    assert daemon.metric("documents_deleted", code="labels") == 2

    # Updates: the score falls below min_score; an excluded label is added; a withheld
    # indicator's score rises above it.
    connector.publish("update", *changed(passing, score=20))
    connector.publish("update", *changed(also_passing, labels=["c2", "internal"]))
    last = connector.publish("update", *changed(withheld["min_score"], score=50))
    connector.wait_for_ack(last)

    assert set(connector.documents()) == {doc_id(withheld["min_score"])}
    assert daemon.metric("documents_deleted", code="min_score") == 2
    assert daemon.metric("documents_deleted", code="labels") == 3
    assert daemon.running, daemon.tail()
