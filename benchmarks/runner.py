"""The benchmark command: run the sections, print a table, write the JSON results.

Profiles (``--events``, ``--ingest-sizes``, ``--endpoint-sizes``... override them):

=========  =======  =====================  ===============  =======  ======  =======
profile    mapping  daemon, null endpoint  daemon, ES       profile  alerts  repeats
=========  =======  =====================  ===============  =======  ======  =======
quick      1 000    1 000, 5 000           1 000            1 000    1 000   2
default    5 000    10 000, 100 000        10 000           10 000   5 000   3
full       20 000   10 000, 100 000, 300k  10 000, 100 000  10 000   20 000  5
=========  =======  =====================  ===============  =======  ======  =======

and indicators of the reconcile section (quick 2 000, default and full 100 000) and of the
initial sync section (quick 1 000, full 50 000; the default skips it: ``--sections
initial_sync --initial-sync-indicators 50000`` runs it alone, about five minutes).

The default takes about four minutes on a quiet 2-core machine (``nox -s bench`` must stay
under five; most of it is noida-db taking the 100 000 documents of the reconcile section);
``--quick`` about 40 s. ``docs/performance.md`` explains every number.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from benchmarks.alerts import AlertsResult, run_alerts
from benchmarks.generator import stream_events
from benchmarks.ingest import IngestResult, run_ingest
from benchmarks.mapping import MappingResult, ParserResult, run_core_sections
from benchmarks.reconcile import (
    InitialSyncResult,
    ReconcileResult,
    run_initial_sync_section,
    run_reconcile_section,
)

SECTIONS: Final = ("mapping", "parser", "ingest", "alerts", "reconcile", "initial_sync")
DEFAULT_OUTPUT: Final = Path(__file__).resolve().parent / "results" / "latest.json"
TARGET_RATIO: Final = 15.0
"""Core mapping over ``stix2-patterns`` (issue 16; the first aim, 30x, is in performance.md)."""
TARGET_CONNECTOR_DOCS_S: Final = 20_000.0
"""The daemon against the null endpoint on this 2-core machine (issue 16)."""


class Profile(msgspec.Struct, frozen=True):
    name: str
    events: int
    """Events of the mapping and parser sections."""
    ingest_sizes: tuple[int, ...]
    """Events of each daemon run against the null bulk endpoint (the connector alone)."""
    endpoint_sizes: tuple[int, ...]
    """Events of each daemon run against the real endpoint."""
    profile_events: int
    alerts: int
    repeats: int
    reconcile_indicators: int = 0
    """Indicators of the reconcile section (0: skipped)."""
    initial_sync_indicators: int = 0
    """Indicators of the initial sync section (0: skipped)."""


PROFILES: Final = {
    "quick": Profile("quick", 1_000, (1_000, 5_000), (1_000,), 1_000, 1_000, 2, 2_000, 1_000),
    "default": Profile(
        "default", 5_000, (10_000, 100_000), (10_000,), 10_000, 5_000, 3, 100_000, 0
    ),
    "full": Profile(
        "full",
        20_000,
        (10_000, 100_000, 300_000),
        (10_000, 100_000),
        10_000,
        20_000,
        5,
        100_000,
        50_000,
    ),
}


class Machine(msgspec.Struct, frozen=True):
    python: str
    implementation: str
    platform: str
    cpu: str
    cpus: int
    """CPUs this process may run on."""
    memory_gb: float
    load_average: tuple[float, float, float]
    """At the start of the run: other work on the machine slows the wall-clock sections."""


class Targets(msgspec.Struct, frozen=True):
    mapping_ratio_at_least_15: bool | None
    connector_alone_at_least_20k: bool | None
    """The fastest connector-alone run writes at least 20,000 documents/s."""
    rss_flat: bool | None
    """Peak RSS of the largest connector run within 10% (and 20 MB) of the smallest's."""
    connector_not_the_limit: bool | None
    """The connector alone ingests faster than the endpoint alone, and the profiled writer
    waits longer for Elasticsearch than it spends planning."""
    reconcile_dry_run_under_2_min: bool | None = None
    """``reconcile --dry-run`` over 100 000 indicators in under two minutes."""
    reconcile_rss_under_250_mb: bool | None = None
    """...with a peak RSS under 250 MB."""


