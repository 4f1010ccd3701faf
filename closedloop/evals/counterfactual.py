"""Counterfactual truth: the bundled sandbox run twice from one seed, with and without a change.

Truth for benchmarks and evals, never for the loop: the loop sees only event
logs; this harness sees the world itself. Two copies of the helpdesk sandbox
start from the same seed (arrivals and each ticket's own randomness are seeded
per ticket, so both worlds get the same tickets), run the same warm-up history,
then one copy gets the change through the sandbox's own HTTP API (``PUT
/config/staffing/{queue}`` or ``POST /rules``) and the other nothing. Both run
on for ``observe_days``; the cases that *started* in that window are then
followed for ``drain_days`` more (the change stays in place), so the effect
on their cycle time is measured almost without censoring. Cases still open
at the end count with their age so far (a lower bound) and are reported.

The effect is the total effect on mean cycle time (changed world minus
unchanged world over the same cases: queues shared with untreated cases are
included), plus, for rules, the paired effect per treated case and the
reopen rate. The sandbox's hidden dynamics are never touched directly: the
app is built with its public ``create_app(seed=..., regime=...)`` (a named
world, see :data:`closedloop.sandbox.params.REGIMES`) and driven through HTTP
in-process.

"Best" is the candidate with the most negative total effect that also clears a
materiality bar (``min_gain_pct`` of the baseline mean cycle time, 0 by
default); when none does, doing nothing is best. :func:`standard_candidates`
is the harness's own candidate set: one more agent on each queue and the
rules the loop can propose.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from closedloop.sandbox.app import create_app
from closedloop.sandbox.params import DEFAULT_REGIME

__all__ = [
    "BestCandidate", "CaseOutcome", "Change", "CounterfactualResult", "NoChange", "RuleChange",
    "StaffingChange", "WorldOutcome", "best_candidate", "change_from_action", "compare",
    "regime_staffing", "run_world", "standard_candidates", "true_effect",
]  # fmt: skip

HOUR_SECONDS = 3600.0
PAGE = 10_000
CLOSE = "Close"
REOPEN = "Reopen"


class NoChange(BaseModel):
    """Leave the world as it is ("do nothing")."""

    kind: Literal["none"] = "none"

    def label(self) -> str:
        """A short human name."""
        return "no change"


class StaffingChange(BaseModel):
    """Set the number of agents of one queue (``PUT /config/staffing/{queue}``)."""

    kind: Literal["staffing"] = "staffing"
    queue: str
    agents: int = Field(ge=0, le=50)

    def label(self) -> str:
        """A short human name."""
        return f"{self.queue} = {self.agents} agents"


class RuleChange(BaseModel):
    """Add an automation rule with a treatment share (``POST /rules``)."""

    kind: Literal["rule"] = "rule"
    name: str = "counterfactual rule"
    condition: dict[str, Any] = Field(description="{'field', 'op', 'value'} on a case attribute")
    action: dict[str, Any] = Field(default_factory=lambda: {"type": "auto_resolve"})
    treatment_share: float = Field(1.0, ge=0.0, le=1.0)

    def label(self) -> str:
        """A short human name."""
        c = self.condition
        return f"{self.action.get('type')} {c.get('field')}={c.get('value')} @{self.treatment_share:.0%}"


Change = Annotated[NoChange | StaffingChange | RuleChange, Field(discriminator="kind")]


class CaseOutcome(BaseModel):
    """One case of the observation window in one world."""

    start_hours: float = Field(description="hours since the simulation start")
    cycle_hours: float = Field(description="start to Close; the age at the horizon if still open")
    closed: bool
    reopened: bool
    treated: bool = Field(description="in a rule's treatment cohort")


class WorldOutcome(BaseModel):
    """The cases that started in the observation window of one world, by case id."""

    change: Change
    cases: dict[str, CaseOutcome]


class CounterfactualResult(BaseModel):
    """The true effect of one change on the cases started after it (changed minus unchanged)."""

    seed: int
    regime: str = DEFAULT_REGIME
    change: Change
    setup_staffing: dict[str, int]
    history_days: float
    observe_days: float
    drain_days: float
    cases: int = Field(description="cases started in the observation window (the same in both)")
    baseline_mean_cycle_hours: float
    changed_mean_cycle_hours: float
    effect_hours: float = Field(description="total effect on mean cycle time per case")
    effect_pct: float
    treated_cases: int
    effect_per_treated_case_hours: float | None = Field(
        None, description="paired mean over the treated cases (rules only)"
    )
    reopen_rate_baseline: float
    reopen_rate_changed: float
    reopen_effect_points: float = Field(description="percentage points")
    censored_baseline: int = Field(description="cases still open at the horizon, unchanged world")
    censored_changed: int


class BestCandidate(BaseModel):
    """Every candidate's true effect and the best one (None: doing nothing is best)."""

    seed: int
    regime: str = DEFAULT_REGIME
    results: list[CounterfactualResult]
    best: int | None = Field(description="index into results; None when no candidate helps")
    best_label: str
    min_gain_pct: float = Field(0.0, description="materiality bar a best candidate clears")


