"""The closed loop on order-to-cash, reached only through its connector (spec + overlay)."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import Session, select

from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import CatalogVersion, Execution, LoopRun, Plan, Verdict
from closedloop.tools.connect import NotInCatalogError

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox():
    with SandboxServer(seed=3, domain="o2c") as server:
        advance_clock(server.url, 21)
        yield server


def test_o2c_loop_closes_through_its_connector(tmp_path, sandbox):
    # The twin predicts a small gain from one more approver: the bar is lowered to see the loop close.
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path}/store.db", CLOSEDLOOP_HOME=str(tmp_path),
                        CLOSEDLOOP_CONNECTOR="o2c", CLOSEDLOOP_MIN_IMPROVEMENT_PCT=0.1)
    with LoopRunner(settings) as runner:
        state = runner.start(sandbox.url, scope="o2c")
        assert state["pending"]["kind"] == "approval"
        assert httpx.get(f"{sandbox.url}/writes").json() == []
        state = runner.resume(state["run_id"], {"decision": "approve", "by": "tester"},
                              expect="approval")
        for _ in range(3):
            if not state["pending"]:
                break
            advance_clock(sandbox.url, 7)
            state = runner.resume(state["run_id"], {}, expect="evidence")
        system = runner.context.system(state["catalog_version"], sandbox.url)
        with pytest.raises(NotInCatalogError):  # nothing outside the catalog can be built
            system.action_request("deleteAutoApprovalRule", {}, "closedloop-test-key-1")
    assert state["pending"] is None and state["outcome"] in ("kept", "escalated", "rolled_back")
    with Session(runner.engine) as s:
        run = s.get(LoopRun, state["run_id"])
        plan = s.exec(select(Plan)).one()
        execution = s.exec(select(Execution)).one()
        versions = s.exec(select(CatalogVersion)).all()
        assert s.exec(select(Verdict)).one().plan_id == plan.id
    assert [v.version for v in versions] == [run.catalog_version] == [plan.catalog_version]
    assert execution.catalog_version == plan.catalog_version
    assert versions[0].connector == "o2c-sandbox" and run.catalog_version.startswith("o2c-sandbox@")
    assert plan.actions[0]["action"] == "set_team_headcount"
    team, headcount = plan.actions[0]["params"]["team"], plan.actions[0]["params"]["headcount"]
    assert execution.status == "succeeded" and execution.verified is True
    # The compensation comes from the response (the previous headcount) through the connector.
    assert execution.compensation["body"] == {"Headcount": headcount - 1}
    assert f"A_Team('{team}')" in httpx.URL(execution.request["url"]).path
    applied = [w for w in httpx.get(f"{sandbox.url}/writes").json() if not w["replayed"]]
    assert len(applied) == (2 if state["outcome"] == "rolled_back" else 1)
