"""The process map as a Graphviz graph: which activities and paths to draw, and how.

Used by ``visual`` (SVG/PNG/HTML output). Colours: amber to red for waiting at
or above the bottleneck threshold, blue by frequency otherwise; every name from
the log reaches the graph through Graphviz's XML escaping (``dot_text``).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any

from closedloop.tools.errors import ToolError
from closedloop.tools.mining.mine import MiningReport

__all__ = ["MapEdge", "MapSelection", "duration_text", "map_graph", "select_map"]

FONT = "Helvetica,Arial,sans-serif"
# amber -> red for waiting at or above the threshold; blue by frequency otherwise
HOT_LINES = ("#f2a30f", "#ef6c00", "#d84315", "#b71c1c")
HOT_FILLS = ("#fff4d6", "#ffe0b2", "#ffccbc", "#ffcdd2")
COOL_FILLS = ("#f3f7fb", "#e0ecf7", "#c9ddf1", "#aecbe9")
COOL_LINE = "#4a6fa5"
CALM_EDGE = "#8d99a6"
START_COLOUR, END_COLOUR = "#2e7d32", "#37474f"
LABEL_WIDTH, LABEL_LINES = 22, 3


@dataclass(frozen=True)
class MapEdge:
    """A path of the map; None ends are the process start / end."""

    source: str | None  # None: the process start
    target: str | None  # None: the process end
    count: int
    mean_hours: float | None


@dataclass(frozen=True)
class MapSelection:
    """What the map shows, and how much there was to show."""

    activities: list[Any]  # ActivityStats shown, most frequent first
    edges: list[MapEdge]
    total_activities: int
    total_edges: int


def select_map(report: MiningReport, max_activities: int, max_edges: int) -> MapSelection:
    """The most frequent activities and paths, plus every shown activity's strongest in and out."""
    if max_activities < 1 or max_edges < 1:
        raise ToolError("max_activities and max_edges must be at least 1")
    activities = report.activities[:max_activities]
    shown = {a.name for a in activities}
    every = (
        [MapEdge(None, a, n, None) for a, n in report.start_activities.items()]
        + [MapEdge(e.source, e.target, e.count, e.mean_hours) for e in report.dfg]
        + [MapEdge(a, None, n, None) for a, n in report.end_activities.items()]
    )
    candidates = [
        e
        for e in every
        if (e.source is None or e.source in shown) and (e.target is None or e.target in shown)
    ]
    candidates.sort(key=lambda e: (-e.count, e.source or "", e.target or ""))
    chosen: dict[MapEdge, None] = {}
    links = [e for e in candidates if e.source != e.target]  # a self-loop connects nothing
    for name in shown:  # candidates are sorted, so the first match is the strongest
        for pick in (
            next((e for e in links if e.target == name), None),
            next((e for e in links if e.source == name), None),
        ):
            if pick is not None:
                chosen[pick] = None
    for edge in candidates:
        if len(chosen) >= max_edges:
            break
        chosen[edge] = None
    edges = [e for e in candidates if e in chosen]
    return MapSelection(activities, edges, len(report.activities), len(every))


