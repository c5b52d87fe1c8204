"""The container image definition, checked without a Docker engine (none on CI machines).

A lint of the rules we rely on (non-root user, pinned base, exec-form entry point, no secrets
or network fetches baked in), and a build of the wheel the image installs, from exactly the
files the Dockerfile copies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_the_runtime_stage_runs_as_an_unprivileged_numeric_user() -> None:
    users = [args for keyword, args in _final_stage() if keyword == "USER"]
    assert users, "the final stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user.isdigit()
    assert int(user) >= 1000


def test_base_images_are_pinned_and_official() -> None:
    args = dict(
        args.split("=", 1) for keyword, args in _instructions() if keyword == "ARG" and "=" in args
    )
    for keyword, image in _instructions():
        if keyword != "FROM":
            continue
        name = image.split()[0]
        name = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], name)
        assert ":" in name
        assert not name.endswith(":latest")
        assert name.startswith("python:3.")


def test_entrypoint_and_cmd_use_the_exec_form() -> None:
    stage = dict(_final_stage())
    assert stage["ENTRYPOINT"] == '["elastic-connector"]'
    assert stage["CMD"] == '["run"]'


def test_nothing_is_fetched_or_baked_in_that_should_not_be() -> None:
    for keyword, args in _instructions():
        assert keyword != "ADD", "COPY, not ADD (no remote URLs, no implicit extraction)"
        if keyword == "ENV":
            assert not re.search(r"(TOKEN|PASSWORD|API_KEY|AUTH)=", args)
        if keyword == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "config.yml" in ignored  # a local config with secrets never reaches the build context
    assert ".git" in ignored


def test_the_wheel_the_image_installs_builds_from_the_copied_files(tmp_path: Path) -> None:
    copies = [
        args.split()
        for keyword, args in _instructions()
        if keyword == "COPY" and "--from" not in args
    ]
    context = tmp_path / "context"
    context.mkdir()
    for *sources, _destination in copies:
        for source in sources:
            origin = ROOT / source
            target = context / source
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, target)
    if shutil.which("pip") is None and not (Path(sys.executable).parent / "pip").exists():
        pytest.skip("pip is not available")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path / "w"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheels = list((tmp_path / "w").glob("elastic_connector-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "elastic_connector/py.typed" in names
    assert "elastic_connector/cli.py" in names
    assert any(name.endswith("entry_points.txt") for name in names)
