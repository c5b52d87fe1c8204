"""The README is the front door, and what it says works.

* It stays short and links every document under ``docs/``; ``How it works`` links the
  architecture.
* Every relative link of the README and of ``docs/`` reaches a file, and a ``#section`` a heading
  of that file; every repository path they quote in code exists.
* Every command of its shell blocks and inline code parses: ``elastic-connector`` ones with the
  real argument parser, ``nox`` sessions, pip extras, the variables given to the image.
* Its configuration example loads.

The generated tables live in ``docs/`` and are checked where they are generated
(``tests/core/config/test_docs.py``, ``tests/core/indicators/test_mapping.py``,
``tests/test_privileges_docs.py``).
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from returns.result import Success

from elastic_connector.cli import _parser
from elastic_connector.core.config.aliases import ALIASES
from elastic_connector.core.config.load import build_config, file_layer
from elastic_connector.core.config.options import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 285
NOT_COMMITTED = {"benchmarks/results/latest.json"}  # written by `python -m benchmarks`

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_HEADING = re.compile(r"^#+ (.+)$", re.M)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_REPO_PATH = re.compile(r"^(src|tests|docs|benchmarks|tools|\.ci)/[\w./-]*(\.[a-z]+|/)$")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in _HEADING.findall(_prose(page.read_text(encoding="utf-8")))}


def _links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in _LINK.findall(_prose(page.read_text(encoding="utf-8")))
        if not re.match(r"[a-z]+:", target)
    ]


def _section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, "the README is the front door: details go to docs/"


def test_the_readme_links_every_document() -> None:
    linked = {target for page, target in _links() if page == README}
    for doc in DOCS:
        assert f"docs/{doc.name}" in linked, f"README does not link docs/{doc.name}"


def test_the_sections_the_commands_point_to_exist() -> None:
    """What ``check`` prints (``see README, 'OpenCTI user'``) names a README section."""
    headings = {h.strip() for h in _HEADING.findall(_prose(README.read_text(encoding="utf-8")))}
    named = [
        name
        for path in sorted((ROOT / "src").rglob("*.py"))
        for name in re.findall(r"see README, '([^']+)'", path.read_text(encoding="utf-8"))
    ]
    assert named
    for name in named:
        assert name in headings, f"the README has no section {name!r}"


def test_how_it_works_links_the_architecture() -> None:
    assert "(docs/architecture.md)" in _section("## How it works")


@pytest.mark.parametrize(
    ("page", "target"), _links(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_a_link_reaches_its_file_and_section(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    assert linked.is_file(), f"{page.name}: {target} is not a file"
    if anchor:
        assert anchor in _anchors(linked), f"{page.name}: {target}: no such section"


def test_the_repository_paths_quoted_in_the_documents_exist() -> None:
    for page in PAGES:
        for span in _CODE_SPAN.findall(_prose(page.read_text(encoding="utf-8"))):
            path = span.split("::", 1)[0]  # a test id names its file
            if _REPO_PATH.match(path) and path not in NOT_COMMITTED:
                assert (ROOT / path).exists(), f"{page.name} quotes {path}, which does not exist"


def _shell_commands() -> list[str]:
    """The README's commands: its shell blocks (continuations joined, ``&&`` split) and its
    inline code that starts with a command."""
    text = README.read_text(encoding="utf-8")
    commands: list[str] = []
    for language, body in _FENCE.findall(text):
        if language == "sh":
            for line in body.replace("\\\n", " ").splitlines():
                commands.extend(part.strip() for part in line.split("&&") if part.strip())
    for span in _CODE_SPAN.findall(_prose(text)):
        if re.match(r"([A-Z_]+=\S+ )*elastic-connector \w", span) and "[" not in span:
            commands.append(span)
    return commands


def _env_names() -> set[str]:
    names = {option.env_var for option in OPTIONS}
    names |= {alias.env_var for alias in ALIASES if alias.env_var}
    return names | {"CONNECTOR_JSON_CONFIG"}


def _nox_sessions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project["optional-dependencies"])


@pytest.mark.parametrize("command", _shell_commands())
def test_a_readme_command_works(command: str) -> None:
    words = shlex.split(command.split(" #", 1)[0])
    assigned = []
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        assigned.append(words.pop(0).split("=", 1)[0])
    program = Path(words[0]).name
    if program == "elastic-connector":
        assert set(assigned) <= _env_names(), f"{command}: not a setting"
        try:
            _parser().parse_args(words[1:])
        except SystemExit as exited:
            pytest.fail(f"{command}: the command line does not parse (exit {exited.code})")
    elif program == "nox":
        sessions = [words[i + 1] for i, word in enumerate(words) if word == "-s"]
        assert set(sessions) <= _nox_sessions(), command
    elif program == "pip":
        for word in words:
            extras = re.fullmatch(r"\.\[([\w,-]+)\]", word)
            if extras:
                assert set(extras[1].split(",")) <= _extras(), command
    elif program == "docker" and words[1] == "build":
        assert (ROOT / words[-1] / "Dockerfile").is_file()
    elif program == "docker" and words[1] == "run" and words[-1] == "elastic-connector":
        given = [words[i + 1].split("=", 1)[0] for i, word in enumerate(words) if word == "-e"]
        assert given
        assert set(given) <= _env_names(), command


def test_the_commands_found_are_the_ones_shown() -> None:
    commands = _shell_commands()
    assert any(c.startswith(".venv/bin/elastic-connector demo") for c in commands)
    assert any(c.startswith(".venv/bin/nox") for c in commands)
    assert any(c.startswith("docker run") for c in commands)
    assert any("elastic-connector status --healthcheck" in c for c in commands)


def test_the_readme_configuration_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = [body for language, body in _FENCE.findall(text) if language == "yaml"]
    assert blocks
    for body in blocks:
        layer = file_layer("README.md", yaml.safe_load(body)).unwrap()
        config = build_config([layer])
        assert isinstance(config, Success), config
        assert config.unwrap().opencti.url == "https://opencti.example.org"
