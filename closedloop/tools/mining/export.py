"""Export discovered models: BPMN 2.0 XML with diagram layout, and PNML.

pm4py converts the model to BPMN; its own auto-layout leaves temporary SVG
files behind and sizes shapes from its visualiser, so the diagram layout
(``bpmndi:BPMNShape`` bounds and ``bpmndi:BPMNEdge`` waypoints for every flow
node and sequence flow, in BPMN's standard shape sizes) is computed here with
Graphviz ``dot`` (JSON output, no files) so the file opens laid out in bpmn.io
and Camunda Modeler. Before layout the graph is tidied (``bpmntidy``): chained
gateways merged, ids and element order stable (two exports of the same model
are byte-identical), exclusive gateways drawn with their marker; an export that
would lose an activity of the model is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from closedloop.tools.errors import ToolError
from closedloop.tools.mining.bpmntidy import merge_gateways, ordered_nodes, ordered_xml, stable_ids
from closedloop.tools.mining.discovery import (
    DiscoveredModel,
    discover_petri_net,
    petri_net,
    process_tree,
)
from closedloop.tools.mining.dotrender import graphviz_pipe

__all__ = ["bpmn_xml", "graphviz_pipe", "write_bpmn", "write_models", "write_pnml"]

POINTS_PER_INCH = 72.0
# BPMN shape sizes (px) as bpmn.io draws them
TASK_SIZE = (100.0, 80.0)
EVENT_SIZE = (36.0, 36.0)
GATEWAY_SIZE = (50.0, 50.0)
MARGIN = 40.0


def write_models(
    source: pd.DataFrame | DiscoveredModel, out_dir: str | Path, stem: str = "model"
) -> dict[str, Path]:
    """Write the process model as BPMN 2.0 (with diagram layout) and PNML files.

    source is an event frame (the model is discovered with ``discover_petri_net``
    defaults) or an already discovered model. Returns {"bpmn": path, "pnml": path}
    inside out_dir (created when missing), named ``<stem>.bpmn`` / ``<stem>.pnml``.
    """
    model = source if isinstance(source, DiscoveredModel) else discover_petri_net(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "bpmn": write_bpmn(model, out / f"{stem}.bpmn"),
        "pnml": write_pnml(model, out / f"{stem}.pnml"),
    }


def write_bpmn(model: DiscoveredModel, path: str | Path) -> Path:
    """Write the model as a BPMN 2.0 file with diagram layout; returns the path."""
    target = Path(path)
    target.write_bytes(bpmn_xml(model))
    return target


def write_pnml(model: DiscoveredModel, path: str | Path) -> Path:
    """Write the model's Petri net with initial and final marking as PNML; returns the path.

    Laid out and reproducible (``pnmllayout.laid_out_pnml``): stable ids and order,
    a position on every place and transition."""
    from closedloop.tools.mining.pnmllayout import laid_out_pnml

    target = Path(path)
    target.write_text(laid_out_pnml(model.pnml), encoding="utf-8")
    return target


def bpmn_xml(model: DiscoveredModel) -> bytes:
    """The model as BPMN 2.0 XML (UTF-8) with BPMNDI shapes and edges for every element."""
    import pm4py
    from pm4py.objects.bpmn.exporter.variants.etree import get_xml_string

    tree = process_tree(model)
    # the tree gives structured gateways; a heuristics net converts via its Petri net
    bpmn = (
        pm4py.convert_to_bpmn(tree)
        if tree is not None
        else pm4py.convert_to_bpmn(*petri_net(model))
    )
    merge_gateways(bpmn)
    _check_tasks(bpmn, model)
    _layout(bpmn)
    return ordered_xml(get_xml_string(bpmn, parameters={"encoding": "utf-8"}), stable_ids(bpmn))


def _check_tasks(bpmn: Any, model: DiscoveredModel) -> None:
    """Every activity of the model is a task of the diagram: never drop one silently."""
    from pm4py.objects.bpmn.obj import BPMN

    tasks = {n.get_name() for n in bpmn.get_nodes() if isinstance(n, BPMN.Task)}
    lost = sorted(set(model.activities) - tasks)
    if lost:
        raise ToolError(f"BPMN conversion lost activities {lost}; export refused")


def _layout(bpmn: Any) -> None:
    """Set bounds of every node and waypoints of every flow from a ``dot`` left-to-right layout."""
    import graphviz
    from pm4py.objects.bpmn.obj import BPMN

    nodes = ordered_nodes(bpmn)
    ids = {node: f"n{i}" for i, node in enumerate(nodes)}
    shapes = {node: _shape(node, BPMN) for node in nodes}
    graph = graphviz.Digraph(
        graph_attr={"rankdir": "LR", "nodesep": "0.6", "ranksep": "0.7", "splines": "polyline"},
        node_attr={"label": "", "fixedsize": "true"},
    )
    for node in nodes:
        shape, (width, height) = shapes[node]
        graph.node(
            ids[node],
            shape=shape,
            width=f"{width / POINTS_PER_INCH:.4f}",
            height=f"{height / POINTS_PER_INCH:.4f}",
        )
    flows = sorted(bpmn.get_flows(), key=lambda f: (ids[f.get_source()], ids[f.get_target()]))
    for flow in flows:
        graph.edge(ids[flow.get_source()], ids[flow.get_target()])
    data = json.loads(graphviz_pipe(graph, "json"))
    top = float(data["bb"].split(",")[3])

    def flip(x: float, y: float) -> tuple[float, float]:  # dot's y axis points up, BPMN's down
        return round(x + MARGIN, 1), round(top - y + MARGIN, 1)

    layout = bpmn.get_layout()
    by_name = {obj["name"]: obj for obj in data.get("objects", [])}
    for node in nodes:
        cx, cy = flip(*map(float, by_name[ids[node]]["pos"].split(",")))
        width, height = shapes[node][1]
        box = layout.get(node)
        box.set_width(width)
        box.set_height(height)
        box.set_x(round(cx - width / 2, 1))
        box.set_y(round(cy - height / 2, 1))
    names = {obj["_gvid"]: obj["name"] for obj in data.get("objects", [])}
    routes: dict[tuple[str, str], list[str]] = {}
    for edge in sorted(data.get("edges", []), key=lambda e: e["_gvid"]):
        routes.setdefault((names[edge["tail"]], names[edge["head"]]), []).append(edge["pos"])
    for flow in flows:
        path = layout.get(flow)
        path.del_waypoints()
        for x, y in _polyline(routes[ids[flow.get_source()], ids[flow.get_target()]].pop(0)):
            path.add_waypoint(flip(x, y))


def _shape(node: Any, bpmn_cls: Any) -> tuple[str, tuple[float, float]]:
    """Graphviz shape and BPMN size (px) of a flow node."""
    if isinstance(node, bpmn_cls.Event):
        return "circle", EVENT_SIZE
    if isinstance(node, bpmn_cls.Gateway):
        return "diamond", GATEWAY_SIZE
    return "box", TASK_SIZE


def _polyline(pos: str) -> list[tuple[float, float]]:
    """Corner points of a ``dot`` polyline edge ("e,x,y p0 p1 ..."; bezier triples per segment)."""
    start: tuple[float, float] | None = None
    end: tuple[float, float] | None = None
    points: list[tuple[float, float]] = []
    for token in pos.split():
        parts = token.split(",")
        if parts[0] in ("s", "e"):
            point = (float(parts[1]), float(parts[2]))
            start, end = (point, end) if parts[0] == "s" else (start, point)
        else:
            points.append((float(parts[0]), float(parts[1])))
    corners = points[::3] or points
    if start is not None:
        corners.insert(0, start)
    if end is not None:
        corners.append(end)
    return corners
