"""The `elastic-connector` command.

    elastic-connector [run] [-c CONFIG]      stream OpenCTI into Elasticsearch (the daemon)
    elastic-connector check [-c CONFIG]      check config, both platforms, privileges
    elastic-connector setup [-c CONFIG]      create/update the index template and index only
    elastic-connector map [-c CONFIG] [FILE|-]        bundle/stream events -> _bulk NDJSON (offline)
    elastic-connector sightings [-c CONFIG] [FILE|-]  NDJSON alerts -> sightings (offline)
    elastic-connector demo                   everything locally, with embedded sample data

Exit codes: 0 success, 1 runtime failure (a platform unreachable...), 2 bad usage, config or input.
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

    setup = sub.add_parser("setup", help="create or update the index template and index")
    _config_option(setup, default=argparse.SUPPRESS)

    mapper = sub.add_parser(
        "map",
        help="map a STIX bundle or NDJSON stream events to _bulk NDJSON (no network)",
        description="Reads a STIX 2.1 bundle, a JSON array of STIX objects or a single object "
        "(each object as a create event), or NDJSON stream events "
        '({"id","event","data"} per line), in any JSON layout (a UTF-8 BOM is ignored), and '
        "writes Elasticsearch _bulk NDJSON to stdout. Skips go to stderr as "
        '{"skip": reason, "id": object id}; unreadable input exits 2.',
    )
    _config_option(mapper, default=argparse.SUPPRESS)
    mapper.add_argument("file", nargs="?", default="-", help="input file, or - for stdin")
    mapper.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=None,
        help="ISO time used as 'now' (expiry decisions, @timestamp); default: the current time",
    )

    sightings = sub.add_parser(
        "sightings",
        help="turn NDJSON alerts into sightings (no network)",
        description="Reads NDJSON alerts (an alert _source or a search hit per line) and writes "
        "one JSON line per sighting. Malformed lines go to stderr as "
        '{"skip": reason, "line": N}.',
    )
    _config_option(sightings, default=argparse.SUPPRESS)
    sightings.add_argument("file", nargs="?", default="-", help="input file, or - for stdin")

    demo = sub.add_parser(
        "demo",
        help="run locally against a bundled Elasticsearch-API server and an OpenCTI stand-in",
    )
    demo.add_argument("--bundle", type=Path, default=None, help="STIX bundle to stream")
    demo.add_argument("--keep-running", action="store_true", help="keep serving after the demo")
    return parser


def _load(path: Path | None, *, offline: bool) -> Config | None:
    """The effective config, or None after printing every problem to stderr."""
    import os

    from elastic_connector.shell.settings import load_config

    result = load_config(path, os.environ, offline=offline)
    if isinstance(result, Failure):
        errors = result.failure()
        print(
            f"elastic-connector: invalid configuration ({len(errors)} problem(s)):", file=sys.stderr
        )
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return None
    return result.unwrap()


def _open_input(name: str, stack: ExitStack) -> BinaryIO | None:
    if name == "-":
        return sys.stdin.buffer
    try:
        return stack.enter_context(Path(name).open("rb"))
    except OSError as error:
        print(f"elastic-connector: cannot read {name}: {error.strerror}", file=sys.stderr)
        return None


def _cmd_map(args: argparse.Namespace) -> int:
    from elastic_connector.core.events import PlanSettings
    from elastic_connector.map_command import run_map

    config = _load(args.config, offline=True)
    if config is None:
        return EXIT_USAGE
    now: datetime = args.now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    with ExitStack() as stack:
        source = _open_input(args.file, stack)
        if source is None:
            return EXIT_USAGE
        return run_map(source, sys.stdout.buffer, sys.stderr, PlanSettings.from_config(config), now)


def _cmd_sightings(args: argparse.Namespace) -> int:
    from elastic_connector.sightings_command import run_sightings

    config = _load(args.config, offline=True)
    if config is None:
        return EXIT_USAGE
    with ExitStack() as stack:
        source = _open_input(args.file, stack)
        if source is None:
            return EXIT_USAGE
        return run_sightings(source, sys.stdout, sys.stderr, config)


def _cmd_run(args: argparse.Namespace) -> int:
    from elastic_connector.shell.daemon import run

    config = _load(args.config, offline=False)
    if config is None:
        return EXIT_USAGE
    return run(config)


def _cmd_check(args: argparse.Namespace) -> int:
    from elastic_connector.shell.check import run_check

    config = _load(args.config, offline=False)
    if config is None:
        return EXIT_USAGE
    return run_check(config, sys.stdout)


def _cmd_setup(args: argparse.Namespace) -> int:
    from elastic_transport import ApiError, TransportError

    from elastic_connector.shell.daemon import index_mappings
    from elastic_connector.shell.elastic import (
        PermanentElasticsearchError,
        build_client,
        describe_error,
    )
    from elastic_connector.shell.index_setup import ensure_setup

    config = _load(args.config, offline=True)
    if config is None:
        return EXIT_USAGE
    client = build_client(config.elasticsearch, config.cloud)
    try:
        report = ensure_setup(
            client, index=config.index, mappings=index_mappings(config.connector.mode)
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
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from elastic_connector.demo.runner import run_demo

    return run_demo(bundle=args.bundle, keep_running=args.keep_running, out=sys.stdout)


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "check": _cmd_check,
    "setup": _cmd_setup,
    "map": _cmd_map,
    "sightings": _cmd_sightings,
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
