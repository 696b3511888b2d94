"""The ``annowidget`` command: the notebook's capabilities, headless.

Each group of sub-commands lives in its own module of this package and registers itself
here: :mod:`annowidget.cli.setup` (sample, weights), :mod:`annowidget.cli.data` (init,
import, export, split, info), :mod:`annowidget.cli.models` (train, predict, evaluate,
models), :mod:`annowidget.cli.effort` (compare, effort) and :mod:`annowidget.cli.loop`
(loop: continuous mode). A handler raises
:class:`~annowidget.cli.errors.CommandError` for a reason the user can act on.

Example:
    $ annowidget info my-project --json
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence

from annowidget.cli import data, effort, loop, models, setup
from annowidget.cli.errors import CommandError

# The command groups, in the order `annowidget --help` lists them.
COMMAND_GROUPS = (setup, data, models, effort, loop)

__all__ = ["COMMAND_GROUPS", "CommandError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="annowidget",
        description="Label images and fine-tune torchvision models on them, headless.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("annowidget: interrupted", file=sys.stderr)
        return 130
    except sqlite3.Error as exc:
        # A damaged, foreign, read-only or busy project.sqlite: name the project, not a stack.
        where = f"{args.project}: " if getattr(args, "project", None) else ""
        print(
            f"annowidget {args.command}: error: {where}project database: {_first_line(exc)}",
            file=sys.stderr,
        )
        return 1
    except (CommandError, ValueError, OSError, RuntimeError, KeyError) as exc:
        print(f"annowidget {args.command}: error: {_first_line(exc)}", file=sys.stderr)
        return 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
