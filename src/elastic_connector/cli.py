"""The `elastic-connector` command.

    elastic-connector [run] [-c CONFIG]      stream OpenCTI into Elasticsearch (the daemon)
    elastic-connector check [-c CONFIG]      check config, both platforms, privileges
    elastic-connector setup [-c CONFIG]      create/update the index template and index only
    elastic-connector reconcile [-c CONFIG] [--dry-run]  make the index equal to OpenCTI, once
    elastic-connector map [-c CONFIG] [FILE|-]        bundle/stream events -> _bulk NDJSON (offline)
    elastic-connector sightings [-c CONFIG] [FILE|-]  NDJSON alerts -> sightings (offline)
    elastic-connector config [-c CONFIG] [--env]      the effective configuration and its sources
    elastic-connector status [-c CONFIG]     ask a running connector's /healthz
    elastic-connector demo                   everything locally, with embedded sample data

Exit codes: 0 success, 1 runtime failure (a platform unreachable...), 2 bad usage, config or input.
The one-shot commands print their own lines only; --verbose (or log level debug) adds the log
records of the libraries they use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from returns.result import Failure

from elastic_connector.core.config import Config
from elastic_connector.core.config.load import ConfigNote, Effective

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _config_option(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=default,
        metavar="CONFIG",
        help="YAML config file (default: ./config.yml when it exists)",
    )


def _verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the log records of the libraries used (tracebacks only at log level "
        "debug)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastic-connector",
        description="OpenCTI -> Elastic threat-intel connector.",
        epilog="Configuration: defaults < config file < environment < CONNECTOR_JSON_CONFIG.",
    )
    _config_option(parser, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the connector (default command)")
    _config_option(run, default=argparse.SUPPRESS)

    check = sub.add_parser("check", help="validate config, reach OpenCTI and Elasticsearch")
    _config_option(check, default=argparse.SUPPRESS)
    _verbose_option(check)

    setup = sub.add_parser("setup", help="create or update the index template and index")
    _config_option(setup, default=argparse.SUPPRESS)
    _verbose_option(setup)

    reconcile = sub.add_parser(
        "reconcile",
        help="make the index equal to what OpenCTI holds (missing, stale, orphaned documents)",
        description="Reads every indicator the connector's OpenCTI user can see (only those of "
        "connector.live_stream_id when it names a live stream), plans their documents as the "
        "stream does, compares them with the index and repairs the difference: creates the "
        "missing, rewrites or deletes the stale, deletes the orphaned (only after a complete "
        "read). Never overwrites a document written since it was read. Prints one JSON line "
        "of counts; exit 0 done, 1 failed (the line on stderr says what), 2 bad configuration.",
    )
    _config_option(reconcile, default=argparse.SUPPRESS)
    _verbose_option(reconcile)
    reconcile.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing; also print the ids of each class (at most 20 each, and how many "
        "more)",
    )
    reconcile.add_argument(
        "--progress",
        action="store_true",
        help="print a progress line on stderr every few seconds even when it is not a terminal",
    )

    mapper = sub.add_parser(
        "map",
        help="map a STIX bundle or NDJSON stream events to _bulk NDJSON (no network)",
        description="Reads a STIX 2.1 bundle, a JSON array of STIX objects or a single object "
        "(each object as a create event), or NDJSON stream events "
        '({"id","event","data"} per line), in any JSON layout (a UTF-8 BOM is ignored), and '
        "writes Elasticsearch _bulk NDJSON to stdout. Skips go to stderr as "
        '{"skip": reason, "id": object id}; unreadable input exits 2. Each document\'s '
        "@timestamp is the time of mapping, so the output differs from run to run: give --now "
        "for output that is the same every time (tests, diffs).",
    )
    _config_option(mapper, default=argparse.SUPPRESS)
    _verbose_option(mapper)
    mapper.add_argument("file", nargs="?", default="-", help="input file, or - for stdin")
    mapper.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=None,
        metavar="ISO_TIME",
        help="the time used as 'now' (expiry decisions and every document's @timestamp), e.g. "
        "2025-01-01T00:00:00Z, for reproducible output; default: the current time",
    )

    sightings = sub.add_parser(
        "sightings",
        help="turn NDJSON alerts into sightings (no network)",
        description="Reads NDJSON alerts (an alert _source or a search hit per line) and writes "
        "one JSON line per sighting. Malformed lines go to stderr as "
        '{"skip": reason, "line": N}.',
    )
    _config_option(sightings, default=argparse.SUPPRESS)
    _verbose_option(sightings)
    sightings.add_argument("file", nargs="?", default="-", help="input file, or - for stdin")

    config = sub.add_parser(
        "config",
        help="print the effective configuration, each value with its source",
        description="Prints the configuration the other commands would use, as YAML, each value "
        "followed by its source (default, file, env NAME, json, or an earlier name it was "
        "given under: 'alias of ...'); secrets as ***. Invalid settings: exit 2 with the same "
        "lines as run.",
    )
    _config_option(config, default=argparse.SUPPRESS)
    _verbose_option(config)
    config.add_argument(
        "--env",
        action="store_true",
        help="print environment variables (NAME=value, the docker --env-file form) instead",
    )

    status = sub.add_parser(
        "status",
        help="ask a running connector's /healthz (connector.metrics_port); exit 0 healthy",
        description="Reads /healthz of the connector running with this configuration (on "
        "connector.metrics_port) and prints whether it is healthy; its phase (replay, "
        "catch_up, live) with the share done and ETA, stream position, lag, last write and "
        "last error; then every detail it gave. Says so when nothing answers there. Exit 0 "
        "healthy, 1 otherwise.",
    )
    _config_option(status, default=argparse.SUPPRESS)
    _verbose_option(status)
    status.add_argument(
        "--healthcheck",
        action="store_true",
        help="for container health checks: without a metrics port there is nothing to ask "
        "(exit 0), and an invalid configuration is exit 1, not 2",
    )
    status.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)"
    )

    demo = sub.add_parser(
        "demo",
        help="run locally against a bundled Elasticsearch-API server and an OpenCTI stand-in",
    )
    demo.add_argument("--bundle", type=Path, default=None, help="STIX bundle to stream")
    demo.add_argument("--keep-running", action="store_true", help="keep serving after the demo")
    return parser


def _load(path: Path | None, *, offline: bool) -> Effective | None:
    """The effective config, or None after printing every problem to stderr."""
    import os

    from elastic_connector.shell.settings import load_effective

    result = load_effective(path, os.environ, offline=offline)
    if isinstance(result, Failure):
        errors = result.failure()
        print(
            f"elastic-connector: invalid configuration ({len(errors)} problem(s)):", file=sys.stderr
        )
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return None
    return result.unwrap()


def _print_notes(notes: Sequence[ConfigNote]) -> None:
    """What loading the configuration had to say (earlier names, ignored keys), on stderr."""
    for note in notes:
        print(
            f"elastic-connector: {'warning' if note.warning else 'note'}: {note}", file=sys.stderr
        )


def _verbose(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "verbose", False))


def _open_input(name: str, stack: ExitStack) -> BinaryIO | None:
    if name == "-":
        return sys.stdin.buffer
    try:
        return stack.enter_context(Path(name).open("rb"))
    except OSError as error:
        print(f"elastic-connector: cannot read {name}: {error.strerror}", file=sys.stderr)
        return None


def _cmd_map(args: argparse.Namespace) -> int:
    from elastic_connector.map_command import run_map
    from elastic_connector.shell.logs import command_output

    effective = _load(args.config, offline=True)
    if effective is None:
        return EXIT_USAGE
    _print_notes(effective.notes)
    now: datetime = args.now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    with ExitStack() as stack:
        stack.enter_context(command_output(effective.config, verbose=_verbose(args)))
        source = _open_input(args.file, stack)
        if source is None:
            return EXIT_USAGE
        return run_map(source, sys.stdout.buffer, sys.stderr, effective.config, now)


def _cmd_sightings(args: argparse.Namespace) -> int:
    from elastic_connector.shell.logs import command_output
    from elastic_connector.sightings_command import run_sightings

    effective = _load(args.config, offline=True)
    if effective is None:
        return EXIT_USAGE
    _print_notes(effective.notes)
    with ExitStack() as stack:
        stack.enter_context(command_output(effective.config, verbose=_verbose(args)))
        source = _open_input(args.file, stack)
        if source is None:
            return EXIT_USAGE
        return run_sightings(source, sys.stdout, sys.stderr, effective.config)


def _cmd_run(args: argparse.Namespace) -> int:
    import logging

    from elastic_connector.shell import logs
    from elastic_connector.shell.daemon import run

    effective = _load(args.config, offline=False)
    if effective is None:
        return EXIT_USAGE
    logs.configure(effective.config)
    log = logging.getLogger("elastic_connector.config")
    for note in effective.notes:
        log.log(logging.WARNING if note.warning else logging.INFO, "%s", note)
    return run(effective.config)


def _cmd_check(args: argparse.Namespace) -> int:
    from elastic_connector.shell.check import run_check
    from elastic_connector.shell.logs import command_output

    effective = _load(args.config, offline=False)
    if effective is None:
        return EXIT_USAGE
    with command_output(effective.config, verbose=_verbose(args)):
        return run_check(effective.config, sys.stdout, notes=effective.notes)


def _cmd_config(args: argparse.Namespace) -> int:
    from elastic_connector.core.config.export import effective_env, effective_yaml

    effective = _load(args.config, offline=False)
    if effective is None:
        return EXIT_USAGE
    _print_notes(effective.notes)
    render = effective_env if args.env else effective_yaml
    sys.stdout.write(render(effective.config, effective.origins))
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from elastic_connector.shell.logs import command_output
    from elastic_connector.shell.status import run_status

    effective = _load(args.config, offline=True)
    if effective is None:
        # Docker reads exit 2 as "reserved": a health check answers 0 or 1 only.
        return EXIT_FAILURE if args.healthcheck else EXIT_USAGE
    with command_output(effective.config, verbose=_verbose(args)):
        return run_status(
            effective.config, sys.stdout, healthcheck=args.healthcheck, timeout=args.timeout
        )


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from elastic_connector.reconcile_command import run_reconcile
    from elastic_connector.shell.logs import command_output

    effective = _load(args.config, offline=False)
    if effective is None:
        return EXIT_USAGE
    _print_notes(effective.notes)
    with command_output(effective.config, verbose=_verbose(args)):
        return run_reconcile(
            effective.config,
            sys.stdout,
            sys.stderr,
            dry_run=args.dry_run,
            progress=args.progress or sys.stderr.isatty(),
        )


def _cmd_setup(args: argparse.Namespace) -> int:
    from elastic_connector.shell.logs import command_output

    effective = _load(args.config, offline=True)
    if effective is None:
        return EXIT_USAGE
    _print_notes(effective.notes)
    with command_output(effective.config, verbose=_verbose(args)):
        return _setup(effective.config)


def _setup(config: Config) -> int:
    import msgspec
    from elastic_transport import ApiError, TransportError

    from elastic_connector.shell.daemon import index_mappings
    from elastic_connector.shell.elastic import (
        PermanentElasticsearchError,
        build_client,
        describe_error,
    )
    from elastic_connector.shell.index_setup import ensure_setup
    from elastic_connector.shell.output_setup import setup_outputs

    client = build_client(config.elasticsearch, config.cloud)
    try:
        report = ensure_setup(
            client, index=config.index, mappings=index_mappings(config.connector.mode)
        )
        # An administrator's run: create what the connector's reduced key may not.
        outputs = setup_outputs(
            client,
            msgspec.structs.replace(
                config,
                elasticsearch=msgspec.structs.replace(
                    config.elasticsearch, reduced_privileges=False
                ),
            ),
        )
    except PermanentElasticsearchError as error:
        print(f"elastic-connector setup: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except (ApiError, TransportError) as error:
        print(
            f"elastic-connector setup: {describe_error(error, config.elasticsearch.hosts)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"index {config.index}: {'changed' if report.changed else 'already up to date'}")
    print(f"  template {report.template}{' (updated)' if report.template_changed else ''}")
    if report.created_index:
        print(f"  created {report.created_index} with write alias {config.index}")
    for field in report.mappings_updated:
        print(f"  mapping updated: {field}")
    for problem in report.incompatible:
        print(f"  WARNING incompatible mapping: {problem}")
    for note in report.notes:
        print(f"  note: {note}")
    for change in outputs.changed:
        print(change)
    if outputs.lookup_index:
        print(f"ES|QL lookup index {outputs.lookup_index}: ready")
    if outputs.dead_letter_index:
        print(f"dead-letter index {outputs.dead_letter_index}: ready")
    for note in outputs.notes:
        print(f"  note: {note}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from elastic_connector.demo.runner import run_demo

    return run_demo(bundle=args.bundle, keep_running=args.keep_running, out=sys.stdout)


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "check": _cmd_check,
    "setup": _cmd_setup,
    "reconcile": _cmd_reconcile,
    "map": _cmd_map,
    "sightings": _cmd_sightings,
    "config": _cmd_config,
    "status": _cmd_status,
    "demo": _cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command is None:
        args.command = "run"
    return _HANDLERS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
