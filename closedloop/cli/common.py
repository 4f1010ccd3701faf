"""What every command shares: exit codes, settings from the global flags, output.

Imports only the standard library at module level, so that building the
parser (and ``--help``) stays fast; each command imports what it needs when
it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from closedloop.settings import Settings

# closedloop.governance.MODES, repeated so that building the parser imports no store code.
MODES = ("shadow", "assisted", "supervised")

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but its answer is "no": eval below threshold, infeasible optimum
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_INPUT = 2  # an input file that cannot be read or validated
EXIT_STATE = 3  # a run, approval or value that does not allow the command (or a tool error)
EXIT_DEGRADED = 4  # the configured model failed: the offline policy decided instead
EXIT_INTERRUPTED = 130

EXIT_CODES_EPILOG = """exit codes:
  0    done
  1    the answer is no: eval pass rate below --threshold, optimize found no feasible plan
  2    bad command line, or an input file (event log) that cannot be read or validated
  3    the run/approval is unknown or not waiting for this, an invalid value, or a tool error
  4    the configured model failed and the offline policy decided in its place (see the run)
  130  interrupted"""


def loop_exit_code(state: dict[str, Any]) -> int:
    """0, or EXIT_DEGRADED when a step of the run fell back from the configured model to the
    offline policy (a model outage must not look like a clean run); says so on stderr."""
    fell_back = [s.get("step", "?") for s in state.get("steps", []) if s.get("fallback")]
    if not fell_back:
        return EXIT_OK
    print(f"warning: the configured model failed; the offline policy decided {', '.join(fell_back)}"
          " in its place (audit events model_error / model_invalid)", file=sys.stderr)
    return EXIT_DEGRADED


def current_user() -> str:
    """Who runs the command, for ``--by`` defaults."""
    return os.environ.get("USER", "cli-user")


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings with the global ``--db``/``--home`` (and a command's ``--mode``) applied."""
    from closedloop.settings import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "db", None):
        overrides["DATABASE_URL"] = args.db
    if getattr(args, "home", None):
        overrides["CLOSEDLOOP_HOME"] = args.home
    if getattr(args, "mode", None):
        overrides["CLOSEDLOOP_MODE"] = args.mode
    return Settings(**overrides)


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print ``payload`` as JSON under ``--json`` (pydantic models are dumped), else ``text``."""
    if getattr(args, "json", False):
        if hasattr(payload, "model_dump"):
            payload = payload.model_dump(mode="json")
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(text)


def add_json(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag every reporting command has."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
