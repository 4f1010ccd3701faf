"""closedloop chat for operations staff (Chainlit).

Run from the repository root (where ``.chainlit/config.toml`` and ``chainlit.md`` live):

    .venv/bin/chainlit run app.py --headless --port 8000

Pick or upload an event log to mine it, or start the closed loop against a
sandbox helpdesk on loopback and approve or reject its plan. The store comes
from ``Settings()`` (``CLOSEDLOOP_HOME`` / ``DATABASE_URL``). Everything heavy
runs in worker threads so the socket stays responsive; helpers live in
``closedloop/chat``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import chainlit as cl
from chainlit.context import context

from closedloop.chat import logs, render
from closedloop.chat.session import MAX_EVIDENCE_ROUNDS, DecisionRefused, LoopSession, phase
from closedloop.report import render_run
from closedloop.settings import get_settings
from closedloop.tools.errors import EventLogError, ToolError
from closedloop.tools.mining.mine import mine

log = logging.getLogger("closedloop.chat")


@cl.data_layer
def no_chat_history() -> Any:
    """No Chainlit data layer: ``DATABASE_URL`` names closedloop's store, which Chainlit
    would otherwise try to use for its own chat history (it expects its own PostgreSQL schema)."""
    return None


@asynccontextmanager
async def working() -> AsyncIterator[None]:
    """Mark the chat busy while an action callback works (buttons disabled, stop shown).

    Chainlit 2.12 runs action callbacks outside its task bookkeeping, while
    AskFileMessage ends with a task_start of its own; this pairs them up."""
    await context.emitter.task_start()
    try:
        yield
    finally:
        await context.emitter.task_end()


# --------------------------------------------------------------------------- buttons
def log_actions() -> list[cl.Action]:
    buttons = [
        cl.Action(name="bundled_log", payload={"log": b.key}, label=b.label, icon="file-text",
                  tooltip=b.description)
        for b in logs.BUNDLED.values()
    ]
    buttons.append(cl.Action(name="upload_log", payload={}, label="Upload a log", icon="upload",
                             tooltip=f".csv, .xes, .xes.gz, .parquet up to {logs.MAX_UPLOAD_MB} MB"))
    return buttons


def loop_action() -> cl.Action:
    return cl.Action(name="start_loop", payload={}, label="Start the closed loop (sandbox)", icon="play",
                     tooltip="Observe, plan and act on a simulated helpdesk; you approve or reject")


WELCOME = (
    "## closedloop\n\n"
    "I find where work waits in an event log, and I can run the whole closed loop "
    "(observe, plan, approve, act, measure) against a **simulated helpdesk** on this machine.\n\n"
    "- **Mine a log:** pick a bundled log below or upload your own (.csv, .xes, .xes.gz, .parquet). "
    "You can also attach a log file to a message.\n"
    "- **Close the loop:** the sandbox builds 21 days of history, the agents propose one change with "
    "a predicted effect, and (in the default assisted mode) nothing changes until you approve. "
    "Then the sandbox runs 14 more days "
    "with a control group and I show the realized effect next to the prediction."
)


@cl.on_chat_start
async def on_chat_start() -> None:
    await cl.Message(content=WELCOME, actions=[*log_actions(), loop_action()]).send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    files = [e for e in message.elements if getattr(e, "path", None)]
    if files:
        upload = files[0]
        await analyse_upload(upload.path, upload.name)
        return
    await cl.Message(
        content="Pick a log to mine, upload one, or start the closed loop on the sandbox.",
        actions=[*log_actions(), loop_action()],
    ).send()


@cl.on_chat_end
async def on_chat_end() -> None:
    loop: LoopSession | None = cl.user_session.get("loop")
    if loop is not None:
        await asyncio.to_thread(loop.close)


# --------------------------------------------------------------------------- mining
@cl.action_callback("bundled_log")
async def on_bundled_log(action: cl.Action) -> None:
    try:
        chosen = logs.bundled(action.payload.get("log"))
    except EventLogError as exc:
        await cl.Message(content=render.log_error_md(str(exc))).send()
        return
    async with working():
        await analyse(chosen.path, chosen.filename, upload=False)


@cl.action_callback("upload_log")
async def on_upload_log(action: cl.Action) -> None:
    async with working():
        files = await cl.AskFileMessage(
            content=f"Upload an event log (.csv, .xes, .xes.gz, .parquet; up to {logs.MAX_UPLOAD_MB} MB).",
            accept=logs.UPLOAD_ACCEPT, max_size_mb=logs.MAX_UPLOAD_MB, timeout=logs.UPLOAD_TIMEOUT_S,
        ).send()
        if not files:
            await cl.Message(content="No file arrived; pick a log when you are ready.",
                             actions=log_actions()).send()
            return
        await analyse_upload(files[0].path, files[0].name)


async def analyse_upload(path: str, name: str) -> None:
    try:
        logs.check_upload(name, os.path.getsize(path))
    except EventLogError as exc:
        await cl.Message(content=render.log_error_md(str(exc)), actions=log_actions()).send()
        return
    await analyse(path, name, upload=True)


async def analyse(path: Any, name: str, upload: bool) -> None:
    """Read and mine a log in worker threads, showing progress in a step, then the summary."""
    settings = get_settings()
    shown = render.md_text(name, 120)
    started = time.perf_counter()
    async with cl.Step(name="Mining the event log", type="tool", show_input=False) as step:
        try:
            await step.stream_token(f"Reading {shown} ...\n\n")
            frame = await asyncio.to_thread(logs.read_log, path, name if upload else None)
            await step.stream_token(
                f"Read {frame.attrs.get('raw_events', len(frame)):,} events; mining "
                "(statistics, bottlenecks, process discovery, fitness) ...\n\n")
            report = await asyncio.to_thread(
                mine, frame, bottleneck_threshold_hours=settings.bottleneck_threshold_hours)
            seconds = time.perf_counter() - started
            await step.stream_token(f"Done in {seconds:.1f} s (mining {report.duration_s:.1f} s).")
        except ToolError as exc:  # bad input: its one-line message, no traceback
            step.is_error = True
            await step.stream_token(f"Failed: {render.md_text(str(exc), 300)}")
            await cl.Message(content=render.log_error_md(str(exc)), actions=log_actions()).send()
            return
        except Exception as exc:  # a bug: logged in full, one line for the person
            log.error("mining %s failed in the chat", name, exc_info=exc)
            step.is_error = True
            await step.stream_token("Failed.")
            await cl.Message(content=f"**Mining failed** ({render.md_text(type(exc).__name__, 80)}: "
                             f"{render.md_text(str(exc), 300)}); the details are in the server log.",
                             actions=log_actions()).send()
            return
    await cl.Message(
        content=render.mining_summary_md(report, name, seconds=seconds),
        actions=[*log_actions(), loop_action()],
    ).send()


# --------------------------------------------------------------------------- closed loop
def loop_lock() -> asyncio.Lock:
    lock = cl.user_session.get("loop_lock")
    if lock is None:
        lock = asyncio.Lock()
        cl.user_session.set("loop_lock", lock)
    return lock


def operator() -> str:
    user = cl.user_session.get("user")
    return f"{getattr(user, 'identifier', 'chat operator')} (chat)"


async def busy() -> None:
    await cl.Message(content="The loop is still working on your last request; one moment.").send()


@cl.action_callback("start_loop")
async def on_start_loop(action: cl.Action) -> None:
    lock = loop_lock()
    if lock.locked():
        await busy()
        return
    async with lock, working():
        old: LoopSession | None = cl.user_session.get("loop")
        if old is not None and await asyncio.to_thread(old.waiting) == "approval":
            await cl.Message(content=f"Run {render.md_text(old.run_id, 60)} still waits for your "
                             "decision: approve or reject its plan above first.").send()
            return
        if old is not None:
            await asyncio.to_thread(old.close)
        loop = LoopSession(get_settings())
        cl.user_session.set("loop", loop)
        await guarded(loop, start_loop(loop))


async def start_loop(loop: LoopSession) -> None:
    async with cl.Step(name="Sandbox helpdesk", type="tool", show_input=False) as step:
        url = await asyncio.to_thread(loop.open)
        await step.stream_token(f"Sandbox API on {render.md_text(url)}; running "
                                f"{loop.history_days:g} simulated days of history ...\n\n")
        await asyncio.to_thread(loop.build_history)
        await step.stream_token("History ready.")
    async with cl.Step(name="Observe triage plan and gate", type="tool", show_input=False) as step:
        state = await asyncio.to_thread(loop.start)
        await step.stream_token(
            f"Run {render.md_text(state['run_id'], 60)}: {render.PHASE_LABELS[phase(state)]}.")
    await show_state(loop, state)


async def guarded(loop: LoopSession, work: Awaitable[None]) -> None:
    """The chat's boundary for loop work: anything that breaks is logged with its traceback,
    the session's sandbox is stopped, and the person gets one line saying what broke."""
    try:
        await work
    except Exception as exc:  # the one UI boundary: logged in full, shown in one line
        log.error("closed loop failed in the chat", exc_info=exc)
        await asyncio.to_thread(loop.close)
        what = str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
        await cl.Message(content=f"**The closed loop failed:** {render.md_text(what, 400)}",
                         actions=[loop_action()]).send()


