"""What-if predictions of the twin against a known truth simulated by Prosimos.

The truth is a process model, not a log: the Simod-discovered Prosimos model of
BPIC 2012 W shipped in ``../shared/data/simulation`` (``BPIC_2012_W.bpmn`` +
``.json``). For each seed:

1. Prosimos simulates the as-is model for ``--cases`` cases -> log L0;
2. Prosimos simulates each intervention, made by editing a copy of the model,
   from the same seed: (capacity, bottleneck) one more person like the one who
   does most of the activity with the largest total waiting in L0 (the true
   bottleneck); (capacity, elsewhere) one more person like the one whose
   activities wait least; (skip) an activity removed from the BPMN (its
   incoming flow rerouted to its successor); (routing) a gateway's branching
   probability changed. The truth is the change's expectation: the as-is and
   the changed model run from the same ``--truth-runs`` seeds (shared by every
   seed), the relative change of their mean cycle times as the log shows it
   (first start to last end per case; the twin sees no enablement times; the
   first 10 % of cases left out as the twin leaves out its warm-up), with its
   standard error. The change simulated once from the seed that made L0 (a
   single run, which carries Prosimos's own noise) is reported beside it;
3. the twin is fitted on L0 alone (``fit_twin``, default pooling: shared pools
   from who does what) and ``predict`` gives each scenario's effect with
   p10 / p90 and the 95 % interval (simulation noise + a bootstrap over cases).
   Prosimos people map to the twin's pools through ``pool_of_resources``.

Prosimos 2.x pins pandas < 3 (the project runs on pandas 3), so it runs in its
own interpreter, found as: ``--prosimos-python``, else ``$PROSIMOS_PYTHON``,
else this interpreter if it imports prosimos:

    python -m venv /tmp/prosimos-venv && /tmp/prosimos-venv/bin/pip install prosimos
    PROSIMOS_PYTHON=/tmp/prosimos-venv/bin/python \\
        .venv/bin/python benchmarks/bench_prosimos_truth.py --seeds 1 2 3 4 5 --write

The same file is the Prosimos worker (``--simulate``), which imports only
prosimos and the standard library.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "simulation"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"b": BPMN_NS}
NOISE_SEED = 100_000  # the as-is model again from seed + this: the truth's own noise floor
TRUTH_SEED = 200_000  # the expected truth's runs use seeds from here, shared by every seed
WARMUP_SHARE = 0.10  # as the twin's simulate leaves out its first 10 % of cases
START = "2012-01-02T09:00:00.000+00:00"  # a Monday morning
SKIP_ACTIVITY = "W_Valideren aanvraag"
ROUTE_FROM, ROUTE_TO, ROUTE_P = "W_Completeren aanvraag", "W_Nabellen offertes", 0.5


# ---- Prosimos side (runs in the Prosimos interpreter) ---------------------------------------


def simulate_worker(bpmn: str, model: str, cases: int, seed: int, out: str) -> None:
    """Run Prosimos once with global RNGs seeded (it takes no seed argument)."""
    import random

    import numpy as np
    from prosimos.simulation_engine import run_simulation

    random.seed(seed)
    np.random.seed(seed)
    stats = str(Path(out).with_suffix(".stats.csv"))
    run_simulation(bpmn, model, cases, stats, out, START)


def find_prosimos_python(explicit: str | None = None) -> str | None:
    """The interpreter that runs Prosimos, or None when there is none."""
    for candidate in (explicit, os.environ.get("PROSIMOS_PYTHON")):
        if candidate:
            return candidate if Path(candidate).exists() else None
    return sys.executable if importlib.util.find_spec("prosimos") else None


def run_prosimos(python: str, bpmn: Path, model: dict, cases: int, seed: int, tmp: Path,
                 tag: str) -> Path:  # fmt: skip
    """Simulate ``model`` (a Prosimos JSON dict) on ``bpmn``; the path of the CSV log."""
    model_path, out = tmp / f"{tag}-{seed}.json", tmp / f"{tag}-{seed}.csv"
    model_path.write_text(json.dumps(model), encoding="utf-8")
    cmd = [python, str(Path(__file__).resolve()), "--simulate", str(bpmn), str(model_path),
           str(cases), str(seed), str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"Prosimos failed on {tag} seed {seed}: {done.stderr[-2000:]}")
    return out


# ---- model edits (plain JSON / BPMN XML) ----------------------------------------------------


def task_ids(bpmn: Path) -> dict[str, str]:
    """Activity name -> BPMN task id."""
    root = ET.parse(bpmn).getroot()
    return {t.get("name"): t.get("id") for t in root.iter(f"{{{BPMN_NS}}}task")}


def clone_person(model: dict, person: str) -> tuple[dict, str]:
    """The model with one more person doing what ``person`` does (same calendar, durations)."""
    out = copy.deepcopy(model)
    twin_id = f"{person}_plus1"
    for profile in model["resource_profiles"]:
        for res in profile["resource_list"]:
            if res["id"] == person:
                new = dict(copy.deepcopy(res), id=twin_id, name=twin_id)
                out["resource_profiles"].append(
                    {"id": f"{twin_id}_profile", "name": f"{twin_id}_profile",
                     "resource_list": [new]})  # fmt: skip
    if not any(p["id"] == f"{twin_id}_profile" for p in out["resource_profiles"]):
        raise ValueError(f"no person {person!r} in the Prosimos model")
    for task in out["task_resource_distribution"]:
        for res in list(task["resources"]):
            if res["resource_id"] == person:
                task["resources"].append(dict(copy.deepcopy(res), resource_id=twin_id))
    return out, twin_id


def skip_task(bpmn: Path, model: dict, activity: str, out_path: Path) -> dict:
    """Write a BPMN without ``activity`` (incoming flow rerouted to its successor).

    Returns the matching Prosimos JSON (the task's resources and durations
    removed). ValueError when the task has not exactly one flow in and one out.
    """
    tree = ET.parse(bpmn)
    root = tree.getroot()
    task_id = task_ids(bpmn)[activity]
    process = root.find("b:process", NS)
    flows = process.findall("b:sequenceFlow", NS)
    ins = [f for f in flows if f.get("targetRef") == task_id]
    outs = [f for f in flows if f.get("sourceRef") == task_id]
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(f"{activity}: {len(ins)} flows in, {len(outs)} out; cannot skip it")
    ins[0].set("targetRef", outs[0].get("targetRef"))  # keeps a gateway's path id valid
    process.remove(outs[0])
    process.remove(next(t for t in process.findall("b:task", NS) if t.get("id") == task_id))
    ET.register_namespace("", BPMN_NS)
    tree.write(out_path, xml_declaration=True, encoding="UTF-8")
    out = copy.deepcopy(model)
    out["task_resource_distribution"] = [
        t for t in out["task_resource_distribution"] if t["task_id"] != task_id
    ]
    for profile in out["resource_profiles"]:
        for res in profile["resource_list"]:
            res["assignedTasks"] = [t for t in res["assignedTasks"] if t != task_id]
    return out


def set_branch(bpmn: Path, model: dict, after: str, to: str, probability: float) -> dict:
    """The model with the gateway right after ``after`` sending ``probability`` towards ``to``.

    The gateway's other paths share the rest in their old proportions.
    """
    root = ET.parse(bpmn).getroot()
    process = root.find("b:process", NS)
    flows = {f.get("id"): f for f in process.findall("b:sequenceFlow", NS)}
    names = task_ids(bpmn)
    (first,) = [f for f in flows.values() if f.get("sourceRef") == names[after]]
    gateway = first.get("targetRef")

    def reaches(flow_id: str) -> bool:  # follows converging gateways only
        seen, node = set(), flows[flow_id].get("targetRef")
        while node not in seen:
            seen.add(node)
            if node == names[to]:
                return True
            nxt = [f for f in flows.values() if f.get("sourceRef") == node]
            if len(nxt) != 1 or node in names.values():
                return False
            node = nxt[0].get("targetRef")
        return False

    out = copy.deepcopy(model)
    (choice,) = [g for g in out["gateway_branching_probabilities"] if g["gateway_id"] == gateway]
    target = [p for p in choice["probabilities"] if reaches(p["path_id"])]
    if len(target) != 1:
        raise ValueError(f"no single path from the gateway after {after!r} to {to!r}")
    rest = sum(p["value"] for p in choice["probabilities"] if p is not target[0])
    for p in choice["probabilities"]:
        p["value"] = probability if p is target[0] else (1 - probability) * p["value"] / rest
    return out


def slowed(bpmn: Path, model: dict, activity: str, factor: float) -> dict:
    """The model with every person's duration of ``activity`` ``factor`` times as long
    (Prosimos's gamma: mean, variance, min, max; fix: value). A world whose bottleneck binds:
    as Simod discovered it, no one in this model is busy enough for staffing to matter."""
    out = copy.deepcopy(model)
    task = task_ids(bpmn)[activity]
    for dist in (r for t in out["task_resource_distribution"] if t["task_id"] == task
                 for r in t["resources"]):  # fmt: skip
        params = [p["value"] for p in dist["distribution_params"]]
        if dist["distribution_name"] == "gamma":
            scaled = [params[0] * factor, params[1] * factor**2, *(v * factor for v in params[2:])]
        elif dist["distribution_name"] == "fix":
            scaled = [params[0] * factor]
        else:
            raise ValueError(f"cannot scale a {dist['distribution_name']} duration of {activity}")
        for p, v in zip(dist["distribution_params"], scaled, strict=True):
            p["value"] = v
    return out


# ---- the truth from a Prosimos log ----------------------------------------------------------


def read_log(path: Path) -> Any:
    """A Prosimos CSV log as the canonical event frame (UTC; enablement kept)."""
    import pandas as pd

    log = pd.read_csv(path, dtype={"case_id": str, "resource": str})
    for col in ("enable_time", "start_time", "end_time"):
        log[col] = pd.to_datetime(log[col], utc=True, format="ISO8601")
    return log.rename(columns={"case_id": "case:concept:name", "activity": "concept:name",
                               "start_time": "start_timestamp", "end_time": "time:timestamp",
                               "resource": "org:resource"})  # fmt: skip


def mean_cycle_hours(log: Any) -> float:
    """Mean cycle time as the log shows it (first start to last end; the twin sees no
    enablement times) after the warm-up cases."""
    by_case = log.groupby("case:concept:name")
    arrival, end = by_case["start_timestamp"].min(), by_case["time:timestamp"].max()
    order = arrival.sort_values().index
    kept = order[int(len(order) * WARMUP_SHARE) :]
    return float(((end[kept] - arrival[kept]).dt.total_seconds() / 3600).mean())


def max_utilisation(stats: Path) -> tuple[str, float] | None:
    """The person Prosimos saw busiest in a run, with the share of their available time."""
    import csv

    best, inside = None, False
    with stats.open(encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if row[:1] == ["Resource ID"]:  # the header of the "Resource Utilization" section
                inside = True
            elif inside and len(row) < 3:  # the blank line ending it
                break
            elif inside and (best is None or float(row[2]) > best[1]):
                best = (row[0], float(row[2]))
    return best


def bottleneck(log: Any) -> tuple[Any, str, str]:
    """Waiting per activity, the activity waited on most in total and its busiest person."""
    wait = (log["start_timestamp"] - log["enable_time"]).dt.total_seconds() / 3600
    table = log.assign(wait=wait).groupby("concept:name")["wait"].agg(["size", "mean", "sum"])
    worst = str(table["sum"].idxmax())
    busiest = str(log.loc[log["concept:name"] == worst, "org:resource"].value_counts().idxmax())
    return table.sort_values("sum", ascending=False), worst, busiest


def quiet_person(log: Any, model: dict, table: Any, skip: set[str]) -> str:
    """The person whose activities wait least in total (ties: the one doing most work)."""
    people = log["org:resource"].value_counts()
    in_model = {r["id"] for p in model["resource_profiles"] for r in p["resource_list"]}
    acts = log.groupby("org:resource")["concept:name"].agg(lambda s: set(s))
    scored = sorted(
        (sum(float(table.loc[a, "sum"]) for a in acts[p]), -int(people[p]), p)
        for p in people.index if p in in_model and p not in skip
    )  # fmt: skip
    return scored[0][2]


# ---- the measurement ------------------------------------------------------------------------

CANONICAL = ["case:concept:name", "concept:name", "start_timestamp", "time:timestamp",
             "org:resource"]  # fmt: skip


def interventions(bpmn: Path, model: dict, frame: Any, tmp: Path) -> tuple[list[dict], dict]:
    """The edited models and what each means; plus what was found in L0 (bottleneck etc.)."""
    table, worst, busiest = bottleneck(frame)
    quiet = quiet_person(frame, model, table, {busiest})
    skipped_bpmn = tmp / "skip.bpmn"
    with_busiest, _ = clone_person(model, busiest)
    with_quiet, _ = clone_person(model, quiet)
    found = {"waiting": {a: {"visits": int(r["size"]), "mean_h": float(r["mean"]),
                             "total_h": float(r["sum"])} for a, r in table.iterrows()},
             "bottleneck": worst, "bottleneck_person": busiest, "quiet_person": quiet}  # fmt: skip
    return [
        {"name": "capacity_bottleneck", "bpmn": bpmn, "model": with_busiest, "person": busiest,
         "activity": worst,
         "what": f"+1 person like {busiest} (busiest on the bottleneck {worst})"},
        {"name": "capacity_elsewhere", "bpmn": bpmn, "model": with_quiet, "person": quiet,
         "what": f"+1 person like {quiet} (whose activities wait least)"},
        {"name": "skip_activity", "bpmn": skipped_bpmn,
         "model": skip_task(bpmn, model, SKIP_ACTIVITY, skipped_bpmn),
         "what": f"{SKIP_ACTIVITY} removed from the model"},
        {"name": "routing", "bpmn": bpmn,
         "model": set_branch(bpmn, model, ROUTE_FROM, ROUTE_TO, ROUTE_P),
         "what": f"P({ROUTE_FROM} -> {ROUTE_TO}) set to {ROUTE_P}"},
    ], found  # fmt: skip


def routing_scaled(items: list[dict], frame: Any, bpmn: Path, model: dict) -> dict:
    """The routing change stated in the twin's own terms: its observed direct-follow share
    scaled by new / old model probability (the parallel fraud check interleaves in the log,
    so the share the twin sees is not the model's)."""
    base = next(i for i in items if i["name"] == "routing")
    return dict(base, name="routing_scaled",
                observed_share=direct_share(frame, ROUTE_FROM, ROUTE_TO),
                model_share=model_share(bpmn, model, ROUTE_FROM, ROUTE_TO))  # fmt: skip


def scenario_for(item: dict, twin: Any) -> tuple[Any, str]:
    """The twin scenario standing for an intervention, and the pool mapping used."""
    from closedloop.tools.twin import AddCapacity, AutomateActivity, ChangeRouting

    if item["name"].startswith("capacity"):
        pool = twin.pool_of_resources([item["person"]])
        if pool is None:
            raise RuntimeError(f"the twin has no pool holding {item['person']}")
        # Named by an activity whose main pool it is: bootstrap refits discover their own
        # pools, and a pool's name from this twin need not exist in a refit.
        mains = [a for a in twin.pools[pool].activities if twin.pool_of(a) == pool]
        main = item.get("activity") if item.get("activity") in mains else (mains or [pool])[0]
        return AddCapacity(activity_or_pool=main, extra=1), (
            f"twin pool {pool!r} x{twin.pools[pool].capacity}, named by {main!r}"
        )
    if item["name"] == "skip_activity":
        return AutomateActivity(activity=SKIP_ACTIVITY, automated_duration_hours=0.0,
                                failure_rate=0.0), ""  # fmt: skip
    if item["name"] == "routing":
        return ChangeRouting(from_activity=ROUTE_FROM, to_activity=ROUTE_TO,
                             probability=ROUTE_P), ""  # fmt: skip
    share = item["observed_share"] * ROUTE_P / item["model_share"]
    return ChangeRouting(from_activity=ROUTE_FROM, to_activity=ROUTE_TO, probability=share), (
        f"twin's P({ROUTE_FROM} -> {ROUTE_TO}) {item['observed_share']:.3f} -> {share:.3f}"
    )


def direct_share(frame: Any, after: str, to: str) -> float:
    """How often ``to`` directly follows ``after`` in the log's time order (as the twin reads it)."""
    log = frame.sort_values(["case:concept:name", "start_timestamp", "time:timestamp"])
    nxt = log.groupby("case:concept:name")["concept:name"].shift(-1)
    return float((nxt[log["concept:name"] == after] == to).mean())


def model_share(bpmn: Path, model: dict, after: str, to: str) -> float:
    """The model's branching probability from ``after`` towards ``to``."""
    edited = set_branch(bpmn, model, after, to, 0.123456)
    for old, new in zip(model["gateway_branching_probabilities"],
                        edited["gateway_branching_probabilities"], strict=True):  # fmt: skip
        for a, b in zip(old["probabilities"], new["probabilities"], strict=True):
            if b["value"] == 0.123456:
                return float(a["value"])
    raise ValueError(f"no branch from {after!r} to {to!r}")


def expected_truth(python: str, item: dict, model: dict, bpmn: Path, cases: int, runs: int,
                   tmp: Path, cache: dict) -> dict:  # fmt: skip
    """The change's expected effect: Prosimos runs the as-is and the changed model from the
    same ``runs`` seeds; the relative change of the mean cycle times, with its standard error
    from the paired differences. A single run's truth carries Prosimos's own noise (sd 2-4
    points on this model), which no prediction of the change can know; this is the effect a
    prediction can be judged on. ``cache`` keeps the as-is runs and each distinct change."""
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    key = (item["name"].replace("routing_scaled", "routing"), item.get("person"))
    if key in cache:
        return cache[key]
    seeds = [TRUTH_SEED + k for k in range(runs)]

    def hours(which: str, bpmn_path: Path, m: dict, s: int) -> float:
        return mean_cycle_hours(read_log(run_prosimos(python, bpmn_path, m, cases, s, tmp, which)))

    with ThreadPoolExecutor(max_workers=2) as pool:  # Prosimos runs single-threaded
        if "as-is" not in cache:
            cache["as-is"] = list(pool.map(lambda s: hours("truth-as-is", bpmn, model, s), seeds))
        changed = list(pool.map(lambda s: hours(f"truth-{key[0]}", item["bpmn"], item["model"],
                                                s), seeds))  # fmt: skip
    base = cache["as-is"]
    diffs = [c - b for c, b in zip(changed, base, strict=True)]
    mean_base = statistics.mean(base)
    delta = statistics.mean(diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
    cache[key] = {"pct": 100 * delta / mean_base, "se_pct": 100 * se / mean_base,
                  "delta_hours": delta, "hours": statistics.mean(changed),
                  "as_is_hours": mean_base, "runs": len(diffs)}  # fmt: skip
    return cache[key]


def measure_seed(python: str, seed: int, cases: int, bootstrap: int, replications: int,
                 only: set[str] | None, tmp: Path, truth_runs: int,
                 expected: dict, model: dict) -> dict:  # fmt: skip
    """Truth and prediction of every intervention for one seed of ``model`` (``expected``
    caches the expected truths across seeds)."""
    from closedloop.tools.twin import fit_twin, predict
    from closedloop.tools.twin.uncertainty import bootstrap_twins

    bpmn = DATA / "BPIC_2012_W.bpmn"
    t = time.perf_counter()
    l0 = run_prosimos(python, bpmn, model, cases, seed, tmp, "as-is")
    frame = read_log(l0)
    busiest_util = max_utilisation(l0.with_suffix(".stats.csv"))
    as_is = mean_cycle_hours(frame)
    other = mean_cycle_hours(read_log(run_prosimos(python, bpmn, model, cases, seed + NOISE_SEED,
                                                   tmp, "as-is-other")))  # fmt: skip
    items, found = interventions(bpmn, model, frame, tmp)
    items.append(routing_scaled(items, frame, bpmn, model))
    items = [i for i in items if only is None or i["name"] in only]
    truth: dict[str, tuple[float, float, float]] = {}
    for item in items:
        if item["name"] == "routing_scaled" and "routing" in truth:  # same model change
            item["true_hours"], item["true_pct"], item["true_delta_hours"] = truth["routing"]
            continue
        log = read_log(run_prosimos(python, item["bpmn"], item["model"], cases, seed, tmp,
                                    item["name"]))  # fmt: skip
        item["true_hours"] = mean_cycle_hours(log)
        item["true_pct"] = 100 * (item["true_hours"] - as_is) / as_is
        item["true_delta_hours"] = item["true_hours"] - as_is
        truth[item["name"]] = (item["true_hours"], item["true_pct"], item["true_delta_hours"])
    for item in items:
        item["expected"] = expected_truth(python, item, model, bpmn, cases, truth_runs, tmp,
                                          expected)  # fmt: skip
    prosimos_s = time.perf_counter() - t

    t, cpu = time.perf_counter(), time.process_time()
    twin = fit_twin(frame[CANONICAL], seed=seed)
    refits = bootstrap_twins(frame[CANONICAL], twin, bootstrap, seed) if bootstrap else None
    fit_s = time.perf_counter() - t
    pools = {name: {"capacity": p.capacity, "members": sorted(p.resource_names),
                    "utilisation": p.utilisation,
                    "activities": sorted(p.activities)}
             for name, p in twin.pools.items()}  # fmt: skip
    rows = []
    for item in items:
        scenario, pool = scenario_for(item, twin)
        # refits discover their own pools: predict() names the scenario's pool in each by
        # the people it holds, and says how many it renamed or left out
        p = predict(twin, scenario, refits=refits or None, bootstrap=0, cases=cases,
                    replications=replications, seed=seed)  # fmt: skip
        counts = {kind: int(m.group(1)) for n in p.notes
                  for kind, pattern in (("renamed", r"(\d+) of \d+ bootstrap refits grouped"),
                                        ("left_out", r"(\d+) of \d+ bootstrap refits left out"))
                  if (m := re.match(pattern, n))}  # fmt: skip
        q, e = p.delta_pct, item["expected"]
        true = e["pct"]
        rows.append({
            "seed": seed, "intervention": item["name"], "what": item["what"],
            "mapping": pool, "true_pct": true, "true_se_pct": e["se_pct"],
            "truth_runs": e["runs"], "true_hours": e["hours"],
            "seed_true_pct": item["true_pct"],
            "covered95_seed": q.low95 <= item["true_pct"] <= q.high95,
            "as_is_hours": as_is, "twin_as_is_hours": p.result.as_is.cycle_time_mean_hours.mean,
            "pred_pct": q.mean, "p10": q.p10, "p90": q.p90, "low95": q.low95, "high95": q.high95,
            "covered95": q.low95 <= true <= q.high95, "covered80": q.p10 <= true <= q.p90,
            "rel_error": abs(q.mean - true) / abs(true) if true else None,
            "true_delta_hours": e["delta_hours"],
            "pred_delta_hours": p.delta_cycle_hours.mean,
            "pred_delta_hours_95": [p.delta_cycle_hours.low95, p.delta_cycle_hours.high95],
            "spread": p.spread, "refits": len(refits or []),
            "refits_used": len(refits or []) - counts.get("left_out", 0),
            "refits_renamed": counts.get("renamed", 0),
        })  # fmt: skip
    return {"seed": seed, "found": found, "pools": pools, "rows": rows,
            "observed_hours": twin.observed.mean_cycle_time_hours,
            "noise_pct": 100 * (other - as_is) / as_is, "prosimos_max_utilisation": busiest_util,
            "prosimos_s": prosimos_s, "twin_s": time.perf_counter() - t,
            "twin_cpu_s": time.process_time() - cpu, "fit_s": fit_s}  # fmt: skip


def within_error(row: dict) -> bool:
    """The truth inside the 95 % interval widened by the truth's own 95 % error (1.96
    standard errors of its Prosimos runs): a prediction that stays within what the truth's
    measurement can tell apart."""
    margin = 1.96 * row["true_se_pct"]
    return row["low95"] - margin <= row["true_pct"] <= row["high95"] + margin


def summarise(seeds: list[dict]) -> dict:
    """Per intervention: truth mean and sd over seeds, coverage, errors."""
    import statistics

    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["intervention"] for s in seeds for r in s["rows"]):
        rows = [r for s in seeds for r in s["rows"] if r["intervention"] == name]
        truths = [r["true_pct"] for r in rows]
        truth_mean = statistics.mean(truths)
        singles = [r["seed_true_pct"] for r in rows]
        out[name] = {
            "runs": len(rows),
            "true_mean_pct": truth_mean,
            "true_se_pct": statistics.mean(r["true_se_pct"] for r in rows),
            "seed_true_mean_pct": statistics.mean(singles),
            "seed_true_sd_pct": statistics.stdev(singles) if len(singles) > 1 else 0.0,
            "pred_mean_pct": statistics.mean(r["pred_pct"] for r in rows),
            "covered95": sum(r["covered95"] for r in rows),
            "covered80": sum(r["covered80"] for r in rows),
            "covered95_seed": sum(r["covered95_seed"] for r in rows),
            "covered95_within_error": sum(within_error(r) for r in rows),
            "mean_abs_error_pts": statistics.mean(abs(r["pred_pct"] - r["true_pct"]) for r in rows),
            "rel_error_of_mean": abs(statistics.mean(r["pred_pct"] for r in rows) - truth_mean)
            / abs(truth_mean) if truth_mean else None,
        }  # fmt: skip
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--simulate":
        bpmn, model, cases, seed, out = sys.argv[2:7]
        simulate_worker(bpmn, model, int(cases), int(seed), out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--bootstrap", type=int, default=5)
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--truth-runs", type=int, default=20,
                        help="Prosimos runs per arm behind each expected truth")  # fmt: skip
    parser.add_argument("--only", nargs="*", help="interventions to run (default: all)")
    parser.add_argument("--slow", metavar="ACTIVITY=FACTOR",
                        help="the world with that activity's durations FACTOR times as long "
                             "(results in prosimos_truth_slow.*)")  # fmt: skip
    parser.add_argument("--prosimos-python", help="interpreter with prosimos installed")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/")
    parser.add_argument("--from-json", type=Path, help="only re-render the page from a result")
    args = parser.parse_args()
    if args.from_json:
        write(json.loads(args.from_json.read_text(encoding="utf-8")))
        return
    python = find_prosimos_python(args.prosimos_python)
    if python is None:
        sys.exit("no Prosimos: install it (see this file's docstring) and set PROSIMOS_PYTHON")
    if not (DATA / "BPIC_2012_W.json").exists():
        sys.exit(f"no Prosimos model at {DATA} (../shared/data is needed)")
    model = json.loads((DATA / "BPIC_2012_W.json").read_text(encoding="utf-8"))
    if args.slow:
        activity, _, factor = args.slow.rpartition("=")
        model = slowed(DATA / "BPIC_2012_W.bpmn", model, activity, float(factor))
    began, cpu = time.perf_counter(), time.process_time()
    seeds: list[dict] = []
    expected: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            res = measure_seed(python, seed, args.cases, args.bootstrap, args.replications,
                               set(args.only) if args.only else None, Path(tmp),
                               args.truth_runs, expected, model)  # fmt: skip
            seeds.append(res)
            for r in res["rows"]:
                print(line(r), flush=True)
            result = {"args": {**vars(args), "seeds": [s["seed"] for s in seeds]},
                      "seeds": seeds, "summary": summarise(seeds),
                      "seconds": time.perf_counter() - began,
                      "cpu_seconds_main": time.process_time() - cpu}  # fmt: skip
            if args.write:  # after every seed, so that a long run keeps what it measured
                write(result)
    print(json.dumps(result["summary"], indent=1))


def line(r: dict) -> str:
    """One run as a text line."""
    mapping = r.get("mapping", r.get("twin_pool"))
    if r.get("refits_renamed"):
        mapping = (f"{mapping}; {r['refits_renamed']} of {r['refits']} refits hold its people "
                   "in a pool of another name")  # fmt: skip
    if r.get("refits_used", 0) < r.get("refits", 0):
        mapping = f"{mapping}; {r['refits_used']} of {r['refits']} refits usable"
    pool = f" ({mapping})" if mapping else ""
    spread = ", ".join(f"{k} {v:.1f}" for k, v in r.get("spread", {}).items())
    hours = (f"; in hours {r['pred_delta_hours']:+.2f} vs {r['true_delta_hours']:+.2f}"
             if "true_delta_hours" in r else "")  # fmt: skip
    return (f"seed {r['seed']} {r['intervention']}{pool}: predicted {r['pred_pct']:+.1f} % "
            f"[p10 {r['p10']:+.1f}, p90 {r['p90']:+.1f}; 95 % {r['low95']:+.1f}, "
            f"{r['high95']:+.1f}] vs true {r['true_pct']:+.1f} ± {r['true_se_pct']:.1f} % "
            f"({'covered' if r['covered95'] else 'MISSED'}{hours}; the seed's own run "
            f"{r['seed_true_pct']:+.1f} %; sd per source: {spread})")  # fmt: skip


def findings(result: dict) -> list[str]:
    """The headline numbers: coverage, the truth's noise floor, the bottleneck bar."""
    import statistics

    seeds, summary = result["seeds"], result["summary"]
    rows = [r for s in seeds for r in s["rows"]]
    covered = sum(r["covered95"] for r in rows)
    single = sum(r["covered95_seed"] for r in rows)
    near = sum(within_error(r) for r in rows)
    out = [(f"- All runs: the expected truth inside the twin's 95 % interval in {covered} of "
           f"{len(rows)} ({100 * covered / len(rows):.0f} %; target >= 90 %); inside p10..p90 "
           f"in {sum(r['covered80'] for r in rows)} ({100 * sum(r['covered80'] for r in rows) / len(rows):.0f} %; target >= 80 %). "
           f"Within the truth's own error (the interval widened by 1.96 standard errors of "
           f"the truth): {near} of {len(rows)}. The seed's own single run inside the 95 % "
           f"interval: {single} of {len(rows)}.")]  # fmt: skip
    noise = [s["noise_pct"] for s in seeds if "noise_pct" in s]
    if len(noise) > 1:
        out.append(
            "- Why the truth is an expectation: the unchanged as-is model simulated from "
            f"another seed differs by {statistics.mean(noise):+.1f} ± "
            f"{statistics.stdev(noise):.1f} % (mean ± sd over {len(noise)} seeds; largest "
            f"{max(noise, key=abs):+.1f} %). A single run's change carries that noise "
            "(Prosimos's random stream drifts once the model differs), which no prediction of "
            "the change can know: the twin's paired as-is / what-if runs cancel their own, so "
            "a change that does nothing is predicted at 0 with an interval near zero width."
        )  # fmt: skip
    utils = [s["prosimos_max_utilisation"] for s in seeds if s.get("prosimos_max_utilisation")]
    if utils:
        who, top = max(utils, key=lambda u: u[1])
        out.append(
            f"- The busiest person in any as-is run ({who}) was busy {100 * top:.0f} % of "
            "their available time (Prosimos's own statistics)"
            + ("; so this model has no capacity bottleneck: its waiting comes from calendars "
               "(work arriving off shift), not from queues." if top < 0.5 else ".")
        )  # fmt: skip
    renamed = [r for r in rows if r.get("refits_renamed")]
    if renamed:
        out.append(
            f"- In {len(renamed)} of {len(rows)} runs some bootstrap refits grouped the people "
            "otherwise and had no pool of the name the scenario uses; `predict` applied the "
            "change to the refit's pool holding those people (counted in its line below)."
        )  # fmt: skip
    short = [r for r in rows if r.get("refits_used", 0) < r.get("refits", 0)]
    if short:
        out.append(
            f"- In {len(short)} of {len(rows)} runs some bootstrap refits could not carry the "
            "scenario and were left out of that run's interval (counted in its line below)."
        )  # fmt: skip
    b = summary.get("capacity_bottleneck")
    if b:
        n = b["runs"]
        floor = 2 * b["true_se_pct"]
        rel = b["rel_error_of_mean"]
        out.append(
            f"- Capacity on the true bottleneck: true {b['true_mean_pct']:+.1f} ± "
            f"{b['true_se_pct']:.1f} % (standard error), predicted {b['pred_mean_pct']:+.1f} % "
            f"(mean over {n} seeds): relative error "
            f"{'-' if rel is None else f'{100 * rel:.0f} %'} "
            "(bar: within 25 %). "
            + ("The true effect is within twice its standard error of zero, so the bar cannot "
               "be judged on this model." if abs(b["true_mean_pct"]) <= floor else "")
        )  # fmt: skip
    return out


def write(result: dict) -> None:
    """benchmarks/results/prosimos_truth.md and .json (``_slow`` for a slowed world)."""
    out = ROOT / "benchmarks" / "results"
    a, seeds = result["args"], result["seeds"]
    summary = result["summary"] = summarise(seeds)
    stem = "prosimos_truth_slow" if a.get("slow") else "prosimos_truth"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n",
                                      encoding="utf-8")  # fmt: skip
    first = seeds[0]
    world, slow_note = "BPIC 2012 W model", ""
    if a.get("slow"):
        activity, _, factor = a["slow"].rpartition("=")
        world += f", {activity} {float(factor):g} times as long: a bottleneck that binds"
        slow_note = (f", with every person's durations of {activity} {float(factor):g} times "
                     "as long (`--slow`), so that its people are busy enough for staffing to "
                     "matter")  # fmt: skip
    only = f" --only {' '.join(a['only'])}" if a.get("only") else ""
    slow = f" --slow '{a['slow']}'" if a.get("slow") else ""
    lines = [
        f"## Twin what-ifs against a known truth (Prosimos, {world})", "",
        ("Reproduce: `PROSIMOS_PYTHON=/tmp/prosimos-venv/bin/python .venv/bin/python "
        f"benchmarks/bench_prosimos_truth.py --seeds {' '.join(map(str, a['seeds']))} "
        f"--cases {a['cases']} --bootstrap {a['bootstrap']} --replications {a['replications']} "
        f"--truth-runs {a.get('truth_runs', 1)}{slow}{only} --write` (Prosimos in its own venv: `python -m venv /tmp/prosimos-venv && "
        "/tmp/prosimos-venv/bin/pip install prosimos`, since it pins pandas < 3), then "
        f"`.venv/bin/python benchmarks/assemble.py`; {result['seconds'] / 60:.1f} min wall on 2 "
        "shared cores."), "",
        (f"The truth is the Simod-discovered Prosimos model of BPIC 2012 W{slow_note}. Per "
        "seed, Prosimos "
        f"simulates {a['cases']} cases of the as-is model (log L0), and the twin is fitted on "
        f"L0 alone (default pooling); `predict` ({a['cases']} cases x {a['replications']} "
        f"replications, {a['bootstrap']} bootstrap refits) gives the predicted change with "
        "p10 / p90 and the 95 % interval. The true effect of a change is its expectation: "
        f"Prosimos runs the as-is and the changed model from the same {a.get('truth_runs', 1)} "
        "seeds (shared by every seed's row), and the truth is the relative change of their "
        "mean cycle times, with its standard error from the paired differences. Cycle time "
        "is read as the log shows it (first start to last end per case: the twin sees no "
        "enablement times; the first 10 % of cases left out as the twin leaves out its "
        "warm-up). Prosimos takes one global seed, so an edited model's random stream "
        "drifts from the as-is one: a single run's change carries noise that no prediction "
        "can know (the column \"the seed's single run\" shows it: the change simulated once "
        "from the seed that made L0, the previous sessions' truth)."), "",
        f"What L0 (seed {first['seed']}) shows: total waiting per activity "
        + ", ".join(f"{k} {v['total_h']:.0f} h ({v['mean_h']:.2f} h/visit)"
                    for k, v in first["found"]["waiting"].items())
        + f"; the true bottleneck by waiting is {first['found']['bottleneck']}, done mostly by "
        f"{first['found']['bottleneck_person']}.", "",
        "Twin pools discovered on L0 (seed "
        f"{first['seed']}): "
        + "; ".join(f"'{k}' x{v['capacity']}"
                    + (f" at {100 * v['utilisation']:.0f} %" if "utilisation" in v else "")
                    + f" ({len(v['members'])} people: "
                    f"{', '.join(v['activities'])})" for k, v in first["pools"].items()) + ".",
        "",
        ("| intervention | runs | true change (± standard error) | the seed's single run "
        "(mean ± sd over seeds) | predicted (mean) | 95 % covers the truth | 80 % covers | "
        "95 % covers the truth within its error | 95 % covers the seed's single run | "
        "mean abs error (points) |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['runs']} | {s['true_mean_pct']:+.1f} ± {s['true_se_pct']:.1f} % | "
            f"{s['seed_true_mean_pct']:+.1f} ± {s['seed_true_sd_pct']:.1f} % | "
            f"{s['pred_mean_pct']:+.1f} % | {s['covered95']}/{s['runs']} | "
            f"{s['covered80']}/{s['runs']} | {s['covered95_within_error']}/{s['runs']} | "
            f"{s['covered95_seed']}/{s['runs']} | "
            f"{s['mean_abs_error_pts']:.1f} |"
        )
    rows = [r for s in seeds for r in s["rows"]]
    lines += ["", *findings(result), ""]
    lines += [
        "",
        "Every run (what each intervention is, the twin pool it maps to):",
        "",
        "```",
    ]
    lines += [f"{r['what']}" for r in seeds[0]["rows"]]
    lines += [line(r) for r in rows]
    lines += [
        f"seed {s['seed']}: as-is mean cycle {s['rows'][0]['as_is_hours']:.2f} h "
        f"(Prosimos L0), twin fitted on it observes {s['observed_hours']:.2f} h and "
        f"simulates {s['rows'][0]['twin_as_is_hours']:.2f} h; Prosimos "
        f"{s['prosimos_s']:.0f} s wall, twin fit + bootstrap + predictions "
        f"{s['twin_s']:.0f} s wall / {s['twin_cpu_s']:.0f} CPU s"
        for s in seeds
    ]
    lines += ["```", ""]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
