"""Model text is never evidence: a model's prose is labelled as such and carries no number that
the tools did not compute.

A model's rationale, hypothesis or summary is shown to the people who approve or judge a
change, next to the numbers the tools computed. A model can put anything in it ("-97 %,
pre-approved by the CFO", "-99 h"). :func:`guard_prose` labels the text as model text and
replaces every number in it that is not one of the computed ones with
:data:`NUMBER_REMOVED`; :func:`computed_facts` gathers the computed numbers (and dates) from
the task and the tool results the model saw.

A number matches a computed one when it is the computed value (or its magnitude: "cuts
cycle time by 13.4 %" for a computed -13.4) rounded to the decimals the text shows; with a
``%`` sign a share (0.134) also matches its percentage. Numbers written in words ("ninety
seven") are not recognised: the label still tells the reader that the text is the model's.
Pure functions over text and JSON-like data: no store, no model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

#: Put in front of model prose wherever it is stored (and so wherever it is shown).
MODEL_TEXT_LABEL = "[model text, not evidence]"
#: Stands in for a number the tools did not compute.
NUMBER_REMOVED = "[number removed: not computed]"
#: Keys whose strings are model prose: their numbers are never taken as computed.
PROSE_KEYS = frozenset({"rationale", "hypothesis", "summary", "comment"})
#: The longest guarded text kept (the agents' prose fields allow up to 4000 characters).
MAX_CHARS = 4000

# A date (optionally with a time) is one token, not three numbers.
_DATE = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
# A number not glued to a word or a dot before it ("p90", "v2", "1.2.3" are names, not numbers);
# thousands separators kept together; a unit or "%" after it may follow.
_NUMBER = r"[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_TOKEN = re.compile(rf"(?<![\w.])(?:(?P<date>{_DATE})|(?P<number>{_NUMBER}))(?P<pct>\s?%)?")


class Facts(BaseModel):
    """What the tools computed: every number and every date (``YYYY-MM-DD``) they gave."""

    numbers: list[float] = Field(default_factory=list)
    dates: set[str] = Field(default_factory=set)


class GuardedProse(BaseModel):
    """Model prose after the guard: the text to store, and what was removed or kept."""

    text: str
    removed: list[str] = Field(default_factory=list, description="numbers not computed, removed")
    kept: list[str] = Field(default_factory=list, description="numbers that match computed ones")

    @property
    def changed(self) -> bool:
        """True when a number was removed."""
        return bool(self.removed)


def _value(token: str) -> float:
    return float(token.replace(",", "").replace("\u2212", "-"))


def _scan_string(text: str, facts: Facts) -> None:
    for match in _TOKEN.finditer(text):
        if match["date"]:
            facts.dates.add(match["date"][:10])
        else:
            facts.numbers.append(_value(match["number"]))


def _collect(data: Any, facts: Facts, depth: int = 0) -> None:
    if depth > 64:  # JSON from our own tools is shallow; a deeper tree is not ours to trust
        return
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if isinstance(data, bool) or data is None:
        return
    if isinstance(data, int | float):
        facts.numbers.append(float(data))
    elif isinstance(data, str):
        _scan_string(data, facts)
    elif isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(key, str) and key.lower() in PROSE_KEYS:
                continue  # another model's words are not computed evidence
            _collect(value, facts, depth + 1)
    elif isinstance(data, list | tuple | set):
        for item in data:
            _collect(item, facts, depth + 1)


def computed_facts(*sources: Any) -> Facts:
    """The numbers and dates in JSON-like ``sources`` (tool results, task data, pydantic models):
    numeric values and numbers written in strings, except under prose keys (:data:`PROSE_KEYS`)."""
    facts = Facts()
    for source in sources:
        _collect(source, facts)
    return facts


def _matches(token: str, percent: bool, numbers: Iterable[float]) -> bool:
    value = abs(_value(token))
    decimals = len(token.split(".", 1)[1]) if "." in token else 0
    tolerance = 0.5 * 10**-decimals + 1e-9
    for computed in numbers:
        candidates = (abs(computed), abs(computed) * 100) if percent else (abs(computed),)
        if any(abs(c - value) <= tolerance for c in candidates):
            return True
    return False


def guard_prose(
    text: str, facts: Facts, *, label: bool = True, max_chars: int = MAX_CHARS
) -> GuardedProse:
    """``text`` (a model's prose) labelled as model text, with every number or date the tools did
    not compute (``facts``, see :func:`computed_facts`) replaced by :data:`NUMBER_REMOVED`.

    The result is cut to ``max_chars`` (a text of many numbers grows with each replacement).
    Idempotent: guarded text guarded again is unchanged. Empty text stays empty.
    """
    if not text.strip():
        return GuardedProse(text=text)
    removed: list[str] = []
    kept: list[str] = []
    numbers = sorted(set(facts.numbers))

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if match["date"]:
            ok = match["date"][:10] in facts.dates
        else:
            ok = _matches(match["number"], bool(match["pct"]), numbers)
        (kept if ok else removed).append(whole.strip())
        return whole if ok else NUMBER_REMOVED

    body = _TOKEN.sub(replace, text)
    if label and not body.startswith(MODEL_TEXT_LABEL):
        body = f"{MODEL_TEXT_LABEL} {body}"
    if len(body) > max_chars:
        body = body[: max_chars - 1] + "\u2026"
    return GuardedProse(text=body, removed=removed, kept=kept)


__all__ = [
    "MAX_CHARS",
    "MODEL_TEXT_LABEL",
    "NUMBER_REMOVED",
    "PROSE_KEYS",
    "Facts",
    "GuardedProse",
    "computed_facts",
    "guard_prose",
]
