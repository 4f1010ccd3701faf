"""The chat's closed-loop side (Chainlit): start a run on a sandbox, show its plan with
Approve / Reject (approvers only), follow it to the verdict, rollout status and the kill switch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import chainlit as cl
from chainlit.context import context

from closedloop.chat import auth, control, render
from closedloop.chat.session import MAX_EVIDENCE_ROUNDS, DecisionRefused, LoopSession, phase
from closedloop.identity import Principal
from closedloop.report import render_run
from closedloop.settings import get_settings
from closedloop.tools.errors import ToolError

log = logging.getLogger("closedloop.chat")


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


def principal() -> Principal:
    """Who is chatting (the local operator when the chat has no login)."""
    user = cl.user_session.get("user")
    if user is None:
        return auth.LOCAL_OPERATOR
    return auth.principal_from_metadata(user.identifier, getattr(user, "metadata", None))


def operator() -> str:
    """How decisions name the person: ``<name> (chat)``."""
    return f"{principal().name} (chat)"


def loop_action() -> cl.Action:
    return cl.Action(
        name="start_loop",
        payload={},
        label="Start the closed loop (sandbox)",
        icon="play",
        tooltip="Observe, plan and act on a simulated helpdesk; an approver decides",
    )


def control_actions() -> list[cl.Action]:
    """Rollout status for everyone; the kill switch for admins."""
    buttons = [
        cl.Action(name="rollout_status", payload={}, label="Rollout status", icon="activity")
    ]
    if auth.can_switch_kill(principal()):
        buttons.append(
            cl.Action(
                name="kill_switch",
                payload={"on": True},
                label="Kill switch",
                icon="octagon-x",
                tooltip="Stop every write of this scope at once",
            )
        )
    return buttons


def loop_lock() -> asyncio.Lock:
    lock = cl.user_session.get("loop_lock")
    if lock is None:
        lock = asyncio.Lock()
        cl.user_session.set("loop_lock", lock)
    return lock


async def busy() -> None:
    await cl.Message(content="The loop is still working on your last request; one moment.").send()


async def start() -> None:
    """Start a closed-loop run on this session's own sandbox (analysts and admins)."""
    if not auth.can_analyse(principal()):
        await cl.Message(content="Starting a loop run needs the analyst role.").send()
        return
    lock = loop_lock()
    if lock.locked():
        await busy()
        return
    async with lock:
        old: LoopSession | None = cl.user_session.get("loop")
        if old is not None and await asyncio.to_thread(old.waiting) == "approval":
            await cl.Message(
                content=f"Run {render.md_text(old.run_id, 60)} still waits for a decision on "
                "its plan above first."
            ).send()
            return
        if old is not None:
            await asyncio.to_thread(old.close)
        loop = LoopSession(get_settings())
        cl.user_session.set("loop", loop)
        await guarded(loop, run_to_gate(loop))


async def run_to_gate(loop: LoopSession) -> None:
    async with cl.Step(name="sandbox.start", type="tool", show_input=False) as step:
        url = await asyncio.to_thread(loop.open)
        await step.stream_token(
            f"Sandbox API on {render.md_text(url)}; running "
            f"{loop.history_days:g} simulated days of history ...\n\n"
        )
        await asyncio.to_thread(loop.build_history)
        await step.stream_token("History ready.")
    async with cl.Step(
        name="loop: observe, triage, plan, gate", type="run", show_input=False
    ) as step:
        state = await asyncio.to_thread(loop.start)
        await step.stream_token(
            f"Run {render.md_text(state['run_id'], 60)}: {render.PHASE_LABELS[phase(state)]}."
        )
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
        await cl.Message(
            content=f"**The closed loop failed:** {render.md_text(what, 400)}",
            actions=[loop_action()],
        ).send()


async def show_state(loop: LoopSession, state: dict[str, Any]) -> None:
    """Show the plan with Approve/Reject (approvers), or carry on to the verdict when no approval is needed."""
    waiting = phase(state)
    if waiting == "approval":
        run_id = state["run_id"]
        if auth.can_approve(principal()):
            buttons = [
                cl.Action(
                    name="approve_plan", payload={"run_id": run_id}, label="Approve", icon="check"
                ),
                cl.Action(name="reject_plan", payload={"run_id": run_id}, label="Reject", icon="x"),
            ]
            ask = "**Approve this change?** Nothing changes in the helpdesk until you decide."
        else:
            buttons = []
            ask = "**An approver decides this change.** Nothing changes in the helpdesk until one does."
        message = cl.Message(content=render.plan_md(state) + "\n\n" + ask, actions=buttons)
        await message.send()
        cl.user_session.set("plan_message", message)
        return
    await cl.Message(content=render.plan_md(state)).send()
    if waiting == "evidence":
        state = await watch(loop, state)
    await show_verdict(state)


