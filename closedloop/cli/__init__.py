"""The ``closedloop`` command line: demo, mine, run/approve/reject/watch/status, policy,
sandbox, eval, serve, twin, whatif, optimize, db.

Building the parser imports only the standard library and the command modules
(which import nothing heavy at module level), so ``closedloop --help`` answers
at once; pandas, pm4py, LangGraph, the graphs, the tools, the API and the
sandbox are imported by the command that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from closedloop.cli import connector, demo, loop, mining, ops, optimize, twin
from closedloop.cli.common import (
    EXIT_CODES_EPILOG,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STATE,
    EXIT_USAGE,
)

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "EXIT_OK", "EXIT_STATE", "EXIT_USAGE", "build_parser",
           "main"]

# pm4py prints progress bars; keep them out of --json output.
os.environ.setdefault("TQDM_DISABLE", "1")


class _VersionAction(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("closedloop")
        except PackageNotFoundError:  # running from a bare checkout
            text = "0+unknown"
        print(f"closedloop {text}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (cheap: no command module imports anything heavy)."""
    p = argparse.ArgumentParser(prog="closedloop", epilog=EXIT_CODES_EPILOG,
                                description="Process mining -> governed action, closed loop.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_VersionAction, help="print the version and exit")
    p.add_argument("--db", help="store URL (overrides DATABASE_URL)")
    p.add_argument("--home",
                   help="folder for the default SQLite store and artefacts (CLOSEDLOOP_HOME)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, mining, loop, ops, twin, optimize, connector):
        module.add_commands(sub)
    _add_epilog(sub)
    return p


def _add_epilog(sub: argparse._SubParsersAction) -> None:
    """Give every (nested) command the exit-code table in its help."""
    for command in sub.choices.values():
        command.epilog = command.epilog or EXIT_CODES_EPILOG
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_epilog(action)


def describe_error(exc: BaseException) -> tuple[int, str] | None:
    """Exit code and one-line message for an error a command raised on purpose (None: a bug)."""
    # Imported here, after the fact: none of these may slow down `--help`.
    from pydantic import ValidationError

    from closedloop.contracts import NotPaused, RunNotFound
    from closedloop.governance import GovernanceError
    from closedloop.tools.errors import EventLogError, ToolError

    if isinstance(exc, EventLogError):
        return EXIT_INPUT, f"closedloop: {exc}"
    if isinstance(exc, RunNotFound | NotPaused):
        return EXIT_STATE, f"closedloop: {exc}"
    if isinstance(exc, ToolError | GovernanceError | ValidationError):
        first_line = (str(exc).splitlines() or [""])[0]
        return EXIT_STATE, f"closedloop: {type(exc).__name__}: {first_line}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; errors become one line on stderr and a non-zero exit."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        described = describe_error(exc)
        if described is None:
            raise
        code, message = described
        print(message, file=sys.stderr)
        return code