async def show_state(loop: LoopSession, state: dict[str, Any]) -> None:
    """Show the plan with Approve/Reject, or carry on to the verdict when no approval is needed."""
    waiting = phase(state)
    if waiting == "approval":
        run_id = state["run_id"]
        buttons = [
            cl.Action(name="approve_plan", payload={"run_id": run_id}, label="Approve", icon="check"),
            cl.Action(name="reject_plan", payload={"run_id": run_id}, label="Reject", icon="x"),
        ]
        message = cl.Message(content=render.plan_md(state) + "\n\n**Approve this change?** Nothing "
                             "changes in the helpdesk until you decide.", actions=buttons)
        await message.send()
        cl.user_session.set("plan_message", message)
        return
    await cl.Message(content=render.plan_md(state)).send()
    if waiting == "evidence":
        state = await watch(loop, state)
    await show_verdict(state)


async def decide(action: cl.Action, approve: bool) -> None:
    loop: LoopSession | None = cl.user_session.get("loop")
    if loop is None:
        await cl.Message(content="No closed loop runs in this chat; start one first.",
                         actions=[loop_action()]).send()
        return
    lock = loop_lock()
    if lock.locked():
        await busy()
        return
    async with lock, working():
        plan_message: cl.Message | None = cl.user_session.get("plan_message")
        if plan_message is not None:
            await plan_message.remove_actions()
            cl.user_session.set("plan_message", None)
        await guarded(loop, record_decision(loop, str(action.payload.get("run_id", "")), approve))