async def decide(action: cl.Action, approve: bool) -> None:
    """Record an approver's decision and follow the run to its verdict."""
    if not auth.can_approve(principal()):
        await cl.Message(content="Not applied: deciding a plan needs the approver role.").send()
        return
    loop: LoopSession | None = cl.user_session.get("loop")
    if loop is None:
        await cl.Message(
            content="No closed loop runs in this chat; start one first.", actions=[loop_action()]
        ).send()
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
        async with cl.Step(
            name="approval: approved, executing" if approve else "approval: rejected",
            type="tool",
            show_input=False,
        ) as step:
            state = await asyncio.to_thread(loop.decide, run_id, approve, operator())
            await step.stream_token(f"Recorded; the run: {render.PHASE_LABELS[phase(state)]}.")
    except DecisionRefused as exc:
        await cl.Message(content=f"Not applied: {render.md_text(str(exc), 300)}").send()
        return
    if approve and phase(state) == "evidence":
        await show_status(loop)
    state = await watch(loop, state)
    await show_verdict(state)


async def watch(loop: LoopSession, state: dict[str, Any]) -> dict[str, Any]:
    """Let the sandbox run on and hand the run its evidence until it decides (bounded)."""
    for _ in range(MAX_EVIDENCE_ROUNDS):
        if phase(state) != "evidence":
            break
        async with cl.Step(
            name="watchdog: measuring the change", type="tool", show_input=False
        ) as step:
            await step.stream_token(
                f"The change is live for a treatment group; the sandbox runs "
                f"{loop.observe_days:g} more simulated days with a control group ...\n\n"
            )
            state = await asyncio.to_thread(loop.observe, state["run_id"])
            await step.stream_token(f"Measured; the run: {render.PHASE_LABELS[phase(state)]}.")
    return state


async def show_verdict(state: dict[str, Any]) -> None:
    async with cl.Step(
        name="Full run report", type="tool", show_input=False, language="text"
    ) as step:
        step.output = render_run(state)
    await cl.Message(
        content=render.verdict_md(state), actions=[loop_action(), *control_actions()]
    ).send()


async def show_status(loop: LoopSession | None = None) -> None:
    """The scope's autonomy, kill switch and this chat's run with its rollout."""
    loop = loop or cl.user_session.get("loop")
    settings = get_settings()
    scope = loop.scope if loop else settings.default_scope
    async with cl.Step(name="store.rollout_status", type="tool", show_input="json") as step:
        step.input = {"scope": scope, "run_id": loop.run_id if loop else None}
        status = await asyncio.to_thread(
            control.scope_status, settings, scope, loop.run_id if loop else None
        )
        step.output = (
            f"mode {status['mode']}, kill switch {'on' if status['kill_switch'] else 'off'}"
        )
    await cl.Message(content=control.status_md(status), actions=control_actions()).send()


async def kill_switch(on: bool) -> None:
    """Turn the kill switch of this chat's scope on or off (admins only, audited)."""
    if not auth.can_switch_kill(principal()):
        await cl.Message(content="Not applied: the kill switch needs the admin role.").send()
        return
    loop: LoopSession | None = cl.user_session.get("loop")
    settings = get_settings()
    scope = loop.scope if loop else settings.default_scope
    async with cl.Step(name="governance.set_policy", type="tool", show_input="json") as step:
        step.input = {"scope": scope, "kill_switch": on, "by": operator(), "channel": "chat"}
        now = await asyncio.to_thread(control.set_kill_switch, settings, scope, on, operator())
        step.output = f"kill switch {'on' if now else 'off'}"
    flip = cl.Action(
        name="kill_switch",
        payload={"on": not now},
        label="Release the kill switch" if now else "Kill switch",
        icon="octagon-x",
    )
    words = (
        "**Kill switch ON** for scope {}: every write of this scope stops until it is released."
        if now
        else "Kill switch released for scope {}: writes within the policy may run again."
    )
    await cl.Message(content=words.format(render.md_text(scope, 60)), actions=[flip]).send()


async def show_pending() -> None:
    """Plans waiting for an approval."""
    settings = get_settings()
    async with cl.Step(name="store.pending_approvals", type="tool", show_input="json") as step:
        step.input = {"status": "pending"}
        pending = await asyncio.to_thread(control.pending_approvals, settings)
        step.output = f"{len(pending)} pending"
    await cl.Message(content=control.pending_md(pending, auth.can_approve(principal()))).send()
