"""The Chainlit chat for operations staff: login, history, routing of messages and buttons.

``app.py`` at the repository root imports this module, which registers the Chainlit
callbacks. At import it also adds the chat's routes to Chainlit's server (offline
page, honest footer, process-map pages) and, when ``CLOSEDLOOP_CHAT_USERS`` names
users, turns on password login (``CLOSEDLOOP_CHAT_TRUSTED_HEADER``: header login behind a
proxy, :mod:`closedloop.chat.header_auth`) and the chat history data layer.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import Any

import chainlit as cl
from chainlit.types import ThreadDict

from closedloop.chat import auth, header_auth, history, intents, loop_ui, mining_ui, web
from closedloop.chat.answers import LogAnalysis, rework, what_if, why_slow
from closedloop.chat.mining_ui import log_actions
from closedloop.chat.render import md_text
from closedloop.chat.session import LoopSession
from closedloop.settings import get_settings
from closedloop.tools.errors import EventLogError

log = logging.getLogger("closedloop.chat")

SETTINGS = get_settings()
USERS = auth.configured_users()
HEADER_LOGIN = header_auth.configured_header_login()
web.install(SETTINGS.home, SETTINGS.uses_llm, SETTINGS.openai_model)

WELCOME = (
    "## closedloop\n\n"
    "I find where work waits in an event log, and I can run the whole closed loop "
    "(observe, plan, approve, act, measure) against a **simulated helpdesk** on this machine.\n\n"
    "- **Mine a log:** pick a bundled log below or upload your own (.csv, .xes, .xes.gz, .parquet). "
    "When I cannot tell its columns, I ask you to map them.\n"
    "- **Ask:** *why are cases slow?*, *what if we add two people to second line?*, *show rework*, "
    "*what is pending my approval?*, *rollout status*, *kill switch*.\n"
    "- **Close the loop:** the sandbox builds 21 days of history, the agents propose one change with "
    "a predicted effect, and (in the default assisted mode) nothing changes until an approver approves. "
    "Then the sandbox runs 14 more days with a control group and I show the realized effect next to "
    "the prediction."
)


if USERS or HEADER_LOGIN:
    auth.ensure_session_secret(SETTINGS.home)

    if USERS:

        @cl.password_auth_callback
        def login(username: str, password: str) -> cl.User | None:
            """Chat users from CLOSEDLOOP_CHAT_USERS; their roles ride in the session's user
            metadata."""
            who = auth.authenticate(username, password, USERS)
            if who is None:
                return None
            return cl.User(
                identifier=who.name, metadata={"roles": sorted(who.roles), "provider": "password"}
            )

    if HEADER_LOGIN:

        @cl.header_auth_callback
        async def header_login(headers: Any) -> cl.User | None:
            """The person the trusted proxy header names (CLOSEDLOOP_CHAT_TRUSTED_HEADER), with
            the roles CLOSEDLOOP_CHAT_HEADER_ROLES gives that name."""
            who = header_auth.authenticate_header(headers, HEADER_LOGIN)
            if who is None:
                return None
            return cl.User(
                identifier=who.name, metadata={"roles": sorted(who.roles), "provider": "header"}
            )

    @cl.data_layer
    def chat_history() -> Any:
        """Threads and messages in their own SQLite file, so the history survives a restart."""
        return history.data_layer(SETTINGS.home)
else:

    @cl.data_layer
    def no_chat_history() -> Any:
        """No login, no history: ``DATABASE_URL`` names closedloop's store, which Chainlit would
        otherwise try to use for its own chat history (it expects its own PostgreSQL schema)."""
        return None


def start_actions() -> list[cl.Action]:
    return [*log_actions(), loop_ui.loop_action(), *loop_ui.control_actions()]


@cl.on_chat_start
async def on_chat_start() -> None:
    who = loop_ui.principal()
    roles = ", ".join(sorted(who.roles))
    signed_in = USERS or HEADER_LOGIN
    hello = f"\n\nSigned in as **{md_text(who.name, 80)}** ({roles})." if signed_in else ""
    await cl.Message(content=WELCOME + hello, actions=start_actions()).send()


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    """A past conversation reopened: its messages come from the history; the log and any loop
    run of that session are gone, so offer to start again."""
    await cl.Message(
        content="Welcome back. The messages above are this conversation's history; pick a log "
        "to ask about it again.",
        actions=start_actions(),
    ).send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    files = [e for e in message.elements if getattr(e, "path", None)]
    if files:
        await mining_ui.analyse_upload(files[0].path, files[0].name, [loop_ui.loop_action()])
        return
    async with cl.Step(name="route question", type="llm", show_input="json") as step:
        step.input = {"question": message.content[:500]}
        intent = await asyncio.to_thread(intents.route, message.content, router())
        step.output = intent.model_dump_json(exclude_none=True)
    await dispatch(intent)


@lru_cache(maxsize=1)
def router() -> Any:
    return intents.intent_model(SETTINGS)


async def dispatch(intent: intents.Intent) -> None:
    """Answer one intent with its tools."""
    kind = intent.kind
    if kind == "pending":
        await loop_ui.show_pending()
    elif kind == "status":
        await loop_ui.show_status()
    elif kind == "kill_switch":
        await loop_ui.kill_switch(intent.switch != "off")
    elif kind == "start_loop":
        await loop_ui.start()
    elif kind in ("why_slow", "rework", "what_if", "process_map"):
        analysis: LogAnalysis | None = cl.user_session.get("analysis")
        if analysis is None:
            await cl.Message(
                content="Mine a log first (pick or upload one), then ask about it.",
                actions=log_actions(),
            ).send()
            return
        await answer_about_log(intent, analysis)
    else:
        await cl.Message(
            content="I can answer: *why are cases slow?*, *what if we add two people to "
            "<team>?*, *show rework*, *show the process map*, *what is pending my approval?*, "
            "*rollout status*, *kill switch on/off*; or pick an action below.",
            actions=start_actions(),
        ).send()


async def answer_about_log(intent: intents.Intent, analysis: LogAnalysis) -> None:
    if intent.kind == "process_map":
        content, elements = await mining_ui.with_process_map(
            analysis.report, f"Process map of {md_text(analysis.name, 120)}:", SETTINGS.home
        )
        await cl.Message(content=content, elements=elements).send()
        return
    if intent.kind == "what_if":
        if not intent.people or not intent.target:
            await cl.Message(
                content="Say how many people and where, e.g. *what if we add two people to "
                "second line?*"
            ).send()
            return
        await mining_ui.answer(what_if(analysis, intent.people, intent.target))
        return
    await mining_ui.answer(why_slow(analysis) if intent.kind == "why_slow" else rework(analysis))


@cl.on_chat_end
async def on_chat_end() -> None:
    loop: LoopSession | None = cl.user_session.get("loop")
    if loop is not None:
        await asyncio.to_thread(loop.close)


# --------------------------------------------------------------------------- buttons
@cl.action_callback("bundled_log")
async def on_bundled_log(action: cl.Action) -> None:
    from closedloop.chat import logs, render

    try:
        chosen = logs.bundled(action.payload.get("log"))
    except EventLogError as exc:
        await cl.Message(content=render.log_error_md(str(exc))).send()
        return
    async with loop_ui.working():
        await mining_ui.analyse(
            chosen.path, chosen.filename, upload=False, more_actions=[loop_ui.loop_action()]
        )


@cl.action_callback("upload_log")
async def on_upload_log(action: cl.Action) -> None:
    from closedloop.chat import logs

    async with loop_ui.working():
        files = await cl.AskFileMessage(
            content=f"Upload an event log (.csv, .xes, .xes.gz, .parquet; up to {logs.MAX_UPLOAD_MB} MB).",
            accept=logs.UPLOAD_ACCEPT,
            max_size_mb=logs.MAX_UPLOAD_MB,
            timeout=logs.UPLOAD_TIMEOUT_S,
        ).send()
        if not files:
            await cl.Message(
                content="No file arrived; pick a log when you are ready.", actions=log_actions()
            ).send()
            return
        await mining_ui.analyse_upload(files[0].path, files[0].name, [loop_ui.loop_action()])


@cl.action_callback("start_loop")
async def on_start_loop(action: cl.Action) -> None:
    async with loop_ui.working():
        await loop_ui.start()


@cl.action_callback("approve_plan")
async def on_approve(action: cl.Action) -> None:
    await loop_ui.decide(action, approve=True)


@cl.action_callback("reject_plan")
async def on_reject(action: cl.Action) -> None:
    await loop_ui.decide(action, approve=False)


@cl.action_callback("rollout_status")
async def on_status(action: cl.Action) -> None:
    await loop_ui.show_status()


@cl.action_callback("kill_switch")
async def on_kill_switch(action: cl.Action) -> None:
    await loop_ui.kill_switch(bool(action.payload.get("on", True)))
