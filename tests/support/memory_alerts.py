"""In-memory stand-ins for the property tests of the sighting loop, where hundreds of scenarios
must run in seconds:

* ``MemoryAlerts``: the part of the Elasticsearch client the alert poller uses (search with a
  point in time, plain ``search_after``, ``ids`` lookups), over alert documents held in memory.
  It evaluates the poller's own query bodies (``bool`` filter/must_not/should, ``range`` on
  ``@timestamp`` in epoch milliseconds, ``term``, ``ids``), sorts on ``@timestamp`` then
  ``kibana.alert.uuid`` (plus a shard-doc tiebreaker inside a point in time, which sees the data
  as it was when it was opened, as Elasticsearch's does) and honours ``search_after``/``size``.
  Documents can be hidden (not searchable yet) and updated in place, as Kibana's are: an alert
  searchable well after its ``@timestamp``, suppression and analysts changing it in place
  (shared/reference/elastic.md, "Kibana stamps @timestamp..." and "Kibana updates alerts in
  place"); the point in time as Elasticsearch's (same file, "A search without size...").
* ``in_process_api``: a real pycti client whose HTTP requests are answered by the OpenCTI
  stand-in's GraphQL handler directly, without a socket.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from pycti import OpenCTIApiClient

from elastic_connector.core.sightings.aggregation import epoch_millis
from elastic_connector.core.sightings.alerts import get_path, parse_time
from elastic_connector.demo.opencti_standin import OpenCTIStandin

JsonObject = dict[str, object]


class _Answer:
    def __init__(self, body: JsonObject) -> None:
        self.body = body


class _Doc:
    def __init__(self, index: str, doc_id: str, source: JsonObject, seq: int) -> None:
        self.index = index
        self.id = doc_id
        self.source = source
        self.seq = seq
        """Insertion order: the shard-doc tiebreaker inside a point in time."""

    @property
    def timestamp_ms(self) -> int:
        moment = parse_time(self.source.get("@timestamp"))
        assert not isinstance(moment, str), moment
        return epoch_millis(moment)

    @property
    def uuid(self) -> str:
        value = get_path(self.source, "kibana.alert.uuid")
        return value if isinstance(value, str) else ""


def _matches(query: object, doc: _Doc) -> bool:
    if not isinstance(query, Mapping) or not query:
        return True
    ((kind, spec),) = query.items()
    if kind == "bool":
        assert isinstance(spec, Mapping)
        for clause in [*spec.get("filter", []), *spec.get("must", [])]:
            if not _matches(clause, doc):
                return False
        if any(_matches(clause, doc) for clause in spec.get("must_not", [])):
            return False
        should = spec.get("should", [])
        if should:
            wanted = int(spec.get("minimum_should_match", 1))
            return sum(_matches(clause, doc) for clause in should) >= wanted
        return True
    if kind == "range":
        ((field, bounds),) = spec.items()
        assert field == "@timestamp", spec
        assert bounds.get("format") == "epoch_millis", spec
        stamp = doc.timestamp_ms
        return bool(
            ("gte" not in bounds or stamp >= bounds["gte"])
            and ("gt" not in bounds or stamp > bounds["gt"])
            and ("lt" not in bounds or stamp < bounds["lt"])
            and ("lte" not in bounds or stamp <= bounds["lte"])
        )
    if kind == "term":
        ((field, value),) = spec.items()
        return bool(get_path(doc.source, field) == value)
    if kind == "ids":
        return doc.id in list(spec["values"])
    raise AssertionError(f"query not understood by MemoryAlerts: {kind}")


class MemoryAlerts:
    """Alert documents in memory behind the poller's Elasticsearch calls."""

    def __init__(self, index: str = ".internal.alerts-security.alerts-default-000001") -> None:
        self.index = index
        self._docs: dict[str, _Doc] = {}
        self._hidden: set[str] = set()
        self._seq = itertools.count()
        self._pits: dict[str, list[_Doc]] = {}
        self._pit_ids = itertools.count()
        self.searches = 0

    # --- what Kibana does ---------------------------------------------------------------------

    def put(self, hit: Mapping[str, object], *, searchable: bool = True) -> None:
        """Write an alert (a rendered search hit); hidden until ``reveal`` unless searchable."""
        source = hit["_source"]
        assert isinstance(source, dict)
        doc_id = str(hit["_id"])
        self._docs[doc_id] = _Doc(self.index, doc_id, copy.deepcopy(source), next(self._seq))
        if not searchable:
            self._hidden.add(doc_id)

    def reveal(self, doc_id: str) -> None:
        self._hidden.discard(doc_id)

    def update(self, doc_id: str, fields: Mapping[str, object]) -> None:
        """A partial update of top-level (flattened) keys, as Kibana's bulk ``update``."""
        self._docs[doc_id].source.update(copy.deepcopy(dict(fields)))

    # --- the client's API ---------------------------------------------------------------------

    def _visible(self) -> list[_Doc]:
        return [copy.deepcopy(doc) for key, doc in self._docs.items() if key not in self._hidden]

    def open_point_in_time(self, *, index: str, keep_alive: str) -> _Answer:
        pit_id = f"pit-{next(self._pit_ids)}"
        self._pits[pit_id] = self._visible()
        return _Answer({"id": pit_id})

    def close_point_in_time(self, *, id: str) -> _Answer:
        self._pits.pop(id, None)
        return _Answer({"succeeded": True})

    def search(self, *, body: Mapping[str, Any], **_options: object) -> _Answer:
        self.searches += 1
        pit = body.get("pit")
        docs = self._pits[pit["id"]] if isinstance(pit, Mapping) else self._visible()
        kept = [doc for doc in docs if _matches(body.get("query"), doc)]
        sorting = body.get("sort")

        def key(doc: _Doc) -> tuple[object, ...]:
            base: tuple[object, ...] = (doc.timestamp_ms, doc.uuid)
            return (*base, doc.seq) if pit is not None else base

        if sorting:
            kept.sort(key=key)
            after = body.get("search_after")
            if after is not None:
                kept = [doc for doc in kept if key(doc)[: len(after)] > tuple(after)]
        size = body.get("size", 10)
        hits = [
            {
                "_index": doc.index,
                "_id": doc.id,
                "_source": doc.source,
                **({"sort": list(key(doc))} if sorting else {}),
            }
            for doc in kept[:size]
        ]
        answer: JsonObject = {"hits": {"hits": hits}}
        if pit is not None:
            answer["pit_id"] = pit["id"]
        return _Answer(answer)


