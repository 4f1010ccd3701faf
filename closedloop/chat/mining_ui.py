"""The chat's mining side (Chainlit): pick or upload a log, map its columns when detection
fails, mine it, show the summary with the process map, and answer questions about it.

Heavy work runs in worker threads (``asyncio.to_thread``) so the socket stays responsive;
each tool call of an answer is shown as a Chainlit step with its arguments and result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.context import context
from chainlit.data import get_data_layer

from closedloop.chat import logs, mapping, render
from closedloop.chat.answers import AnswerPlan, LogAnalysis
from closedloop.chat.web import MapPages
from closedloop.settings import get_settings
from closedloop.tools.errors import EventLogError, ToolError
from closedloop.tools.log import ColumnMapping
from closedloop.tools.mining import mine, process_map_html, render_process_map, resolve_threshold

log = logging.getLogger("closedloop.chat")
MAPPING_TIMEOUT_S = 600


def log_actions() -> list[cl.Action]:
    """Buttons: the bundled logs and "Upload a log"."""
    buttons = [
        cl.Action(
            name="bundled_log",
            payload={"log": b.key},
            label=b.label,
            icon="file-text",
            tooltip=b.description,
        )
        for b in logs.BUNDLED.values()
    ]
    buttons.append(
        cl.Action(
            name="upload_log",
            payload={},
            label="Upload a log",
            icon="upload",
            tooltip=f".csv, .xes, .xes.gz, .parquet up to {logs.MAX_UPLOAD_MB} MB",
        )
    )
    return buttons


async def analyse_upload(path: str, name: str, more_actions: list[cl.Action]) -> None:
    """Check an upload, ask for its columns when detection cannot find them, then mine it."""
    try:
        logs.check_upload(name, os.path.getsize(path))
        scan = await asyncio.to_thread(mapping.scan_header, path, name)
        if scan is not None and scan.to_ask():
            scan.check_mappable()
    except EventLogError as exc:
        await cl.Message(content=render.log_error_md(str(exc)), actions=log_actions()).send()
        return
    column_mapping = None
    if scan is not None and scan.to_ask():
        column_mapping = await ask_columns(scan)
        if column_mapping is None:
            return
    await analyse(path, name, upload=True, column_mapping=column_mapping, more_actions=more_actions)


async def ask_columns(scan: mapping.HeaderScan) -> ColumnMapping | None:
    """The column-mapping step: one question per role detection could not find."""
    found = [f"{role}: {render.md_text(col, 80)}" for role, col in scan.roles.items() if col]
    intro = (
        f"### Map the columns of {render.md_text(scan.name, 120)}\n\nI could not tell which columns hold "
        f"{', '.join(scan.missing_required)} (columns: "
        f"{', '.join(render.md_text(c, 60) for c in scan.columns)})."
        + (f" Found: {'; '.join(found)}." if found else "")
        + " Pick them below; nothing is read until you have."
    )
    await cl.Message(content=intro).send()
    chosen: dict[str, str | None] = {}
    for role in scan.to_ask():
        options = mapping.choices(scan, role, chosen)
        if not options or options == [mapping.NONE_CHOICE]:
            chosen[role] = None
            continue
        buttons = [
            cl.Action(
                name=f"map_{role}",
                payload={"column": c},
                label=c[:60],
                tooltip=f"e.g. {scan.sample.get(c, '')[:60]}" if scan.sample.get(c) else c,
            )
            for c in options
        ]
        answer = await cl.AskActionMessage(
            content=mapping.QUESTIONS[role], actions=buttons, timeout=MAPPING_TIMEOUT_S
        ).send()
        if answer is None:
            await cl.Message(
                content="No column chosen in time; upload the log again when you are ready.",
                actions=log_actions(),
            ).send()
            return None
        chosen[role] = str((answer.get("payload") or {}).get("column", ""))
    try:
        result = mapping.build_mapping(scan, chosen)
    except EventLogError as exc:
        await cl.Message(content=render.log_error_md(str(exc)), actions=log_actions()).send()
        return None
    pairs = "; ".join(
        f"{role} = {render.md_text(col, 60)}" for role, col in mapping.mapping_summary(result)
    )
    await cl.Message(content=f"Column mapping: {pairs}.").send()
    return result


async def analyse(
    path: Any,
    name: str,
    upload: bool,
    more_actions: list[cl.Action],
    column_mapping: ColumnMapping | None = None,
) -> None:
    """Read and mine a log in worker threads (progress in a step), then the summary and the map."""
    settings = get_settings()
    shown = render.md_text(name, 120)
    started = time.perf_counter()
    async with cl.Step(name="mining.mine", type="tool", show_input="json") as step:
        step.input = json.dumps(
            {
                "log": name,
                "bottleneck_threshold_hours": resolve_threshold(None),
                "mapping": column_mapping.model_dump(exclude_none=True) if column_mapping else None,
            }
        )
        try:
            await step.stream_token(f"Reading {shown} ...\n\n")
            frame = await asyncio.to_thread(
                logs.read_log, path, name if upload else None, column_mapping
            )
            await step.stream_token(
                f"Read {frame.attrs.get('raw_events', len(frame)):,} events; mining "
                "(statistics, bottlenecks, process discovery, fitness) ...\n\n"
            )
            # None: the one pipeline's rule, as `closedloop mine` and the loop apply it
            # (CLOSEDLOOP_BOTTLENECK_HOURS when set, else relative to the log).
            report = await asyncio.to_thread(mine, frame, bottleneck_threshold_hours=None)
            seconds = time.perf_counter() - started
            await step.stream_token(f"Done in {seconds:.1f} s (mining {report.duration_s:.1f} s).")
        except ToolError as exc:  # bad input: its one-line message, no traceback
            step.is_error = True
            await step.stream_token(f"Failed: {render.md_text(render.people_error(str(exc)), 300)}")
            await cl.Message(content=render.log_error_md(str(exc)), actions=log_actions()).send()
            return
        except Exception as exc:  # a bug: logged in full, one line for the person
            log.error("mining %s failed in the chat", name, exc_info=exc)
            step.is_error = True
            await step.stream_token("Failed.")
            await cl.Message(
                content=f"**Mining failed** ({render.md_text(type(exc).__name__, 80)}: "
                f"{render.md_text(str(exc), 300)}); the details are in the server log.",
                actions=log_actions(),
            ).send()
            return
    cl.user_session.set(
        "analysis", LogAnalysis(name=name, frame=frame, report=report, seed=settings.seed)
    )
    await name_thread(f"Log {name}")
    content = render.mining_summary_md(report, name, seconds=seconds)
    content, elements = await with_process_map(report, content, settings.home)
    await cl.Message(
        content=content + "\n\n" + render.ASK_HINT,
        elements=elements,
        actions=[*log_actions(), *more_actions],
    ).send()


async def name_thread(title: str) -> None:
    """Name this conversation in the history (Chainlit names it after the first button otherwise)."""
    layer = get_data_layer()
    if layer is not None and context.session.thread_id:
        await layer.update_thread(context.session.thread_id, name=render.clean_text(title, 100))


async def with_process_map(report: Any, content: str, home: Path) -> tuple[str, list[Any]]:
    """Append the process map (an image, and a link to its interactive page) to ``content``."""
    async with cl.Step(name="mining.process_map", type="tool", show_input="json") as step:
        step.input = json.dumps({"log": report.source, "formats": ["png", "html"]})
        try:
            png = await asyncio.to_thread(render_process_map, report, "png")
            page = await asyncio.to_thread(process_map_html, report)
        except ToolError as exc:
            step.is_error = True
            step.output = str(exc)
            return content + f"\n\nNo process map: {render.md_text(str(exc), 300)}", []
        url = await asyncio.to_thread(MapPages(home).save, page)
        step.output = f"{len(png):,} bytes PNG; interactive page {url}"
    image = cl.Image(
        name="process-map.png", content=png, display="inline", size="large", mime="image/png"
    )
    return (
        content + f"\n\n#### Process map\n\n[Open the interactive process map]({url}) (pan, zoom, "
        "details on hover; works offline)"
    ), [image]


async def answer(plan: AnswerPlan) -> None:
    """Run an answer's tool calls as steps, then show its Markdown."""
    results: list[Any] = []
    for call in plan.calls:
        async with cl.Step(name=call.name, type="tool", show_input="json") as step:
            step.input = json.dumps(call.args, default=str)
            try:
                result = await asyncio.to_thread(call.run, results)
            except ToolError as exc:
                step.is_error = True
                step.output = str(exc)
                await cl.Message(
                    content=f"**Cannot answer:** {render.md_text(str(exc), 500)}"
                ).send()
                return
            step.output = call.summary(result)
        results.append(result)
    await cl.Message(content=plan.render(results), elements=plan.elements).send()
