"""The command line itself: fast help, help text on every option, version, exit codes,
and the mining threshold taken from the settings."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from importlib.metadata import version

import pytest

from closedloop import cli

HEAVY = (
    "pandas",
    "pm4py",
    "langgraph",
    "closedloop.tools",
    "closedloop.graphs",
    "closedloop.agents",
    "closedloop.api",
    "closedloop.sandbox",
)

COMMANDS = [
    [],
    ["demo"],
    ["mine"],
    ["run"],
    ["approve"],
    ["reject"],
    ["watch"],
    ["status"],
    ["policy"],
    ["sandbox"],
    ["eval"],
    ["serve"],
    ["db"],
    ["twin"],
    ["twin", "fit"],
    ["twin", "simulate"],
    ["whatif"],
    ["optimize"],
]

PROBE = """
import json, sys
from closedloop.cli import build_parser, main
build_parser()
for argv in json.loads(sys.argv[1]):
    try:
        main([*argv, "--help"])
    except SystemExit:
        pass
heavy = json.loads(sys.argv[2])
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def test_help_of_every_command_imports_nothing_heavy():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(COMMANDS), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"--help imported {loaded}; import them inside the command handler"


def test_the_probe_would_see_a_heavy_import():
    probe = PROBE.replace("build_parser()", "build_parser(); import closedloop.tools.errors")
    done = subprocess.run(
        [sys.executable, "-c", probe, "[]", json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "closedloop.tools.errors" in json.loads(done.stdout.strip().splitlines()[-1])


def _parsers(parser: argparse.ArgumentParser, path: str = "closedloop"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_and_argument_has_help_text():
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, parser in _parsers(cli.build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_every_command_documents_the_exit_codes():
    for path, parser in _parsers(cli.build_parser()):
        assert "exit codes" in (parser.epilog or ""), path
        assert "130" in parser.format_help(), path


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"closedloop {version('closedloop')}"


def test_module_entry_point_answers(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.cli", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stdout.startswith("closedloop ")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["policy"])
    assert stop.value.code == cli.EXIT_USAGE == 2


def test_unreadable_log_exits_2_and_unknown_run_exits_3(tmp_path, capsys):
    assert cli.main(["mine", str(tmp_path / "missing.xes")]) == cli.EXIT_INPUT == 2
    assert "file not found" in capsys.readouterr().err
    assert cli.main(["--home", str(tmp_path), "status", "run-nope"]) == cli.EXIT_STATE == 3
    err = capsys.readouterr().err
    assert err.startswith("closedloop: ") and "run-nope" in err and len(err.splitlines()) == 1


def _bottlenecks(argv: list[str], capsys) -> set[str]:
    assert cli.main(argv) == 0
    return {b["activity"] for b in json.loads(capsys.readouterr().out)["bottlenecks"]}


def test_mine_threshold_defaults_to_the_setting(bundled_data, monkeypatch, capsys):
    log = str(bundled_data / "running-example.xes")
    monkeypatch.setenv("CLOSEDLOOP_BOTTLENECK_HOURS", "50")
    assert _bottlenecks(["mine", log, "--json"], capsys) == {"decide", "pay compensation"}
    assert _bottlenecks(["mine", log, "--json", "--threshold", "1000"], capsys) == set()
    monkeypatch.delenv("CLOSEDLOOP_BOTTLENECK_HOURS")  # unset: the rule relative to the log
    assert _bottlenecks(["mine", log, "--json"], capsys) == {"decide", "pay compensation"}


def test_the_cli_offers_the_governance_modes():
    from closedloop.cli.common import MODES
    from closedloop.governance import MODES as GOVERNED

    assert MODES == GOVERNED


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_long_work_shows_elapsed_time_on_a_terminal_and_clears_it():
    out = _Terminal()
    with cli.Heartbeat("mine", stream=out, delay_s=0.05, every_s=0.05) as beat:
        time.sleep(0.4)
    text = out.getvalue()
    assert beat.shown and "closedloop mine: working, 0 s" in text and text.endswith("\r\033[K")
    quiet = io.StringIO()  # not a terminal (a pipe, --json into a file): nothing at all
    with cli.Heartbeat("mine", stream=quiet, delay_s=0.0, every_s=0.01):
        time.sleep(0.1)
    assert quiet.getvalue() == ""
    fast = _Terminal()  # work shorter than the delay: nothing either
    with cli.Heartbeat("mine", stream=fast, delay_s=5.0):
        pass
    assert fast.getvalue() == ""
