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
import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.mining.dotrender import graphviz_pipe
from closedloop.tools.mining.mine import MiningReport, mine
from closedloop.tools.mining.processmap import (
    CALM_EDGE,
    COOL_FILLS,
    COOL_LINE,
    HOT_FILLS,
    HOT_LINES,
    MapSelection,
    duration_text,
    map_graph,
    select_map,
)

__all__ = ["process_map_html", "render_process_map", "write_process_map"]

TEMPLATE = Path(__file__).with_name("visual_template.html")


@read_tool
def render_process_map(
    source: MiningReport | pd.DataFrame,
    fmt: Literal["svg", "png"] = "svg",
    max_activities: int = 40,
    max_edges: int = 50,
    bottleneck_threshold_hours: float | None = None,
) -> bytes:
    """Draw the process map (activities, paths, bottlenecks highlighted) as SVG or PNG bytes.

    source is a MiningReport from ``mine`` or an event frame (mined here with
    bottleneck_threshold_hours, None: the configured default; a report keeps its
    own threshold). Shows at most
    max_activities activities (most frequent) and max_edges paths (most frequent,
    plus each shown activity's strongest incoming and outgoing path). Raises
    ToolError when Graphviz (``dot``) is not installed.
    """
    if fmt not in ("svg", "png"):
        raise ToolError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    report = _as_report(source, bottleneck_threshold_hours)
    graph = map_graph(report, select_map(report, max_activities, max_edges))
    if fmt == "png":
        graph.graph_attr.update(dpi="96", size="30,30")  # caps the bitmap at ~2900 px a side
    return graphviz_pipe(graph, fmt)


def process_map_html(
    source: MiningReport | pd.DataFrame,
    max_activities: int = 40,
    max_edges: int = 50,
    bottleneck_threshold_hours: float | None = None,
) -> str:
    """The process map as a self-contained HTML page that works offline (pan, zoom, tooltips)."""
    report = _as_report(source, bottleneck_threshold_hours)
    selection = select_map(report, max_activities, max_edges)
    svg = graphviz_pipe(map_graph(report, selection), "svg").decode("utf-8")
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
    bottleneck_threshold_hours: float | None = None,
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


def _as_report(source: MiningReport | pd.DataFrame, threshold_hours: float | None) -> MiningReport:
    if isinstance(source, MiningReport):
        return source
    if isinstance(source, pd.DataFrame):
        return mine(source, bottleneck_threshold_hours=threshold_hours, compute_fitness=False)
    raise ToolError(
        f"process map needs a MiningReport or an event frame, got {type(source).__name__}"
    )


def _meta(report: MiningReport) -> str:
    parts = [f"{report.cases:,} cases", f"{report.activity_instances:,} activity instances"]
    first, last = report.time_range.first, report.time_range.last
    if first is not None and last is not None:
        parts.append(f"{first:%Y-%m-%d} to {last:%Y-%m-%d}")
    parts.append(
        f"bottleneck threshold {duration_text(report.bottleneck_threshold_hours)} mean waiting"
    )
    if not report.has_start_times:
        parts.append("no start times: waiting includes processing")
    return " \u00b7 ".join(parts)


def _cap_note(selection: MapSelection) -> str:
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
    threshold = duration_text(report.bottleneck_threshold_hours)
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
                f'<tr><td>{e(b.activity)}</td><td class="num">{e(duration_text(b.waiting_hours))}</td>'
                f'<td class="num">{b.cases_affected:,}</td></tr>'
            )
        out.append("</table>")
    else:
        out.append(
            f"<h2>Bottlenecks</h2><p>No activity waits {e(threshold)} or more on average.</p>"
        )
    return "\n".join(out)


def _tooltips(report: MiningReport, selection: MapSelection) -> dict[str, dict[str, Any]]:
    bottlenecks = {b.activity: b for b in report.bottlenecks}
    rework = {r.activity: r for r in report.rework}
    ids = {a.name: f"a{i}" for i, a in enumerate(selection.activities)}
    data: dict[str, dict[str, Any]] = {}
    for act in selection.activities:
        rows = [
            ["Executions", f"{act.count:,}"],
            ["Cases", f"{act.cases:,}"],
            ["Mean waiting", duration_text(act.mean_waiting_hours)],
            ["Median waiting", duration_text(act.median_waiting_hours)],
            ["Mean processing", duration_text(act.mean_processing_hours)],
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
            rows.append(["Mean waiting", duration_text(edge.mean_hours)])
        title = f"{edge.source or '(start)'} \u2192 {edge.target or '(end)'}"
        data[f"e{i}"] = {"title": title, "rows": rows}
    return data


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no '</script>', no HTML parsing surprises)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
