"""Setting up the optional outputs (ES|QL lookup index, dead-letter index) and their writer.

``setup_outputs`` is the one-attempt setup the daemon and the ``setup`` command run after the
indicator index's: the lookup index (``lookup_index.ensure_lookup_index``) and the dead-letter
index, laid out like the indicator index (template, ``-000001``, write alias: dead letters pile
up and may be rolled over). With ``reduced_privileges`` nothing is created: the indices must
exist. ``prepare_outputs`` waits out an unreachable cluster as ``daemon.prepare_index`` does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

import msgspec
from elastic_transport import ApiError, TransportError
from elasticsearch import Elasticsearch

from elastic_connector.core.config import Config, Mode
from elastic_connector.core.elastic.dead_letters import DEAD_LETTER_MAPPINGS
from elastic_connector.shell.bulk import BulkWriter
from elastic_connector.shell.elastic import (
    ErrorClass,
    PermanentElasticsearchError,
    classify_error,
    describe_error,
)
from elastic_connector.shell.index_setup import SetupError, TargetKind, ensure_setup, target_kind
from elastic_connector.shell.lookup_index import ensure_lookup_index
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.outputs import OutputWriter

__all__ = ["OutputTargets", "build_output_writer", "prepare_outputs", "setup_outputs"]

log = logging.getLogger(__name__)


class OutputTargets(msgspec.Struct, frozen=True, kw_only=True):
    lookup_index: str | None = None
    dead_letter_index: str | None = None
    dead_letter_alias: bool = True
    """Whether dead-letter writes must go through an alias (``require_alias``)."""
    notes: tuple[str, ...] = ()
    """What an operator should know (printed by ``setup``, logged by the daemon)."""
    changed: tuple[str, ...] = ()
    """What this setup created or updated."""

    @property
    def any(self) -> bool:
        return self.lookup_index is not None or self.dead_letter_index is not None


def lookup_index_of(config: Config) -> str | None:
    """The lookup index the configuration asks for: ecs modes only."""
    if config.connector.mode is Mode.STIX:
        return None
    return config.elasticsearch_lookup.index


def setup_outputs(client: Elasticsearch, config: Config) -> OutputTargets:
    """One attempt at making the optional indices ready. Raises ``SetupError`` when a human has
    to act, and the client's errors (give them to ``describe_error``)."""
    create = not config.elasticsearch.reduced_privileges
    notes: list[str] = []
    changed: list[str] = []
    lookup = lookup_index_of(config)
    if config.elasticsearch_lookup.index and lookup is None:
        notes.append("output.lookup.index is ignored in the stix mode (rows are per indicator)")
    if lookup is not None:
        report = ensure_lookup_index(client, lookup, main_index=config.index, create=create)
        notes.extend(report.notes)
        if report.created:
            changed.append(f"created ES|QL lookup index {lookup}")
        if report.mapping_updated:
            changed.append(f"mapping of {lookup} updated")
    dead = config.elasticsearch.dead_letter_index
    alias = True
    if dead is not None:
        if dead in (config.index, lookup):
            raise SetupError(
                f"output.elasticsearch.dead_letter_index {dead} is also the "
                f"{'indicator' if dead == config.index else 'lookup'} index: choose another name"
            )
        if create:
            setup = ensure_setup(client, index=dead, mappings=DEAD_LETTER_MAPPINGS)
            alias = setup.require_alias
            notes.extend(setup.notes)
            notes.extend(setup.incompatible)
            if setup.created_index:
                changed.append(f"created dead-letter index {setup.created_index} (alias {dead})")
        else:
            kind = target_kind(client, dead)
            if kind is TargetKind.MISSING:
                raise SetupError(
                    f"output.elasticsearch.dead_letter_index {dead} does not exist and "
                    "reduced_privileges is on: run `elastic-connector setup` once with a user "
                    "allowed to create it"
                )
            if kind is TargetKind.DATA_STREAM:
                raise SetupError(f"dead-letter index {dead} is a data stream; an index is needed")
            alias = kind is TargetKind.ALIAS
    return OutputTargets(
        lookup_index=lookup,
        dead_letter_index=dead,
        dead_letter_alias=alias,
        notes=tuple(notes),
        changed=tuple(changed),
    )


def prepare_outputs(
    client: Elasticsearch, config: Config, stop: threading.Event
) -> OutputTargets | None:
    """``setup_outputs``, waiting out an unreachable cluster; None when stopped. Raises
    ``PermanentElasticsearchError`` when a human has to act."""
    attempt = 0
    while not stop.is_set():
        try:
            targets = setup_outputs(client, config)
        except (ApiError, TransportError) as error:
            if classify_error(error) is ErrorClass.PERMANENT:
                raise PermanentElasticsearchError(
                    describe_error(error, config.elasticsearch.hosts)
                ) from error
            delay = min(config.elasticsearch.retry_max_backoff, 2.0 ** min(attempt, 6))
            attempt += 1
            log.error(
                "Elasticsearch is not reachable (retrying in %.0f s): %s",
                delay,
                describe_error(error, config.elasticsearch.hosts),
            )
            stop.wait(delay)
            continue
        for note in targets.notes:
            log.warning("%s", note)
        return targets
    return None


def build_output_writer(
    client: Elasticsearch,
    config: Config,
    targets: OutputTargets,
    documents: BulkWriter,
    *,
    metrics: Metrics,
    clock: Callable[[], datetime],
    stop: threading.Event,
) -> OutputWriter | None:
    """The writer of a batch when an optional output is on; None when none is."""
    if not targets.any:
        return None

    def writer(require_alias: bool) -> BulkWriter:
        return BulkWriter.from_settings(
            client, config.elasticsearch, require_alias=require_alias, stop=stop
        )

    return OutputWriter(
        documents=documents,
        client=client,
        index=config.index,
        # The lookup index is a concrete index (LOOKUP JOIN names it; no alias before 9.1).
        lookup=None if targets.lookup_index is None else (writer(False), targets.lookup_index),
        dead_letters=None
        if targets.dead_letter_index is None
        else (writer(targets.dead_letter_alias), targets.dead_letter_index),
        metrics=metrics,
        clock=clock,
        hosts=config.elasticsearch.hosts,
    )
