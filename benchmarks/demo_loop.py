"""One run of the closed loop for the truth benchmarks: ``run_demo`` in a store of its own
(offline policy, approval given), read back as the candidates the Planner simulated, the action
it chose and the Watchdog's steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlmodel import Session, create_engine, select

from closedloop.demo import run_demo
from closedloop.settings import Settings
from closedloop.store.models import Simulation

# Days of sandbox history before the change, observed after it, then followed to count the
# cases started in the observed days.
HISTORY_DAYS, OBSERVE_DAYS, DRAIN_DAYS = 21.0, 14.0, 7.0


def demo_loop(
    seed: int,
    regime: str,
    tmp: Path,
    *,
    domain: str,
    scope: str,
    predicted: Callable[[dict[str, Any]], Any],
    **settings: Any,
) -> dict[str, Any]:
    """``run_demo`` of ``domain`` against a sandbox of ``regime``, its store under ``tmp``.

    Returns the outcome; the simulated candidates, each with the prediction ``predicted`` reads
    from its simulation's result; the chosen action with the prediction it acted on (None when
    the loop chose no change); and the watch steps in order. ``settings`` update the loop's
    ``Settings`` (e.g. ``connector``).
    """
    loop_settings = Settings().model_copy(
        update={"database_url": f"sqlite:///{tmp}/loop.db", "home": tmp, **settings}
    )
    state = run_demo(
        loop_settings,
        seed=seed,
        history_days=HISTORY_DAYS,
        observe_days=OBSERVE_DAYS,
        auto_approve=True,
        quiet=True,
        scope=scope,
        domain=domain,
        regime=regime,
    )
    engine = create_engine(loop_settings.database_url)
    with Session(engine) as s:
        sims = s.exec(select(Simulation).where(Simulation.run_id == state["run_id"])).all()
        candidates = [
            {
                "action": r.scenario["action"],
                "params": r.scenario["params"],
                "predicted": predicted(r.result),
            }
            for r in sims
        ]
    engine.dispose()
    step = next((st for st in state["steps"] if st.get("step") == "plan"), {})
    chosen = (
        {
            "action": step["action"],
            "params": step.get("params", {}),
            "predicted": step.get("predicted"),
        }
        if step.get("action") not in (None, "none")
        else None
    )
    return {
        "outcome": state.get("outcome"),
        "candidates": candidates,
        "chosen": chosen,
        "watches": [st for st in state["steps"] if st.get("step") == "watch"],
    }