class Results(msgspec.Struct, frozen=True, omit_defaults=True):
    profile: Profile
    seed: int
    started: str
    seconds: float
    machine: Machine
    targets: Targets
    mapping: MappingResult | None = None
    parser: ParserResult | None = None
    ingest: IngestResult | None = None
    alerts: AlertsResult | None = None
    reconcile: ReconcileResult | None = None
    initial_sync: InitialSyncResult | None = None


# --- the machine --------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def machine() -> Machine:
    """What the numbers were measured on."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return Machine(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        cpu=_cpu_model(),
        cpus=cpus or 1,
        memory_gb=_memory_gb(),
        load_average=(round(load[0], 2), round(load[1], 2), round(load[2], 2)),
    )


# --- targets and the table ------------------------------------------------------------------


def targets(
    mapping: MappingResult | None,
    ingest: IngestResult | None,
    reconcile: ReconcileResult | None = None,
) -> Targets:
    """Whether the issue's targets are met by these numbers (None: not measured)."""
    rss_flat = None
    not_the_limit = None
    if ingest is not None and len(ingest.connector_runs) >= 2:
        small = ingest.connector_runs[0].peak_rss_mb
        large = ingest.connector_runs[-1].peak_rss_mb
        rss_flat = large - small <= min(0.1 * small, 20.0)
    if ingest is not None and ingest.profile is not None:
        profile = ingest.profile
        ceiling = max(run.docs_per_s for run in ingest.connector_runs)
        not_the_limit = (
            ceiling > ingest.endpoint_alone.docs_per_s
            and profile.waiting_for_elasticsearch_s >= profile.planning_s
        )
    at_scale = reconcile is not None and reconcile.indicators >= 100_000
    return Targets(
        mapping_ratio_at_least_15=None if mapping is None else mapping.ratio >= TARGET_RATIO,
        connector_alone_at_least_20k=None
        if ingest is None or not ingest.connector_runs
        else max(run.docs_per_s for run in ingest.connector_runs) >= TARGET_CONNECTOR_DOCS_S,
        rss_flat=rss_flat,
        connector_not_the_limit=not_the_limit,
        reconcile_dry_run_under_2_min=(
            reconcile.dry_run.seconds < 120 if reconcile is not None and at_scale else None
        ),
        reconcile_rss_under_250_mb=(
            reconcile.dry_run.peak_rss_mb < 250 if reconcile is not None and at_scale else None
        ),
    )


def _n(value: float) -> str:
    return f"{value:,.0f}"


