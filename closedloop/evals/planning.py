"""Where the loop cases of one world get their plan: planned once per process and reused, or
planned afresh under a mutant that breaks planning; and the settings of a case whose model
fails (a model server on loopback, or a port nobody listens on)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from closedloop.evals.cases import EvalCase
from closedloop.evals.mutants import Mutant, applied, stage
from closedloop.evals.world import Planned, plan_world
from closedloop.settings import Settings


@contextmanager
def model_settings(case: EvalCase, base: Settings) -> Iterator[tuple[Settings, Any]]:
    """The settings a case runs with: a failing model server for the model attacks."""
    kind = case.attack.kind if case.attack else None
    if kind not in ("model_down", "model_slow", "model_malformed"):
        yield base, None
        return
    from pydantic import SecretStr

    from closedloop.evals.hostile import ModelServer, closed_port
    from closedloop.sandbox.server import SandboxServer

    update = {"openai_api_key": SecretStr("eval-key"), "model_max_retries": 1}
    if kind == "model_down":
        yield (
            base.model_copy(
                update={**update, "openai_base_url": f"http://127.0.0.1:{closed_port()}/v1"}
            ),
            None,
        )
        return
    server = ModelServer(
        "slow" if kind == "model_slow" else "malformed", delay_s=case.attack.delay_s
    )
    with SandboxServer(app=server.app()) as http:
        yield base.model_copy(update={**update, "openai_base_url": f"{http.url}/v1"}), server


def group_key(case: EvalCase) -> str:
    attack = case.attack.model_dump_json() if case.attack else ""
    return f"{case.world.key()}|{attack}"


#: Planned worlds of this process (unbroken planning), reused by every later run and by the
#: mutants that break only the gate or what follows it.
PLANNED: dict[str, Planned] = {}
_CACHE_DIR: Path | None = None


def _cache_dir() -> Path:
    global _CACHE_DIR
    if _CACHE_DIR is None:
        _CACHE_DIR = Path(tempfile.mkdtemp(prefix="closedloop-eval-plans-"))
        atexit.register(shutil.rmtree, _CACHE_DIR, True)
    return _CACHE_DIR


def planned_world(
    case: EvalCase, settings: Settings, workdir: Path, mutant: str | Mutant | None, cacheable: bool
) -> Planned:
    reuse = cacheable and stage(mutant) != "plan"
    key = group_key(case)
    if reuse and key in PLANNED:
        return PLANNED[key]
    if reuse:
        with applied(None):
            planned = plan_world(
                case.world, settings, _cache_dir() / f"p{len(PLANNED)}", attack=case.attack
            )
        PLANNED[key] = planned
        return planned
    return plan_world(case.world, settings, workdir / "plan", attack=case.attack)