async def record_decision(loop: LoopSession, run_id: str, approve: bool) -> None:
    try:
        async with cl.Step(name="Approved and executing" if approve else "Rejected",
                           type="tool", show_input=False) as step:
            state = await asyncio.to_thread(loop.decide, run_id, approve, operator())
            await step.stream_token(f"Recorded; the run: {render.PHASE_LABELS[phase(state)]}.")
    except DecisionRefused as exc:
        await cl.Message(content=f"Not applied: {render.md_text(str(exc), 300)}").send()
        return
    state = await watch(loop, state)
    await show_verdict(state)


@cl.action_callback("approve_plan")
async def on_approve(action: cl.Action) -> None:
    await decide(action, approve=True)


@cl.action_callback("reject_plan")
async def on_reject(action: cl.Action) -> None:
    await decide(action, approve=False)


async def watch(loop: LoopSession, state: dict[str, Any]) -> dict[str, Any]:
    """Let the sandbox run on and hand the run its evidence until it decides (bounded)."""
    for _ in range(MAX_EVIDENCE_ROUNDS):
        if phase(state) != "evidence":
            break
        async with cl.Step(name="Watching the change", type="tool", show_input=False) as step:
            await step.stream_token(f"The change is live for a treatment group; the sandbox runs "
                                    f"{loop.observe_days:g} more simulated days with a control group ...\n\n")
            state = await asyncio.to_thread(loop.observe, state["run_id"])
            await step.stream_token(f"Measured; the run: {render.PHASE_LABELS[phase(state)]}.")
    return state


async def show_verdict(state: dict[str, Any]) -> None:
    async with cl.Step(name="Full run report", type="tool", show_input=False, language="text") as step:
        step.output = render_run(state)
    await cl.Message(content=render.verdict_md(state), actions=[loop_action(), *log_actions()]).send()