def table(results: Results) -> str:
    """The human summary printed after a run."""
    rows: list[tuple[str, str, str]] = []
    if results.mapping is not None:
        m = results.mapping
        rows.append(
            (
                f"core mapping: {m.events:,} events -> NDJSON (1 core)",
                f"{_n(m.events_per_s)} events/s",
                f"{m.us_per_event:.1f} us/event",
            )
        )
        rows.append(
            (
                "  stix2-patterns inspect, same patterns",
                f"{_n(m.stix2_patterns_per_s)} patterns/s",
                f"{m.stix2_us_per_pattern:.0f} us/pattern",
            )
        )
        rows.append(
            (
                "  the same with every export filter and a lifetime set",
                f"{_n(1e6 / m.filtered_us_per_event)} events/s" if m.filtered_us_per_event else "-",
                f"{m.filtered_us_per_event:.1f} us/event ({m.filtered_upserts:,} upserts)",
            )
        )
        rows.append(
            (
                "  ratio core mapping / stix2-patterns",
                f"{m.ratio:.1f}x",
                f"target >= {TARGET_RATIO:.0f}x",
            )
        )
        s = m.stages
        rows.append(
            (
                "  per indicator (us): decode/parse/map/doc/action",
                f"{s.decode:.1f}/{s.parse:.1f}/{s.policy_and_map:.1f}/"
                f"{s.encode_document:.1f}/{s.encode_action:.1f}",
                "",
            )
        )
    if results.parser is not None:
        p = results.parser
        rows.append(
            (
                f"pattern parser: {p.patterns:,} patterns",
                f"{_n(p.patterns_per_s)} patterns/s",
                f"{p.us_per_pattern:.1f} us/pattern",
            )
        )
        rows.append(("  ratio parser / stix2-patterns", f"{p.ratio:.1f}x", ""))
    if results.ingest is not None:
        i = results.ingest
        for run in i.connector_runs:
            rows.append(
                (
                    f"connector alone (null bulk endpoint): {run.events:,} events",
                    f"{_n(run.docs_per_s)} docs/s",
                    f"peak RSS {run.peak_rss_mb:.0f} MB",
                )
            )
        rows.append(
            ("  peak RSS growth, smallest -> largest run", f"{i.rss_growth_mb:+.1f} MB", "")
        )
        for run in i.endpoint_runs:
            rows.append(
                (
                    f"end-to-end ingest: {run.events:,} events ({i.endpoint})",
                    f"{_n(run.docs_per_s)} docs/s",
                    f"peak RSS {run.peak_rss_mb:.0f} MB",
                )
            )
        a = i.endpoint_alone
        rows.append(
            (
                f"  endpoint alone: {a.actions:,} actions in {a.requests} bulk requests",
                f"{_n(a.docs_per_s)} docs/s",
                f"daemon reaches {i.connector_share:.0%} of it",
            )
        )
        for pr in (i.profile, i.connector_profile):
            if pr is None:
                continue
            rows.append(
                (
                    f"  writer thread, {pr.events:,} events profiled ({pr.endpoint} endpoint)",
                    f"ES {pr.waiting_for_elasticsearch_s:.1f}s / plan {pr.planning_s:.1f}s"
                    + (
                        f" + {pr.waiting_for_planning_s:.1f}s waiting for the planning process"
                        if pr.waiting_for_planning_s
                        else ""
                    ),
                    f"waiting for the stream {pr.waiting_for_stream_s:.1f}s of "
                    f"{pr.thread_wall_s:.1f}s",
                )
            )
    if results.alerts is not None:
        al = results.alerts
        rows.append(
            (
                f"alert polling: {al.alerts:,} alerts -> sightings",
                f"{_n(al.alerts_per_s)} alerts/s",
                f"{_n(al.alerts_per_s_from_json)} alerts/s from JSON",
            )
        )
    if results.reconcile is not None:
        r = results.reconcile
        for command in (r.fill, r.dry_run):
            line = command.summary
            rows.append(
                (
                    f"{command.what}: {r.indicators:,} indicators ({r.endpoint})",
                    f"{command.seconds:.1f} s",
                    f"peak RSS {command.peak_rss_mb:.0f} MB; missing {line.get('missing')}, "
                    f"stale {line.get('stale')}, orphaned {line.get('orphaned')}",
                )
            )
    if results.initial_sync is not None:
        first_start = results.initial_sync
        for sync in first_start.runs:
            if sync.crash_at_documents:
                rows.append(
                    (
                        f"first start by {sync.mode}, killed at {sync.crash_at_documents:,} "
                        f"of {sync.documents:,}: restart",
                        f"{sync.restart_seconds:.1f} s",
                        f"{sync.restart_written:,} documents written again",
                    )
                )
            else:
                rows.append(
                    (
                        f"first start by {sync.mode}: {first_start.indicators:,} indicators",
                        f"{sync.seconds:.1f} s",
                        f"peak RSS {sync.peak_rss_mb:.0f} MB",
                    )
                )
    width = max(len(r[0]) for r in rows) if rows else 0
    second = max(len(r[1]) for r in rows) if rows else 0
    lines = [f"{a:<{width}}  {b:>{second}}  {c}".rstrip() for a, b, c in rows]
    mach = results.machine
    lines.append("")
    from elastic_connector.core import compiled

    lines.append(f"core build: {'compiled (mypyc)' if compiled() else 'pure Python'}")
    lines.append(
        f"machine: {mach.cpu}, {mach.cpus} CPUs, {mach.memory_gb} GB, Python {mach.python}, "
        f"load {mach.load_average[0]} at start; profile {results.profile.name}, "
        f"{results.seconds:.0f} s"
    )
    t = results.targets
    lines.append(
        "targets: "
        + ", ".join(
            f"{name}={'n/a' if ok is None else ('met' if ok else 'NOT MET')}"
            for name, ok in (
                (f"ratio>={TARGET_RATIO:.0f}x", t.mapping_ratio_at_least_15),
                (
                    f"connector alone >= {TARGET_CONNECTOR_DOCS_S:,.0f} docs/s",
                    t.connector_alone_at_least_20k,
                ),
                ("rss flat", t.rss_flat),
                ("connector not the limit", t.connector_not_the_limit),
                ("reconcile dry run < 2 min", t.reconcile_dry_run_under_2_min),
                ("reconcile RSS < 250 MB", t.reconcile_rss_under_250_mb),
            )
        )
    )
    return "\n".join(lines)


