"""Discovery: the directly-follows graph and Petri nets, checked against facts from the logs."""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd
import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest import load_event_log, to_canonical
from closedloop.tools.mining import discovery
from closedloop.tools.mining.discovery import (
    DiscoveredModel,
    discover_dfg,
    discover_petri_net,
    filter_dfg,
    petri_net,
    process_tree,
)


@pytest.fixture(scope="module")
def running() -> pd.DataFrame:
    return load_event_log(
        Path(__file__).resolve().parents[1] / "closedloop/data/running-example.xes"
    )


def synthetic_frame(path: Path) -> pd.DataFrame:
    """A synthetic log (traces without timestamps, one shared case name) as a canonical frame."""
    import pm4py

    log = pm4py.read_xes(str(path), return_legacy_log_object=True)
    base = pd.Timestamp("2020-01-01", tz="UTC")
    rows = [
        {
            "case_id": f"c{i:05d}",
            "activity": event["concept:name"],
            "timestamp": base + pd.Timedelta(minutes=j),
        }
        for i, trace in enumerate(log)
        for j, event in enumerate(trace)
    ]
    return to_canonical(pd.DataFrame(rows), source=str(path))


def fitness_and_precision(frame: pd.DataFrame, model: DiscoveredModel) -> tuple[float, float]:
    import pm4py

    net, im, fm = petri_net(model)
    log = frame[["case:concept:name", "concept:name", "time:timestamp"]]
    fitness = pm4py.fitness_token_based_replay(log, net, im, fm)["log_fitness"]
    return fitness, pm4py.precision_token_based_replay(log, net, im, fm)


def test_tools_are_read_tools() -> None:
    assert discover_dfg.tool_kind is ToolKind.READ
    assert discover_petri_net.tool_kind is ToolKind.READ


def test_dfg_counts_and_times_match_the_log(running: pd.DataFrame) -> None:
    dfg = discover_dfg(running)
    assert dfg.cases == 6 and dfg.has_start_times is False
    assert dfg.start_activities == {"register request": 6}
    assert sum(dfg.end_activities.values()) == 6
    assert sum(e.count for e in dfg.edges) == len(running) - 6
    # independent computation of one edge: check ticket -> decide
    gaps = []
    for _, case in running.groupby("case:concept:name"):
        acts, ends = list(case["concept:name"]), list(case["time:timestamp"])
        gaps += [
            (ends[i + 1] - ends[i]).total_seconds() / 3600
            for i in range(len(acts) - 1)
            if (acts[i], acts[i + 1]) == ("check ticket", "decide")
        ]
    edge = next(e for e in dfg.edges if (e.source, e.target) == ("check ticket", "decide"))
    assert edge.count == len(gaps) == 6
    assert edge.mean_hours == pytest.approx(statistics.mean(gaps), abs=1e-3)
    assert edge.median_hours == pytest.approx(statistics.median(gaps), abs=1e-3)
    assert [e.count for e in dfg.edges] == sorted((e.count for e in dfg.edges), reverse=True)
    assert {a.name for a in dfg.activities} == set(running["concept:name"])


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"variant": "imd"},
        {"variant": "imf"},
        {"noise_threshold": 0.0},
        {"algorithm": "heuristics"},
        {"algorithm": "heuristics", "dependency_threshold": 0.9},
    ],
)
def test_every_algorithm_yields_a_net_over_the_log_activities(
    running: pd.DataFrame, settings: dict
) -> None:
    model = discover_petri_net(running, **settings)
    assert model.activities == sorted(set(running["concept:name"]))
    net, im, fm = petri_net(model)
    assert len(net.transitions) == model.transitions and len(im) == 1 and len(fm) == 1
    assert (process_tree(model) is not None) == (model.algorithm == "inductive")
    assert model.variant in ("imd", "imf", "heuristics")
    # the serialised model carries the net: rebuilt from JSON it gives the same net back
    again = DiscoveredModel.model_validate_json(model.model_dump_json())
    net2, im2, fm2 = petri_net(again)
    assert sorted(str(t.label) for t in net2.transitions) == sorted(
        str(t.label) for t in net.transitions
    )
    assert len(net2.places) == len(net.places) and len(im2) == len(fm2) == 1


