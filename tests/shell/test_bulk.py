"""The bulk writer: pure helpers (hypothesis) and its behaviour through the real client against
the test cluster, with transient failures produced by the fault-injecting proxy. Waits use a
fake sleep, so retries cost no time and no assertion depends on timing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import msgspec
import pytest
from elasticsearch import Elasticsearch
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config import CloudSettings, ElasticsearchSettings
from elastic_connector.shell.bulk import (
    MAX_BOUNDED_ITEM_ATTEMPTS,
    BulkStopped,
    BulkWriter,
    ItemError,
    ItemOutcome,
    WriteAction,
    WriterHealth,
    collapse,
    encode_action,
    item_outcome,
    plan_batches,
)
from elastic_connector.shell.elastic import PermanentElasticsearchError, build_client
from elastic_connector.shell.index_setup import ensure_setup
from tests.support.faulty_proxy import (
    Disconnect,
    FailBulkItems,
    FaultyProxy,
    Reply,
    Stall,
    bulk_ids,
    es_error_body,
    forbidden_reply,
    unauthorized_reply,
)

MAPPINGS: dict[str, object] = {
    "dynamic": "strict",
    "properties": {
        "n": {"type": "long"},
        "name": {"type": "keyword"},
        "ip": {"type": "ip"},
    },
}


def up(index: str, doc_id: str, **fields: object) -> Upsert:
    return Upsert(index, doc_id, json.dumps(fields, separators=(",", ":")).encode())


def rm(index: str, doc_id: str) -> Delete:
    return Delete(index, doc_id, code="deleted", reason="deleted in OpenCTI")


class FakeSleep:
    """Records the waits; optionally sets ``stop`` after ``stop_after`` of them."""

    def __init__(self, stop: threading.Event | None = None, stop_after: int | None = None):
        self.delays: list[float] = []
        self._stop = stop
        self._stop_after = stop_after

    def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._stop is not None and len(self.delays) == self._stop_after:
            self._stop.set()


@pytest.fixture
def index(es_client: Elasticsearch, es_prefix: str) -> str:
    name = f"{es_prefix}.bulk"
    ensure_setup(es_client, index=name, mappings=MAPPINGS, settings={"number_of_shards": 1})
    return name


@pytest.fixture
def proxied_client(proxied_settings: ElasticsearchSettings) -> Elasticsearch:
    return build_client(proxied_settings, CloudSettings())


def writer(
    client: Elasticsearch,
    sleep: Callable[[float], object] | None = None,
    *,
    max_actions: int = 500,
    max_bytes: int = 5_000_000,
    base_backoff: float = 0.5,
    max_backoff: float = 60.0,
    stop: threading.Event | None = None,
) -> BulkWriter:
    """A writer that refreshes (tests read right after writing), waits with a fake sleep and
    always draws the top of the jitter range (``random() == 1.0``)."""
    return BulkWriter(
        client,
        require_alias=True,
        refresh=True,
        max_actions=max_actions,
        max_bytes=max_bytes,
        base_backoff=base_backoff,
        max_backoff=max_backoff,
        stop=stop,
        sleep=sleep or FakeSleep(),
        random=lambda: 1.0,
    )


def source(client: Elasticsearch, index: str, doc_id: str) -> dict[str, object] | None:
    found = client.options(ignore_status=404).get(index=index, id=doc_id).body
    return found.get("_source") if found.get("found") else None


def bulk_requests(proxy: FaultyProxy) -> list[list[str | None]]:
    return [bulk_ids(r.body) for r in proxy.requests if r.path.startswith("/_bulk")]


# --- pure helpers ------------------------------------------------------------------------------

_ids = st.sampled_from(["a", "b", "c", "d", "é", 'q"uote', "new\nline"])
_indices = st.sampled_from(["ti", "other"])
_actions = st.lists(
    st.one_of(
        st.builds(
            lambda i, d, n: Upsert(i, d, json.dumps({"n": n}).encode()),
            _indices,
            _ids,
            st.integers(),
        ),
        st.builds(lambda i, d: Delete(i, d, code="deleted", reason=""), _indices, _ids),
    ),
    max_size=30,
)


@given(_actions)
def test_collapse_keeps_the_last_action_per_document_in_order(actions: list[WriteAction]) -> None:
    result = collapse(actions)
    keys = [(a.index, a.id) for a in result]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(a.index, a.id) for a in actions}
    last = {(a.index, a.id): a for a in actions}
    assert all(a is last[(a.index, a.id)] for a in result)
    positions = [max(i for i, b in enumerate(actions) if b is a) for a in result]
    assert positions == sorted(positions)
    assert collapse(result) == result


@given(_actions)
def test_encoded_actions_round_trip_and_keep_document_bytes(actions: list[WriteAction]) -> None:
    for action in actions:
        lines = encode_action(action)
        assert lines.endswith(b"\n")
        parts = lines.split(b"\n")[:-1]
        meta = json.loads(parts[0])
        if isinstance(action, Upsert):
            assert meta == {"index": {"_index": action.index, "_id": action.id}}
            assert parts[1] == action.document
            assert len(parts) == 2
        else:
            assert meta == {"delete": {"_index": action.index, "_id": action.id}}
            assert len(parts) == 1


@pytest.mark.parametrize("document", [b"", b"  ", b'{"a":\n1}', b'{"a":1}\r'])
def test_documents_that_would_break_the_framing_are_refused(document: bytes) -> None:
    with pytest.raises(ValueError, match=r"empty|line break"):
        encode_action(Upsert("ti", "1", document))


@given(
    st.lists(st.integers(min_value=1, max_value=500), max_size=60),
    st.integers(min_value=1, max_value=10),
    st.integers(min_value=1, max_value=1500),
)
def test_batches_cover_everything_in_order_within_limits(
    sizes: list[int], max_actions: int, max_bytes: int
) -> None:
    batches = plan_batches(sizes, max_actions, max_bytes)
    assert [i for b in batches for i in b] == list(range(len(sizes)))
    for number, batch in enumerate(batches):
        total = sum(sizes[i] for i in batch)
        assert 1 <= len(batch) <= max_actions
        assert total <= max_bytes or len(batch) == 1
        if number + 1 < len(batches):  # greedy: the next item would not have fitted
            following = sizes[batches[number + 1][0]]
            assert len(batch) == max_actions or total + following > max_bytes


_item_errors = st.one_of(
    st.none(),
    st.builds(
        ItemError,
        type=st.sampled_from(
            [
                "mapper_parsing_exception",
                "index_not_found_exception",
                "index_closed_exception",
                "illegal_argument_exception",
                "circuit_breaking_exception",
                "es_rejected_execution_exception",
            ]
        ),
        reason=st.sampled_from(["boom", "no write index is defined for alias [ti]. The write..."]),
        durability=st.sampled_from([None, "TRANSIENT", "PERMANENT"]),
    ),
)


@given(st.sampled_from(["index", "create", "delete", "update"]), st.integers(0, 999), _item_errors)
def test_item_outcome_rules(op: str, status: int, error: ItemError | None) -> None:
    outcome = item_outcome(op, status, error)
    target = error is not None and (
        error.type == "index_closed_exception"
        or (
            error.type == "illegal_argument_exception"
            and "no write index is defined for alias" in (error.reason or "")
        )
    )
    if 200 <= status <= 299:
        assert outcome is ItemOutcome.DONE
    elif status == 404:
        # Only a delete answered "not found" *without* an error is already gone.
        gone = op == "delete" and error is None
        assert outcome is (ItemOutcome.ABSENT if gone else ItemOutcome.FATAL)
    elif target:
        assert outcome is ItemOutcome.FATAL
    elif (
        status == 429
        and error is not None
        and error.type == "circuit_breaking_exception"
        and error.durability == "PERMANENT"
    ):
        assert outcome is ItemOutcome.SPLIT
    elif status in (429, 502, 503, 504):
        assert outcome is ItemOutcome.RETRY
    elif 500 <= status <= 599:
        assert outcome is ItemOutcome.RETRY_BOUNDED
    elif status in (401, 403):
        assert outcome is ItemOutcome.FATAL
    else:
        assert outcome is ItemOutcome.REJECT


# --- writing -----------------------------------------------------------------------------------


def test_upserts_and_deletes_are_applied(es_client: Elasticsearch, index: str) -> None:
    first = writer(es_client).write([up(index, "a", n=1), up(index, "b", n=2), up(index, "c", n=3)])
    assert (first.written, first.deleted, first.rejected, first.retries) == (3, 0, (), 0)

    second = writer(es_client).write([rm(index, "a"), up(index, "b", n=20)])
    assert (second.written, second.deleted) == (1, 1)
    assert source(es_client, index, "a") is None
    assert source(es_client, index, "b") == {"n": 20}
    assert source(es_client, index, "c") == {"n": 3}


def test_deleting_a_missing_document_is_success(es_client: Elasticsearch, index: str) -> None:
    result = writer(es_client).write([rm(index, "never-written")])
    assert result.deleted == 1
    assert result.rejected == ()


def test_a_bad_document_is_rejected_with_id_and_reason_while_others_are_written(
    es_client: Elasticsearch, index: str, caplog: pytest.LogCaptureFixture
) -> None:
    actions = [
        up(index, "good-1", n=1),
        up(index, "bad-type", n="not a number"),
        up(index, "bad-ip", ip="10.0.0.0/8"),
        up(index, "unmapped", surprise=True),
        up(index, "good-2", n=2),
    ]
    result = writer(es_client).write(actions)

    assert result.written == 2
    assert result.retries == 0
    rejected = {r.id: r for r in result.rejected}
    assert set(rejected) == {"bad-type", "bad-ip", "unmapped"}
    assert all(r.status == 400 and r.index == index for r in rejected.values())
    assert "[n]" in rejected["bad-type"].reason
    assert "10.0.0.0/8" in rejected["bad-ip"].reason
    assert "strict_dynamic_mapping_exception" in rejected["unmapped"].reason
    assert source(es_client, index, "good-1") == {"n": 1}
    assert source(es_client, index, "good-2") == {"n": 2}
    assert "bad-type" in caplog.text


def test_document_bytes_are_sent_exactly_as_given(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    document = b'{"name":"caf\\u00e9",  "n":  7}'  # escapes and spacing a re-encode would change
    writer(proxied_client).write([Upsert(index, "raw", document)])
    (request,) = [r for r in faulty_proxy.requests if r.path.startswith("/_bulk")]
    assert b"\n" + document + b"\n" in request.body
    assert source(proxied_client, index, "raw") == {"name": "café", "n": 7}


def test_later_actions_on_the_same_document_win(es_client: Elasticsearch, index: str) -> None:
    actions: list[WriteAction] = [
        up(index, "x", n=1),
        rm(index, "x"),
        up(index, "x", n=3),
        up(index, "y", n=1),
    ]
    result = writer(es_client).write(actions)
    assert result.superseded == 2
    assert (result.written, result.deleted) == (2, 0)
    assert source(es_client, index, "x") == {"n": 3}

    result = writer(es_client).write([up(index, "y", n=2), rm(index, "y")])
    assert (result.written, result.deleted, result.superseded) == (0, 1, 1)
    assert source(es_client, index, "y") is None


def test_unframeable_document_is_rejected_locally(es_client: Elasticsearch, index: str) -> None:
    result = writer(es_client).write([Upsert(index, "ml", b'{"n":\n1}'), up(index, "ok", n=1)])
    assert result.written == 1
    ((rejection),) = result.rejected
    assert (rejection.id, rejection.status) == ("ml", 0)
    assert "line break" in rejection.reason


def test_batches_respect_count_and_size_limits(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    actions = [up(index, f"d{i}", n=i) for i in range(10)]
    result = writer(proxied_client, max_actions=3).write(actions)
    assert result.written == 10
    assert [len(ids) for ids in bulk_requests(faulty_proxy)] == [3, 3, 3, 1]

    faulty_proxy.requests.clear()
    size = len(encode_action(actions[0]))
    writer(proxied_client, max_bytes=2 * size).write(actions)
    assert [len(ids) for ids in bulk_requests(faulty_proxy)] == [2, 2, 2, 2, 2]
    assert all(
        len(r.body) <= 2 * size for r in faulty_proxy.requests if r.path.startswith("/_bulk")
    )


def test_writing_to_a_missing_alias_is_a_permanent_error(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    missing = f"{es_prefix}.not-set-up"
    with pytest.raises(PermanentElasticsearchError, match="does not exist") as info:
        writer(es_client).write([up(missing, "a", n=1)])
    assert missing in info.value.message
    assert not es_client.indices.exists(index=missing), "no index may be auto-created"


# --- transient failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Reply(503, es_error_body(503, "unavailable_shards_exception", "primary shard inactive")),
        Reply(429, es_error_body(429, "es_rejected_execution_exception", "queue full")),
        Reply(502, b"<html>Bad Gateway</html>", {"content-type": "text/html"}),
        Disconnect(),
    ],
    ids=["503", "429", "502-html", "disconnect"],
)
def test_whole_request_failures_are_retried_until_they_pass(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str, fault: Reply | Disconnect
) -> None:
    faulty_proxy.inject(fault, times=3, path="/_bulk")
    sleep = FakeSleep()
    result = writer(proxied_client, sleep).write([up(index, "a", n=1), rm(index, "b")])

    assert (result.written, result.deleted, result.retries) == (1, 1, 3)
    assert len(sleep.delays) == 3
    assert len(bulk_requests(faulty_proxy)) == 4
    assert source(proxied_client, index, "a") == {"n": 1}


def test_health_reports_a_write_being_retried_and_clears_when_it_passes(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(
        Reply(503, es_error_body(503, "unavailable_shards_exception", "primary shard inactive")),
        times=2,
        path="/_bulk",
    )
    seen: list[WriterHealth] = []
    bulk: BulkWriter | None = None

    def sleep(_delay: float) -> None:
        assert bulk is not None
        seen.append(bulk.health())

    bulk = writer(proxied_client, sleep)
    assert bulk.health() == WriterHealth(failing_for=None, last_error=None)
    bulk.write([up(index, "a", n=1)])

    assert len(seen) == 2
    assert all(h.failing_for is not None and h.failing_for >= 0 for h in seen)
    assert all("503" in (h.last_error or "") for h in seen)
    assert bulk.health() == WriterHealth(failing_for=None, last_error=None)


def test_timeouts_are_retried(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy, index: str
) -> None:
    client = build_client(
        msgspec.structs.replace(proxied_settings, request_timeout=0.2), CloudSettings()
    )
    faulty_proxy.inject(Stall(30.0), times=1, path="/_bulk")
    result = writer(client).write([up(index, "slow", n=1)])
    assert (result.written, result.retries) == (1, 1)


def test_backoff_doubles_up_to_the_cap_and_resets_after_success(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(Reply(503, es_error_body(503, "x", "y")), times=6, path="/_bulk")
    sleep = FakeSleep()
    bulk = writer(proxied_client, sleep, base_backoff=0.5, max_backoff=4.0)
    bulk.write([up(index, "a", n=1)])
    # random() == 1.0 gives the ceiling of each step: 0.5 * 2**attempt, capped.
    assert sleep.delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]

    faulty_proxy.inject(Reply(503, es_error_body(503, "x", "y")), times=1, path="/_bulk")
    bulk.write([up(index, "b", n=1)])
    assert sleep.delays[-1] == 0.5


def test_only_refused_items_are_sent_again(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(FailBulkItems(ids=frozenset({"b", "d"})), times=1, path="/_bulk")
    actions = [up(index, i, n=n) for n, i in enumerate("abcde")]
    result = writer(proxied_client).write(actions)

    assert (result.written, result.retries, result.rejected) == (5, 1, ())
    assert bulk_requests(faulty_proxy) == [["a", "b", "c", "d", "e"], ["b", "d"]]
    assert all(source(proxied_client, index, i) is not None for i in "abcde")


def test_retried_item_cannot_be_overtaken_by_an_older_version(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(FailBulkItems(ids=frozenset({"x"})), times=2, path="/_bulk")
    actions = [up(index, "x", n=1), up(index, "y", n=1), up(index, "x", n=2)]
    writer(proxied_client, max_actions=1).write(actions)
    assert source(proxied_client, index, "x") == {"n": 2}
    assert bulk_requests(faulty_proxy).count(["x"]) == 3


def test_item_server_errors_give_up_after_a_bound(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    poison = FailBulkItems(
        status=500, error_type="null_pointer_exception", reason="boom", ids=frozenset({"p"})
    )
    faulty_proxy.inject(poison, times=None, path="/_bulk")
    result = writer(proxied_client).write([up(index, "p", n=1), up(index, "ok", n=1)])

    assert result.written == 1
    ((rejection),) = result.rejected
    assert (rejection.id, rejection.status) == ("p", 500)
    assert "null_pointer_exception" in rejection.reason
    assert len(bulk_requests(faulty_proxy)) == MAX_BOUNDED_ITEM_ATTEMPTS


def test_too_large_request_is_split_and_a_single_too_large_document_rejected(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(Reply(413, b"", {}), times=1, path="/_bulk")
    actions = [up(index, f"d{i}", n=i) for i in range(4)]
    result = writer(proxied_client).write(actions)
    assert result.written == 4
    assert bulk_requests(faulty_proxy)[1:] == [["d0", "d1"], ["d2", "d3"]]

    faulty_proxy.inject(Reply(413, b"", {}), times=1, path="/_bulk")
    result = writer(proxied_client).write([up(index, "huge", n=1)])
    ((rejection),) = result.rejected
    assert (rejection.id, rejection.status) == ("huge", 413)


def test_too_large_retry_splits_only_what_is_left(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(FailBulkItems(ids=frozenset({"b"})), times=1, path="/_bulk")
    faulty_proxy.inject(Reply(413, b"", {}), times=1, path="/_bulk")
    result = writer(proxied_client).write([up(index, i, n=1) for i in "abc"])
    assert result.written == 2
    assert [(r.id, r.status) for r in result.rejected] == [("b", 413)]
    assert bulk_requests(faulty_proxy) == [["a", "b", "c"], ["b"]]


def test_stop_event_interrupts_an_outage(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(Disconnect(), times=None, path="/_bulk")
    stop = threading.Event()
    sleep = FakeSleep(stop, stop_after=5)
    bulk = writer(proxied_client, sleep, stop=stop, max_actions=2)
    with pytest.raises(BulkStopped) as info:
        bulk.write([up(index, i, n=1) for i in "abc"])
    assert info.value.unacknowledged == 3
    assert info.value.result.written == 0
    assert len(sleep.delays) == 5


def test_stop_counts_only_what_is_still_unacknowledged(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(FailBulkItems(ids=frozenset({"b"})), times=None, path="/_bulk")
    stop = threading.Event()
    bulk = writer(proxied_client, FakeSleep(stop, stop_after=2), stop=stop, max_actions=3)
    with pytest.raises(BulkStopped) as info:
        bulk.write([up(index, i, n=1) for i in "abcde"])
    assert info.value.result.written == 2  # a and c went through in the first request
    assert info.value.unacknowledged == 3  # b, and the batch of d and e never sent
    assert source(proxied_client, index, "a") == {"n": 1}


def test_stop_event_wakes_the_default_wait(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(Disconnect(), times=None, path="/_bulk")
    stop = threading.Event()
    bulk = BulkWriter(
        proxied_client, require_alias=True, stop=stop, base_backoff=3600, max_backoff=3600
    )
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            bulk.write([up(index, "a", n=1)])
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    for _ in range(3000):  # until the first attempt failed and the writer is waiting
        if bulk_requests(faulty_proxy):
            break
        thread.join(0.01)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome[0], BulkStopped)


# --- permanent failures ------------------------------------------------------------------------


def test_401_raises_a_permanent_error_with_the_description(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(unauthorized_reply(), path="/_bulk")
    with pytest.raises(PermanentElasticsearchError, match="rejected the credentials") as info:
        writer(proxied_client).write([up(index, "a", n=1)])
    assert info.value.status == 401


def test_403_raises_a_permanent_error_naming_the_privilege(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(forbidden_reply(index=index), path="/_bulk")
    with pytest.raises(PermanentElasticsearchError, match="create_doc") as info:
        writer(proxied_client).write([up(index, "a", n=1)])
    assert info.value.status == 403
    assert index in info.value.message


def test_item_level_403_raises_too(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    reason = (
        f"action [indices:data/write/bulk[s]] is unauthorized for user [connector] with "
        f"effective roles [reader] on indices [{index}-000001], this action is granted by the "
        "index privileges [create_doc,create,delete,index,write,all]"
    )
    faulty_proxy.inject(
        FailBulkItems(status=403, error_type="security_exception", reason=reason),
        path="/_bulk",
    )
    with pytest.raises(PermanentElasticsearchError, match="missing privilege"):
        writer(proxied_client).write([up(index, "a", n=1)])


# --- problems of the target: stall and report, never drop ---------------------------------------


def test_a_delete_into_a_missing_index_is_not_already_gone(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    # The cluster answers 404 with an index_not_found_exception (the alias was removed): the
    # document may still exist behind a restored alias, so the delete is not done.
    missing = f"{es_prefix}.removed"
    with pytest.raises(PermanentElasticsearchError, match="does not exist") as info:
        writer(es_client).write([rm(missing, "a")])
    assert info.value.status == 404
    assert missing in info.value.message


def test_an_alias_without_a_write_index_stalls_the_write(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    alias = f"{es_prefix}.nowrite"
    for number in (1, 2):
        es_client.indices.create(index=f"{alias}-00000{number}", aliases={alias: {}})
    with pytest.raises(PermanentElasticsearchError, match="has no write index") as info:
        writer(es_client).write([up(alias, "a", n=1)])
    assert alias in info.value.message


def test_a_closed_index_stalls_the_write(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    # noida-db writes into a closed index; Elasticsearch answers each item 400
    # index_closed_exception (IndexClosedException), which is about the index, not the document.
    closed = FailBulkItems(
        status=400,
        error_type="index_closed_exception",
        reason="closed",
        extra={"index": f"{index}-000001"},
    )
    faulty_proxy.inject(closed, path="/_bulk")
    with pytest.raises(PermanentElasticsearchError, match="is closed") as info:
        writer(proxied_client).write([up(index, "a", n=1), up(index, "b", n=2)])
    assert f"{index}-000001" in info.value.message


def _breaker_body(durability: str) -> dict[str, object]:
    body = es_error_body(
        429,
        "circuit_breaking_exception",
        "[parent] Data too large, data for [<http_request>] would be [1031798784/984mb], "
        "which is larger than the limit of [1020054732/972.7mb]",
    )
    error = body["error"]
    assert isinstance(error, dict)
    error.update(bytes_wanted=1031798784, bytes_limit=1020054732, durability=durability)
    return body


def test_a_permanent_circuit_breaker_splits_the_request(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(Reply(429, _breaker_body("PERMANENT")), times=1, path="/_bulk")
    sleep = FakeSleep()
    result = writer(proxied_client, sleep).write([up(index, f"d{i}", n=i) for i in range(4)])
    assert result.written == 4
    assert bulk_requests(faulty_proxy) == [["d0", "d1", "d2", "d3"], ["d0", "d1"], ["d2", "d3"]]
    assert sleep.delays == []


def test_a_document_that_alone_trips_a_permanent_breaker_is_rejected_not_retried(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    # times=5, not forever: a writer that retried it unchanged would end up writing it.
    faulty_proxy.inject(Reply(429, _breaker_body("PERMANENT")), times=5, path="/_bulk")
    result = writer(proxied_client).write([up(index, "huge", n=1)])
    ((rejection),) = result.rejected
    assert (rejection.id, rejection.status) == ("huge", 429)
    assert "circuit_breaking_exception" in rejection.reason
    assert len(bulk_requests(faulty_proxy)) == 1


def test_item_level_permanent_breaker_sends_the_item_alone_then_rejects_it(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    breaker = FailBulkItems(
        status=429,
        error_type="circuit_breaking_exception",
        reason="[parent] Data too large",
        ids=frozenset({"big"}),
        extra={"durability": "PERMANENT"},
    )
    faulty_proxy.inject(breaker, times=5, path="/_bulk")
    result = writer(proxied_client).write([up(index, i, n=1) for i in ("a", "big", "c")])
    assert result.written == 2
    assert [(r.id, r.status) for r in result.rejected] == [("big", 429)]
    assert bulk_requests(faulty_proxy) == [["a", "big", "c"], ["big"]]


def test_a_transient_circuit_breaker_is_waited_out(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    faulty_proxy.inject(Reply(429, _breaker_body("TRANSIENT")), times=2, path="/_bulk")
    sleep = FakeSleep()
    result = writer(proxied_client, sleep).write([up(index, "a", n=1), up(index, "b", n=1)])
    assert (result.written, result.retries, len(sleep.delays)) == (2, 2, 2)
    assert bulk_requests(faulty_proxy) == [["a", "b"]] * 3


def test_writer_from_settings_uses_the_configured_limits(
    proxied_client: Elasticsearch, faulty_proxy: FaultyProxy, index: str
) -> None:
    settings = ElasticsearchSettings(bulk_max_actions=2, retry_max_backoff=1.0)
    bulk = BulkWriter.from_settings(proxied_client, settings, require_alias=True)
    bulk.write([up(index, i, n=1) for i in "abcde"])
    assert [len(ids) for ids in bulk_requests(faulty_proxy)] == [2, 2, 1]
