"""Process map: the directly-follows graph drawn with Graphviz, bottlenecks highlighted.

Activities are boxes (executions, mean waiting before them); paths are arrows
(how often, mean waiting on them). Activities whose mean waiting reaches the
bottleneck threshold (the MiningReport's bottlenecks) are filled warm and
outlined; paths whose mean waiting reaches it are drawn amber to red, darker the
longer the wait. Arrow width grows with frequency. Big logs stay readable: only
the ``max_activities`` most frequent activities and ``max_edges`` most frequent
paths are drawn (plus each shown activity's strongest way in and out), and the
page says so.

Outputs: SVG and PNG bytes for the chat, and a self-contained offline HTML
page (inline SVG, pan/zoom, tooltips, legend; no external resources, and a
Content-Security-Policy that only runs its own script). Every name from the
log reaches the SVG through Graphviz's XML escaping and the page through
``html.escape`` / escaped JSON, so hostile activity names stay text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.mining.export import graphviz_pipe
from closedloop.tools.mining.mine import MiningReport, mine

__all__ = ["process_map_html", "render_process_map", "write_process_map"]

TEMPLATE = Path(__file__).with_name("visual_template.html")
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
class _Edge:
    source: str | None  # None: the process start
    target: str | None  # None: the process end
    count: int
    mean_hours: float | None


@dataclass(frozen=True)
class _Selection:
    activities: list[Any]  # ActivityStats shown, most frequent first
    edges: list[_Edge]
    total_activities: int
    total_edges: int


@read_tool
def render_process_map(
    source: MiningReport | pd.DataFrame,
    fmt: Literal["svg", "png"] = "svg",
    max_activities: int = 40,
    max_edges: int = 50,
    bottleneck_threshold_hours: float = 2.0,
) -> bytes:
    """Draw the process map (activities, paths, bottlenecks highlighted) as SVG or PNG bytes.

    source is a MiningReport from ``mine`` or an event frame (mined here with
    bottleneck_threshold_hours; a report keeps its own threshold). Shows at most
    max_activities activities (most frequent) and max_edges paths (most frequent,
    plus each shown activity's strongest incoming and outgoing path). Raises
    ToolError when Graphviz (``dot``) is not installed.
    """
    if fmt not in ("svg", "png"):
        raise ToolError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    report = _as_report(source, bottleneck_threshold_hours)
    graph = _graph(report, _select(report, max_activities, max_edges))
    if fmt == "png":
        graph.graph_attr.update(dpi="96", size="30,30")  # caps the bitmap at ~2900 px a side
    return graphviz_pipe(graph, fmt)


def process_map_html(
    source: MiningReport | pd.DataFrame,
    max_activities: int = 40,
    max_edges: int = 50,
    bottleneck_threshold_hours: float = 2.0,
) -> str:
    """The process map as a self-contained HTML page that works offline (pan, zoom, tooltips)."""
    report = _as_report(source, bottleneck_threshold_hours)
    selection = _select(report, max_activities, max_edges)
    svg = graphviz_pipe(_graph(report, selection), "svg").decode("utf-8")
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype for inline use
    template = TEMPLATE.read_text(encoding="utf-8")
    script = re.search(r"<script>(.*?)</script>", template, re.DOTALL)
    if script is None:
        raise ToolError(f"{TEMPLATE} has no inline script")
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode("utf-8")).digest())
    name = Path(report.source).name if report.source else "event log"
    values = {
        "@@SCRIPT_HASH@@": "sha256-" + digest.decode("ascii"),
        "@@TITLE@@": html.escape(f"Process map - {name}"),
        "@@HEADING@@": html.escape(f"Process map: {name}"),
        "@@META@@": html.escape(_meta(report)),
        "@@NOTE@@": html.escape(_cap_note(selection)),
        "@@SIDEBAR@@": _sidebar(report),
        "@@DATA@@": _script_json(_tooltips(report, selection)),
        "@@SVG@@": svg,
    }
    return re.sub("|".join(map(re.escape, values)), lambda m: values[m.group(0)], template)


def write_process_map(
    source: MiningReport | pd.DataFrame,
    out_dir: str | Path,
    stem: str = "process_map",
    max_activities: int = 40,
    max_edges: int = 50,
    bottleneck_threshold_hours: float = 2.0,
) -> dict[str, Path]:
    """Write the process map as ``<stem>.svg``, ``<stem>.png`` and ``<stem>.html`` into out_dir.

    Returns {"svg": path, "png": path, "html": path}; out_dir is created when missing.
    """
    report = _as_report(source, bottleneck_threshold_hours)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    caps = {"max_activities": max_activities, "max_edges": max_edges}
    paths = {kind: out / f"{stem}.{kind}" for kind in ("svg", "png", "html")}
    paths["svg"].write_bytes(render_process_map(report, "svg", **caps))
    paths["png"].write_bytes(render_process_map(report, "png", **caps))
    paths["html"].write_text(process_map_html(report, **caps), encoding="utf-8")
    return paths


def _as_report(source: MiningReport | pd.DataFrame, threshold_hours: float) -> MiningReport:
    if isinstance(source, MiningReport):
        return source
    if isinstance(source, pd.DataFrame):
        return mine(source, bottleneck_threshold_hours=threshold_hours, compute_fitness=False)
    raise ToolError(
        f"process map needs a MiningReport or an event frame, got {type(source).__name__}"
    )


def _select(report: MiningReport, max_activities: int, max_edges: int) -> _Selection:
    """The most frequent activities and paths, plus every shown activity's strongest in and out."""
    if max_activities < 1 or max_edges < 1:
        raise ToolError("max_activities and max_edges must be at least 1")
    activities = report.activities[:max_activities]
    shown = {a.name for a in activities}
    every = (
        [_Edge(None, a, n, None) for a, n in report.start_activities.items()]
        + [_Edge(e.source, e.target, e.count, e.mean_hours) for e in report.dfg]
        + [_Edge(a, None, n, None) for a, n in report.end_activities.items()]
    )
    candidates = [
        e
        for e in every
        if (e.source is None or e.source in shown) and (e.target is None or e.target in shown)
    ]
    candidates.sort(key=lambda e: (-e.count, e.source or "", e.target or ""))
    chosen: dict[_Edge, None] = {}
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
    return _Selection(activities, edges, len(report.activities), len(every))


def _graph(report: MiningReport, selection: _Selection) -> Any:
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
    starts = sum(report.start_activities.values())
    graph.node(
        "start",
        label="",
        shape="circle",
        width="0.3",
        fixedsize="true",
        style="filled",
        fillcolor=START_COLOUR,
        color=START_COLOUR,
        id="start",
        tooltip=f"process start ({starts:,} cases)",
    )
    graph.node(
        "end",
        label="",
        shape="doublecircle",
        width="0.22",
        fixedsize="true",
        style="filled",
        fillcolor=END_COLOUR,
        color=END_COLOUR,
        id="end",
        tooltip=f"process end ({sum(report.end_activities.values()):,} cases)",
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
            lines.append(f"waits {_duration(act.mean_waiting_hours)}")
        graph.node(
            ids[act.name],
            label="\\n".join(_dot_text(line) for line in lines),
            id=ids[act.name],
            fillcolor=(HOT_FILLS if hot else COOL_FILLS)[level],
            color=HOT_LINES[level] if hot else COOL_LINE,
            penwidth="2.6" if hot else "1",
            tooltip=_dot_tooltip(
                f"{act.name}: {act.count:,} executions in {act.cases:,} cases, "
                f"mean waiting {_duration(act.mean_waiting_hours)}"
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
        label = f"{edge.count:,}" + (f"\\n{_duration(edge.mean_hours)}" if waits else "")
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
                + (f", mean waiting {_duration(edge.mean_hours)}" if waits else "")
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


def _duration(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def _meta(report: MiningReport) -> str:
    parts = [f"{report.cases:,} cases", f"{report.activity_instances:,} activity instances"]
    first, last = report.time_range.first, report.time_range.last
    if first is not None and last is not None:
        parts.append(f"{first:%Y-%m-%d} to {last:%Y-%m-%d}")
    parts.append(
        f"bottleneck threshold {_duration(report.bottleneck_threshold_hours)} mean waiting"
    )
    if not report.has_start_times:
        parts.append("no start times: waiting includes processing")
    return " \u00b7 ".join(parts)


def _cap_note(selection: _Selection) -> str:
    shown_a, shown_e = len(selection.activities), len(selection.edges)
    note = (
        f"Showing {shown_a} of {selection.total_activities} activities and {shown_e} of "
        f"{selection.total_edges} paths (incl. start and end)"
    )
    if shown_a < selection.total_activities or shown_e < selection.total_edges:
        note += (
            ": the most frequent ones, plus each shown activity's strongest path in and out. "
            "Raise max_activities / max_edges to see more"
        )
    return note + "."


def _sidebar(report: MiningReport) -> str:
    threshold = _duration(report.bottleneck_threshold_hours)
    e = html.escape
    legend = [
        (
            "swatch",
            f"background:{HOT_FILLS[2]};border-color:{HOT_LINES[2]}",
            f"bottleneck: mean waiting \u2265 {threshold} (darker = longer)",
        ),
        (
            "swatch",
            f"background:{COOL_FILLS[2]};border-color:{COOL_LINE}",
            "activity (darker = more frequent)",
        ),
        (
            "line",
            f"height:4px;background:{HOT_LINES[3]}",
            f"path with mean waiting \u2265 {threshold}",
        ),
        ("line", f"height:2px;background:{CALM_EDGE}", "path, width = how often it is taken"),
        ("line", f"height:0;border-top:2px dashed {CALM_EDGE}", "case start / end"),
    ]
    out = ['<h2>Legend</h2><ul class="legend">']
    out += [f'<li><span class="{k}" style="{s}"></span>{e(text)}</li>' for k, s, text in legend]
    out.append("</ul>")
    if report.bottlenecks:
        out.append(f"<h2>Bottlenecks (mean waiting \u2265 {e(threshold)})</h2><table>")
        out.append(
            '<tr><th>Activity</th><th class="num">Mean wait</th><th class="num">Cases</th></tr>'
        )
        for b in report.bottlenecks[:10]:
            out.append(
                f'<tr><td>{e(b.activity)}</td><td class="num">{e(_duration(b.waiting_hours))}</td>'
                f'<td class="num">{b.cases_affected:,}</td></tr>'
            )
        out.append("</table>")
    else:
        out.append(
            f"<h2>Bottlenecks</h2><p>No activity waits {e(threshold)} or more on average.</p>"
        )
    return "\n".join(out)


def _tooltips(report: MiningReport, selection: _Selection) -> dict[str, dict[str, Any]]:
    bottlenecks = {b.activity: b for b in report.bottlenecks}
    rework = {r.activity: r for r in report.rework}
    ids = {a.name: f"a{i}" for i, a in enumerate(selection.activities)}
    data: dict[str, dict[str, Any]] = {}
    for act in selection.activities:
        rows = [
            ["Executions", f"{act.count:,}"],
            ["Cases", f"{act.cases:,}"],
            ["Mean waiting", _duration(act.mean_waiting_hours)],
            ["Median waiting", _duration(act.median_waiting_hours)],
            ["Mean processing", _duration(act.mean_processing_hours)],
        ]
        if act.name in bottlenecks:
            b = bottlenecks[act.name]
            rows += [
                ["Bottleneck", f"{b.share_of_waiting:.0%} of all waiting"],
                ["Waited long in", f"{b.cases_affected:,} cases"],
            ]
        if act.name in rework:
            rows.append(["Repeated in", f"{rework[act.name].cases_with_rework:,} cases"])
        data[ids[act.name]] = {"title": act.name, "rows": rows}
    for i, edge in enumerate(selection.edges):
        rows = [["Taken", f"{edge.count:,} times"]]
        if edge.mean_hours is not None:
            rows.append(["Mean waiting", _duration(edge.mean_hours)])
        title = f"{edge.source or '(start)'} \u2192 {edge.target or '(end)'}"
        data[f"e{i}"] = {"title": title, "rows": rows}
    return data


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no '</script>', no HTML parsing surprises)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
