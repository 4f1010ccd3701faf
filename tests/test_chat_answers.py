"""The chat's column mapping, intents, tool-backed answers, login and pages, without a browser.

``unusual_log`` writes a helpdesk log whose headers detection cannot read; the browser
test (tests/test_chat_flow.py) uploads the same log.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from closedloop.chat import answers, auth, intents, logs, mapping, web
from closedloop.chat.render import log_error_md
from closedloop.identity import ADMIN, ANALYST, APPROVER
from closedloop.settings import Settings
from closedloop.tools.errors import EventLogError, ToolError
from closedloop.tools.mining import mine

HEADERS = ["Ticket Nr", "Step", "Finished", "Began", "Handled by", "Kind"]
MAPPED = {
    "case": "Ticket Nr",
    "activity": "Step",
    "timestamp": "Finished",
    "start_timestamp": "Began",
    "resource": "Handled by",
}


def unusual_log(path: Path, cases: int = 300, seed: int = 3) -> Path:
    """A helpdesk log with headers detection cannot read (Ticket Nr, Step, Finished, Began, Handled by).

    Tickets arrive every 38 minutes on average; first line (3 people) triages each; second line
    (2 people, busy) fixes the non-password ones and redoes a fifth of the fixes; the system closes.
    So second line is where tickets wait."""
    rng = random.Random(seed)
    first, second = ["fl-anna", "fl-ben", "fl-cara"], ["sl-dan", "sl-eve"]
    free = {p: datetime(2024, 3, 4, 8, tzinfo=UTC) for p in first + second}
    t = datetime(2024, 3, 4, 8, tzinfo=UTC)
    rows: list[tuple[str, str, datetime, datetime, str, str]] = []
    for i in range(cases):
        t += timedelta(minutes=rng.expovariate(1 / 38))
        kind = rng.choices(["password", "hardware", "software"], [0.4, 0.3, 0.3])[0]
        case = f"T-{1000 + i}"
        rows.append((case, "Log ticket", t, t, "portal", kind))

        def work(activity: str, pool: list[str], minutes: float, now: datetime) -> datetime:
            person = min(pool, key=lambda p: free[p])
            start = max(now, free[person])
            end = start + timedelta(minutes=rng.expovariate(1 / minutes))
            free[person] = end
            rows.append((case, activity, end, start, person, kind))  # noqa: B023 - used at once
            return end

        now = work("First line triage", first, 30, t)
        if kind != "password":
            now = work("Second line fix", second, 110 if kind == "hardware" else 80, now)
            if rng.random() < 0.2:
                now = work("Second line fix", second, 40, now)
        now += timedelta(minutes=rng.uniform(1, 10))
        rows.append((case, "Close ticket", now, now, "system", kind))
    rows.sort(key=lambda r: r[2])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        for case, activity, end, start, who, kind in rows:
            writer.writerow(
                [
                    case,
                    activity,
                    f"{end:%Y-%m-%d %H:%M:%S}",
                    f"{start:%Y-%m-%d %H:%M:%S}",
                    who,
                    kind,
                ]
            )
    return path


@pytest.fixture(scope="module")
def tickets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unusual_log(tmp_path_factory.mktemp("log") / "tickets.csv")


@pytest.fixture(scope="module")
def analysis(tickets: Path) -> answers.LogAnalysis:
    scan = mapping.scan_header(tickets, "tickets.csv")
    assert scan is not None
    frame = logs.read_log(tickets, "tickets.csv", mapping.build_mapping(scan, dict(MAPPED)))
    return answers.LogAnalysis("tickets.csv", frame, mine(frame, bottleneck_threshold_hours=2.0))


# --------------------------------------------------------------------------- column mapping
def test_unusual_headers_fail_detection_and_the_error_names_no_python(tickets: Path) -> None:
    with pytest.raises(EventLogError) as caught:
        logs.read_log(tickets, "tickets.csv")
    assert "ColumnMapping" in str(caught.value)  # the tool's message is for Python callers ...
    shown = log_error_md(str(caught.value))
    assert "ColumnMapping" not in shown and "Map them when I ask" in shown  # ... the chat's is not


def test_scan_asks_for_every_role_it_cannot_find(tickets: Path) -> None:
    scan = mapping.scan_header(tickets, "tickets.csv")
    assert scan is not None and scan.columns == HEADERS
    assert scan.missing_required == ["case", "activity", "timestamp"]
    assert scan.to_ask() == ["case", "activity", "timestamp", "start_timestamp", "resource"]
    assert scan.sample["Ticket Nr"].startswith("T-")
    # Choices shrink as columns are taken; optional roles may be left out.
    assert mapping.choices(scan, "activity", {"case": "Ticket Nr"}) == HEADERS[1:]
    assert mapping.choices(scan, "resource", {"case": "Ticket Nr"})[-1] == mapping.NONE_CHOICE


def test_build_mapping_refuses_gaps_duplicates_and_unknown_columns(tickets: Path) -> None:
    scan = mapping.scan_header(tickets, "tickets.csv")
    assert scan is not None
    with pytest.raises(EventLogError, match="no column chosen for timestamp"):
        mapping.build_mapping(scan, {"case": "Ticket Nr", "activity": "Step"})
    with pytest.raises(EventLogError, match="'Step' was given two roles"):
        mapping.build_mapping(scan, {"case": "Step", "activity": "Step", "timestamp": "Finished"})
    with pytest.raises(EventLogError, match="no column called 'Nope'"):
        mapping.build_mapping(scan, {"case": "Nope", "activity": "Step", "timestamp": "Finished"})
    chosen = mapping.build_mapping(
        scan,
        {
            "case": "Ticket Nr",
            "activity": "Step",
            "timestamp": "Finished",
            "start_timestamp": mapping.NONE_CHOICE,
            "resource": "Handled by",
        },
    )
    assert chosen.start_timestamp is None and chosen.resource == "Handled by"


def test_a_log_without_enough_columns_is_refused_before_asking(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,activity\nc1,a\n", encoding="utf-8")
    scan = mapping.scan_header(bad, "bad.csv")
    assert scan is not None and scan.to_ask() == ["timestamp", "start_timestamp", "resource"]
    with pytest.raises(
        EventLogError, match=r"bad.csv: missing timestamp column; .*unassigned: none"
    ):
        scan.check_mappable()


def test_detected_logs_go_straight_through(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("case_id,activity,timestamp\nc1,a,2024-01-01T00:00:00\n", encoding="utf-8")
    scan = mapping.scan_header(plain, "plain.csv")
    assert scan is not None and scan.to_ask() == []
    assert mapping.scan_header(tmp_path / "x.xes", "x.xes") is None  # XES attributes are standard


def test_mapped_log_is_mined_with_second_line_as_the_bottleneck(
    analysis: answers.LogAnalysis,
) -> None:
    report = analysis.report
    assert report.cases == 300
    assert report.bottlenecks and report.bottlenecks[0].activity == "Second line fix"
    assert {r.activity for r in report.rework} == {"Second line fix"}


# --------------------------------------------------------------------------- intents
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("why are tickets slow?", {"kind": "why_slow"}),
        ("Where do cases wait?", {"kind": "why_slow"}),
        (
            "what if we add two people to second line?",
            {"kind": "what_if", "people": 2, "target": "second line"},
        ),
        (
            "What if we hire 3 more agents for the L1 team?",
            {"kind": "what_if", "people": 3, "target": "l1"},
        ),
        ("one more person in triage", {"kind": "what_if", "people": 1, "target": "triage"}),
        (
            "remove one person from Second line fix",
            {"kind": "what_if", "people": -1, "target": "second line fix"},
        ),
        ("what is pending my approval?", {"kind": "pending"}),
        ("show rework", {"kind": "rework"}),
        ("show me the process map", {"kind": "process_map"}),
        ("rollout status", {"kind": "status"}),
        ("pull the kill switch", {"kind": "kill_switch", "switch": "on"}),
        ("kill switch off", {"kind": "kill_switch", "switch": "off"}),
        ("start the loop", {"kind": "start_loop"}),
        ("good morning", {"kind": "help"}),
    ],
)
def test_parser_routes_questions(text: str, expected: dict[str, Any]) -> None:
    got = intents.parse_intent(text).model_dump(exclude_none=True, exclude={"source"})
    assert got == expected


class ScriptedModel(BaseChatModel):
    """A stand-in LLM that answers with one given tool call (or plain text)."""

    args: dict[str, Any] | None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        calls = [] if self.args is None else [{"name": "Intent", "args": self.args, "id": "c1"}]
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content="", tool_calls=calls))]
        )


def test_offline_routing_goes_through_the_chat_model_interface() -> None:
    model = intents.intent_model(Settings(OPENAI_API_KEY=None, OPENAI_BASE_URL=None))
    routed = intents.route("what if we add two people to second line?", model)
    assert (routed.kind, routed.people, routed.target, routed.source) == (
        "what_if",
        2,
        "second line",
        "parser",
    )


def test_model_routes_when_configured_and_invalid_output_falls_back() -> None:
    good = ScriptedModel(args={"kind": "what_if", "people": 4, "target": "L2"})
    routed = intents.route("could second line use a hand?", good)
    assert (routed.kind, routed.people, routed.target, routed.source) == (
        "what_if",
        4,
        "L2",
        "model",
    )
    invalid = ScriptedModel(args={"kind": "delete_everything"})
    assert intents.route("show rework", invalid).model_dump(include={"kind", "source"}) == {
        "kind": "rework",
        "source": "parser",
    }
    silent = ScriptedModel(args=None)
    assert intents.route("why are tickets slow?", silent).kind == "why_slow"


# --------------------------------------------------------------------------- answers
def test_why_slow_cites_the_bottleneck_and_root_causes(analysis: answers.LogAnalysis) -> None:
    plan = answers.why_slow(analysis)
    assert [c.name for c in plan.calls] == ["mining.bottlenecks", "mining.root_causes"]
    text, results = answers.run_plan(plan)
    top = analysis.report.bottlenecks[0]
    assert f"Bottleneck: {top.activity}." in text
    assert f"{top.cases_affected:,} cases waited" in text
    causes = results[1]
    assert causes.rules, "the generated log has slow segments (hardware tickets)"
    assert "Root causes" in text and "| Lift |" in text


def test_rework_answer_lists_repeated_steps(analysis: answers.LogAnalysis) -> None:
    text, results = answers.run_plan(answers.rework(analysis))
    assert results[0][0].activity == "Second line fix"
    assert f"| Second line fix | {results[0][0].cases_with_rework} |" in text


def test_team_phrases_resolve_to_the_pools_found_in_the_log(analysis: answers.LogAnalysis) -> None:
    twin = answers.fit_twin(analysis.frame, seed=0)
    second = twin.pool_of("Second line fix")
    for phrase in ("second line", "2nd line", "L2", "sl-dan", "Second line fix"):
        assert answers.resolve_team(twin, phrase) == second, phrase
    assert answers.resolve_team(twin, "first line") == twin.pool_of("First line triage")
    with pytest.raises(
        ToolError, match="no team, activity or person in this log matches 'marketing'"
    ):
        answers.resolve_team(twin, "marketing")


def test_what_if_predicts_an_effect_with_an_interval(analysis: answers.LogAnalysis) -> None:
    plan = answers.what_if(analysis, 2, "second line")
    assert [c.name for c in plan.calls] == ["twin.fit_twin", "twin.resolve_pool", "twin.predict"]
    text, (twin, pool, prediction) = answers.run_plan(plan)
    assert pool == twin.pool_of("Second line fix")
    assert prediction.result.capacity_what_if[pool] == prediction.result.capacity_as_is[pool] + 2
    assert prediction.delta_waiting_hours.mean < 0  # more people in the busy team: less waiting
    assert prediction.delta_pct.low95 <= prediction.delta_pct.mean <= prediction.delta_pct.high95
    assert f"{prediction.delta_pct.mean:+.1f}%" in text
    assert f"{prediction.delta_pct.low95:+.1f}% to {prediction.delta_pct.high95:+.1f}%" in text
    assert analysis.twin is twin  # fitted once per log, reused by the next what-if
    with pytest.raises(ToolError, match="how many people"):
        answers.what_if(analysis, 0, "second line")


# --------------------------------------------------------------------------- login and pages
def test_password_login_gives_identity_principals_with_roles() -> None:
    spec = (
        f"olga:approver+analyst:{auth.hash_password('s3cret', iterations=1000)};"
        f" ana : analyst : {auth.hash_password('pw', iterations=1000)}"
    )
    users = auth.parse_users(spec)
    olga = auth.authenticate("olga", "s3cret", users)
    assert olga is not None and olga.roles == {APPROVER, ANALYST} and olga.via == "chat"
    assert auth.can_approve(olga) and not auth.can_switch_kill(olga)
    ana = auth.authenticate("ana", "pw", users)
    assert ana is not None and not auth.can_approve(ana) and auth.can_analyse(ana)
    assert auth.authenticate("olga", "wrong", users) is None
    assert auth.authenticate("nobody", "s3cret", users) is None
    assert auth.can_switch_kill(auth.LOCAL_OPERATOR) and ADMIN in auth.LOCAL_OPERATOR.roles


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("olga:approver:plaintext", "never the password"),
        ("olga:boss:pbkdf2_sha256$1000$aa$bb", "roles must be some of"),
        ("olga:approver", "expected name:role"),
    ],
)
def test_bad_user_entries_are_refused_without_echoing_secrets(spec: str, message: str) -> None:
    with pytest.raises(auth.ChatAuthError, match=message) as caught:
        auth.parse_users(spec)
    assert "plaintext" not in str(caught.value)


def test_session_secret_is_kept_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET", raising=False)
    auth.ensure_session_secret(tmp_path)
    first = auth.os.environ["CHAINLIT_AUTH_SECRET"]
    assert (tmp_path / auth.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET")
    auth.ensure_session_secret(tmp_path)
    assert auth.os.environ["CHAINLIT_AUTH_SECRET"] == first and len(first) > 40


def test_offline_html_drops_remote_links_only() -> None:
    page = (
        '<link rel="preconnect" href="https://fonts.googleapis.com" />\n<link\n href="https://fonts.googleapis'
        '.com/css2?family=Inter" rel="stylesheet"/><link rel="stylesheet" href="//cdn.example/k.css">'
        '<link rel="icon" href="/favicon" /><link rel="stylesheet" href="http://127.0.0.1:8000/a.css">'
        '<meta property="og:image" content="https://s3.example/x.png">'
    )
    out = web.offline_html(page)
    assert "googleapis" not in out and "cdn.example" not in out and "s3.example" not in out
    assert '<link rel="icon" href="/favicon" />' in out and "127.0.0.1:8000/a.css" in out


def test_footer_says_what_answers() -> None:
    assert "LLM" not in web.watermark(
        False, "gpt-4o-mini"
    ) and "No language model" in web.watermark(False, "x")
    assert "my-model" in web.watermark(True, "my-model")


def test_map_pages_need_their_random_token(tmp_path: Path) -> None:
    pages = web.MapPages(tmp_path)
    url = pages.save("<html>map</html>")
    token = url.rsplit("/", 1)[1]
    assert url.startswith(web.MAPS_ROUTE) and len(token) >= 30
    assert pages.path_of(token).read_text(encoding="utf-8") == "<html>map</html>"
    assert pages.path_of("../../etc/passwd") is None and pages.path_of("x" * 32) is None
