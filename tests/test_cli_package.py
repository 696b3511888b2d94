"""The ``annowidget.cli`` package: a static list of command groups, no import cycle, and the
``python -m annowidget.cli`` entry point equal to the installed command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from annowidget import cli
from annowidget.cli import data, effort, loop, models, setup
from annowidget.cli.errors import CommandError

PACKAGE = Path(cli.__file__).parent


def test_every_group_module_is_listed_once_and_registers_its_commands() -> None:
    assert (setup, data, models, effort, loop) == cli.COMMAND_GROUPS
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__", "errors"}
    assert {g.__name__.rsplit(".", 1)[1] for g in cli.COMMAND_GROUPS} == modules
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {
        "sample", "weights", "init", "migrate", "import", "export", "split", "relocate", "info",
        "train", "predict", "evaluate", "models", "compare", "effort", "loop",
    }  # fmt: skip


def test_groups_import_the_error_from_its_own_module_not_from_main() -> None:
    # cli/__init__ imports the groups; a group importing back from it would be a cycle.
    assert cli.CommandError is CommandError
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert "importlib" not in text, path.name
        assert "from annowidget.cli import CommandError" not in text, path.name


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "annowidget.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: annowidget" in result.stdout
    assert "effort" in result.stdout