def map_graph(report: MiningReport, selection: MapSelection) -> Any:
    """The graphviz.Digraph of the selection, bottlenecks highlighted."""
    import graphviz

    threshold = report.bottleneck_threshold_hours
    ids = {a.name: f"a{i}" for i, a in enumerate(selection.activities)}
    graph = graphviz.Digraph(
        "process_map",
        graph_attr={
            "rankdir": "TB",
            "bgcolor": "white",
            "pad": "0.3",
            "nodesep": "0.35",
            "ranksep": "0.5",
            "fontname": FONT,
        },
        node_attr={"fontname": FONT, "fontsize": "11", "shape": "box", "style": "rounded,filled"},
        edge_attr={"fontname": FONT, "fontsize": "9", "arrowsize": "0.7", "fontcolor": "#37474f"},
    )
    _terminal(
        graph,
        "start",
        "circle",
        "0.3",
        START_COLOUR,
        f"process start ({sum(report.start_activities.values()):,} cases)",
    )
    _terminal(
        graph,
        "end",
        "doublecircle",
        "0.22",
        END_COLOUR,
        f"process end ({sum(report.end_activities.values()):,} cases)",
    )
    top_count = max((a.count for a in selection.activities), default=1)
    hot_waits = [
        a.mean_waiting_hours for a in selection.activities if a.mean_waiting_hours >= threshold
    ]
    bottlenecks = {b.activity for b in report.bottlenecks}
    for act in selection.activities:
        hot = act.name in bottlenecks
        level = (
            _level(act.mean_waiting_hours, threshold, max(hot_waits, default=threshold))
            if hot
            else _level(act.count, 0, top_count, log=False)
        )
        lines = [*_wrap(act.name), f"{act.count:,}\u00d7"]
        if act.mean_waiting_hours > 0:
            lines.append(f"waits {duration_text(act.mean_waiting_hours)}")
        graph.node(
            ids[act.name],
            label="\\n".join(_dot_text(line) for line in lines),
            id=ids[act.name],
            fillcolor=(HOT_FILLS if hot else COOL_FILLS)[level],
            color=HOT_LINES[level] if hot else COOL_LINE,
            penwidth="2.6" if hot else "1",
            tooltip=_dot_tooltip(
                f"{act.name}: {act.count:,} executions in {act.cases:,} cases, "
                f"mean waiting {duration_text(act.mean_waiting_hours)}"
            ),
        )
    top_edge = max((e.count for e in selection.edges), default=1)
    top_wait = max((e.mean_hours or 0.0 for e in selection.edges), default=0.0)
    for i, edge in enumerate(selection.edges):
        tail = ids[edge.source] if edge.source is not None else "start"
        head = ids[edge.target] if edge.target is not None else "end"
        width = 1 + 5 * math.log1p(edge.count) / math.log1p(top_edge)
        waits = edge.mean_hours is not None
        hot = waits and edge.mean_hours >= threshold
        colour = HOT_LINES[_level(edge.mean_hours, threshold, top_wait)] if hot else CALM_EDGE
        label = f"{edge.count:,}" + (f"\\n{duration_text(edge.mean_hours)}" if waits else "")
        name = f"{edge.source or 'start'} \u2192 {edge.target or 'end'}"
        graph.edge(
            tail,
            head,
            label=label,
            id=f"e{i}",
            penwidth=f"{width:.2f}",
            color=colour,
            style="solid" if waits else "dashed",
            tooltip=_dot_tooltip(
                f"{name}: {edge.count:,} times"
                + (f", mean waiting {duration_text(edge.mean_hours)}" if waits else "")
            ),
        )
    return graph


def _level(value: float | None, low: float, high: float, log: bool = True) -> int:
    """Bucket 0..3 of value between low and high (log scale for waiting times)."""
    if value is None or high <= low or value <= low:
        return 0
    if log and low > 0:
        share = math.log(value / low) / math.log(high / low)
    else:
        share = (value - low) / (high - low)
    return min(3, max(0, int(share * 4)))


def _wrap(name: str) -> list[str]:
    lines = textwrap.wrap(" ".join(name.split()), LABEL_WIDTH, break_long_words=True) or ["(empty)"]
    if len(lines) > LABEL_LINES:
        lines = lines[:LABEL_LINES]
        lines[-1] = lines[-1][: LABEL_WIDTH - 1] + "\u2026"
    return lines


def _dot_text(text: str) -> str:
    """Text shown verbatim in a Graphviz label (no backslash escapes, no HTML entities)."""
    import graphviz

    return graphviz.escape(text.replace("&", "&amp;"))


def _dot_tooltip(text: str) -> str:
    # tooltips expand \N, \G... even when the backslash is doubled: use a look-alike
    return text.replace("\\", "\u2216").replace("&", "&amp;")


def duration_text(hours: float | None) -> str:
    """Hours as short text for people (minutes, hours or days)."""
    if hours is None:
        return "-"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def _terminal(graph: Any, name: str, shape: str, width: str, colour: str, tooltip: str) -> None:
    """The unlabelled start or end node of the map."""
    graph.node(
        name,
        label="",
        shape=shape,
        width=width,
        fixedsize="true",
        style="filled",
        fillcolor=colour,
        color=colour,
        id=name,
        tooltip=tooltip,
    )
