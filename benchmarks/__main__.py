"""``python -m benchmarks [--quick | --full] [--sections ...] [--output PATH]``."""

from __future__ import annotations

import sys

from benchmarks.runner import main

sys.exit(main())
