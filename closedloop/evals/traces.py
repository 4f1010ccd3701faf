"""Stored traces: each case's trace written beside its result, and graded again from it.

``closedloop eval --traces DIR`` writes one JSON file per case: the case's
result (its scores) and its trace (what the loop left behind: end state, the
sandbox's write ledger, the store's rows; for a people case the judged
decisions). ``closedloop eval --regrade DIR`` grades every stored trace again
with the cases and truth as they are now, without running anything, and says
where a score differs from the stored one: re-grading unchanged cases must
reproduce every verdict.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from closedloop.evals.cases import EvalCase, load_cases
from closedloop.evals.scorers import Score
from closedloop.evals.world import Trace

FORMAT = 1


def _file(folder: Path, case: str) -> Path:
    return folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", case) + ".json")


def save_trace(folder: Path, result: Any, trace: Trace | dict[str, Any]) -> Path:
    """Write a case's result and its trace (a loop ``Trace`` or a people case's judged slice)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = dataclasses.asdict(trace) if isinstance(trace, Trace) else trace
    data = {
        "format": FORMAT,
        "case": result.case,
        "kind": result.kind,
        "result": result.model_dump(mode="json"),
        "trace": body,
    }
    path = _file(folder, result.case)
    # Round-trip through JSON now, so grading a stored trace sees exactly what grading saw.
    path.write_text(json.dumps(data, default=str, indent=1), encoding="utf-8")
    return path


def load_trace(path: Path) -> dict[str, Any]:
    """A stored trace file (ValueError naming the file when it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a stored eval trace (invalid JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or "trace" not in data:
        raise ValueError(f"{path}: not a stored eval trace (format {FORMAT} expected)")
    return data


class Regraded(BaseModel):
    """One case graded again from its stored trace."""

    case: str
    same: bool
    stored: list[Score]
    regraded: list[Score]
    differences: list[str] = Field(default_factory=list)


def grade_stored(case: EvalCase, data: dict[str, Any], truths: dict[str, Any]) -> list[Score]:
    """Grade a stored trace of ``case`` again."""
    if data["result"].get("skipped"):
        return []
    if case.kind == "people":
        from closedloop.evals.people import grade_people

        return grade_people(case.people, data["trace"])
    if not data["result"]["scores"] or data["result"]["scores"][0]["scorer"] in (
        "loop_ran",
        "rules_ran",
    ):
        return [Score.model_validate(s) for s in data["result"]["scores"]]  # it never ran
    from closedloop.evals.grading import grade_loop

    return grade_loop(case, Trace(**data["trace"]), truths)


def _compare(stored: list[Score], again: list[Score]) -> list[str]:
    a = {s.scorer: s for s in stored}
    b = {s.scorer: s for s in again}
    out = [f"{k}: only in the stored result" for k in sorted(set(a) - set(b))]
    out += [f"{k}: only when graded again" for k in sorted(set(b) - set(a))]
    for k in sorted(set(a) & set(b)):
        if a[k].passed != b[k].passed or a[k].detail != b[k].detail:
            out.append(
                f"{k}: stored {'pass' if a[k].passed else 'fail'} ({a[k].detail[:120]}), "
                f"now {'pass' if b[k].passed else 'fail'} ({b[k].detail[:120]})"
            )
    return out


def regrade(folder: Path, cases_folder: Path | None = None) -> list[Regraded]:
    """Grade every stored trace in ``folder`` again (the cases of ``cases_folder``, the bundled
    ones by default); each says whether every score equals the stored one."""
    from closedloop.evals.truth import load_truth

    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no stored eval traces (*.json) in {folder}")
    by_name = {c.name: c for c in load_cases(cases_folder)}
    truths: dict[str, Any] | None = None
    out = []
    for f in files:
        data = load_trace(f)
        case = by_name.get(data["case"])
        if case is None:
            raise ValueError(f"{f}: case {data['case']!r} is not among the cases any more")
        if case.truth and truths is None:
            truths = load_truth()["worlds"]
        stored = [Score.model_validate(s) for s in data["result"]["scores"]]
        again = grade_stored(case, data, truths or {})
        diff = _compare(stored, again)
        out.append(
            Regraded(case=case.name, same=not diff, stored=stored, regraded=again, differences=diff)
        )
    return out