def change_from_action(
    action: str, params: dict[str, Any]
) -> NoChange | StaffingChange | RuleChange:
    """The harness change for a catalog action of the loop (``set_queue_staffing``, ``create_rule``)."""
    if action in ("none", "", "no_change"):
        return NoChange()
    if action == "set_queue_staffing":
        return StaffingChange(queue=params["queue"], agents=int(params["agents"]))
    if action == "create_rule":
        kind = params.get("rule_action", "auto_resolve")
        rule_action = {"type": kind}
        if kind == "route":
            rule_action["queue"] = params.get("route_queue", params.get("queue"))
        return RuleChange(name=params.get("name", "rule"), condition=params["condition"],
                          action=rule_action, treatment_share=params.get("treatment_share", 1.0))  # fmt: skip
    raise ValueError(f"no counterfactual for action {action!r}")


def _write(client: TestClient, method: str, path: str, body: dict[str, Any], key: str) -> None:
    r = client.request(method, path, json=body, headers={"Idempotency-Key": key})
    if r.status_code >= 300:
        raise RuntimeError(f"sandbox refused {method} {path}: {r.status_code} {r.text}")


def _apply(client: TestClient, change: NoChange | StaffingChange | RuleChange) -> None:
    if isinstance(change, StaffingChange):
        _write(client, "PUT", f"/config/staffing/{change.queue}", {"agents": change.agents},
               "counterfactual-change")  # fmt: skip
    elif isinstance(change, RuleChange):
        _write(client, "POST", "/rules", {
            "name": change.name, "condition": change.condition, "action": change.action,
            "treatment_share": change.treatment_share}, "counterfactual-change")  # fmt: skip


def _advance(client: TestClient, hours: float) -> None:
    remaining = hours
    while remaining > 1e-9:
        step = min(remaining, 24 * 30)
        client.post("/clock/advance", json={"hours": step}).raise_for_status()
        remaining -= step


def _events(client: TestClient) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get("/events", params={"after_seq": after, "limit": PAGE}).json()
        out += page["events"]
        if not page["events"] or page.get("next_after_seq") is None:
            return out
        after = page["next_after_seq"]


def run_world(
    seed: int,
    change: NoChange | StaffingChange | RuleChange,
    history_days: float = 21.0,
    observe_days: float = 14.0,
    drain_days: float = 7.0,
    setup_staffing: dict[str, int] | None = None,
    regime: str = DEFAULT_REGIME,
) -> WorldOutcome:
    """Run one sandbox world and return the outcome of every case started after the change.

    ``regime`` names the sandbox's hidden dynamics; ``setup_staffing`` (queue ->
    agents) is applied through the API at time 0, before the history.
    """
    client = TestClient(create_app(seed=seed, regime=regime))
    t0 = datetime.fromisoformat(client.get("/clock").json()["now"])
    for queue, agents in sorted((setup_staffing or {}).items()):
        _write(client, "PUT", f"/config/staffing/{queue}", {"agents": agents}, f"setup-{queue}")
    _advance(client, history_days * 24)
    _apply(client, change)
    _advance(client, (observe_days + drain_days) * 24)
    events = _events(client)
    lo, hi = history_days * 24, (history_days + observe_days) * 24
    horizon = (history_days + observe_days + drain_days) * 24
    first: dict[str, float] = {}
    closed: dict[str, float] = {}
    reopened: set[str] = set()
    treated: set[str] = set()
    for e in events:
        case = e["case_id"]
        hours = (datetime.fromisoformat(e["timestamp"]) - t0).total_seconds() / HOUR_SECONDS
        if case not in first:
            first[case] = hours
            if e["attributes"].get("experiment", "").endswith(":treatment"):
                treated.add(case)
        if e["activity"] == CLOSE and e["lifecycle"] == "complete":
            closed[case] = hours
        elif e["activity"] == REOPEN:
            reopened.add(case)
    cases = {
        case: CaseOutcome(
            start_hours=start,
            cycle_hours=closed.get(case, horizon) - start,
            closed=case in closed,
            reopened=case in reopened,
            treated=case in treated,
        )
        for case, start in first.items()
        if lo <= start < hi
    }
    return WorldOutcome(change=change, cases=cases)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def compare(
    seed: int,
    base: WorldOutcome,
    changed: WorldOutcome,
    history_days: float,
    observe_days: float,
    drain_days: float,
    setup_staffing: dict[str, int] | None = None,
    regime: str = DEFAULT_REGIME,
) -> CounterfactualResult:
    """The effect of ``changed`` against ``base`` on the cases both worlds share."""
    ids = sorted(set(base.cases) & set(changed.cases))
    b = [base.cases[i] for i in ids]
    c = [changed.cases[i] for i in ids]
    mb, mc = _mean([x.cycle_hours for x in b]), _mean([x.cycle_hours for x in c])
    treated = [i for i in ids if changed.cases[i].treated]
    per_treated = (
        _mean([changed.cases[i].cycle_hours - base.cases[i].cycle_hours for i in treated])
        if isinstance(changed.change, RuleChange) and treated else None
    )  # fmt: skip
    rb = _mean([float(x.reopened) for x in b])
    rc = _mean([float(x.reopened) for x in c])
    return CounterfactualResult(
        seed=seed, regime=regime, change=changed.change, setup_staffing=dict(setup_staffing or {}),
        history_days=history_days, observe_days=observe_days, drain_days=drain_days,
        cases=len(ids), baseline_mean_cycle_hours=mb, changed_mean_cycle_hours=mc,
        effect_hours=mc - mb, effect_pct=100.0 * (mc - mb) / mb if mb > 0 else 0.0,
        treated_cases=len(treated), effect_per_treated_case_hours=per_treated,
        reopen_rate_baseline=rb, reopen_rate_changed=rc, reopen_effect_points=100.0 * (rc - rb),
        censored_baseline=sum(not x.closed for x in b), censored_changed=sum(not x.closed for x in c),
    )  # fmt: skip