def test_auto_mines_small_logs_log_based_and_large_logs_on_the_graph(
    running: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert discover_petri_net(running, noise_threshold=0.2).variant == "imf"
    monkeypatch.setattr(discovery, "IMF_BUDGET_EVENTS", 10)
    large = discover_petri_net(running)  # too large to select: imd at the default threshold
    assert large.variant == "imd" and large.parameters["noise_threshold"] == 0.2
    assert not large.selection
    assert discover_petri_net(running, variant="imf").variant == "imf"


def test_without_noise_filter_every_case_fits(running: pd.DataFrame) -> None:
    fitness, _ = fitness_and_precision(running, discover_petri_net(running, noise_threshold=0.0))
    assert fitness == pytest.approx(1.0)


def test_helpdesk_filtered_graph_stays_connected(bundled_data: Path) -> None:
    # regression: filtering once cut activities off and pm4py's IMd crashed on it
    frame = load_event_log(bundled_data / "helpdesk.xes.gz")
    for settings in ({"variant": "imd", "noise_threshold": 0.2}, {}):
        model = discover_petri_net(frame, **settings)
        assert set(model.activities) == set(frame["concept:name"])


def test_filter_dfg_drops_rare_edges_but_keeps_every_activity_reachable() -> None:
    edges = {("a", "b"): 100, ("a", "c"): 3, ("b", "d"): 100, ("c", "d"): 3, ("b", "c"): 1}
    kept, starts, ends = filter_dfg(edges, {"a": 100, "c": 2}, {"d": 103}, 0.2)
    assert ("b", "d") in kept and ("b", "c") not in kept
    assert starts == {"a": 100} and ends == {"d": 103}
    # c lost every incoming edge; the strongest one that reaches it again is put back
    assert ("a", "c") in kept and ("c", "d") in kept


@pytest.mark.parametrize(
    "bad",
    [
        {"noise_threshold": -0.1},
        {"noise_threshold": 1.5},
        {"algorithm": "alpha"},
        {"variant": "im"},
    ],
)
def test_invalid_settings_are_refused(running: pd.DataFrame, bad: dict) -> None:
    with pytest.raises(ToolError):
        discover_petri_net(running, **bad)


def test_noise_free_synthetic_log_is_rediscovered(shared_data: Path) -> None:
    frame = synthetic_frame(shared_data / "synthetic/a12/a12f0n00.xes.gz")
    fitness, precision = fitness_and_precision(frame, discover_petri_net(frame))
    assert fitness >= 0.99
    assert 2 * fitness * precision / (fitness + precision) >= 0.9


@pytest.mark.parametrize("variant", ["imd", "imf"])
def test_noise_filter_beats_plain_inductive_miner_on_noisy_log(
    shared_data: Path, variant: str
) -> None:
    frame = synthetic_frame(shared_data / "synthetic/a12/a12f0n20.xes.gz")
    _, filtered = fitness_and_precision(frame, discover_petri_net(frame, variant=variant))
    _, unfiltered = fitness_and_precision(
        frame, discover_petri_net(frame, variant=variant, noise_threshold=0.0)
    )
    assert filtered >= 0.9 > unfiltered


def test_old_import_paths_still_work() -> None:
    """closedloop.tools.discovery / conformance / language re-export the mining room's names."""
    from closedloop.tools import conformance as old_conformance
    from closedloop.tools import language as old_language
    from closedloop.tools import mining
    from closedloop.tools.discovery import discover_petri_net as old_discover
    from closedloop.tools.discovery import petri_net as old_petri_net

    assert old_discover is mining.discover_petri_net is discover_petri_net
    assert old_petri_net is mining.petri_net is petri_net
    for shim in (old_conformance, old_language):
        assert shim.__all__ and all(getattr(shim, n) is getattr(mining, n) for n in shim.__all__)


def test_noise_free_log_is_mined_without_filter_and_says_so(shared_data: Path) -> None:
    """a22 without noise has no rare start or end activity: plain IM (0.98 against the truth)."""
    frame = synthetic_frame(shared_data / "synthetic/a22/a22f0n00.xes.gz")
    model = discover_petri_net(frame)
    assert (model.variant, model.parameters["noise_threshold"]) == ("imf", 0.0)
    assert [(c.variant, c.noise_threshold) for c in model.selection] == [("imf", 0.0)]
    assert model.selection[0].fitness == pytest.approx(1.0)
    assert any("without noise filter" in note for note in model.notes)


def test_rare_start_or_end_activities_count_as_noise() -> None:
    from pm4py.objects.dfg.obj import DFG

    clean = DFG({("a", "b"): 100}, {"a": 100}, {"b": 100})
    assert discovery._looks_noise_free(clean)
    noisy = DFG({("a", "b"): 199, ("b", "a"): 1}, {"a": 199, "b": 1}, {"b": 200})
    assert not discovery._looks_noise_free(noisy)  # one case of 200 starts with b: below 1 %
    late = DFG({("a", "b"): 200}, {"a": 200}, {"b": 199, "a": 1})
    assert not discovery._looks_noise_free(late)


def test_noisy_log_still_runs_the_whole_grid(shared_data: Path) -> None:
    frame = synthetic_frame(shared_data / "synthetic/a12/a12f0n05.xes.gz")
    model = discover_petri_net(frame)
    assert [(c.variant, c.noise_threshold) for c in model.selection] == list(
        discovery.SELECTION_GRID
    )
    assert model.parameters["noise_threshold"] > 0
