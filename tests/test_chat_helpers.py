"""Unit tests for the chat helpers: escaping log text, Markdown tables, uploads, loop phases."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from closedloop.chat import logs, render
from closedloop.chat.render import WORD_JOINER, Md, md_table, md_text
from closedloop.chat.session import DecisionRefused, LoopSession, StaleDecision, phase
from closedloop.contracts import Prediction
from closedloop.settings import Settings
from closedloop.tools.errors import EventLogError
from closedloop.tools.mining.mine import mine

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click me](https://evil.example/x)",
    "![pixel](https://evil.example/p.png)",
    "https://evil.example/raw",
    "www.evil.example",
    "mail@evil.example",
    "<https://evil.example>",
    "**bold** _it_ `code` ~~gone~~",
    "a | b | c",
    "line one\nline two\r\n| x | y |",
    "# heading",
    "&lt;script&gt; &amp;",
    "[ref]: https://evil.example",
    "\\[escaped\\]",
    "tab\there\u202egnp.exe",
]


def unescaped_punctuation(md: str) -> list[str]:
    """ASCII punctuation in ``md`` that is not backslash-escaped (each could start Markdown/HTML)."""
    found, i = [], 0
    while i < len(md):
        if md[i] == "\\" and i + 1 < len(md) and md[i + 1] in string.punctuation:
            i += 2
            continue
        if md[i] in string.punctuation:
            found.append(md[i])
        i += 1
    return found


def shown(md: str) -> str:
    """The text a Markdown renderer shows for an ``md_text`` result."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md).replace(WORD_JOINER, "")


# --------------------------------------------------------------------------- escaping
@pytest.mark.parametrize("name", HOSTILE)
def test_md_text_makes_hostile_names_inert(name: str) -> None:
    md = md_text(name, limit=None)
    assert unescaped_punctuation(md) == []
    assert "\n" not in md and "\r" not in md and "\u202e" not in md
    # GFM autolink literals need "://", "www." or "x@y" in the text; a word joiner breaks each.
    plain = md.replace("\\", "")
    assert "://" not in plain
    assert not re.search(r"(?i)www\.", plain)
    assert not re.search(r"\w@\w", plain)
    # ... while the reader still sees the original characters.
    assert shown(md) == render.clean_text(name, limit=None)


def test_md_text_leaves_plain_names_readable() -> None:
    assert md_text("Take in charge ticket") == "Take in charge ticket"
    assert shown(md_text("O_Create Offer (v2)")) == "O_Create Offer (v2)"
    assert isinstance(md_text("x"), Md)


def test_clean_text_flattens_controls_and_truncates() -> None:
    assert render.clean_text("a\n\tb\x00c\u202ed  e") == "a b c d e"
    assert render.clean_text("x" * 50, limit=10) == "x" * 9 + "\u2026"
    assert render.clean_text(None) == ""
    assert render.clean_text(42) == "42"


def test_code_block_cannot_be_closed_by_its_content() -> None:
    text = "before\n```\n<script>alert(1)</script>\n````\nafter"
    block = render.md_code_block(text)
    fence = block.splitlines()[0].removesuffix("text")
    assert fence == "`" * 5
    assert block.endswith("\n" + fence)
    inner = block.splitlines()[1:-1]
    assert all(not line.startswith(fence) for line in inner)
    assert "\n".join(inner) == text


