"""The shadow-mode eval suite: run each case's loop in shadow mode on a fresh sandbox and store, then score.

Cases are YAML files (``closedloop/evals/cases``); CI fails when the pass
rate drops below the threshold.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, Field

from closedloop.evals.scorers import SCORERS, Score
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings


class SandboxSetup(BaseModel):
    seed: int = 7
    history_days: float = Field(default=21, gt=0, le=120)
    staffing: dict[str, int] = Field(default_factory=dict)


class EvalCase(BaseModel):
    name: str
    sandbox: SandboxSetup = Field(default_factory=SandboxSetup)
    expect: dict[str, Any] = Field(default_factory=dict)
    # A measured shortfall of the loop, stated in the case (like a strict xfail): the case is
    # expected to fail until the loop improves, and the suite fails once it passes.
    known_gap: str | None = None


class CaseResult(BaseModel):
    case: str
    passed: bool
    scores: list[Score]
    outcome: str | None
    known_gap: str | None = None

    @property
    def as_expected(self) -> bool:
        """Passed, or failed exactly where a known gap says it does."""
        return self.passed != bool(self.known_gap)


class EvalReport(BaseModel):
    cases: list[CaseResult]
    pass_rate: float
    threshold: float
    passed: bool


def load_cases(folder: Path | None = None) -> list[EvalCase]:
    """Eval cases from YAML files (the bundled ones by default)."""
    root = Path(folder) if folder else Path(str(resources.files("closedloop.evals") / "cases"))
    files = sorted(root.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no eval cases (*.yaml) in {root}")
    return [EvalCase.model_validate(yaml.safe_load(f.read_text(encoding="utf-8"))) for f in files]


def run_case(case: EvalCase, base: Settings) -> CaseResult:
    """Run one case in shadow mode against its own sandbox and store, then score it."""
    with tempfile.TemporaryDirectory(prefix=f"eval-{case.name}-") as tmp:
        settings = base.model_copy(update={"database_url": f"sqlite:///{tmp}/eval.db", "home": Path(tmp),
                                           "default_mode": "shadow"})
        with SandboxServer(seed=case.sandbox.seed) as sandbox, httpx.Client(base_url=sandbox.url, timeout=120) as c:
            for queue, agents in case.sandbox.staffing.items():
                c.put(f"/config/staffing/{queue}", json={"agents": agents},
                      headers={"Idempotency-Key": f"eval-setup-{queue}"}).raise_for_status()
            c.post("/clock/advance", json={"hours": case.sandbox.history_days * 24}).raise_for_status()
            setup_keys = {f"eval-setup-{q}" for q in case.sandbox.staffing}
            with LoopRunner(settings) as runner:
                state = runner.start(sandbox.url, scope=f"eval-{case.name}")
            writes = [w for w in c.get("/writes").json() if w["idempotency_key"] not in setup_keys]
    scores = [scorer(state, writes, case.expect) for scorer in SCORERS]
    return CaseResult(case=case.name, passed=all(s.passed for s in scores), scores=scores,
                      outcome=state.get("outcome"), known_gap=case.known_gap)


def run_suite(base: Settings, folder: Path | None = None, threshold: float = 1.0) -> EvalReport:
    """Run every case; the suite passes when the share of cases that behave as expected (pass,
    or fail where their known gap says) reaches ``threshold``."""
    results = [run_case(case, base) for case in load_cases(folder)]
    rate = sum(r.as_expected for r in results) / len(results)
    return EvalReport(cases=results, pass_rate=rate, threshold=threshold, passed=rate >= threshold)
