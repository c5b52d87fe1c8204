"""What the daemon tells an operator about its own work.

- ``progress``: the phase of a sync (``starting``, ``replay``, ``catch_up``, ``live``), what the
  events read came to, how much of a replay or catch-up is done and its ETA, and the progress
  lines that say so;
- ``repeat_limit``: how often one kind of warning may be logged before the rest are summed up
  in one "(N more like this)" line.

Exports ``Phase``, ``Counts``, ``Report``, ``progress_line``, ``RepeatLimits``, ``admit``,
``close_windows`` and ``left_out_line``.
"""

from elastic_connector.core.monitoring.progress import Counts, Phase, Report, progress_line
from elastic_connector.core.monitoring.repeat_limit import (
    RepeatLimits,
    admit,
    close_windows,
    left_out_line,
)

__all__ = [
    "Counts",
    "Phase",
    "RepeatLimits",
    "Report",
    "admit",
    "close_windows",
    "left_out_line",
    "progress_line",
]
