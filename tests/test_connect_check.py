"""`closedloop connector check`: a connector against its live API, nothing written.

Both bundled sandboxes pass; an overlay with wrong pointers fails naming each
problem; unreadable files exit 2; the command's help imports nothing heavy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from closedloop.cli import main
from closedloop.demo import advance_clock
from closedloop.sandbox.server import SandboxServer
from closedloop.tools.connect import CONNECTORS_DIR
from tests.test_cli import HEAVY, PROBE


@pytest.fixture(scope="module")
def helpdesk() -> Iterator[SandboxServer]:
    with SandboxServer(seed=5) as server:
        advance_clock(server.url, 2)
        yield server


@pytest.fixture(scope="module")
def o2c() -> Iterator[SandboxServer]:
    with SandboxServer(seed=5, domain="o2c") as server:
        advance_clock(server.url, 3)
        yield server


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(["connector", "check", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def _lines(report: dict[str, Any], status: str) -> list[str]:
    return [f"{f['part']}: {f['message']}" for f in report["findings"] if f["status"] == status]


def _broken_o2c(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    folder = tmp_path / "o2c"
    shutil.copytree(CONNECTORS_DIR / "o2c", folder)
    overlay = folder / "overlay.yaml"
    text = overlay.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    overlay.write_text(text, encoding="utf-8")
    return folder / "connector.yaml"


def test_the_helpdesk_connector_passes_and_nothing_is_written(
    helpdesk: SandboxServer, capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = _check(capsys, "helpdesk", "--base-url", helpdesk.url)
    assert code == 0, _lines(report, "missing") + _lines(report, "wrong")
    assert report["ok"] and report["connector"] == "helpdesk-sandbox"
    ok = _lines(report, "ok")
    assert any(line.startswith("events: GET /events:") for line in ok)
    assert "action set_queue_staffing: would send PUT /config/staffing/L1 " \
           '{"agents":25} (not sent)' in ok
    assert any(line.startswith("action create_rule: undo would be DELETE /rules/") for line in ok)
    assert httpx.get(f"{helpdesk.url}/writes").json() == []


def test_the_o2c_connector_passes_in_text_too(
    o2c: SandboxServer, capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["connector", "check", str(CONNECTORS_DIR / "o2c"), "--base-url", o2c.url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0].startswith("connector o2c-sandbox at http://127.0.0.1:")
    assert "would send PUT /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_Team('CREDIT_DESK')" in out
    assert "undo would be PUT" in out and "read-back would GET" in out
    assert out.rstrip().endswith("all good: the loop has what it needs")
    assert httpx.get(f"{o2c.url}/writes").json() == []


def test_a_broken_overlay_fails_and_says_what_is_missing_or_wrong(
    o2c: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = _broken_o2c(
        tmp_path,
        ("resource: /Resource", "resource: /Resourse"),
        ("approval_threshold: /d/ApprovalThresholdAmount", "approval_threshold: /d/Threshold"),
        ("ThresholdAmount: {$before: /d/ApprovalThresholdAmount}",
         "ThresholdAmount: {$before: /d/NoSuchAmount}"),
    )
    code, report = _check(capsys, str(manifest), "--base-url", o2c.url)
    assert code == 1 and not report["ok"]
    missing, wrong = _lines(report, "missing"), _lines(report, "wrong")
    assert "state: value 'approval_threshold': nothing at /d/Threshold" in missing
    assert ("action set_team_headcount: its data contract needs 'resource', empty in every "
            "event of the first page") in missing
    assert any("set_approval_threshold: compensation:" in line and "/d/NoSuchAmount" in line
               for line in wrong), wrong
    assert httpx.get(f"{o2c.url}/writes").json() == []


def test_an_annotation_the_catalog_refuses_is_wrong(
    o2c: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    body = "          body: {Headcount: {$param: headcount}}"
    manifest = _broken_o2c(tmp_path, (f"          path: {{Team: {{$param: team}}}}\n{body}", body))
    code = main(["connector", "check", str(manifest), "--base-url", o2c.url])
    out = capsys.readouterr().out
    assert code == 1
    assert "WRONG    catalog:" in out and "Team" in out


def test_unreadable_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connector", "check", str(tmp_path / "nothing.yaml")]) == 2
    assert "no connector manifest" in capsys.readouterr().err
    manifest = _broken_o2c(tmp_path, ("overlay: 1.0.0", "overlay: [1.0.0"))
    assert main(["connector", "check", str(manifest), "--base-url", "http://127.0.0.1:9"]) == 2
    assert "overlay.yaml" in capsys.readouterr().err
    assert main(["connector", "check", "o2c"]) == 2  # no base URL anywhere
    assert "--base-url" in capsys.readouterr().err


def test_the_help_of_connector_check_imports_nothing_heavy() -> None:
    argv = [["connector"], ["connector", "check"]]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
                          capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    usage = subprocess.run(
        [sys.executable, "-m", "closedloop.cli", "connector", "check", "--help"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    assert "[--base-url URL]" in usage and "FILE" in usage and "1    something is missing" in usage
