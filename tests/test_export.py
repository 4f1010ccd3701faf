"""Model export: BPMN 2.0 with diagram layout and PNML, parsed back and re-imported with pm4py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from defusedxml import ElementTree

from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest import frame_from_records, load_event_log
from closedloop.tools.mining.discovery import DiscoveredModel, discover_petri_net, petri_net
from closedloop.tools.mining.export import bpmn_xml, write_models

pytestmark = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz `dot` not installed (scripts/install-system-deps.sh installs it)",
)
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
}
FLOW_NODES = (
    "task",
    "startEvent",
    "endEvent",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
)
HOSTILE = ['<script>alert("x")</script>', 'Tom\'s "quoted" & co', "</bpmn:task>]]>", "Ärger \\N"]


@pytest.fixture(scope="module")
def running() -> pd.DataFrame:
    return load_event_log(
        Path(__file__).resolve().parents[1] / "closedloop/data/running-example.xes"
    )


def hostile_frame() -> pd.DataFrame:
    h0, h1, h2, h3 = HOSTILE
    traces = [["start", h0, h2, h3], ["start", h1, h2, h3], ["start", h0, h1, h3]]
    records = [
        {
            "case_id": f"c{case}",
            "activity": name,
            "timestamp": f"2024-01-0{case + 1}T0{step}:00:00Z",
        }
        for case, trace in enumerate(traces)
        for step, name in enumerate(trace)
    ]
    return frame_from_records(records)


def check_layout(path: Path) -> dict[str, str]:
    """Every flow node has a shape with bounds, every sequence flow an edge from its source
    to its target; returns task id -> name."""
    root = ElementTree.parse(path).getroot()
    process = root.find("bpmn:process", NS)
    assert process is not None
    nodes = {el.get("id"): el for kind in FLOW_NODES for el in process.findall(f"bpmn:{kind}", NS)}
    flows = process.findall("bpmn:sequenceFlow", NS)
    assert nodes and flows
    bounds = {}
    for shape in root.iterfind(".//bpmndi:BPMNShape", NS):
        box = shape.find("dc:Bounds", NS)
        assert box is not None
        x, y, w, h = (float(box.get(k)) for k in ("x", "y", "width", "height"))
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        bounds[shape.get("bpmnElement")] = (x, y, w, h)
    assert set(nodes) <= set(bounds), "a flow node has no BPMNShape"
    edges = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    for flow in flows:
        points = [
            (float(p.get("x")), float(p.get("y")))
            for p in edges[flow.get("id")].findall("di:waypoint", NS)
        ]
        assert len(points) >= 2
        for point, end in ((points[0], flow.get("sourceRef")), (points[-1], flow.get("targetRef"))):
            x, y, w, h = bounds[end]
            assert x - 2 <= point[0] <= x + w + 2 and y - 2 <= point[1] <= y + h + 2, (
                f"waypoint {point} is not on the shape of {end}"
            )
    return {el.get("id"): el.get("name") for el in process.findall("bpmn:task", NS)}


def test_write_models_gives_laid_out_bpmn_and_pnml_that_pm4py_reads_back(
    running: pd.DataFrame, tmp_path: Path
) -> None:
    import pm4py

    model = discover_petri_net(running, noise_threshold=0.0)
    paths = write_models(model, tmp_path / "out", stem="running")
    assert paths == {"bpmn": tmp_path / "out/running.bpmn", "pnml": tmp_path / "out/running.pnml"}
    tasks = check_layout(paths["bpmn"])
    assert sorted(tasks.values()) == model.activities
    bpmn = pm4py.read_bpmn(str(paths["bpmn"]))
    assert (
        sorted(n.get_name() for n in bpmn.get_nodes() if type(n).__name__ == "Task")
        == model.activities
    )
    net, _, _ = pm4py.read_pnml(str(paths["pnml"]))
    assert sorted(t.label for t in net.transitions if t.label) == model.activities
    # same behaviour after the round trip: the log replays on the re-imported BPMN as on the model
    log = running[["case:concept:name", "concept:name", "time:timestamp"]]
    original = pm4py.fitness_token_based_replay(log, *petri_net(model))["log_fitness"]
    reread = pm4py.fitness_token_based_replay(log, *pm4py.convert_to_petri_net(bpmn))["log_fitness"]
    assert original == pytest.approx(1.0) and reread == pytest.approx(original)


def test_write_models_discovers_from_a_frame_and_exports_heuristics_nets(
    running: pd.DataFrame, tmp_path: Path
) -> None:
    from_frame = write_models(running, tmp_path, stem="frame")
    assert from_frame["bpmn"].stat().st_size > 0 and from_frame["pnml"].stat().st_size > 0
    heuristics = discover_petri_net(running, algorithm="heuristics")
    paths = write_models(heuristics, tmp_path, stem="heuristics")
    assert sorted(check_layout(paths["bpmn"]).values()) == heuristics.activities


def test_model_rebuilt_from_json_still_exports(running: pd.DataFrame, tmp_path: Path) -> None:
    model = DiscoveredModel.model_validate_json(discover_petri_net(running).model_dump_json())
    paths = write_models(model, tmp_path)
    assert sorted(check_layout(paths["bpmn"]).values()) == model.activities


def test_hostile_activity_names_survive_export_as_text(tmp_path: Path) -> None:
    import pm4py

    model = discover_petri_net(hostile_frame(), noise_threshold=0.0)
    assert set(HOSTILE) <= set(model.activities)
    paths = write_models(model, tmp_path)
    assert sorted(check_layout(paths["bpmn"]).values()) == model.activities
    assert b"<script>" not in paths["bpmn"].read_bytes()
    net, _, _ = pm4py.read_pnml(str(paths["pnml"]))
    assert sorted(t.label for t in net.transitions if t.label) == model.activities


def test_missing_graphviz_is_a_clear_tool_error(
    running: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = discover_petri_net(running)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere on it
    with pytest.raises(ToolError, match="install the graphviz"):
        bpmn_xml(model)


def test_pnml_is_laid_out_reproducible_and_reads_back(
    running: pd.DataFrame, tmp_path: Path
) -> None:
    import pm4py

    from closedloop.tools.mining.petri import CompiledNet

    model = discover_petri_net(running)
    first = write_models(model, tmp_path / "a")["pnml"].read_bytes()
    again = write_models(discover_petri_net(running), tmp_path / "b")["pnml"].read_bytes()
    assert first == again  # ids, order and layout do not change between runs
    page = ElementTree.fromstring(first).find("net/page")
    nodes = [el for el in page if el.tag in ("place", "transition")]
    assert len(nodes) == model.places + model.transitions
    spots = set()
    for el in nodes:
        position = el.find("graphics/position")
        assert position is not None, el.get("id")
        spots.add((float(position.get("x")), float(position.get("y"))))
        assert float(el.find("graphics/dimension").get("x")) > 0
    assert len(spots) == len(nodes)  # no two nodes stacked on one point
    net, im, fm = pm4py.read_pnml(str(tmp_path / "a" / "model.pnml"))
    assert sorted(str(t.label) for t in net.transitions) == sorted(
        str(t.label) for t in petri_net(model)[0].transitions
    )
    # the same behaviour: every case of the log is accepted by both nets or by neither
    ours, theirs = CompiledNet(*petri_net(model)), CompiledNet(net, im, fm)
    for _, case in running.groupby("case:concept:name"):
        trace = tuple(case["concept:name"])
        assert ours.accepts(trace) == theirs.accepts(trace)
    assert theirs.accepts(("register request",)) is False
