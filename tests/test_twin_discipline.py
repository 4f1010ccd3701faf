"""The twin learns which cases a queue serves first, and its backlog keeps who is waiting.

The logs come from a small queue written here (independent of the twin's
engine): two agents serve one queue, either first come, first served or
urgent cases first.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import closedloop.tools.twin.fit as fit_module
from closedloop import cli
from closedloop.tools.twin import fit_twin
from closedloop.tools.twin.backtest import backtest_twin
from closedloop.tools.twin.simulate import simulate_log

START = datetime(2026, 3, 2, tzinfo=UTC)


def queue_log(urgent_first: bool, cases: int = 1500, seed: int = 1, agents: int = 2,
              load: float = 0.92) -> pd.DataFrame:  # fmt: skip
    """Register (instant) then Work by one of ``agents``; 30 % of cases are urgent."""
    rng = np.random.default_rng(seed)
    service = 0.5  # hours
    gaps = rng.exponential(service / (agents * load), cases)
    arrivals = np.cumsum(gaps)
    urgent = rng.random(cases) < 0.3
    durations = rng.exponential(service, cases)
    free = [(0.0, a) for a in range(agents)]
    waiting: list[tuple[int, float, int]] = []
    rows, i = [], 0
    t = 0.0
    while i < cases or waiting:
        at, agent = heapq.heappop(free)
        t = max(at, t)
        while i < cases and arrivals[i] <= t:
            heapq.heappush(waiting, (0 if urgent_first and urgent[i] else 1, arrivals[i], i))
            i += 1
        if not waiting:  # idle until the next arrival
            t = arrivals[i]
            heapq.heappush(free, (t, agent))
            continue
        _, _, c = heapq.heappop(waiting)
        end = t + durations[c]
        heapq.heappush(free, (end, agent))
        rows.append((c, "Work", t, end, f"agent-{agent}"))
    for c in range(cases):
        rows.append((c, "Register", arrivals[c], arrivals[c], "system"))
    frame = pd.DataFrame(rows, columns=["case", "activity", "s", "e", "resource"])
    hours = lambda col: [START + timedelta(hours=float(h)) for h in frame[col]]
    return pd.DataFrame({
        "case:concept:name": [f"C{c:05d}" for c in frame["case"]],
        "concept:name": frame["activity"],
        "start_timestamp": pd.to_datetime(hours("s"), utc=True),
        "time:timestamp": pd.to_datetime(hours("e"), utc=True),
        "org:resource": frame["resource"],
        "case:urgency": ["urgent" if urgent[c] else "normal" for c in frame["case"]],
        "case:channel": ["phone" if c % 2 else "email" for c in frame["case"]],
    }).sort_values(["time:timestamp", "case:concept:name"], ignore_index=True)  # fmt: skip


def test_urgent_first_is_learned_and_the_twin_serves_urgent_cases_first():
    log = queue_log(urgent_first=True)
    twin = fit_twin(log)
    q = twin.queue_priority
    assert q is not None and q.attribute == "urgency" and q.value == "urgent"
    assert q.overtakes > 0.5 and q.overtaken < 0.2, q
    # the simulated waits differ by class as the log's do
    ends = log.groupby("case:concept:name")["time:timestamp"].max()
    starts = log.groupby("case:concept:name")["start_timestamp"].min()
    cycle = (ends - starts).dt.total_seconds() / 3600
    urgency = log.groupby("case:concept:name")["case:urgency"].first()
    assert cycle[urgency == "urgent"].mean() < 0.5 * cycle[urgency == "normal"].mean()


def test_first_come_first_served_is_not_read_as_a_priority():
    twin = fit_twin(queue_log(urgent_first=False))
    assert twin.queue_priority is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_learned_discipline_backtests_better_than_first_come_first_served(seed, monkeypatch):
    """An overloaded queue serving urgent cases first, its log cut while it is full: the
    forecast of the cases started after the backtest's cut errs less with the learned
    discipline (and the backlog's own urgency) than with first come, first served."""
    log = queue_log(urgent_first=True, cases=2500, load=1.15, seed=seed)
    log = log[log["time:timestamp"] <= log["start_timestamp"].quantile(0.9)]
    learned = backtest_twin(log)
    twin = fit_twin(log)
    assert twin.queue_priority is not None
    waiting = [oc.attributes.get("urgency") for oc in twin.open_cases]
    assert waiting and waiting.count("normal") > 0.7 * len(waiting)  # urgent cases went first
    monkeypatch.setattr(fit_module, "discover_queue_priority", lambda *a, **k: None)
    fifo = backtest_twin(log)
    assert abs(learned.error_pct) < abs(fifo.error_pct), (learned.error_pct, fifo.error_pct)


def test_twin_fit_says_which_cases_queues_serve_first(tmp_path, capsys):
    path = tmp_path / "queue.csv"
    queue_log(urgent_first=True).to_csv(path, index=False)
    code = cli.main(["twin", "fit", str(path), "--out", str(tmp_path / "twin.json")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "queues serve urgency == 'urgent' first" in text
    path.write_text(queue_log(urgent_first=False).to_csv(index=False))
    assert cli.main(["twin", "fit", str(path), "--out", str(tmp_path / "fifo.json")]) == 0
    assert "queues: first come, first served" in capsys.readouterr().out


def escalating_log(cases: int = 1200, seed: int = 4) -> pd.DataFrame:
    """Triage by one of three agents under load; 30 % of tickets the same agent escalates at
    once (no queue), the rest wait for Resolve in the same queue."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.2, cases))
    free = [(0.0, a) for a in range(3)]
    waiting: list[tuple[float, int, str]] = []  # (ready, case, activity)
    rows, i, t = [], 0, 0.0
    while i < cases or waiting:
        at, agent = heapq.heappop(free)
        t = max(at, t)
        while i < cases and arrivals[i] <= t:
            heapq.heappush(waiting, (arrivals[i], i, "Triage"))
            i += 1
        if not waiting:
            t = arrivals[i]
            heapq.heappush(free, (t, agent))
            continue
        _, c, act = heapq.heappop(waiting)
        end = t + rng.exponential(0.25)
        rows.append((c, act, t, end, f"agent-{agent}"))
        if act == "Triage" and rng.random() < 0.3:
            rows.append((c, "Escalate", end, end + 0.05, f"agent-{agent}"))
            end += 0.05
        elif act == "Triage":
            heapq.heappush(waiting, (end, c, "Resolve"))
        heapq.heappush(free, (end, agent))
    frame = pd.DataFrame(rows, columns=["case", "activity", "s", "e", "resource"])
    return pd.DataFrame({
        "case:concept:name": [f"C{c:05d}" for c in frame["case"]],
        "concept:name": frame["activity"],
        "start_timestamp": [START + timedelta(hours=float(h)) for h in frame["s"]],
        "time:timestamp": [START + timedelta(hours=float(h)) for h in frame["e"]],
        "org:resource": frame["resource"],
    }).sort_values(["time:timestamp", "case:concept:name"], ignore_index=True)  # fmt: skip


def test_a_step_the_same_person_does_at_once_is_carried_on_not_queued():
    log = escalating_log()
    twin = fit_twin(log)
    assert twin.carry_on_pairs == [("Triage", "Escalate")]
    sim = simulate_log(twin, 1500, START)
    sim = sim.sort_values(["case_id", "start_time"])
    nxt = sim.groupby("case_id").shift(-1)
    escalated = nxt["activity"] == "Escalate"
    assert escalated.sum() > 200
    assert (nxt.loc[escalated, "start_time"] == sim.loc[escalated, "end_time"]).all()
    assert (nxt.loc[escalated, "resource"] == sim.loc[escalated, "resource"]).all()
    # without it the escalation queues behind the Resolve work like any other step
    plain = simulate_log(twin.model_copy(update={"carry_on_pairs": []}), 1500, START)
    plain = plain.sort_values(["case_id", "start_time"])
    later = plain.groupby("case_id").shift(-1)
    queued = later["activity"] == "Escalate"
    assert (later.loc[queued, "start_time"] > plain.loc[queued, "end_time"]).mean() > 0.3