# --- the command --------------------------------------------------------------------------------


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("comma-separated positive integers expected")
    return sizes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="elastic-connector throughput benchmarks (prints a table, writes JSON).",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (about 20 s)")
    size.add_argument("--full", action="store_true", help="larger sizes (several minutes)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--events", type=int, help="events for the mapping/parser sections")
    parser.add_argument(
        "--ingest-sizes",
        type=_sizes,
        help="events per daemon run against the null bulk endpoint, e.g. 10000,100000",
    )
    parser.add_argument(
        "--endpoint-sizes",
        type=_sizes,
        help="events per daemon run against noida-db / ELASTICSEARCH_TEST_URL, e.g. 10000",
    )
    parser.add_argument("--profile-events", type=int, help="events of the profiled daemon run")
    parser.add_argument("--alerts", type=int, help="alerts for the alert polling section")
    parser.add_argument("--repeats", type=int, help="timed repetitions (best is kept)")
    parser.add_argument(
        "--reconcile-indicators", type=int, help="indicators of the reconcile section"
    )
    parser.add_argument(
        "--initial-sync-indicators",
        type=int,
        help="indicators of the initial sync section (the full profile: 50000)",
    )
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    return parser


def _profile(args: argparse.Namespace) -> Profile:
    base = PROFILES["quick" if args.quick else "full" if args.full else "default"]
    return Profile(
        name=base.name,
        events=args.events or base.events,
        ingest_sizes=args.ingest_sizes or base.ingest_sizes,
        endpoint_sizes=args.endpoint_sizes or base.endpoint_sizes,
        profile_events=args.profile_events or base.profile_events,
        alerts=args.alerts or base.alerts,
        repeats=args.repeats or base.repeats,
        reconcile_indicators=args.reconcile_indicators or base.reconcile_indicators,
        initial_sync_indicators=args.initial_sync_indicators or base.initial_sync_indicators,
    )


def run(profile: Profile, sections: Sequence[str], seed: int) -> Results:
    """Run ``sections`` with ``profile``'s sizes."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    host = machine()
    mapping: MappingResult | None = None
    parser: ParserResult | None = None
    ingest: IngestResult | None = None
    alerts: AlertsResult | None = None
    if "mapping" in sections or "parser" in sections:
        print(f"core: mapping {profile.events:,} events ...", file=sys.stderr, flush=True)
        mapped, parsed, _ = run_core_sections(stream_events(profile.events, seed), profile.repeats)
        mapping = mapped if "mapping" in sections else None
        parser = parsed if "parser" in sections else None
    if "ingest" in sections:
        sizes = ", ".join(f"{n:,}" for n in profile.ingest_sizes)
        endpoint_sizes = ", ".join(f"{n:,}" for n in profile.endpoint_sizes)
        print(
            f"ingest: {sizes} events (null endpoint), {endpoint_sizes} (Elasticsearch) ...",
            file=sys.stderr,
            flush=True,
        )
        ingest = run_ingest(
            profile.ingest_sizes, profile.endpoint_sizes, profile.profile_events, seed
        )
    if "alerts" in sections:
        print(f"alerts: {profile.alerts:,} alerts ...", file=sys.stderr, flush=True)
        alerts = run_alerts(profile.alerts, profile.repeats)
    reconcile: ReconcileResult | None = None
    if "reconcile" in sections and profile.reconcile_indicators:
        print(
            f"reconcile: {profile.reconcile_indicators:,} indicators ...",
            file=sys.stderr,
            flush=True,
        )
        reconcile = run_reconcile_section(profile.reconcile_indicators, seed)
    initial_sync: InitialSyncResult | None = None
    if "initial_sync" in sections and profile.initial_sync_indicators:
        print(
            f"initial sync: {profile.initial_sync_indicators:,} indicators, stream and "
            "reconcile, with and without a crash ...",
            file=sys.stderr,
            flush=True,
        )
        initial_sync = run_initial_sync_section(profile.initial_sync_indicators, seed)
    return Results(
        profile=profile,
        seed=seed,
        started=started.isoformat(timespec="seconds"),
        seconds=time.monotonic() - clock,
        machine=host,
        targets=targets(mapping, ingest, reconcile),
        mapping=mapping,
        parser=parser,
        ingest=ingest,
        alerts=alerts,
        reconcile=reconcile,
        initial_sync=initial_sync,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    args = _parser().parse_args(argv)
    sections = [part.strip() for part in args.sections.split(",") if part.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    results = run(_profile(args), sections, args.seed)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n")
    print(table(results))
    print(f"\nresults: {output}")
    return 0
