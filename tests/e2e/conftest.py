"""End-to-end fixtures: the harness's (``tests/e2e/harness.py``)."""

from __future__ import annotations

from tests.e2e.harness import e2e_harness

__all__ = ["e2e_harness"]