# --- pycti without sockets -------------------------------------------------------------------


class _Response:
    """The part of a ``requests.Response`` pycti reads."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.text = body.decode()
        self._body = body

    def json(self) -> object:
        return msgspec.json.decode(self._body)


class _InProcessSession:
    """Stands for pycti's ``requests`` session: each POST is answered by the stand-in."""

    def __init__(self, standin: OpenCTIStandin) -> None:
        self._standin = standin

    def post(
        self,
        url: str,
        *,
        json: object = None,
        headers: Mapping[str, str] | None = None,
        **_options: object,
    ) -> _Response:
        header = (headers or {}).get("Authorization", "")
        token = header.split(" ", 1)[1] if header.startswith("Bearer ") else None
        status, answer = self._standin.handle_graphql(msgspec.json.encode(json), token)
        return _Response(status, answer)


IN_PROCESS_URL = "http://opencti-standin.invalid"


def in_process_api(standin: OpenCTIStandin, token: str | None = None) -> OpenCTIApiClient:
    """A real pycti client talking to ``standin`` (which need not be started) in-process."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        api = OpenCTIApiClient(
            IN_PROCESS_URL,
            token or standin.token,
            log_level="error",
            ssl_verify=False,
            perform_health_check=False,
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    vars(api)["session"] = _InProcessSession(standin)
    return api
