"""Elasticsearch's security model, small enough to put in front of noida-db: a role is enforced.

noida-db has no security: it answers everything. A real cluster answers 403 wherever the
caller's role lacks the privilege of an action, and that is where the documented roles must be
proven. ``RoleGate`` (plugged into ``FaultyProxy(upstream, role=...)``) decides, for each REST
call the connector makes, which Elasticsearch *actions* it performs on which *names*, and lets
it through only when the role grants them, answering 403 exactly as Elasticsearch words it
otherwise. Everything it models is read in Elasticsearch's source (elastic/elasticsearch):

* privileges -> action patterns: ``IndexPrivilege.java`` and ``ClusterPrivilegeResolver.java``
  (x-pack/plugin/core/.../security/authz/privilege), copied below as data. "Granted by"
  lists are ordered like ``Privilege.sortByAccessLevel``: by how many other privileges
  include one (most first), then by name.
* how a request is authorized: ``AuthorizationService.java`` and ``RBACEngine.java``
  (x-pack/plugin/security/.../authz):
  - cluster actions (``cluster:*``, ``indices:admin/index_template/*``) against the role's
    cluster privileges; ``has_privileges`` is a "same user" action, always allowed;
  - index actions against the names *as requested* (an alias is authorized by its own name, a
    concrete index by its own); wildcards expand to the authorized names only, and to nothing
    (an empty answer, not a 403) when none is authorized;
  - a search with a point in time is authorized on the concrete indices the point in time was
    opened on (``resolvePITIndices``), not on the name it was opened with;
  - ``_bulk``: the top-level action needs the bulk action somewhere in the role; then per item
    ``indices:data/write/bulk[s]`` on the item's index, then the item's own action
    (``index:op_type/index``, ``delete``...), each refusal a 403 *item*;
  - ``_mget`` likewise: the top-level action somewhere in the role, then per item
    ``indices:data/read/mget[shard]`` on the concrete index behind the item's name
    (``TransportMultiGetAction``), each refusal a failed item;
  - creating an index with aliases also needs ``indices:admin/aliases`` on index and aliases;
  - closing a point in time needs nothing (``ALLOW_NO_INDICES``);
  - a by-query request is its action, then a search and bulk items run as the caller, then
    (``refresh=true``) ``indices:admin/refresh`` — after the work is done.
* denial messages: ``AuthorizationDenialMessages.java``.

A REST call the gate does not know is answered 501: a new call by the connector must be
modelled (and documented) before a role test can pass.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote, urlsplit

# --- Elasticsearch's privilege definitions -------------------------------------------------------

INDEX_PRIVILEGES: Final[Mapping[str, tuple[str, ...]]] = {
    # IndexPrivilege.java: the automaton of each named index privilege.
    "none": (),
    "all": ("indices:*", "internal:transport/proxy/indices:*"),
    "read": ("indices:data/read/*",),
    "read_cross_cluster": (
        "internal:transport/proxy/indices:data/read/*",
        "indices:admin/shards/search_shards",
    ),
    "create": ("indices:data/write/index*", "indices:data/write/bulk*"),
    "create_doc": (
        "indices:data/write/index",
        "indices:data/write/index[*",
        "indices:data/write/index:op_type/create",
        "indices:data/write/bulk*",
    ),
    "index": (
        "indices:data/write/index*",
        "indices:data/write/bulk*",
        "indices:data/write/update*",
    ),
    "delete": ("indices:data/write/delete*", "indices:data/write/bulk*"),
    "write": ("indices:data/write/*", "indices:admin/mapping/auto_put"),
    "monitor": ("indices:monitor/*",),
    "manage": (
        "indices:monitor/*",
        "indices:admin/*",
        "indices:data/read/field_caps*",
        "indices:data/read/xpack/rollup/get/index/caps*",
    ),
    "create_index": (
        "indices:admin/create",
        "indices:admin/auto_create",
        "indices:admin/data_stream/create",
    ),
    "delete_index": ("indices:admin/delete", "indices:admin/data_stream/delete"),
    "view_index_metadata": (
        "indices:admin/aliases/get",
        "indices:admin/get",
        "indices:admin/mappings/fields/get*",
        "indices:admin/mappings/get",
        "indices:admin/shards/search_shards",
        "indices:admin/validate/query*",
        "indices:monitor/settings/get",
        "indices:admin/ilm/explain",
        "indices:admin/data_stream/get",
        "indices:admin/resolve/index",
        "indices:data/read/field_caps*",
        "indices:data/read/xpack/rollup/get/index/caps*",
        "indices:data/read/xpack/transform/checkpoint*",
    ),
    "manage_ilm": ("indices:admin/ilm/*",),
    "maintenance": (
        "indices:admin/refresh*",
        "indices:admin/flush*",
        "indices:admin/synced_flush",
        "indices:admin/forcemerge*",
    ),
    "auto_configure": ("indices:admin/mapping/auto_put", "indices:admin/auto_create"),
}

CLUSTER_PRIVILEGES: Final[Mapping[str, tuple[str, ...]]] = {
    # ClusterPrivilegeResolver.java (the privileges a connector role could plausibly hold).
    "none": (),
    "all": ("cluster:*", "indices:admin/template/*", "indices:admin/index_template/*"),
    "manage": ("cluster:*", "indices:admin/template/*", "indices:admin/index_template/*"),
    "monitor": (
        "cluster:monitor/*",
        "indices:admin/template/get",
        "cluster:admin/component_template/get",
        "indices:admin/index_template/get",
    ),
    "manage_index_templates": (
        "indices:admin/template/*",
        "indices:admin/index_template/*",
        "cluster:admin/component_template/*",
    ),
    "manage_ilm": ("cluster:admin/ilm/*",),
    "read_ilm": ("cluster:admin/ilm/get", "cluster:admin/ilm/operation_mode/get"),
}
_MANAGE_EXCLUDES: Final = ("cluster:admin/xpack/security/*",)
"""``manage`` is ``all`` minus the security actions (ActionClusterPrivilege's excluded set)."""

_CLUSTER_ACTION_PATTERNS: Final = CLUSTER_PRIVILEGES["all"]
"""``ClusterPrivilegeResolver.isClusterAction``."""
HAS_PRIVILEGES_ACTION: Final = "cluster:admin/xpack/security/user/has_privileges"
CLOSE_PIT_ACTION: Final = "indices:data/read/close_point_in_time"


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    """Elasticsearch's simple patterns: ``*`` any run, ``?`` one character, the rest literal."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def matches(pattern: str, text: str) -> bool:
    return _glob(pattern).fullmatch(text) is not None


def covers(outer: str, inner: str) -> bool:
    """Whether every string ``inner`` matches is matched by ``outer`` (for the patterns used
    here: ``inner``'s wildcards must be met by a wildcard of ``outer``)."""
    return matches(outer, inner)


def _granted_by(patterns: Iterable[str], action: str) -> bool:
    return any(matches(p, action) for p in patterns)


def _includes(outer: Sequence[str], inner: Sequence[str]) -> bool:
    return all(any(covers(o, i) for o in outer) for i in inner)


def _by_access_level(table: Mapping[str, tuple[str, ...]]) -> list[str]:
    def contained_in(name: str) -> int:
        return sum(
            1
            for other, patterns in table.items()
            if other not in (name, "none") and _includes(patterns, table[name])
        )

    # ``all`` last among equals: ``manage`` has the same patterns less the security actions.
    return sorted(
        (n for n in table if n != "none"), key=lambda n: (-contained_in(n), n == "all", n)
    )


def index_privileges_granting(action: str) -> list[str]:
    """``IndexPrivilege.findPrivilegesThatGrant``: least to most privileged."""
    return [
        p for p in _by_access_level(INDEX_PRIVILEGES) if _granted_by(INDEX_PRIVILEGES[p], action)
    ]


def cluster_privileges_granting(action: str) -> list[str]:
    return [p for p in _by_access_level(CLUSTER_PRIVILEGES) if _cluster_grants((p,), action)]


def is_cluster_action(action: str) -> bool:
    return _granted_by(_CLUSTER_ACTION_PATTERNS, action)


def _cluster_grants(privileges: Iterable[str], action: str) -> bool:
    for privilege in privileges:
        if privilege == "manage" and _granted_by(_MANAGE_EXCLUDES, action):
            continue
        if _granted_by(CLUSTER_PRIVILEGES[privilege], action):
            return True
    return False


# --- roles --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexGrant:
    names: tuple[str, ...]
    privileges: tuple[str, ...]

    def allows(self, action: str, name: str) -> bool:
        return any(matches(n, name) for n in self.names) and any(
            _granted_by(INDEX_PRIVILEGES[p], action) for p in self.privileges
        )


@dataclass(frozen=True)
class Role:
    """A role descriptor's ``cluster`` and ``indices`` parts (as POSTed to _security/role)."""

    name: str
    cluster: tuple[str, ...]
    indices: tuple[IndexGrant, ...]

    @classmethod
    def from_descriptor(cls, name: str, descriptor: Mapping[str, object]) -> Role:
        cluster = descriptor.get("cluster") or []
        indices = descriptor.get("indices") or []
        assert isinstance(cluster, list), descriptor
        assert isinstance(indices, list), descriptor
        grants = []
        for entry in indices:
            assert isinstance(entry, dict), entry
            grants.append(IndexGrant(tuple(entry["names"]), tuple(entry["privileges"])))
        for privilege in cluster:
            assert privilege in CLUSTER_PRIVILEGES, f"unknown cluster privilege {privilege}"
        for grant in grants:
            for privilege in grant.privileges:
                assert privilege in INDEX_PRIVILEGES, f"unknown index privilege {privilege}"
        return cls(name, tuple(cluster), tuple(grants))

    def descriptor(self) -> dict[str, object]:
        return {
            "cluster": list(self.cluster),
            "indices": [
                {"names": list(g.names), "privileges": list(g.privileges)} for g in self.indices
            ],
        }

    def renamed(self, old: str, new: str) -> Role:
        """The same role with ``old`` replaced by ``new`` in every index name (the docs' default
        index name -> a test's index)."""
        return Role(
            self.name,
            self.cluster,
            tuple(
                IndexGrant(tuple(n.replace(old, new) for n in g.names), g.privileges)
                for g in self.indices
            ),
        )

    def without(self, privilege: str, *, names: str | None = None) -> Role:
        """The role minus ``privilege`` (on the index entry containing ``names``, or cluster)."""
        if names is None:
            cluster = tuple(p for p in self.cluster if p != privilege)
            assert cluster != self.cluster, f"{self.name} has no cluster privilege {privilege}"
            return Role(f"{self.name}-without-{privilege}", cluster, self.indices)
        grants = []
        for grant in self.indices:
            if names in grant.names:
                assert privilege in grant.privileges, f"{names} lacks {privilege} already"
                kept = tuple(p for p in grant.privileges if p != privilege)
                grants.append(IndexGrant(grant.names, kept))
            else:
                grants.append(grant)
        return Role(f"{self.name}-without-{privilege}", self.cluster, tuple(grants))

    def without_name(self, name: str) -> Role:
        """The role with ``name`` removed from the index entry listing it."""
        grants = tuple(
            IndexGrant(tuple(n for n in g.names if n != name), g.privileges) for g in self.indices
        )
        assert grants != self.indices, f"{self.name} names no {name}"
        return Role(f"{self.name}-without-{name}", self.cluster, grants)

    def allows_cluster(self, action: str) -> bool:
        return _cluster_grants(self.cluster, action)

    def allows_somewhere(self, action: str) -> bool:
        """``Role.checkIndicesAction``: some index entry grants the action (any name)."""
        return any(
            _granted_by(INDEX_PRIVILEGES[p], action) for g in self.indices for p in g.privileges
        )

    def allows(self, action: str, name: str) -> bool:
        return any(grant.allows(action, name) for grant in self.indices)

    def has_index_privilege(self, name: str, privilege: str) -> bool:
        """``_has_privileges`` for one (name or pattern, privilege)."""
        wanted = INDEX_PRIVILEGES[privilege]
        for grant in self.indices:
            if not any(covers(n, name) for n in grant.names):
                continue
            held = [a for p in grant.privileges for a in INDEX_PRIVILEGES[p]]
            if _includes(held, wanted):
                return True
        return False

    def has_cluster_privilege(self, privilege: str) -> bool:
        if privilege in self.cluster:
            return True
        held = [a for p in self.cluster if p != "manage" for a in CLUSTER_PRIVILEGES[p]]
        return bool(self.cluster) and _includes(held, CLUSTER_PRIVILEGES[privilege])


_ROLE_BLOCK = re.compile(
    r"```json\nPOST /_security/role/(?P<name>[\w.-]+)\n(?P<body>.*?)\n```", re.DOTALL
)


def roles_in_markdown(path: Path) -> dict[str, Role]:
    """Every ``POST /_security/role/<name>`` JSON block of a documentation page."""
    roles = {}
    for match in _ROLE_BLOCK.finditer(path.read_text(encoding="utf-8")):
        roles[match["name"]] = Role.from_descriptor(match["name"], json.loads(match["body"]))
    return roles


# --- the gate -------------------------------------------------------------------------------------

Upstream = Callable[[str, str, bytes], tuple[int, list[tuple[str, str]], bytes]]
"""(method, path with query, body) -> (status, headers, payload), through the real server."""

_JSON: Final = [("content-type", "application/json"), ("x-elastic-product", "Elasticsearch")]
_EMPTY_SHARDS: Final = {"total": 0, "successful": 0, "skipped": 0, "failed": 0}


@dataclass(frozen=True)
class Decision:
    """One authorization the gate made (for assertions)."""

    action: str
    names: tuple[str, ...]
    granted: bool


class _Denied(Exception):
    def __init__(self, answer: tuple[int, list[tuple[str, str]], bytes]) -> None:
        super().__init__(answer[0])
        self.answer = answer


@dataclass
class RoleGate:
    """Enforces ``role`` on the requests a ``FaultyProxy`` forwards (see the module doc)."""

    role: Role
    user: str = "connector"
    decisions: list[Decision] = field(default_factory=list)
    _pits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def actions(self) -> set[str]:
        with self._lock:
            return {d.action for d in self.decisions}

    def denied(self) -> list[Decision]:
        with self._lock:
            return [d for d in self.decisions if not d.granted]

    # -- entry point ----------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, body: bytes, upstream: Upstream
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(raw_path)
        segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            return self._route(method, segments, params, parts.query, body, upstream)
        except _Denied as denied:
            return denied.answer

    def _route(
        self,
        method: str,
        seg: list[str],
        params: Mapping[str, str],
        query: str,
        body: bytes,
        upstream: Upstream,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = "/" + "/".join(quote(s, safe=",*") for s in seg) + (f"?{query}" if query else "")

        def forward() -> tuple[int, list[tuple[str, str]], bytes]:
            return upstream(method, path, body)

        if not seg and method in ("GET", "HEAD"):
            self._cluster("cluster:monitor/main")
            return forward()
        if seg == ["_security", "user", "_has_privileges"]:
            self._record(HAS_PRIVILEGES_ACTION, (), granted=True)
            return self._has_privileges(body)
        if seg[-1:] == ["_bulk"] and len(seg) <= 2 and method in ("POST", "PUT"):
            return self._bulk(seg[0] if len(seg) == 2 else None, path, body, upstream)
        if seg[:1] == ["_index_template"]:
            if len(seg) == 3 and seg[1] == "_simulate_index" and method == "POST":
                self._cluster("indices:admin/index_template/simulate_index")
                return forward()
            if len(seg) == 2 and method in ("GET", "HEAD"):
                self._cluster("indices:admin/index_template/get")
                return forward()
            if len(seg) == 2 and method in ("PUT", "POST"):
                self._cluster("indices:admin/index_template/put")
                return forward()
        if seg[:2] == ["_resolve", "index"] and len(seg) == 3 and method == "GET":
            self._indices("indices:admin/resolve/index", seg[2], upstream)
            return forward()
        if seg[:1] == ["_alias"] and len(seg) == 2 and method in ("GET", "HEAD"):
            self._indices("indices:admin/aliases/get", seg[1], upstream)
            return forward()
        if seg == ["_pit"] and method == "DELETE":
            return self._close_pit(body, forward)
        if seg[-1:] == ["_mget"] and len(seg) <= 2 and method in ("GET", "POST"):
            return self._mget(seg[0] if len(seg) == 2 else None, query, body, upstream)
        if len(seg) == 2 and seg[1] == "_settings" and method in ("GET", "HEAD"):
            self._indices("indices:monitor/settings/get", seg[0], upstream)
            return forward()
        if seg[-1:] == ["_search"] and len(seg) <= 2 and method in ("GET", "POST"):
            return self._search(seg[0] if len(seg) == 2 else None, query, body, upstream)
        if len(seg) == 2 and seg[1] == "_pit" and method == "POST":
            return self._open_pit(seg[0], query, body, upstream)
        if len(seg) == 2 and seg[1] in ("_delete_by_query", "_update_by_query"):
            return self._by_query(seg[0], seg[1], params, forward, upstream)
        if len(seg) == 2 and seg[1] == "_mapping":
            if method in ("GET", "HEAD"):
                self._indices("indices:admin/mappings/get", seg[0], upstream)
            else:
                self._indices("indices:admin/mapping/put", seg[0], upstream)
            return forward()
        if len(seg) == 3 and seg[1] == "_alias" and method in ("PUT", "POST"):
            self._indices("indices:admin/aliases", f"{seg[0]},{seg[2]}", upstream)
            return forward()
        if len(seg) == 1 and not seg[0].startswith("_"):
            if method in ("GET", "HEAD"):
                self._indices("indices:admin/get", seg[0], upstream)
                return forward()
            if method == "PUT":
                self._indices("indices:admin/create", seg[0], upstream)
                aliases = _json(body).get("aliases")
                if isinstance(aliases, dict) and aliases:
                    names = ",".join([seg[0], *aliases])
                    self._indices("indices:admin/aliases", names, upstream)
                return forward()
        message = f"RoleGate does not model {method} {path}: model it (and document it)"
        return 501, list(_JSON), json.dumps({"error": message}).encode()

    # -- authorization ----------------------------------------------------------------------------

    def _record(self, action: str, names: tuple[str, ...], *, granted: bool) -> None:
        with self._lock:
            self.decisions.append(Decision(action, names, granted))

    def _cluster(self, action: str) -> None:
        assert is_cluster_action(action), action
        granted = self.role.allows_cluster(action)
        self._record(action, (), granted=granted)
        if not granted:
            raise _Denied(self._forbidden(action, None))

    def _indices(self, action: str, expression: str, upstream: Upstream) -> list[str]:
        """Authorize ``action`` on the names of ``expression``; returns the names it may act
        on (wildcards expanded to the authorized existing names only)."""
        allowed: list[str] = []
        denied: list[str] = []
        for name in (n for n in expression.split(",") if n):
            if "*" in name:
                allowed.extend(n for n in _existing(name, upstream) if self.role.allows(action, n))
            elif self.role.allows(action, name):
                allowed.append(name)
            else:
                denied.append(name)
        self._record(action, tuple(denied or allowed), granted=not denied)
        if denied:
            raise _Denied(self._forbidden(action, denied))
        return allowed

    def _forbidden(
        self, action: str, indices: Sequence[str] | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        return 403, list(_JSON), json.dumps(self.denial_body(action, indices)).encode()

    def denial_body(self, action: str, indices: Sequence[str] | None) -> dict[str, object]:
        """The body of Elasticsearch's 403 for ``action`` (on ``indices``)."""
        reason = (
            f"action [{action}] is unauthorized for user [{self.user}] with effective roles "
            f"[{self.role.name}]"
        )
        if indices is not None:
            reason += f" on indices [{','.join(indices)}]"
            granting = index_privileges_granting(action)
            reason += f", this action is granted by the index privileges [{','.join(granting)}]"
        else:
            granting = cluster_privileges_granting(action)
            reason += f", this action is granted by the cluster privileges [{','.join(granting)}]"
        cause = {"type": "security_exception", "reason": reason}
        return {"error": {"root_cause": [cause], **cause}, "status": 403}

    # -- special requests -----------------------------------------------------------------------

    def _has_privileges(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        request = _json(body)
        cluster = {p: self.role.has_cluster_privilege(p) for p in request.get("cluster") or []}
        index: dict[str, dict[str, bool]] = {}
        for entry in request.get("index") or []:
            for name in entry["names"]:
                checked = index.setdefault(name, {})
                for privilege in entry["privileges"]:
                    checked[privilege] = self.role.has_index_privilege(name, privilege)
        every = all(cluster.values()) and all(all(v.values()) for v in index.values())
        answer = {
            "username": self.user,
            "has_all_requested": every,
            "cluster": cluster,
            "index": index,
            "application": {},
        }
        return 200, list(_JSON), json.dumps(answer).encode()

    def _open_pit(
        self, expression: str, query: str, body: bytes, upstream: Upstream
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        names = self._indices("indices:data/read/open_point_in_time", expression, upstream)
        if not names:
            # Nothing authorized: Elasticsearch opens a point in time over no index.
            pit_id = f"role-gate-empty-{len(self._pits)}"
            with self._lock:
                self._pits[pit_id] = ()
            return 200, list(_JSON), json.dumps({"id": pit_id}).encode()
        status, headers, payload = upstream("POST", f"/{','.join(names)}/_pit?{query}", body)
        if status == 200:
            concrete = tuple(c for name in names for c in _concrete(name, upstream))
            with self._lock:
                self._pits[str(_json(payload)["id"])] = concrete
        return status, headers, payload

    def _close_pit(
        self, body: bytes, forward: Callable[[], tuple[int, list[tuple[str, str]], bytes]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        self._record(CLOSE_PIT_ACTION, (), granted=True)
        if str(_json(body).get("id", "")).startswith("role-gate-empty-"):
            return 200, list(_JSON), b'{"succeeded":true,"num_freed":0}'
        return forward()

    def _search(
        self, expression: str | None, query: str, body: bytes, upstream: Upstream
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        search = "indices:data/read/search"
        pit = _json(body).get("pit")
        if isinstance(pit, dict):
            pit_id = str(pit.get("id"))
            with self._lock:
                concrete = self._pits.get(pit_id)
            if concrete is None:
                message = "RoleGate: a search through a point in time it did not see opened"
                return 500, list(_JSON), json.dumps({"error": message}).encode()
            self._indices(search, ",".join(concrete), upstream)
            if not concrete:
                return 200, list(_JSON), json.dumps(_empty_search(pit_id)).encode()
            status, headers, payload = upstream(
                "POST", "/_search" + (f"?{query}" if query else ""), body
            )
            new_id = _json(payload).get("pit_id") if status == 200 else None
            if isinstance(new_id, str):
                with self._lock:
                    self._pits[new_id] = concrete
            return status, headers, payload
        names = self._indices(search, expression or "*", upstream)
        if not names:
            return 200, list(_JSON), json.dumps(_empty_search(None)).encode()
        suffix = f"?{query}" if query else ""
        return upstream("POST", f"/{','.join(names)}/_search{suffix}", body)

    def _by_query(
        self,
        expression: str,
        kind: str,
        params: Mapping[str, str],
        forward: Callable[[], tuple[int, list[tuple[str, str]], bytes]],
        upstream: Upstream,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if params.get("wait_for_completion") == "false":
            message = "RoleGate does not model by-query tasks (wait_for_completion=false)"
            return 501, list(_JSON), json.dumps({"error": message}).encode()
        delete = kind == "_delete_by_query"
        action = (
            "indices:data/write/delete/byquery" if delete else "indices:data/write/update/byquery"
        )
        names = self._indices(action, expression, upstream)
        # Then, as the caller: the scroll search, and bulk requests on the hits' indices.
        self._indices("indices:data/read/search", ",".join(names), upstream)
        concrete = ",".join(c for name in names for c in _concrete(name, upstream))
        item = "indices:data/write/delete" if delete else "indices:data/write/index:op_type/index"
        self._indices("indices:data/write/bulk[s]", concrete, upstream)
        self._indices(item, concrete, upstream)
        answer = forward()
        if params.get("refresh") in ("", "true"):
            # Refreshing comes last: the documents are already deleted/updated when it fails.
            self._indices("indices:admin/refresh", ",".join(names), upstream)
        return answer

    def _mget(
        self, default_index: str | None, query: str, body: bytes, upstream: Upstream
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """A composite request: the action needs ``indices:data/read/mget`` somewhere in the
        role; each item is then read by a shard request on the *concrete* index behind its
        name (``TransportMultiGetAction``), and a refused shard request fails its items
        (``MultiGetResponse.Failure``), not the whole request."""
        mget = "indices:data/read/mget"
        granted = self.role.allows_somewhere(mget)
        self._record(mget, (), granted=granted)
        if not granted:
            raise _Denied(self._forbidden(mget, ["*"]))
        request = _json(body)
        docs = request.get("docs")
        if not isinstance(docs, list):
            ids = request.get("ids") or []
            docs = [{"_index": default_index, "_id": i} for i in ids]
        shard = "indices:data/read/mget[shard]"
        kept: list[object] = []
        failures: list[dict[str, object] | None] = []
        for doc in docs:
            assert isinstance(doc, dict), doc
            name = doc.get("_index") or default_index
            assert isinstance(name, str), f"an _mget item without an index: {doc}"
            concrete = _concrete(name, upstream)
            refused = [c for c in concrete if not self.role.allows(shard, c)]
            self._record(shard, tuple(refused or concrete), granted=not refused)
            if refused:
                error = self.denial_body(shard, refused)["error"]
                assert isinstance(error, dict)
                failures.append({"_index": refused[0], "_id": doc.get("_id"), "error": error})
            else:
                failures.append(None)
                kept.append({**doc, "_index": name})
        answered: list[object] = []
        if kept:
            forwarded = {k: v for k, v in request.items() if k not in ("ids", "docs")}
            forwarded["docs"] = kept
            suffix = f"?{query}" if query else ""
            status, headers, payload = upstream(
                "POST", f"/_mget{suffix}", json.dumps(forwarded).encode()
            )
            if status != 200:
                return status, headers, payload
            answered = list(_json(payload).get("docs", []))
        found = iter(answered)
        merged = [next(found) if fail is None else fail for fail in failures]
        return 200, list(_JSON), json.dumps({"docs": merged}).encode()

    def _bulk(
        self, default_index: str | None, path: str, body: bytes, upstream: Upstream
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        bulk = "indices:data/write/bulk"
        granted = self.role.allows_somewhere(bulk)
        self._record(bulk, (), granted=granted)
        if not granted:
            raise _Denied(self._forbidden(bulk, ["*"]))
        items = _bulk_items(body, default_index)
        failures: list[dict[str, object] | None] = []
        for op, index, _raw in items:
            failures.append(self._bulk_item(op, index))
        kept = b"".join(
            raw for (_op, _index, raw), fail in zip(items, failures, strict=True) if not fail
        )
        answered: list[object] = []
        took = 0
        errors = False
        if kept:
            status, headers, payload = upstream("POST", path, kept)
            if status != 200:
                return status, headers, payload
            answer = _json(payload)
            answered = list(answer.get("items", []))
            took = int(answer.get("took", 0))
            errors = bool(answer.get("errors"))
        forwarded = iter(answered)
        merged = [
            next(forwarded) if fail is None else {op: fail}
            for (op, _index, _raw), fail in zip(items, failures, strict=True)
        ]
        errors = errors or any(f is not None for f in failures)
        return (
            200,
            list(_JSON),
            json.dumps({"took": took, "errors": errors, "items": merged}).encode(),
        )

    def _bulk_item(self, op: str, index: str) -> dict[str, object] | None:
        """None when the item may go on; else its 403 item answer."""
        item_action = {
            "index": "indices:data/write/index:op_type/index",
            "create": "indices:data/write/index:op_type/create",
            "delete": "indices:data/write/delete",
            "update": "indices:data/write/update",
        }[op]
        for action in ("indices:data/write/bulk[s]", item_action):
            granted = self.role.allows(action, index)
            self._record(action, (index,), granted=granted)
            if not granted:
                error = self.denial_body(action, [index])["error"]
                assert isinstance(error, dict)
                error = {k: v for k, v in error.items() if k != "root_cause"}
                return {"_index": index, "status": 403, "error": error}
        return None


# --- helpers --------------------------------------------------------------------------------------


def _json(payload: bytes) -> dict[str, Any]:
    """A JSON object body (requests and answers of the Elasticsearch API), {} otherwise."""
    if not payload.strip():
        return {}
    value = json.loads(payload)
    return value if isinstance(value, dict) else {}


def _empty_search(pit_id: str | None) -> dict[str, object]:
    answer: dict[str, object] = {
        "took": 0,
        "timed_out": False,
        "_shards": dict(_EMPTY_SHARDS),
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []},
    }
    if pit_id is not None:
        answer["pit_id"] = pit_id
    return answer


def _resolve(expression: str, upstream: Upstream) -> dict[str, object]:
    status, _headers, payload = upstream(
        "GET", f"/_resolve/index/{quote(expression, safe=',*')}?expand_wildcards=all", b""
    )
    return _json(payload) if status == 200 else {}


def _existing(pattern: str, upstream: Upstream) -> list[str]:
    """Names of the indices, aliases and data streams matching ``pattern`` (wildcard
    expansion happens against what exists, before authorization filters it)."""
    resolved = _resolve(pattern, upstream)
    names: list[str] = []
    for kind in ("indices", "aliases", "data_streams"):
        entries = resolved.get(kind)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                names.append(entry["name"])
    return names


def _concrete(name: str, upstream: Upstream) -> list[str]:
    """The concrete indices behind ``name`` (itself for an index)."""
    resolved = _resolve(name, upstream)
    for kind, field_name in (("aliases", "indices"), ("data_streams", "backing_indices")):
        entries = resolved.get(kind)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("name") == name:
                return [str(i) for i in entry.get(field_name) or []]
    return [name]


def _bulk_items(body: bytes, default_index: str | None) -> list[tuple[str, str, bytes]]:
    """(operation, index, raw lines) of each item of an NDJSON ``_bulk`` body."""
    lines = body.splitlines(keepends=True)
    items: list[tuple[str, str, bytes]] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        position += 1
        if not line.strip():
            continue
        action = json.loads(line)
        op = next(iter(action))
        raw = line
        if op != "delete" and position < len(lines):
            raw += lines[position]
            position += 1
        index = action[op].get("_index") or default_index
        assert isinstance(index, str), f"bulk item without an index: {line!r}"
        items.append((op, index, raw))
    return items
