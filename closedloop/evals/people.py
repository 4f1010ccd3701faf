"""People cases: the rules the rule tool learns from a real log, judged against what people
decided later.

For BPI Challenge 2012 (loan applications) a case's decision is ``approve``
(``A_APPROVED``) or ``decline`` (``A_DECLINED`` / ``A_CANCELLED``). Rules are
learnt (:func:`closedloop.tools.rules.generate_rules`) on every case that
started before the judged month and applied to the cases that started in it:
a firing rule decides its label, otherwise the learnt majority. Agreement with
people is accuracy, Cohen's kappa and the confusion matrix.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from closedloop.evals.cases import PeopleSlice
from closedloop.evals.metrics import agreement
from closedloop.evals.scorers import Score
from closedloop.tools.log import CASE, read_xes
from closedloop.tools.rules import (
    BPI2012_DECISION,
    CASE_START,
    LABEL,
    case_table,
    evaluate_condition,
    generate_rules,
    records,
)

#: Where the real logs live: ``$CLOSEDLOOP_SHARED_DATA`` or ``../shared/data`` beside the repo.
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class DataMissing(FileNotFoundError):
    """The real log of a people case is not on this machine (the case is skipped, not failed)."""


def data_dir() -> Path:
    """The folder with ``logs/`` of real event logs."""
    return Path(os.environ.get("CLOSEDLOOP_SHARED_DATA", DEFAULT_DATA))


@lru_cache(maxsize=2)
def _log(path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = read_xes(Path(path))
    return frame, case_table(frame, BPI2012_DECISION)


def load(slice_: PeopleSlice) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The log's events and its case table (DataMissing when the file is absent)."""
    path = data_dir() / "logs" / slice_.log
    if not path.exists():
        raise DataMissing(f"{path} is absent (set CLOSEDLOOP_SHARED_DATA to the folder with logs/)")
    return _log(str(path))


def judge(slice_: PeopleSlice) -> dict[str, Any]:
    """Learn on the months before ``judge_month``, decide its cases, compare with people."""
    frame, table = load(slice_)
    start = pd.Timestamp(slice_.judge_month + "-01", tz="UTC")
    end = start + pd.offsets.MonthBegin(1)
    decided = table[table[LABEL].notna()]
    fit = decided[decided[CASE_START] < start]
    later = decided[(decided[CASE_START] >= start) & (decided[CASE_START] < end)]
    if fit.empty or later.empty:
        raise ValueError(f"{slice_.log}: no decided cases before or in {slice_.judge_month}")
    ids = set(fit.index) | set(later.index)
    events = frame[frame[CASE].astype(str).isin(ids)]
    rules = generate_rules(
        events,
        BPI2012_DECISION,
        features=["AMOUNT_REQ"],
        time_split=len(fit) / (len(fit) + len(later)),
        min_precision=slice_.min_precision,
        max_depth=slice_.max_depth,
    )
    fallback = rules.majority_label
    truth = later[LABEL].astype(str).tolist()
    predicted, fired = [], []
    for values in records(later):
        hit = next((r for r in rules.rules if evaluate_condition(r.condition, values)), None)
        predicted.append(hit.predicts if hit else fallback)
        fired.append(hit is not None)
    agree = agreement(truth, predicted)
    majority = agreement(truth, [fallback] * len(truth))
    return {
        "fit_cases": len(fit),
        "judged_cases": len(later),
        "rules": [r.condition for r in rules.rules],
        "majority_label": fallback,
        "agreement": agree.model_dump(),
        "majority_accuracy": majority.accuracy,
        "truth": truth,
        "predicted": predicted,
        "fired": sum(fired),
        "fired_right": sum(f and t == p for f, t, p in zip(fired, truth, predicted)),
    }


def score_people(slice_: PeopleSlice) -> tuple[list[Score], dict[str, Any]]:
    """The case's scores: the rules agree with people at least ``min_kappa`` beyond chance, are
    not less accurate than always deciding the majority, and the rules that fire stay as precise
    on the judged month as they were learnt to be (``min_precision``, 5 points of slack)."""
    result = judge(slice_)
    return grade_people(slice_, result), result


def grade_people(slice_: PeopleSlice, result: dict[str, Any]) -> list[Score]:
    """The scores of :func:`score_people` from a judged slice (its stored trace)."""
    a = result["agreement"]
    kappa = a["kappa"] if a["kappa"] is not None else 0.0
    scores = [
        Score(
            scorer="people_kappa",
            passed=kappa >= slice_.min_kappa,
            detail=f"kappa {kappa:.3f} (needs {slice_.min_kappa}) on {result['judged_cases']} "
            f"decisions; rules {result['rules'] or 'none'}",
            data={"kappa": kappa, "accuracy": a["accuracy"], "confusion": a["confusion"]},
        ),
        Score(
            scorer="people_accuracy",
            passed=a["accuracy"] >= result["majority_accuracy"],
            detail=f"accuracy {a['accuracy']:.3f} vs always-{result['majority_label']} "
            f"{result['majority_accuracy']:.3f}",
        ),
    ]
    if result["fired"]:
        precision = result["fired_right"] / result["fired"]
        scores.append(
            Score(
                scorer="rules_hold",
                passed=precision >= slice_.min_precision - 0.05,
                detail=f"rules fired on {result['fired']} cases, right on {precision:.1%} "
                f"(learnt at >= {slice_.min_precision:.0%})",
                data={"precision": precision},
            )
        )
    return scores
