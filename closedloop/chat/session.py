"""One chat session's closed loop: its own sandbox helpdesk and a loop runner on the process store.

Every method blocks (HTTP calls, simulation, the LangGraph run) and is meant to
run in a worker thread (``asyncio.to_thread``). A lock serialises them, so a
double click cannot resume a run twice; the runner itself refuses a resume the
run is not waiting for.

The graph, the sandbox and the demo clock are imported when a loop opens, not
when the chat starts: mining keeps working even if the loop cannot be built.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Literal

from closedloop.settings import Settings

if TYPE_CHECKING:
    from closedloop.graphs.runner import LoopRunner
    from closedloop.sandbox.server import SandboxServer

Phase = Literal["approval", "evidence", "done"]
MAX_EVIDENCE_ROUNDS = 4


class DecisionRefused(RuntimeError):
    """A decision that cannot apply: the run does not wait for one (answered already)."""


class StaleDecision(DecisionRefused):
    """A decision for a run this session is not running (an old button, or a forged payload)."""


def phase(state: dict[str, Any]) -> Phase:
    """What a run waits for next."""
    pending = state.get("pending")
    if not pending:
        return "done"
    kind = pending.get("kind")
    if kind in ("approval", "evidence"):
        return kind
    raise ValueError(f"run {state.get('run_id')} waits for an unknown interrupt kind {kind!r}")


class LoopSession:
    """A sandbox on loopback plus a LoopRunner, for one chat session."""

    def __init__(
        self,
        settings: Settings,
        *,
        seed: int | None = None,
        history_days: float = 21.0,
        observe_days: float = 14.0,
        scope: str | None = None,
    ) -> None:
        self.settings = settings
        self.seed = settings.seed if seed is None else seed
        self.history_days = history_days
        self.observe_days = observe_days
        self.scope = scope or settings.default_scope
        self.run_id: str | None = None
        self.sandbox: SandboxServer | None = None
        self.runner: LoopRunner | None = None
        self._stack = ExitStack()
        self._lock = threading.Lock()

    @property
    def api_url(self) -> str:
        if self.sandbox is None:
            raise RuntimeError("the loop session is not open")
        return self.sandbox.url

    def open(self) -> str:
        """Start the sandbox and open the runner; returns the sandbox URL."""
        with self._lock:
            if self.sandbox is None:
                from closedloop.graphs.runner import LoopRunner
                from closedloop.sandbox.server import SandboxServer

                try:
                    self.sandbox = self._stack.enter_context(SandboxServer(seed=self.seed))
                    self.runner = self._stack.enter_context(LoopRunner(self.settings))
                except BaseException:
                    self._close()
                    raise
            return self.sandbox.url

    def build_history(self) -> None:
        """Let the sandbox helpdesk run ``history_days`` simulated days before the loop observes it."""
        from closedloop.demo import advance_clock

        with self._lock:
            advance_clock(self.api_url, self.history_days)

    def start(self) -> dict[str, Any]:
        """Observe, triage, plan and gate; returns the state where the run stopped."""
        with self._lock:
            state = self._runner().start(self.api_url, scope=self.scope)
            self.run_id = state["run_id"]
            return state

    def decide(self, run_id: str, approve: bool, by: str, comment: str = "") -> dict[str, Any]:
        """Answer the approval the run waits for (channel ``chat``)."""
        from closedloop.contracts import NotPaused

        with self._lock:
            self._check(run_id)
            answer = {
                "decision": "approve" if approve else "reject",
                "by": by,
                "comment": comment,
                "channel": "chat",
            }
            try:
                return self._runner().resume(run_id, answer, expect="approval")
            except NotPaused as exc:
                raise DecisionRefused(str(exc)) from exc

    def observe(self, run_id: str) -> dict[str, Any]:
        """Let the sandbox run ``observe_days`` more days (block by block in a switchback trial),
        then give the run its evidence."""
        from closedloop.demo import advance_clock, world_days

        with self._lock:
            self._check(run_id)
            pending = self._runner().pending(run_id) or {}
            while True:
                days = world_days(pending, self.observe_days)
                advance_clock(self.api_url, days)
                state = self._runner().resume(run_id, {"advanced_days": days}, expect="evidence")
                pending = state.get("pending") or {}
                if not pending.get("wait_hours"):
                    return state

    def state(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            self._check(run_id)
            runner = self._runner()
            return {**runner.state(run_id), "pending": runner.pending(run_id)}

    def waiting(self) -> Phase:
        """What this session's current run waits for ("done" when there is none or it is closed)."""
        from closedloop.contracts import RunNotFound

        if self.run_id is None or self.runner is None:
            return "done"
        try:
            return phase(self.state(self.run_id))
        except RunNotFound:
            return "done"

    def close(self) -> None:
        """Close the runner and stop the sandbox (idempotent)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.sandbox, self.runner = None, None
            self._stack = ExitStack()

    def _runner(self) -> LoopRunner:
        if self.runner is None:
            raise RuntimeError("the loop session is not open")
        return self.runner

    def _check(self, run_id: str) -> None:
        if self.run_id is None or run_id != self.run_id:
            raise StaleDecision(f"run {str(run_id)[:40]!r} is not the run of this chat session")
