"""pm4py without its package start-up: a small log is mined with only the pm4py modules it
needs, the answers are the ones full pm4py gives, and pm4py still works afterwards.

Each probe runs in a fresh interpreter (pytest itself may have imported pm4py already).
Times are measured in benchmarks/bench_small_logs.py, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "closedloop" / "data"
HEAVY = ("pm4py.read", "pm4py.vis", "matplotlib", "scipy", "sklearn", "graphviz")

MINE = """
import json, sys
from closedloop.tools.log import load_event_log
from closedloop.tools.log.pm4pylazy import is_fully_imported
from closedloop.tools.mining import diagnose
from closedloop.tools.mining.discovery import discover_from_frame
frame = load_event_log(sys.argv[1])
if sys.argv[2] == "full":
    import pm4py
    pm4py.read_xes  # runs pm4py's own __init__ first
report = diagnose(frame)
model = discover_from_frame(frame)
print(json.dumps({
    "full": is_fully_imported(),
    "heavy": sorted(m for m in HEAVY if m in sys.modules),
    "fitness": report.model.fitness,
    "precision": report.model.precision,
    "net": [model.places, model.transitions, model.silent_transitions, model.arcs],
    "activities": model.activities,
    "tree": model.process_tree,
}))
""".replace("HEAVY", repr(HEAVY))

AFTER = """
import json, sys
from closedloop.tools.log import load_event_log
from closedloop.tools.mining.discovery import discover_from_frame
from closedloop.tools.mining.miners import imf_model
frame = load_event_log(sys.argv[1])
ours = imf_model(frame, 0.2).process_tree
import pm4py  # the lazily registered package: its first function runs pm4py's __init__
log = pm4py.read_xes(sys.argv[1])
tree = pm4py.discover_process_tree_inductive(frame, noise_threshold=0.2, multi_processing=False)
net, im, fm = pm4py.convert_to_petri_net(tree)
# eager sub-imports pm4py's package __init__ files promise are there
utils = pm4py.objects.petri_net.utils.petri_utils
print(json.dumps({
    "same_tree": str(tree) == str(ours),
    "fitness": pm4py.fitness_token_based_replay(frame, net, im, fm)["log_fitness"],
    "events": len(log),
    "version": pm4py.__version__,
    "has_utils": callable(utils.add_arc_from_to),
}))
"""


def _run(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PM4PY_SHOW_PROGRESS_BAR": "False", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_small_log_is_mined_without_pm4py_start_up_and_with_the_same_answers() -> None:
    for log in ("running-example.xes", "03_repairExample.xes.gz"):
        lazy = _run(MINE, str(DATA / log), "lazy")
        full = _run(MINE, str(DATA / log), "full")
        # the repair log's 1,104 cases are enough for root causes: scikit-learn, scipy
        allowed = {"scipy", "sklearn"} if log.startswith("03_") else set()
        assert lazy["full"] is False and set(lazy["heavy"]) <= allowed, log
        assert full["full"] is True and "pm4py.read" in full["heavy"]
        for key in ("fitness", "precision", "net", "activities", "tree"):
            assert lazy[key] == full[key], (log, key)


def test_pm4py_works_as_usual_after_the_lazy_start() -> None:
    result = _run(AFTER, str(DATA / "03_repairExample.xes.gz"))
    assert result["same_tree"] is True  # our IMf call is pm4py's discover_process_tree_inductive
    assert 0.9 < result["fitness"] <= 1.0
    assert result["version"] and result["events"] == 11855  # read_xes read every event
    assert result["has_utils"] is True
