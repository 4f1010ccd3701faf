"""The closed loop on order-to-cash, reached only through its connector (spec + overlay).

The connector's ``case_scope`` ends each order at "Create Invoice" for the KPIs: payment,
dunning and write-offs are the customer's side, which no catalog action changes, and a few
weeks of log show them only for early payers. Triage then ranks what the connected system can
act on ("Ship", done by a carrier no catalog action reaches, is not selected, with the reason
recorded); the o2c twin passes its own backtest, and the Planner predicts every candidate change
the catalog offers over the 14-day horizon. The predictions are checked against the sandbox's
counterfactual truth (``closedloop.evals.connector_truth``: the same seed run with and without
each change), and the loop closes: approval, execution, measurement, a verdict.
"""

import httpx
import pandas as pd
import pytest
from sqlmodel import Session, create_engine, select

from closedloop.contracts import SwitchbackSchedule
from closedloop.demo import advance_clock, run_demo
from closedloop.evals.connector_truth import ActionChange, true_effect_of
from closedloop.graphs.runner import LoopRunner
from closedloop.report import render_run
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import (
    AuditEvent,
    CatalogVersion,
    Dataset,
    Execution,
    Insight,
    LoopRun,
    Plan,
)
from closedloop.tools.act import System, connector_document, fetch_events, load_manifest
from closedloop.tools.connect import NotInCatalogError, build_catalog

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox():
    with SandboxServer(seed=3, domain="o2c") as server:
        advance_clock(server.url, 21)
        yield server


def _settings(tmp_path, **extra) -> Settings:
    return Settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/store.db",
        CLOSEDLOOP_HOME=str(tmp_path),
        CLOSEDLOOP_CONNECTOR="o2c",
        **extra,
    )


def _calibration(runner: LoopRunner, run_id: str) -> dict:
    with Session(runner.engine) as s:
        events = [
            e
            for e in s.exec(select(AuditEvent).where(AuditEvent.run_id == run_id))
            if e.kind == "calibration"
        ]
    assert len(events) == 1
    return events[0].payload


def _insight(runner: LoopRunner, activity: str) -> Insight:
    with Session(runner.engine) as s:
        return s.exec(
            select(Insight).where(Insight.activity == activity, Insight.kind == "bottleneck")
        ).one()


def _truth(seed: int, action: str, params: dict):
    return true_effect_of("o2c", seed, ActionChange(action=action, params=params))


def test_o2c_plans_the_best_change_and_its_interval_covers_the_truth(tmp_path, sandbox):
    with LoopRunner(_settings(tmp_path)) as runner:
        state = runner.start(sandbox.url, scope="o2c")
        system = runner.context.system(state["catalog_version"], sandbox.url)
        with pytest.raises(NotInCatalogError):  # nothing outside the catalog can be built
            system.action_request("deleteAutoApprovalRule", {}, "closedloop-test-key-1")
        calibration = _calibration(runner, state["run_id"])
        approval = _insight(runner, "Manual Approval")
        with Session(runner.engine) as s:
            run = s.get(LoopRun, state["run_id"])
            versions = s.exec(select(CatalogVersion)).all()
            plans = s.exec(select(Plan)).all()
            insights = s.exec(select(Insight)).all()
    activities = {i.activity for i in insights}
    blocked = [i for i in insights if i.detail.get("actionability", {}).get("actionable") is False]
    # Cases end at the invoice: nothing after it was mined.
    observe = next(s for s in state["steps"] if s["step"] == "observe")
    assert not activities & {"Receive Payment", "Send Dunning Notice", "Write Off Receivable"}
    assert observe["events"] > 1000
    # Triage: a delay the system cannot change is not selected, and says why.
    triage = next(s for s in state["steps"] if s["step"] == "triage")
    selected = [o["activity"] for o in triage["opportunities"]]
    assert selected[0] == "Manual Approval"
    assert blocked and not {i.activity for i in blocked} & set(selected)
    assert all(i.detail["score"]["feasibility"] == 0.1 for i in blocked)
    assert all(i.activity in triage["summary"] for i in blocked)
    assert set(approval.detail["actionability"]["kinds"]) == {"approval_threshold", "set_capacity"}
    assert calibration["passed"] is True and calibration["backtest"]["status"] == "ok"
    # Plan: the threshold change, the best by the Planner's ranking, waiting for approval.
    plan_step = next(s for s in state["steps"] if s["step"] == "plan")
    assert (
        state["pending"]["kind"] == "approval" and plan_step["action"] == "set_approval_threshold"
    )
    assert [p.status for p in plans] == ["awaiting_approval"]
    assert plans[0].catalog_version == state["catalog_version"] == run.catalog_version
    assert [v.version for v in versions] == [run.catalog_version]
    assert versions[0].connector == "o2c-sandbox"
    assert httpx.get(f"{sandbox.url}/writes").json() == []  # nothing written before approval
    # Against the truth (same seed with and without each change): the chosen change is truly
    # the best of the candidates the Planner simulated, and its 95 % interval covers its effect.
    simulated = [c for c in plan_step["considered"] if c["verdict"] != "not_simulated"]
    assert {c["action"] for c in simulated} >= {"set_team_headcount", "set_approval_threshold"}
    truth = {c["label"]: _truth(3, c["action"], c["params"]) for c in simulated}
    chosen = next(c for c in simulated if c["verdict"] == "chosen")
    assert min(truth.values(), key=lambda t: t.effect_hours) is truth[chosen["label"]]
    p = chosen["predicted"]
    assert p["ci_low_hours"] <= truth[chosen["label"]].effect_hours <= p["ci_high_hours"]
    assert truth[chosen["label"]].effect_pct < -5  # materially faster, as predicted


