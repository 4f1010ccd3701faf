"""Readable conditions from the paths of a fitted decision tree (for ``rootcause``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Feature", "conditions", "paths"]


@dataclass
class Feature:
    column: str  # display name (attribute without the case: prefix)
    level: str | None  # None: numeric; else the indicator "column == level"
    integer: bool = False
    has_missing: bool = False


def paths(t: object) -> list[tuple[int, list[tuple[int, bool, float, bool]]]]:
    """Every leaf with its path: (feature, went left, threshold, missing values went this way)."""
    out = []
    stack: list[tuple[int, list]] = [(0, [])]
    missing_left = getattr(t, "missing_go_to_left", None)
    while stack:
        node, path = stack.pop()
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # a leaf
            out.append((node, path))
            continue
        f, thr = int(t.feature[node]), float(t.threshold[node])
        goes_left = bool(missing_left[node]) if missing_left is not None else False
        stack.append((right, [*path, (f, False, thr, not goes_left)]))
        stack.append((left, [*path, (f, True, thr, goes_left)]))
    return out


def conditions(path: list[tuple[int, bool, float, bool]], meta: list[Feature]) -> list[str]:
    """Readable conditions, one per attribute, in the order the tree first tests them."""
    numeric: dict[str, dict[str, object]] = {}
    equal: dict[str, str] = {}
    not_equal: dict[str, list[str]] = {}
    order: list[str] = []
    for f, went_left, thr, with_missing in path:
        feat = meta[f]
        if feat.column not in order:
            order.append(feat.column)
        if feat.level is not None:
            if went_left:
                not_equal.setdefault(feat.column, []).append(feat.level)
            else:
                equal[feat.column] = feat.level
            continue
        bounds = numeric.setdefault(feat.column, {"lo": None, "hi": None, "missing": True})
        if went_left:
            bounds["hi"] = thr if bounds["hi"] is None else min(bounds["hi"], thr)
        else:
            bounds["lo"] = thr if bounds["lo"] is None else max(bounds["lo"], thr)
        bounds["missing"] = bool(bounds["missing"]) and with_missing and feat.has_missing
    by_column = {m.column: m for m in meta}
    out = []
    for col in order:
        if col in equal:
            out.append(f"{col} = {equal[col]}")
        elif col in not_equal:
            levels = sorted(set(not_equal[col]))
            out.append(
                f"{col} != {levels[0]}"
                if len(levels) == 1
                else f"{col} not in {{{', '.join(levels)}}}"
            )
        else:
            b = numeric[col]
            fmt = _number_format(by_column[col].integer)
            lo, hi = b["lo"], b["hi"]
            text = (
                f"{fmt(lo)} < {col} <= {fmt(hi)}"
                if lo is not None and hi is not None
                else f"{col} <= {fmt(hi)}"
                if hi is not None
                else f"{col} > {fmt(lo)}"
            )
            out.append(f"{text} (or unknown)" if b["missing"] else text)
    return out


def _number_format(integer: bool) -> Callable[[float], str]:
    if integer:
        return lambda v: f"{math.floor(v):d}"
    return lambda v: f"{v:.4g}"
