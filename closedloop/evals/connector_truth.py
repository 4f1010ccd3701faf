"""Counterfactual truth for any bundled sandbox, through its connector.

Truth for benchmarks and evals, never for the loop. Like
:mod:`closedloop.evals.counterfactual` (the helpdesk's own harness), two copies
of a sandbox start from one seed and run the same history; one gets a change,
the other nothing; the cases that *started* in the next ``observe_days`` are
followed ``drain_days`` more and compared case by case. Here the change is a
catalog action of the domain's connector (the very request the Executor would
send, built by :func:`closedloop.tools.connect.build_action_request`) and the
events are read through the connector's feed (each case clipped at the
connector's ``case_scope`` milestone, as the loop reads them), so the truth is
on the loop's own KPI for any domain with a connector. Each world is a real
sandbox server on loopback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.sandbox.server import SandboxServer
from closedloop.tools.act import System, connector_document, fetch_events, load_manifest
from closedloop.tools.connect import COHORT, build_action_request, build_catalog
from closedloop.tools.log import ACTIVITY, CASE, START, TIMESTAMP

__all__ = [
    "DOMAINS",
    "ActionChange",
    "Domain",
    "TrueEffect",
    "WorldCase",
    "run_world",
    "true_effect_of",
]

HOUR = pd.Timedelta(hours=1)


class Domain(BaseModel):
    """A bundled sandbox the harness can run: its connector and where its cases end."""

    name: str = Field(description="the sandbox domain (closedloop.sandbox.server.DOMAINS)")
    connector: str
    end_activities: list[str] = Field(description="a case ending with one of these is finished")


DOMAINS: dict[str, Domain] = {
    "o2c": Domain(name="o2c", connector="o2c", end_activities=["Create Invoice", "Reject Order"]),
}


class ActionChange(BaseModel):
    """A catalog action with its parameters; ``action`` None is "no change"."""

    action: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    def label(self) -> str:
        """A short human name."""
        if self.action is None:
            return "no change"
        shown = {k: v for k, v in self.params.items() if k not in ("name", "activity")}
        return f"{self.action} {shown}"


class WorldCase(BaseModel):
    """One case of the observed window in one world."""

    start: datetime
    cycle_hours: float = Field(description="first start to last event; age at the end if open")
    closed: bool
    treated: bool


class TrueEffect(BaseModel):
    """The change against no change on the cases both worlds share."""

    domain: str
    regime: str
    seed: int
    change: ActionChange
    cases: int
    baseline_mean_cycle_hours: float
    changed_mean_cycle_hours: float
    effect_hours: float
    effect_pct: float
    treated_cases: int
    open_baseline: int
    open_changed: int


def _advance(client: httpx.Client, hours: float) -> None:
    remaining = hours
    while remaining > 1e-9:
        step = min(remaining, 24 * 30)
        client.post("/clock/advance", json={"hours": step}).raise_for_status()
        remaining -= step


def run_world(
    domain: Domain,
    seed: int,
    change: ActionChange,
    regime: str = "default",
    history_days: float = 21.0,
    observe_days: float = 14.0,
    drain_days: float = 7.0,
) -> dict[str, WorldCase]:
    """One world: history, then ``change`` through the connector, then the window and its drain."""
    with (
        SandboxServer(seed=seed, domain=domain.name, regime=regime) as server,
        httpx.Client(base_url=server.url, timeout=120.0) as client,
    ):
        return _run(
            domain, server.url, client, seed, change, history_days, observe_days, drain_days
        )


def _run(
    domain: Domain,
    url: str,
    client: httpx.Client,
    seed: int,
    change: ActionChange,
    history_days: float,
    observe_days: float,
    drain_days: float,
) -> dict[str, WorldCase]:
    catalog = build_catalog(connector_document(load_manifest(domain.connector), url, {}))
    system = System(catalog, url, client)
    t0 = pd.Timestamp(client.get("/clock").json()["now"])
    origin = t0.tz_localize("UTC") if t0.tzinfo is None else t0
    _advance(client, history_days * 24)
    if change.action is not None:
        request = build_action_request(
            catalog, change.action, change.params, url, f"truth-{seed}", system.read_state()
        )
        response = client.send(request)
        if response.status_code >= 300:
            raise RuntimeError(
                f"sandbox refused {change.label()}: {response.status_code} {response.text[:300]}"
            )
    _advance(client, (observe_days + drain_days) * 24)
    frame = pd.DataFrame(fetch_events(system).rows)
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True, format="ISO8601")
    started = (
        pd.to_datetime(frame[START], utc=True, format="ISO8601")
        if START in frame.columns
        else frame[TIMESTAMP]
    )
    frame["_first"] = started.fillna(frame[TIMESTAMP])
    frame = frame.sort_values([CASE, TIMESTAMP], kind="stable")
    per_case = frame.groupby(CASE).agg(
        start=("_first", "min"), end=(TIMESTAMP, "max"), last=(ACTIVITY, "last")
    )
    cohort = frame.groupby(CASE)[COHORT].first() if COHORT in frame.columns else None
    lo = origin + history_days * 24 * HOUR
    hi = origin + (history_days + observe_days) * 24 * HOUR
    horizon = origin + (history_days + observe_days + drain_days) * 24 * HOUR
    out: dict[str, WorldCase] = {}
    for case, row in per_case[(per_case["start"] >= lo) & (per_case["start"] < hi)].iterrows():
        closed = row["last"] in domain.end_activities
        end = row["end"] if closed else horizon
        out[str(case)] = WorldCase(
            start=row["start"].to_pydatetime(),
            cycle_hours=(end - row["start"]) / HOUR,
            closed=bool(closed),
            treated=bool(cohort is not None and cohort.get(case) == "treatment"),
        )
    return out


def true_effect_of(
    domain: str,
    seed: int,
    change: ActionChange,
    regime: str = "default",
    history_days: float = 21.0,
    observe_days: float = 14.0,
    drain_days: float = 7.0,
    baseline: dict[str, WorldCase] | None = None,
) -> TrueEffect:
    """The true total effect of ``change`` on the mean cycle time of the window's cases.

    ``baseline`` reuses an unchanged world already run with the same arguments.
    """
    spec = DOMAINS[domain]
    args = (regime, history_days, observe_days, drain_days)
    base = baseline if baseline is not None else run_world(spec, seed, ActionChange(), *args)
    changed = run_world(spec, seed, change, *args)
    ids = sorted(set(base) & set(changed))
    if not ids:
        raise RuntimeError(f"{domain} seed {seed}: no case started in the window in both worlds")
    mb = sum(base[i].cycle_hours for i in ids) / len(ids)
    mc = sum(changed[i].cycle_hours for i in ids) / len(ids)
    return TrueEffect(
        domain=domain,
        regime=regime,
        seed=seed,
        change=change,
        cases=len(ids),
        baseline_mean_cycle_hours=mb,
        changed_mean_cycle_hours=mc,
        effect_hours=mc - mb,
        effect_pct=100.0 * (mc - mb) / mb if mb > 0 else 0.0,
        treated_cases=sum(changed[i].treated for i in ids),
        open_baseline=sum(not base[i].closed for i in ids),
        open_changed=sum(not changed[i].closed for i in ids),
    )
