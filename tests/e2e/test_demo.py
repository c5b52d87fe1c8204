"""The README's run command: `elastic-connector demo` works with no external server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_walks_through_the_whole_loop() -> None:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "elastic_connector", "demo"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Indicator documents in logs-ti_opencti_connector.indicator (7):" in out
    for withheld in (
        "Revoked indicator",
        "Expired indicator",
        "TLP:RED indicator",
        "Sigma rule",
        "Regex-only pattern",
    ):
        assert withheld in out
    assert "OpenCTI now has a sighting" in out
    assert "its document is gone: 6 indicator documents left" in out
    assert "stopped with exit code 0" in out
