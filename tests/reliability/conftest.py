"""Reliability suite fixtures: the end-to-end harness (``e2e_harness``) and the Elasticsearch
and OpenCTI fixtures of ``tests/support`` (registered in ``tests/conftest.py``)."""

from __future__ import annotations

from tests.e2e.harness import e2e_harness

__all__ = ["e2e_harness"]