def test_o2c_loop_closes_end_to_end_with_a_switchback_trial_that_covers_the_truth(tmp_path):
    settings = _settings(tmp_path)
    state = run_demo(settings, seed=3, auto_approve=True, quiet=True, domain="o2c")
    steps = {s["step"]: s for s in state["steps"]}
    assert steps["execute"]["executions"][0]["status"] == "succeeded"
    # A threshold applies to every order and the connector can undo it, so the Executor
    # toggles it by day-long blocks: on- and off-blocks share the approvers, as the world will.
    trial = SwitchbackSchedule.model_validate(state["switchback"])
    assert trial.finished and trial.stopped is None and trial.plan[0] and trial.plan[-1]
    assert [b.on for b in trial.blocks] == trial.plan
    switches = [s for s in state["steps"] if s["step"] == "switch"]
    assert [s["on"] for s in switches] == [*trial.plan, None]  # each block begun, then the end
    with Session(create_engine(settings.database_url)) as s:
        rows = s.exec(select(Execution).where(Execution.plan_id == state["plan_id"])).all()
    # One write per switch from off to on (plus block 0), within the plan's write cap of 5.
    turned_on = 1 + sum(1 for a, b in zip(trial.plan, trial.plan[1:], strict=False) if b and not a)
    assert len(rows) == turned_on <= 5
    assert len({r.idempotency_key for r in rows}) == len(rows)
    assert [r.status for r in rows[:-1]] == ["compensated"] * (len(rows) - 1)  # verified gone
    watch = steps["watch"]
    measured = watch["measured"]
    assert measured["design"] == "switchback" and "toggled by time blocks" in measured["why"]
    assert measured["effect"]["unit"] == "block"
    assert watch["decision"] in ("keep", "escalate", "rollback")
    assert state["outcome"] in ("kept", "escalated", "rolled_back")
    if state["outcome"] != "rolled_back":  # the last block is on: a kept change stays live
        assert rows[-1].status == "succeeded"
    # The measured total effect's interval holds the sandbox's counterfactual truth.
    action = state["steps"][[s["step"] for s in state["steps"]].index("plan")]
    truth = _truth(3, action["action"], action["params"])
    assert measured["ci_low"] <= truth.effect_hours <= measured["ci_high"]
    report = render_run(state)
    assert "realized delta" in report and "on-blocks" in report and "switchback block 1" in report


def test_a_run_mines_a_history_file_and_watches_the_system_feed(tmp_path, sandbox):
    # A user's export of the system's history (here: the sandbox's feed written to CSV) is mined
    # instead of the feed's own history.
    with httpx.Client(base_url=sandbox.url) as client:
        catalog = build_catalog(connector_document(load_manifest("o2c"), sandbox.url, {}))
        system_rows = fetch_events(System(catalog, sandbox.url, client)).rows
    history = tmp_path / "export.csv"
    pd.DataFrame(system_rows).to_csv(history, index=False)
    with LoopRunner(_settings(tmp_path / "run")) as runner:
        state = runner.start(sandbox.url, scope="o2c", history=str(history))
        with Session(runner.engine) as s:
            dataset = s.exec(select(Dataset)).one()
            calls = [e.payload for e in s.exec(select(AuditEvent)) if e.kind == "tool_call"]
    assert dataset.source == "file export.csv"
    assert any(
        c.get("tool") == "load_event_log" and c["args"]["path"] == str(history) for c in calls
    )
    assert state["pending"]["kind"] == "approval"  # planned on the file's history
    assert state["events_position"]  # the feed still says where the change's events will start
