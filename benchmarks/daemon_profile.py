"""Run ``elastic-connector`` with cProfile in every thread (``python -m benchmarks.daemon_profile
OUT_DIR run``).

``cProfile`` only sees the thread that enables it, and the daemon's work happens in its own
threads (``opencti-stream`` reads, ``es-writer`` plans and writes). Each thread started here
gets its own profiler; when the thread ends (the daemon joins them on SIGTERM) its statistics
are written to ``OUT_DIR/<thread name>.prof``, and the main thread's to ``OUT_DIR/main.prof``.
The profilers measure wall time, so time spent blocked (on a queue, on the network) shows up
under the call that blocked. Nothing in the connector changes.
"""

from __future__ import annotations

import cProfile
import sys
import threading
from pathlib import Path


def _install(out_dir: Path) -> None:
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            original_run(self)
        finally:
            profiler.disable()
            profiler.dump_stats(str(out_dir / f"{self.name}.prof"))

    threading.Thread.run = profiled_run  # type: ignore[method-assign]  # profiling hook


def main(argv: list[str]) -> int:
    """``argv``: the output directory, then the ``elastic-connector`` arguments."""
    if not argv:
        print("usage: python -m benchmarks.daemon_profile OUT_DIR [elastic-connector args]")
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    _install(out_dir)
    from elastic_connector.cli import main as connector_main

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return connector_main(argv[1:])
    finally:
        profiler.disable()
        profiler.dump_stats(str(out_dir / "main.prof"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