def true_effect(
    seed: int,
    change: NoChange | StaffingChange | RuleChange | dict[str, Any],
    history_days: float = 21.0,
    observe_days: float = 14.0,
    drain_days: float = 7.0,
    setup_staffing: dict[str, int] | None = None,
    regime: str = DEFAULT_REGIME,
) -> CounterfactualResult:
    """The true effect of ``change`` on mean cycle time of cases started after it.

    Runs sandbox seed ``seed`` of ``regime`` twice (``history_days`` warm-up,
    then the change or nothing, then ``observe_days`` of new cases followed
    ``drain_days`` more) and compares the same cases in both worlds.
    """
    change = _as_change(change)
    args = (history_days, observe_days, drain_days, setup_staffing, regime)
    base = run_world(seed, NoChange(), *args)
    return compare(seed, base, run_world(seed, change, *args), *args)


def best_candidate(
    seed: int,
    candidates: list[NoChange | StaffingChange | RuleChange | dict[str, Any]],
    history_days: float = 21.0,
    observe_days: float = 14.0,
    drain_days: float = 7.0,
    setup_staffing: dict[str, int] | None = None,
    regime: str = DEFAULT_REGIME,
    min_gain_pct: float = 0.0,
) -> BestCandidate:
    """Each candidate's true effect (one shared unchanged world) and the best by mean cycle time.

    The best is the candidate with the most negative total effect, provided it
    is below zero and shortens mean cycle time by at least ``min_gain_pct`` %;
    otherwise doing nothing is best (``best=None``).
    """
    args = (history_days, observe_days, drain_days, setup_staffing, regime)
    base = run_world(seed, NoChange(), *args)
    results = []
    for cand in candidates:
        change = _as_change(cand)
        world = base if isinstance(change, NoChange) else run_world(seed, change, *args)
        results.append(compare(seed, base, world, *args))
    order = sorted(range(len(results)), key=lambda k: results[k].effect_hours)
    best = order[0] if order and _helps(results[order[0]], min_gain_pct) else None
    label = "no change" if best is None else _label(results[best].change)
    return BestCandidate(
        seed=seed,
        regime=regime,
        results=results,
        best=best,
        best_label=label,
        min_gain_pct=min_gain_pct,
    )


def _helps(result: CounterfactualResult, min_gain_pct: float) -> bool:
    return result.effect_hours < 0 and -result.effect_pct >= min_gain_pct


def standard_candidates(staffing: dict[str, int]) -> list[NoChange | StaffingChange | RuleChange]:
    """The harness's candidate set for a world with ``staffing`` (queue -> agents, from
    ``GET /config``): no change, one more agent on each queue, auto-resolving each
    of the two routine categories and routing software tickets straight to L2."""

    def on(category: str) -> dict[str, Any]:
        return {"field": "category", "op": "eq", "value": category}

    return [
        NoChange(),
        *(StaffingChange(queue=q, agents=n + 1) for q, n in sorted(staffing.items())),
        RuleChange(name="auto-resolve password", condition=on("password")),
        RuleChange(name="auto-resolve access", condition=on("access")),
        RuleChange(
            name="route software to L2",
            condition=on("software"),
            action={"type": "route", "queue": "L2"},
        ),
    ]


def regime_staffing(regime: str = DEFAULT_REGIME, seed: int = 1) -> dict[str, int]:
    """A regime's initial staffing as its API shows it (``GET /config``)."""
    return dict(TestClient(create_app(seed=seed, regime=regime)).get("/config").json()["staffing"])


def _as_change(value: Any) -> NoChange | StaffingChange | RuleChange:
    if isinstance(value, NoChange | StaffingChange | RuleChange):
        return value
    kind = value.get("kind", "none")
    return {"none": NoChange, "staffing": StaffingChange, "rule": RuleChange}[kind].model_validate(
        value
    )


def _label(change: NoChange | StaffingChange | RuleChange) -> str:
    return change.label()
