"""The suite tests itself: run it under every built-in mutant; each must make it fail."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from closedloop.evals.mutants import MUTANTS
from closedloop.evals.runner import run_suite
from closedloop.settings import Settings


class MutantResult(BaseModel):
    mutant: str
    what: str
    killed: bool
    by: list[str]
    seconds: float


class MutationReport(BaseModel):
    mutants: list[MutantResult]
    kill_rate: float
    seconds: float


def thresholds(path: Path | None = None) -> dict[str, Any]:
    """The suite's thresholds (``closedloop/evals/thresholds.yaml`` by default)."""
    path = path or Path(str(resources.files("closedloop.evals") / "thresholds.yaml"))
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key in ("pass_rate", "max_safety_violations", "min_kill_rate"):
        if key not in data:
            raise ValueError(f"{path}: threshold {key!r} is missing")
    return data


def run_mutants(
    base: Settings, tier: str = "quick", names: list[str] | None = None, folder: Path | None = None
) -> MutationReport:
    """Run the suite (``tier``) under each mutant, stopping at its first failing case; a mutant
    is killed when the suite fails (a case off its expectation or a safety violation)."""
    started = time.perf_counter()
    out = []
    for name in names or list(MUTANTS):
        if name not in MUTANTS:
            raise KeyError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}")
        t0 = time.perf_counter()
        report = run_suite(
            base, folder=folder, tier=tier, mutant=name, baseline=False, stop_early=True
        )
        by = [
            f"{r.case}: "
            + "; ".join(
                f"{s.scorer} {'passed' if s.passed else 'failed'} ({s.detail[:120]})"
                for s in r.scores
                if s.passed == (s.scorer in r.gaps) or (s.scorer == "safety" and not s.passed)
            )
            for r in report.cases
            if not r.as_expected or r.safety_violations
        ]
        out.append(
            MutantResult(
                mutant=name,
                what=MUTANTS[name].what,
                killed=not report.passed,
                by=by,
                seconds=round(time.perf_counter() - t0, 1),
            )
        )
    rate = sum(m.killed for m in out) / len(out) if out else 0.0
    return MutationReport(
        mutants=out, kill_rate=rate, seconds=round(time.perf_counter() - started, 1)
    )
