"""The container image definition, checked without a Docker engine (none on CI machines).

A lint of the rules we rely on (non-root user, pinned base, exec-form entry point, no secrets
or network fetches baked in, a health check that needs no curl, a compiler in the build stage
only), a run of the health check's exact command against a real health endpoint, and a build of
the wheel the image installs, from exactly the files the Dockerfile copies and with the build
stage's environment: the compiled core.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from elastic_connector.shell.metrics import Metrics, MetricsServer

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


def _stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage, from its FROM to the next."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _final_stage() -> list[tuple[str, str]]:
    return _stages()[-1]


def _build_stage() -> list[tuple[str, str]]:
    """The stage that makes the wheels the final stage copies."""
    (source,) = [
        re.search(r"--from=(\S+)", args)
        for keyword, args in _final_stage()
        if keyword == "COPY" and "--from" in args
    ]
    assert source is not None
    (stage,) = [s for s in _stages() if s[0][1].split()[-1] == source.group(1)]
    return stage


def _stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """A stage's ENV variables (``ENV NAME=value ...`` form)."""
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in args.split():
                name, _, value = item.partition("=")
                env[name] = value
    return env


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


def test_the_compiler_is_in_the_build_stage_only() -> None:
    build = _build_stage()
    installs = [args for keyword, args in build if keyword == "RUN" and "apt-get install" in args]
    assert len(installs) == 1
    packages = set(installs[0].split("apt-get install", 1)[1].split("&&", 1)[0].split())
    # mypyc's C code needs a compiler and libc's headers (Python's are in the base image).
    assert {"gcc", "libc6-dev"} <= packages
    assert {"-y", "--no-install-recommends"} <= packages
    assert "rm -rf /var/lib/apt/lists/*" in installs[0]  # no package lists left in the layer
    # A build that cannot compile the core fails instead of shipping the pure modules.
    assert _stage_env(build)["ELASTIC_CONNECTOR_BUILD"] == "compiled"
    final = _final_stage()
    assert not [args for keyword, args in final if keyword == "RUN" and "apt-get" in args]
    assert "ELASTIC_CONNECTOR_BUILD" not in _stage_env(final)


def test_the_wheel_the_image_installs_is_compiled_from_the_copied_files(tmp_path: Path) -> None:
    copies = [
        args.split()
        for keyword, args in _build_stage()
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
    # The build stage's environment, not this machine's (this suite runs on a compiled build).
    environment = {k: v for k, v in os.environ.items() if k != "ELASTIC_CONNECTOR_BUILD"}
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
        env={**environment, **_stage_env(_build_stage())},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheels = list((tmp_path / "w").glob("elastic_connector-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "elastic_connector/py.typed" in names
    assert "elastic_connector/cli.py" in names
    assert any(name.endswith("entry_points.txt") for name in names)
    # The compiled core: the planner as an extension module, and mypyc's shared library.
    compiled = [n for n in names if n.endswith(".so")]
    assert any(re.fullmatch(r"elastic_connector/core/events\.cpython-.*\.so", n) for n in compiled)
    assert any(n.startswith("elastic_connector_core__mypyc.") for n in compiled), compiled


# --- health check ----------------------------------------------------------------------------


def _healthcheck() -> tuple[dict[str, str], list[str]]:
    """The final stage's HEALTHCHECK: its options (``interval`` -> ``30s``) and exec-form CMD."""
    checks = [args for keyword, args in _final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1, "the runtime stage needs exactly one HEALTHCHECK"
    options_text, cmd, command = checks[0].partition("CMD ")
    assert cmd, "HEALTHCHECK NONE would disable it"
    options = dict(option.removeprefix("--").split("=", 1) for option in options_text.split())
    return options, json.loads(command)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(ms|s|m|h)", duration)
    assert match is not None, f"not a Docker duration: {duration}"
    number, unit = match.groups()
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def test_the_healthcheck_asks_the_status_command_in_exec_form() -> None:
    options, command = _healthcheck()
    assert command[:2] == ["elastic-connector", "status"]  # exec form: no shell, no curl
    assert "--healthcheck" in command  # no metrics port: nothing to ask, not unhealthy
    assert not {"curl", "wget", "sh", "/bin/sh"} & set(command)
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    # The probe gives up before Docker kills it, so a hung endpoint reads as "unhealthy".
    probe_timeout = float(command[command.index("--timeout") + 1])
    assert probe_timeout < _seconds(options["timeout"])
    assert _seconds(options["start-period"]) >= 60
    assert int(options["retries"]) >= 2


def _run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK's command as the image runs it (``elastic-connector`` = this package)."""
    _, command = _healthcheck()
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")
    environment = {name: os.environ[name] for name in keep if name in os.environ}
    environment.update({"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", **env})
    return subprocess.run(
        [sys.executable, "-m", "elastic_connector", *command[1:]],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_the_healthcheck_command_follows_the_connectors_health(tmp_path: Path) -> None:
    healthy = {"now": True}

    def probe() -> tuple[bool, dict[str, object]]:
        return healthy["now"], {"stream": {"connected": healthy["now"]}}

    server = MetricsServer("127.0.0.1", 0, Metrics(), probe)
    server.start()
    # The default metrics host (0.0.0.0, every address) is asked on the loopback address.
    env = {"CONNECTOR_METRICS_PORT": str(server.port)}
    url = f"http://127.0.0.1:{server.port}/healthz"
    try:
        result = _run_healthcheck(env)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"OK   healthy ({url})"
        assert lines[-2:] == ["     details:", "       stream.connected: true"]

        healthy["now"] = False
        result = _run_healthcheck(env)
        assert result.returncode == 1
        assert result.stdout.splitlines()[0] == f"FAIL unhealthy ({url} answered 503)"
    finally:
        server.stop()

    result = _run_healthcheck(env)
    assert result.returncode == 1
    assert result.stdout.startswith(f"FAIL no connector answers on {url}: connection refused")
    assert result.stderr == ""


def test_the_healthcheck_passes_without_a_metrics_port_and_never_exits_2() -> None:
    result = _run_healthcheck({})
    assert result.returncode == 0
    assert "connector.metrics_port (CONNECTOR_METRICS_PORT) is not set" in result.stdout

    # Docker reserves exit code 2: an invalid configuration is "unhealthy" (1), said on stderr.
    result = _run_healthcheck({"CONNECTOR_METRICS_PORT": "nine"})
    assert result.returncode == 1
    assert "env CONNECTOR_METRICS_PORT: 'nine' is not an integer" in result.stderr
