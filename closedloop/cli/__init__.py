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
import threading
import time
from typing import Any

from closedloop.cli import connector, demo, loop, mining, ops, optimize, recovery, review, twin
from closedloop.cli.common import (
    EXIT_CODES_EPILOG,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STATE,
    EXIT_USAGE,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_STATE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

# pm4py prints progress bars; keep them out of --json output.
os.environ.setdefault("TQDM_DISABLE", "1")


class _VersionAction(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(
        self,
        option_strings: list[str],
        dest: str = argparse.SUPPRESS,
        default: str = argparse.SUPPRESS,
        help: str | None = None,
    ) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("closedloop")
        except PackageNotFoundError:  # running from a bare checkout
            text = "0+unknown"
        print(f"closedloop {text}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (cheap: no command module imports anything heavy)."""
    p = argparse.ArgumentParser(
        prog="closedloop",
        epilog=EXIT_CODES_EPILOG,
        description="Process mining -> governed action, closed loop.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_VersionAction, help="print the version and exit")
    p.add_argument("--db", help="store URL (overrides DATABASE_URL)")
    p.add_argument(
        "--home", help="folder for the default SQLite store and artefacts (CLOSEDLOOP_HOME)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, mining, loop, ops, twin, optimize, connector, recovery, review):
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


class Heartbeat:
    """Progress on long work: after ``delay_s`` an elapsed-time line on a terminal's stderr,
    rewritten in place every ``every_s`` and cleared at the end (nothing when not a terminal)."""

    def __init__(
        self, label: str, stream: Any = None, delay_s: float = 2.0, every_s: float = 1.0
    ) -> None:
        self.label, self.delay_s, self.every_s = label, delay_s, every_s
        self.stream = stream if stream is not None else sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.shown = False

    def _run(self) -> None:
        started = time.monotonic()
        if self._stop.wait(self.delay_s):
            return
        while not self._stop.is_set():
            self.stream.write(
                f"\rclosedloop {self.label}: working, {time.monotonic() - started:.0f} s "
            )
            self.stream.flush()
            self.shown = True
            self._stop.wait(self.every_s)

    def __enter__(self) -> Heartbeat:  # noqa: PYI034 - a final class, not meant to be subclassed
        if getattr(self.stream, "isatty", lambda: False)() and not os.environ.get(
            "CLOSEDLOOP_NO_PROGRESS"
        ):
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if self.shown:
                self.stream.write("\r\033[K")
                self.stream.flush()


# Commands that serve until interrupted or wait on a person: no heartbeat.
_NO_HEARTBEAT = {"serve", "sandbox"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; errors become one line on stderr and a non-zero exit."""
    args = build_parser().parse_args(argv)
    try:
        if args.command in _NO_HEARTBEAT:
            return args.func(args)
        with Heartbeat(args.command):
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
