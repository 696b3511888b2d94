"""The ``annowidget`` command: the notebook's capabilities, headless.

Each group of sub-commands lives in its own module and registers itself here:
``annowidget._commands_data`` (init, import, export, split, info),
``annowidget._commands_models`` (train, predict, evaluate, models) and
``annowidget._commands_effort`` (compare, effort).

Example:
    $ annowidget info my-project --json
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

_COMMAND_MODULES = (
    "annowidget._commands_setup",
    "annowidget._commands_data",
    "annowidget._commands_models",
    "annowidget._commands_effort",
)


class CommandError(Exception):
    """A command failed for a reason the user can act on; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="annowidget",
        description="Label images and fine-tune torchvision models on them, headless.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command group that is not part of this build
        module.register(subparsers)
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
    except (CommandError, ValueError, OSError, RuntimeError, KeyError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"annowidget {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