# --------------------------------------------------------------------------- tables
def cells(row: str) -> list[str]:
    """Split a GFM table row on unescaped pipes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_md_table_escapes_cells_and_keeps_its_shape() -> None:
    table = md_table(
        ["Activity", "Count", "Mean"],
        [("a | b\nc", 4580, 702.876), (Md("**trusted**"), 1, render.hours(49.0))],
        align="lrr",
    )
    lines = table.splitlines()
    assert len(lines) == 4  # header, separator, two rows: the newline made no extra row
    assert lines[1] == "|:---|---:|---:|"
    first = cells(lines[2])
    assert len(first) == 3  # the pipe in the name made no extra column
    assert shown(first[0]) == "a | b c"
    assert first[1:] == ["4,580", "702.9"]
    assert cells(lines[3]) == ["**trusted**", "1", "49.0 h (2.0 d)"]


def test_md_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="expected 2"):
        md_table(["a", "b"], [("only one",)])
    with pytest.raises(ValueError, match="one letter per column"):
        md_table(["a", "b"], [], align="l")


def test_number_formats() -> None:
    assert render.duration(5.4) == "5.4 h"
    assert render.duration(72) == "3.0 d"
    assert render.duration(3214956.7) == "133,957 d"
    assert render.hours(980.6018) == "980.6 h (40.9 d)"
    assert render.count(1, "variant") == "1 variant"
    assert render.count(4580, "case") == "4,580 cases"
    assert render.pct(0.3308) == "33%"


# --------------------------------------------------------------------------- mining summary
def write_log(path: Path, names: list[str], gap_hours: int = 5) -> Path:
    rows = ["case_id,activity,timestamp"]
    for case in ("c1", "c2", "c3"):
        for i, name in enumerate(names):
            quoted = '"' + name.replace('"', '""') + '"'
            rows.append(f"{case},{quoted},2024-01-01T{i * gap_hours:02d}:00:00")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_mining_summary_escapes_activity_names(tmp_path: Path) -> None:
    names = ["start", "<img src=x onerror=alert(1)>", "[click](https://evil.example)", "a | b"]
    report = mine(
        logs.read_log(write_log(tmp_path / "h.csv", names)), bottleneck_threshold_hours=2.0
    )
    md = render.mining_summary_md(report, "my <b>log</b>.csv", seconds=1.0)
    assert "**3 cases**, 12 events, 4 activities, 1 variant" in md
    assert "Read and mined in 1.0 s" in md
    assert "\\<img" in md and "\\<b\\>" in md
    assert not re.search(r"(?<!\\)[<>]", md)  # no raw HTML can start anywhere
    assert not re.search(r"(?<!\\)\]\(", md)  # no link can form
    table = [line for line in md.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert len(table) == 3  # three activities wait 5 h (>= 2 h) after the first
    for row in table:
        assert len(cells(row)) == 7
    assert {shown(cells(row)[1]) for row in table} == set(names[1:])


def test_mining_summary_without_bottlenecks_lists_longest_waits(tmp_path: Path) -> None:
    report = mine(
        logs.read_log(write_log(tmp_path / "q.csv", ["a", "b", "c"], gap_hours=1)),
        bottleneck_threshold_hours=2.0,
    )
    md = render.bottleneck_section_md(report)
    assert md.startswith("#### No bottlenecks: no activity waits 2 h or more on average")
    assert "| b | 3 | 1.0 h |" in md


def test_log_error_is_one_escaped_line() -> None:
    md = render.log_error_md("x.csv: bad value '<script>'\nTraceback (most recent call last):")
    assert "Traceback" not in md and "<script>" not in md and "\n" not in md
    assert md.startswith("**Cannot use this log:** x\\.csv\\:")


# --------------------------------------------------------------------------- uploads and bundled logs
def test_bundled_logs_exist_and_unknown_keys_are_refused() -> None:
    assert set(logs.BUNDLED) == {"helpdesk", "repair", "running"}
    for item in logs.BUNDLED.values():
        assert item.path.is_file(), item.path
    with pytest.raises(EventLogError, match="unknown bundled log"):
        logs.bundled("../../etc/passwd")
    with pytest.raises(EventLogError):
        logs.bundled(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("helpdesk.xes.gz", "helpdesk.xes.gz"),
        ("../../etc/passwd.csv", "passwd.csv"),
        ("C:\\Users\\me\\log (1).csv", "log_1_.csv"),
        ("..hidden.csv", "hidden.csv"),
        ("<script>.xes", "_script_.xes"),
        ("", "upload"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert logs.safe_filename(name) == safe


def test_check_upload_refuses_unsupported_and_oversized_files() -> None:
    logs.check_upload("log.xes.gz", 10)
    with pytest.raises(EventLogError, match="unsupported format"):
        logs.check_upload("report.pdf", 10)
    with pytest.raises(EventLogError, match="over the 1 MB upload limit"):
        logs.check_upload("log.csv", 3 * 1024 * 1024, max_mb=1)


def test_read_log_uses_the_uploaded_name(tmp_path: Path) -> None:
    # Chainlit stores uploads under a uuid with an extension guessed from the MIME type.
    stored = tmp_path / "0b7c.bin"
    stored.write_bytes(write_log(tmp_path / "src.csv", ["a", "b"]).read_bytes())
    frame = logs.read_log(stored, "tickets.csv")
    assert frame["case:concept:name"].nunique() == 3
    assert frame.attrs["source"] == "tickets.csv"

    broken = tmp_path / "1c8d.bin"
    broken.write_text("case_id,activity\nc1,a\n", encoding="utf-8")
    with pytest.raises(EventLogError) as err:
        logs.read_log(broken, "broken.csv")
    assert str(err.value).startswith("broken.csv: missing timestamp column")
    assert "closedloop-upload-" not in str(err.value)


# --------------------------------------------------------------------------- loop runs
def loop_state(activity: str = "Triage") -> dict:
    """A finished run in the shape LoopRunner returns (trimmed), with some hostile text."""
    return {
        "run_id": "run-abc",
        "scope": "helpdesk",
        "plan_id": 1,
        "approval_id": 1,
        "dataset_id": 1,
        "mining_run_id": 1,
        "opportunity_ids": [1],
        "execution_ids": [1],
        "verdict_id": 1,
        "pending": None,
        "steps": [
            {
                "step": "observe",
                "events": 10140,
                "cases": 1208,
                "activities": 6,
                "variants": 7,
                "mean_cycle_time_hours": 11.83,
                "top_bottlenecks": [
                    {"activity": activity, "waiting_hours": 6.87, "total_delay_hours": 8036.7}
                ],
            },
            {
                "step": "triage",
                "summary": "2 of 5 insights clear priority 0.05.",
                "missing_data": [],
                "opportunities": [
                    {"id": 1, "activity": activity, "kind": "bottleneck", "priority": 0.37}
                ],
            },
            {
                "step": "plan",
                "plan_id": 1,
                "simulation_id": 2,
                "action": "create_rule",
                "params": {"name": f"auto-resolve {activity}", "treatment_share": 0.5},
                "hypothesis": f"auto-resolve {activity} cuts mean cycle time by 19.4%.",
                "predicted": {
                    "baseline_hours": 12.034,
                    "delta_hours": -2.331,
                    "ci_low_hours": -2.872,
                    "ci_high_hours": -1.791,
                    "delta_pct": -19.37,
                    "ci_low_pct": -23.86,
                    "ci_high_pct": -14.88,
                    "treated_share": 0.5,
                    "delta_per_treated_case_hours": -4.662,
                    "ci_low_per_treated_case_hours": -5.744,
                    "ci_high_per_treated_case_hours": -3.582,
                    "kpi": "cycle_time_hours",
                    "simulation_id": 2,
                },
                "risk_tier": "medium",
                "rationale": "two candidates",
                "blast_radius": {"share_of_cases": 0.4002, "reversible": True},
            },
            {
                "step": "gate",
                "mode": "assisted",
                "kill_switch": False,
                "route": "approval",
                "approval_id": 1,
            },
            {"step": "approval", "approval_id": 1, "decision": "approved", "by": "ops (chat)"},
            {"step": "execute", "summary": "1 of 1 actions executed, 0 failed.", "executions": []},
            {
                "step": "watch",
                "decision": "keep",
                "predicted_delta_hours": -4.662,
                "measured": {
                    "events": 7520,
                    "treatment_n": 294,
                    "control_n": 351,
                    "treatment": {"mean": 7.83},
                    "control": {"mean": 12.42},
                    "delta": -4.593,
                    "ci_low": -6.635,
                    "ci_high": -2.551,
                    "relative_pct": -36.97,
                    "guardrail_breached": False,
                    "guardrail": "abort if treatment is slower",
                },
            },
            {
                "step": "learn",
                "outcome": "kept",
                "policy_change": {
                    "scope": "helpdesk",
                    "recommend": "supervised",
                    "needs_human_confirmation": True,
                },
            },
        ],
    }


def test_plan_md_shows_action_hypothesis_prediction_and_risk() -> None:
    md = render.plan_md(loop_state())
    assert "#### Plan #1" in md
    assert "-2.33 h per case (-19.4%), 95% interval -23.9% to -14.9%" in md
    assert "**Risk tier:** medium; blast radius 40% of cases" in md
    assert "mode assisted, kill switch off → approval" in md


def test_plan_and_verdict_escape_text_from_the_run() -> None:
    evil = "[x](https://evil.example) <img src=x onerror=alert(1)>"
    state = loop_state(evil)
    render.last_step(state, "approval")["by"] = evil
    for md in (render.plan_md(state), render.verdict_md(state)):
        assert "\\<img" in md
        assert not re.search(r"(?<!\\)<", md)
        assert not re.search(r"(?<!\\)\]\(", md)
        assert "://" not in md.replace("\\", "")


def test_verdict_md_compares_realized_with_predicted() -> None:
    md = render.verdict_md(loop_state())
    assert "Decision: **KEEP**" in md
    assert "| mean delta | -4.59 h (-37.0%) | -4.66 h (all cases -19.4%) |" in md
    # The predicted interval shown is the one per treated case stored with the plan.
    assert "| 95\\% interval | -6.63 to -2.55 h | -5.74 to -3.58 h |" in md
    assert "consistent with the prediction (the intervals overlap)" in md
    assert "**Outcome:** kept; recommends mode supervised" in md
    assert "verdict\\_id\\=1" in md


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (-6.6, -4.0, "larger than predicted"),
        (-1.0, 0.5, "falls short of the prediction"),
        (-2.0, -1.0, "consistent with the prediction"),
    ],
)
def test_agreement_of_realized_and_predicted_intervals(
    low: float, high: float, verdict: str
) -> None:
    predicted = prediction(ci_low_per_treated=-2.87, ci_high_per_treated=-1.79)
    assert verdict in render.agreement_md({"ci_low": low, "ci_high": high}, predicted)
    assert render.agreement_md({"ci_low": low, "ci_high": high}, None) == ""


def prediction(
    ci_low_per_treated: float, ci_high_per_treated: float, treated_share: float = 1.0
) -> Prediction:
    """A stored plan prediction whose interval over all cases is the per-treated one times the share."""
    low, high = ci_low_per_treated * treated_share, ci_high_per_treated * treated_share
    return Prediction(
        baseline_hours=12.0,
        delta_hours=(low + high) / 2,
        ci_low_hours=low,
        ci_high_hours=high,
        delta_per_treated_case_hours=(ci_low_per_treated + ci_high_per_treated) / 2,
        treated_share=treated_share,
        delta_pct=-10.0,
        ci_low_pct=-12.0,
        ci_high_pct=-8.0,
        ci_low_per_treated_case_hours=ci_low_per_treated,
        ci_high_per_treated_case_hours=ci_high_per_treated,
    )


def test_agreement_compares_the_measured_delta_with_the_per_treated_case_interval() -> None:
    # A quarter of cases treated: all-cases interval -1.2..-0.8 h, per treated case -4.8..-3.2 h.
    predicted = prediction(-4.8, -3.2, treated_share=0.25)
    assert predicted.ci_low_hours == pytest.approx(-1.2)
    # A measured treatment-vs-control delta of about -1 h overlaps the all-cases interval but
    # falls far short of the change predicted for each treated case.
    assert "falls short of the prediction" in render.agreement_md(
        {"ci_low": -1.1, "ci_high": -0.9}, predicted
    )
    assert "consistent with" in render.agreement_md({"ci_low": -4.5, "ci_high": -3.9}, predicted)


def test_verdict_without_a_stored_prediction_shows_no_interval() -> None:
    state = loop_state()
    plan = render.last_step(state, "plan")
    plan["predicted"] = {"delta_pct": -19.37}  # a plan from before the Prediction contract
    md = render.verdict_md(state)
    assert "| 95\\% interval | -6.63 to -2.55 h | - |" in md
    assert "the intervals" not in md


def test_plan_md_when_the_planner_dropped_everything() -> None:
    state = loop_state()
    state["steps"] = [s for s in state["steps"] if s["step"] in ("observe", "triage")]
    state["steps"] += [
        {"step": "plan", "dropped": "no candidate clears 5% <b>"},
        {"step": "learn", "outcome": "no_plan", "policy_change": None},
    ]
    md = render.plan_md(state)
    assert "**No plan:** no candidate clears 5\\% \\<b\\>" in md
    ended = render.verdict_md(state)
    assert ended.startswith("### Run run\\-abc ended")
    assert "**Outcome:** no\\_plan" in ended


def test_phase() -> None:
    assert phase({"pending": {"kind": "approval"}}) == "approval"
    assert phase({"pending": {"kind": "evidence"}}) == "evidence"
    assert phase({"pending": None}) == "done"
    with pytest.raises(ValueError, match="unknown interrupt kind"):
        phase({"run_id": "r", "pending": {"kind": "vote"}})


def test_loop_session_refuses_decisions_for_other_runs(tmp_path: Path) -> None:
    session = LoopSession(
        Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    )
    with pytest.raises(StaleDecision):
        session.decide("run-forged", approve=True, by="someone")
    session.close()  # closing a never-opened session is fine


@pytest.mark.slow
def test_loop_session_reject_changes_nothing(tmp_path: Path) -> None:
    """The loop part without a browser: plan, reject, and a second answer is refused."""
    session = LoopSession(
        Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    )
    try:
        url = session.open()
        assert url.startswith("http://127.0.0.1:")
        session.build_history()
        state = session.start()
        assert phase(state) == "approval", render.plan_md(state)
        plan = render.last_step(state, "plan")
        assert plan and not plan.get("dropped")
        assert (
            plan["predicted"]["ci_low_pct"]
            <= plan["predicted"]["delta_pct"]
            <= plan["predicted"]["ci_high_pct"]
        )
        final = session.decide(state["run_id"], approve=False, by="tester (chat)")
        assert phase(final) == "done"
        assert render.last_step(final, "approval")["decision"] == "rejected"
        assert render.last_step(final, "execute") is None
        with pytest.raises(DecisionRefused, match="not waiting for approval"):
            session.decide(state["run_id"], approve=True, by="tester (chat)")
    finally:
        session.close()
