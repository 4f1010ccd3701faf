"""PNML that opens laid out and diffs cleanly: stable ids and order, Graphviz positions.

pm4py's PNML export names visible transitions with random UUIDs, the net after a
timestamp, and gives no positions, so two exports of the same model differ and
editors (ProM, WoPeD, pm4py's own viewer) stack every node at the origin.
``laid_out_pnml`` rewrites it: nodes numbered in breadth-first order from the
initially marked place (``p1``, ``t1``, ..., neighbours by label), arcs after
their source (``a1``, ...), per-run attributes (``localNodeID``) dropped, and a
``<graphics>`` position (the node's centre, PNML's convention) and dimension on
every place and transition from a left-to-right ``dot`` layout, bend points on
arcs. Labels, invisible markers, arc weights and markings are kept as they are.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import deque

from closedloop.tools.errors import ToolError

__all__ = ["laid_out_pnml"]

POINTS_PER_INCH = 72.0
PLACE_SIZE = 30.0
TASK_SIZE = (90.0, 40.0)
SILENT_SIZE = (12.0, 40.0)
MARGIN = 20.0


def laid_out_pnml(pnml: str) -> str:
    """The PNML text of a (pm4py-exported) net with stable ids, stable order and layout."""
    try:
        root = ET.fromstring(pnml.encode("utf-8"))
    except ET.ParseError as exc:
        raise ToolError(f"not a PNML document: {exc}") from exc
    net = root.find("net")
    page = net.find("page") if net is not None else None
    if net is None or page is None:
        raise ToolError("PNML without <net><page>: nothing to lay out")
    nodes = {el.get("id"): el for el in page if el.tag in ("place", "transition")}
    arcs = [el for el in page if el.tag == "arc"]
    order = _order(nodes, arcs)
    ids = {
        old: f"{'p' if nodes[old].tag == 'place' else 't'}{i}" for i, old in _numbered(order, nodes)
    }
    rank = {old: i for i, old in enumerate(order)}
    arcs.sort(key=lambda a: (rank[a.get("source")], rank[a.get("target")]))
    positions, bends = _layout(order, nodes, arcs, ids)
    for el in list(page):
        page.remove(el)
    for old in order:
        el = nodes[old]
        el.set("id", ids[old])
        for spec in el.iter("toolspecific"):
            spec.attrib.pop("localNodeID", None)
        for old_graphics in el.findall("graphics"):
            el.remove(old_graphics)
        (x, y), (w, h) = positions[ids[old]]
        graphics = ET.Element("graphics")
        ET.SubElement(graphics, "position", x=f"{x:g}", y=f"{y:g}")
        ET.SubElement(graphics, "dimension", x=f"{w:g}", y=f"{h:g}")
        el.insert(1, graphics)  # after <name>
        page.append(el)
    for i, arc in enumerate(arcs, start=1):
        arc.set("id", f"a{i}")
        arc.set("source", ids[arc.get("source")])
        arc.set("target", ids[arc.get("target")])
        for old_graphics in arc.findall("graphics"):
            arc.remove(old_graphics)
        points = bends.get(i - 1, [])
        if points:
            graphics = ET.SubElement(arc, "graphics")
            for x, y in points:
                ET.SubElement(graphics, "position", x=f"{x:g}", y=f"{y:g}")
        page.append(arc)
    net.set("id", "net1")
    name = net.find("name/text")
    if name is not None:
        name.text = "net1"
    _rename_markings(net, ids)
    ET.indent(root)
    return "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"


def _label(el: ET.Element) -> str:
    text = el.find("name/text")
    return text.text or "" if text is not None else ""


def _order(nodes: dict[str, ET.Element], arcs: list[ET.Element]) -> list[str]:
    """Breadth-first from the initially marked places; ties and unreached nodes by label."""
    following: dict[str, list[str]] = {}
    for arc in arcs:
        following.setdefault(arc.get("source"), []).append(arc.get("target"))
    key = {old: (_label(el), el.tag) for old, el in nodes.items()}
    starts = sorted(
        (old for old, el in nodes.items() if el.find("initialMarking") is not None),
        key=key.__getitem__,
    )
    seen: set[str] = set()
    order: list[str] = []
    for start in [*starts, *sorted(nodes, key=key.__getitem__)]:
        if start in seen:
            continue
        seen.add(start)
        queue = deque([start])
        while queue:
            old = queue.popleft()
            order.append(old)
            for nxt in sorted(following.get(old, ()), key=key.__getitem__):
                if nxt not in seen and nxt in nodes:
                    seen.add(nxt)
                    queue.append(nxt)
    return order


def _numbered(order: list[str], nodes: dict[str, ET.Element]) -> list[tuple[int, str]]:
    counts = {"place": 0, "transition": 0}
    numbered = []
    for old in order:
        counts[nodes[old].tag] += 1
        numbered.append((counts[nodes[old].tag], old))
    return numbered


def _size(el: ET.Element) -> tuple[float, float]:
    if el.tag == "place":
        return PLACE_SIZE, PLACE_SIZE
    invisible = any(s.get("activity") == "$invisible$" for s in el.iter("toolspecific"))
    return SILENT_SIZE if invisible else TASK_SIZE


def _layout(
    order: list[str], nodes: dict[str, ET.Element], arcs: list[ET.Element], ids: dict[str, str]
) -> tuple[dict[str, tuple[tuple[float, float], tuple[float, float]]], dict[int, list]]:
    """Centres and sizes of the nodes, inner bend points of the arcs (by arc index)."""
    import graphviz

    from closedloop.tools.mining.dotrender import graphviz_pipe

    graph = graphviz.Digraph(
        graph_attr={"rankdir": "LR", "nodesep": "0.3", "ranksep": "0.4", "splines": "polyline"},
        node_attr={"label": "", "fixedsize": "true"},
    )
    sizes = {ids[old]: _size(nodes[old]) for old in order}
    for old in order:
        width, height = sizes[ids[old]]
        graph.node(
            ids[old],
            shape="circle" if nodes[old].tag == "place" else "box",
            width=f"{width / POINTS_PER_INCH:.4f}",
            height=f"{height / POINTS_PER_INCH:.4f}",
        )
    for arc in arcs:
        graph.edge(ids[arc.get("source")], ids[arc.get("target")])
    data = json.loads(graphviz_pipe(graph, "json"))
    top = float(data["bb"].split(",")[3])

    def flip(x: float, y: float) -> tuple[float, float]:  # dot's y axis points up
        return round(x + MARGIN, 1), round(top - y + MARGIN, 1)

    positions = {}
    names = {}
    for obj in data.get("objects", []):
        names[obj["_gvid"]] = obj["name"]
        x, y = map(float, obj["pos"].split(","))
        positions[obj["name"]] = (flip(x, y), sizes[obj["name"]])
    bends: dict[int, list] = {}
    edges = sorted(data.get("edges", []), key=lambda e: e["_gvid"])
    for index, edge in enumerate(edges):  # dot keeps the order the edges were added in
        points = [
            tuple(map(float, token.split(",")))
            for token in edge["pos"].split()
            if not token.startswith(("s,", "e,"))  # arrow ends: the node's border
        ]
        bends[index] = [flip(*p) for p in points[::3][1:-1]]  # inner corners (bezier triples)
    return positions, bends


def _rename_markings(net: ET.Element, ids: dict[str, str]) -> None:
    """The final marking refers to places by id: follow the renaming."""
    for place in net.iter("place"):
        old = place.get("idref")
        if old is not None and old in ids:
            place.set("idref", ids[old])
