"""``elastic-connector reconcile``: make the index equal to what OpenCTI holds, once.

Prints one JSON line on stdout (the counts, ``shell.reconcile``), a skip line on stderr for each
indicator it could not plan (``{"skip": reason, "id": ..., "code": ...}``), a progress line on
stderr every few seconds when stderr is a terminal (or with ``--progress``), and one error line
naming what failed when it cannot finish. Exit 0 done, 1 failed (nothing is deleted as orphaned
after an incomplete read), 2 bad configuration (handled by the CLI).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Final, TextIO

import msgspec

from elastic_connector.core.config import Config
from elastic_connector.core.reconcile import summary_line

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch
    from pycti import OpenCTIApiClient

    from elastic_connector.shell.bulk import BulkWriter
    from elastic_connector.shell.outputs import OutputWriter


EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
_PREFIX: Final = "elastic-connector reconcile"
_encoder: Final = msgspec.json.Encoder()


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM end the run cleanly (only from the main thread, where signals go)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_reconcile(
    config: Config,
    out: TextIO,
    err: TextIO,
    *,
    dry_run: bool,
    progress: bool,
    clock: Callable[[], datetime] = _now,
) -> int:
    """The command; returns its exit code."""
    from elastic_connector.shell.elastic import build_client
    from elastic_connector.shell.reconcile import (
        BoundedWriter,
        ProgressLines,
        ReconcileFailed,
        ReconcileSettings,
        Reconciliation,
    )

    stop = threading.Event()
    client = build_client(config.elasticsearch, config.cloud)
    settings = ReconcileSettings.from_config(config, recheck_creates=True)
    with _stop_on_signals(stop):
        try:
            require_alias = None if dry_run else _prepare_index(client, config, stop)
            outputs = None if dry_run else _prepare_outputs(client, config, stop, clock)
        except _Unusable as error:
            err.write(f"{_PREFIX}: {error}\n")
            return EXIT_FAILURE
        write = (
            None
            if require_alias is None
            else BoundedWriter(
                client,
                config.elasticsearch,
                require_alias=require_alias,
                stop=stop,
                outputs=outputs,
            )
        )

        def skipped(object_id: str, code: str, reason: str) -> None:
            err.write(_encoder.encode({"skip": reason, "id": object_id, "code": code}).decode())
            err.write("\n")

        run = Reconciliation(
            settings,
            api=_opencti_client(config),
            client=client,
            write=write,
            clock=clock,
            stop=stop,
            progress=ProgressLines(_line_writer(err)) if progress else None,
            on_skip=skipped,
        )
        try:
            report = run.run()
        except ReconcileFailed as failure:
            out.write(summary_line(failure.counts, dry_run=dry_run, samples=None).decode() + "\n")
            reason = "interrupted" if stop.is_set() else failure.message
            err.write(f"{_PREFIX}: failed: {reason}{_opencti_hint(config, failure.message)}\n")
            err.write(f"{_PREFIX}: nothing was deleted as orphaned\n")
            return EXIT_FAILURE
    samples = report.samples if dry_run else None
    out.write(summary_line(report.counts, dry_run=dry_run, samples=samples).decode() + "\n")
    if report.orphans_withheld:
        err.write(f"{_PREFIX}: warning: {report.orphans_withheld}\n")
    return EXIT_OK


def _line_writer(err: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        err.write(f"{_PREFIX}: {text}\n")
        err.flush()

    return write


class _Unusable(Exception):
    pass


def _prepare_index(client: Elasticsearch, config: Config, stop: threading.Event) -> bool:
    """Set the index up as the daemon does (or only look at it with reduced privileges);
    whether writes go through an alias. Transient failures are retried a bounded number of
    times; ``_Unusable`` says why the index cannot be used."""
    from elastic_transport import ApiError, TransportError

    from elastic_connector.shell.daemon import index_mappings
    from elastic_connector.shell.elastic import (
        ErrorClass,
        PermanentElasticsearchError,
        classify_error,
        describe_error,
    )
    from elastic_connector.shell.index_setup import (
        TargetKind,
        ensure_setup,
        target_kind,
    )
    from elastic_connector.shell.opencti_indicators import Retry
    from elastic_connector.shell.reconcile import ATTEMPTS

    retry = Retry(attempts=ATTEMPTS, max_backoff=config.elasticsearch.retry_max_backoff, stop=stop)
    attempt = 0
    while True:
        try:
            if config.elasticsearch.reduced_privileges:
                kind = target_kind(client, config.index)
                if kind is TargetKind.MISSING:
                    raise _Unusable(
                        f"{config.index} does not exist and reduced_privileges is on: run "
                        "`elastic-connector setup` once with a user allowed to create it"
                    )
                if kind is TargetKind.DATA_STREAM:
                    raise _Unusable(f"{config.index} is a data stream; indicators need an index")
                return kind is TargetKind.ALIAS
            report = ensure_setup(
                client, index=config.index, mappings=index_mappings(config.connector.mode)
            )
            return report.require_alias
        except PermanentElasticsearchError as error:
            raise _Unusable(f"cannot use the Elasticsearch index {config.index}: {error}") from None
        except (ApiError, TransportError) as error:
            text = describe_error(error, config.elasticsearch.hosts)
            if classify_error(error) is ErrorClass.PERMANENT or attempt + 1 >= retry.attempts:
                raise _Unusable(
                    f"cannot use the Elasticsearch index {config.index}: {text}"
                ) from None
            if not retry.wait(attempt):
                raise _Unusable("interrupted") from None
            attempt += 1


def _prepare_outputs(
    client: Elasticsearch,
    config: Config,
    stop: threading.Event,
    clock: Callable[[], datetime],
) -> Callable[[BulkWriter], OutputWriter] | None:
    """The writer of the ES|QL lookup index and dead letters around the repairs' own, when
    either is configured: repairs keep them in step as the stream's writes do. None when
    neither is on."""
    from elastic_connector.shell.elastic import PermanentElasticsearchError
    from elastic_connector.shell.metrics import Metrics
    from elastic_connector.shell.output_setup import build_output_writer, prepare_outputs

    try:
        targets = prepare_outputs(client, config, stop)
    except PermanentElasticsearchError as error:
        raise _Unusable(f"cannot use the lookup or dead-letter index: {error}") from None
    if targets is None:
        raise _Unusable("interrupted")
    if not targets.any:
        return None
    metrics = Metrics()

    def around(documents: BulkWriter) -> OutputWriter:
        built = build_output_writer(
            client, config, targets, documents, metrics=metrics, clock=clock, stop=stop
        )
        assert built is not None  # targets.any: one of the outputs is on
        return built

    return around


def _opencti_client(config: Config) -> OpenCTIApiClient:
    from pycti import OpenCTIApiClient

    settings = config.opencti
    verify: bool | str = settings.ca_certs if settings.ca_certs else settings.ssl_verify
    return OpenCTIApiClient(
        settings.url,
        settings.token.reveal(),
        ssl_verify=verify,
        perform_health_check=False,
        requests_timeout=int(max(30.0, config.elasticsearch.request_timeout)),
    )


def _opencti_hint(config: Config, message: str) -> str:
    """Why OpenCTI is unreachable, when that is what failed (pycti's errors do not say)."""
    if "OpenCTI" not in message and "indicators" not in message and "marking" not in message:
        return ""
    from elastic_connector.shell.opencti_reach import opencti_problem

    problem = opencti_problem(config)
    return f" ({problem})" if problem else ""
