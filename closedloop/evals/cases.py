"""Eval cases as data: YAML files under ``closedloop/evals/cases`` (one case, or ``cases:`` a list).

Three kinds: ``loop`` (a sandbox world run through the whole loop, scored
against the counterfactual truth stored in ``cases/truth/``), ``people`` (rules
learnt on earlier months of a real log, judged against what people decided
later) and ``adversarial`` (the loop under hostile data or a failing model).
Every case names its ``source``: where its expectation comes from.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from closedloop.evals.attacks import Attack
from closedloop.evals.world import World

Kind = Literal["loop", "people", "adversarial"]


class PeopleSlice(BaseModel):
    """Rules learnt on the months before ``judge_month`` and judged on that month."""

    log: str = "bpic2012.xes.gz"
    judge_month: str = Field(description="YYYY-MM: the month whose decisions are the truth")
    max_depth: int = Field(2, ge=1, le=6)
    min_precision: float = Field(0.8, gt=0, le=1)
    min_kappa: float = Field(0.0, description="the rules must agree with people at least this much")


class EvalCase(BaseModel):
    """One case: its world (or log), what happens at the gate, and what is expected."""

    name: str
    source: str = Field(description="where the expectation comes from")
    kind: Kind = "loop"
    tier: Literal["quick", "full"] = Field("full", description="quick: also in the test suite")
    world: World = Field(default_factory=World)
    mode: Literal["assisted", "shadow", "supervised"] = "assisted"
    branch: Literal["approve", "reject", "kill_switch", "rollback_drill", "replay", "none"] = (
        "approve"
    )
    evidence: dict[str, Any] | None = Field(
        None, description="branch replay: a recorded KpiMeasurement the Watchdog judges"
    )
    truth: str | None = Field(
        None,
        description="regime/seed in cases/truth/helpdesk.yaml, or 'connector': computed through "
        "the domain's connector while grading (closedloop.evals.o2c_truth)",
    )
    attack: Attack | None = None
    people: PeopleSlice | None = None
    expect: dict[str, Any] = Field(default_factory=dict)
    # A measured shortfall of the loop, stated in the case (like a strict xfail): the case is
    # expected to fail until the loop improves, and the suite fails once it passes.
    known_gap: str | None = None
    #: The same per scorer (scorer name -> the measured shortfall): those scorers must fail,
    #: every other scorer of the case must pass.
    gaps: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy_sandbox(cls, data: Any) -> Any:
        """``sandbox: {seed, history_days, staffing}`` of the first cases means ``world``."""
        if isinstance(data, dict) and "sandbox" in data:
            data = dict(data)
            data["world"] = {**data.pop("sandbox"), **data.get("world", {})}
        return data

    @model_validator(mode="after")
    def _complete(self) -> EvalCase:
        if self.kind == "people" and self.people is None:
            raise ValueError(f"case {self.name}: a people case needs 'people'")
        if self.kind == "adversarial" and self.attack is None:
            raise ValueError(f"case {self.name}: an adversarial case needs 'attack'")
        return self


def cases_folder() -> Path:
    """The bundled cases."""
    return Path(str(resources.files("closedloop.evals") / "cases"))


def load_cases(folder: Path | None = None, tier: str = "full") -> list[EvalCase]:
    """Eval cases from the YAML files of ``folder`` (the bundled ones by default), the ``quick``
    ones only for ``tier="quick"``; a bad file raises ValueError naming it."""
    root = Path(folder) if folder else cases_folder()
    files = sorted(p for p in root.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no eval cases (*.yaml) in {root}")
    out: list[EvalCase] = []
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        items = data.get("cases") if isinstance(data, dict) and "cases" in data else [data]
        defaults = data.get("defaults", {}) if isinstance(data, dict) else {}
        for i, item in enumerate(items):
            try:
                out.append(EvalCase.model_validate(_merge(defaults, item)))
            except ValidationError as exc:
                raise ValueError(f"{f}: case {i + 1}: {exc}") from exc
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate case names in {root}: {dup}")
    return [c for c in out if tier == "full" or c.tier == "quick"]


def _merge(defaults: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **item}
    for key in ("world", "expect"):
        if isinstance(defaults.get(key), dict) and isinstance(item.get(key), dict):
            merged[key] = {**defaults[key], **item[key]}
    return merged
