"""Process map: SVG/PNG/HTML output, caps on big logs, bottleneck colours, hostile names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from defusedxml import ElementTree

from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest import frame_from_records, load_event_log
from closedloop.tools.mining.mine import MiningReport, mine
from closedloop.tools.mining.visual import (
    HOT_FILLS,
    process_map_html,
    render_process_map,
    write_process_map,
)

pytestmark = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz `dot` not installed (scripts/install-system-deps.sh installs it)",
)
SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = [
    "<script>alert(1)</script>",
    "</svg><img src=x onerror=alert(2)>",
    'Tom\'s "quote" & co',
    "back\\slash \\N \\G",
    "]]></script><!--",
]


@pytest.fixture(scope="module")
def helpdesk() -> MiningReport:
    log = load_event_log(Path(__file__).resolve().parents[1] / "closedloop/data/helpdesk.xes.gz")
    return mine(log, compute_fitness=False)


def hostile_frame() -> pd.DataFrame:
    traces = [HOSTILE, HOSTILE[::-1], HOSTILE[1:] + HOSTILE[:1]]
    return frame_from_records(
        [
            {
                "case_id": f"c{c}",
                "activity": name,
                "timestamp": f"2024-02-0{c + 1}T{2 * i:02d}:30:00Z",
            }
            for c, trace in enumerate(traces)
            for i, name in enumerate(trace)
        ]
    )


def svg_groups(svg: bytes, kind: str) -> dict[str, object]:
    root = ElementTree.fromstring(svg)
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("class") == kind}


def map_data(page: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="map-data">(.*?)</script>', page, re.DOTALL
    )
    assert match is not None
    return json.loads(match.group(1))


def test_svg_shows_every_activity_with_start_end_and_paths(helpdesk: MiningReport) -> None:
    svg = render_process_map(helpdesk, "svg")
    nodes = svg_groups(svg, "node")
    assert set(nodes) == {f"a{i}" for i in range(len(helpdesk.activities))} | {"start", "end"}
    edges = svg_groups(svg, "edge")
    assert 0 < len(edges) <= 50 + 2 * len(helpdesk.activities)
    text = " ".join(t.text or "" for t in ElementTree.fromstring(svg).iter(f"{SVG}text"))
    assert all(a.name.split()[0] in text for a in helpdesk.activities)


def test_png_is_a_png(helpdesk: MiningReport) -> None:
    assert render_process_map(helpdesk, "png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_bottlenecks_are_filled_warm_others_cool(helpdesk: MiningReport) -> None:
    report = helpdesk.model_copy(update={"bottlenecks": helpdesk.bottlenecks[:1]})
    top = report.bottlenecks[0].activity
    nodes = svg_groups(render_process_map(report), "node")
    index = next(i for i, a in enumerate(report.activities) if a.name == top)
    fills = {
        node_id: {p.get("fill") for p in g.iter(f"{SVG}path")}
        | {p.get("fill") for p in g.iter(f"{SVG}polygon")}
        for node_id, g in nodes.items()
    }
    assert fills[f"a{index}"] & set(HOT_FILLS)
    assert not any(
        fills[f"a{i}"] & set(HOT_FILLS) for i in range(len(report.activities)) if i != index
    )


def test_caps_keep_big_maps_readable_and_connected(helpdesk: MiningReport) -> None:
    svg = render_process_map(helpdesk, max_activities=6, max_edges=8)
    nodes = svg_groups(svg, "node")
    assert len(nodes) == 6 + 2
    titles = [g.find(f"{SVG}title").text for g in svg_groups(svg, "edge").values()]
    pairs = [t.replace("&#45;", "-").split("->") for t in titles]
    non_loops = [(a, b) for a, b in pairs if a != b]
    for node in (f"a{i}" for i in range(6)):  # every activity keeps a way in and a way out
        assert any(b == node for _, b in non_loops) and any(a == node for a, _ in non_loops)
    page = process_map_html(helpdesk, max_activities=6, max_edges=8)
    assert f"Showing 6 of {len(helpdesk.activities)} activities" in page
    assert "Raise max_activities / max_edges" in page


def test_html_is_self_contained_and_escapes_hostile_names() -> None:
    frame = hostile_frame()
    page = process_map_html(frame)
    # only our two script elements; nothing that loads from elsewhere
    assert len(re.findall(r"<script", page, re.IGNORECASE)) == 2
    assert "<img" not in page and "<!--]" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.IGNORECASE)
    assert "<link" not in page and "@import" not in page
    assert "script-src 'sha256-" in page
    titles = {item["title"] for item in map_data(page).values()}
    assert set(HOSTILE) <= titles
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    ElementTree.fromstring(svg)  # well-formed: no name closed the SVG early


def test_hostile_names_are_text_in_the_svg() -> None:
    svg = render_process_map(hostile_frame())
    root = ElementTree.fromstring(svg)
    text = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "<script>alert(1)</script>" in text and "back\\slash \\N \\G" in text
    assert 'Tom\'s "quote" & co' in text


def test_write_process_map_writes_three_files(helpdesk: MiningReport, tmp_path: Path) -> None:
    paths = write_process_map(helpdesk, tmp_path / "maps", stem="helpdesk")
    assert set(paths) == {"svg", "png", "html"}
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths.values())
    assert paths["html"].name == "helpdesk.html"


def test_frame_source_is_mined_with_the_given_threshold(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "running-example.xes")
    page = process_map_html(frame, bottleneck_threshold_hours=1000)
    assert "No activity waits 41.7 d or more on average." in page


@pytest.mark.parametrize("bad", [{"fmt": "gif"}, {"max_edges": 0}, {"max_activities": 0}])
def test_bad_arguments_are_tool_errors(helpdesk: MiningReport, bad: dict) -> None:
    with pytest.raises(ToolError):
        render_process_map(helpdesk, **bad)


def test_missing_graphviz_is_a_clear_tool_error(
    helpdesk: MiningReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="install the graphviz"):
        render_process_map(helpdesk)


@pytest.mark.browser
def test_page_in_a_real_browser_runs_only_its_script(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}; run scripts/install-system-deps.sh")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    page_file = tmp_path / "map.html"
    html = process_map_html(hostile_frame())
    page_file.write_text(html, encoding="utf-8")
    target = next(k for k, v in map_data(html).items() if v["title"] == HOSTILE[0])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            dialogs: list[str] = []
            errors: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(page_file.as_uri())
            assert page.locator("script").count() == 2 and page.locator("img").count() == 0
            before = page.locator("#stage").get_attribute("style")
            assert before and "scale(" in before  # our script ran and fitted the map
            page.locator(f"g#{target}").hover()
            assert page.locator("#tip b").text_content() == "<script>alert(1)</script>"
            page.mouse.wheel(0, -400)
            assert page.locator("#stage").get_attribute("style") != before
            assert dialogs == [] and errors == []
        finally:
            browser.close()
