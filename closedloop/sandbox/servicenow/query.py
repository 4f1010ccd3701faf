"""The subset of ServiceNow's encoded queries (``sysparm_query``) the sandbox understands.

Conditions are joined by ``^`` (AND); each is ``<field><op><value>`` with ``op``
one of ``=``, ``!=``, ``>=``, ``<=``, ``>``, ``<``, ``IN`` (comma-separated
values), ``STARTSWITH``, ``ISEMPTY``, ``ISNOTEMPTY``; ``ORDERBY<field>`` and
``ORDERBYDESC<field>`` sort. ``^OR``, ``^NQ`` and related-list queries are not
supported and answer 400 (a real instance would silently ignore an invalid
condition; the sandbox prefers to say so). Values compare as text, as the
instance does for ``sys_created_on`` in ``YYYY-MM-DD HH:MM:SS`` form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]
_FIELD = r"[A-Za-z_][A-Za-z0-9_.]*"
_CONDITION = re.compile(
    rf"^(?P<field>{_FIELD}?)(?P<op>ISNOTEMPTY|ISEMPTY|STARTSWITH|IN|!=|>=|<=|=|>|<)(?P<value>.*)$"
)
_UNSUPPORTED = ("OR", "NQ", "RLQUERY")


class QueryError(ValueError):
    """An encoded query the sandbox does not understand (answered with 400)."""


@dataclass(frozen=True)
class Condition:
    """One ``<field><op><value>`` test."""

    field: str
    op: str
    value: str

    def test(self, record: Record) -> bool:
        """True when ``record`` satisfies the condition."""
        found = text(record.get(self.field))
        if self.op == "ISEMPTY":
            return found == ""
        if self.op == "ISNOTEMPTY":
            return found != ""
        if self.op == "IN":
            return found in self.value.split(",")
        if self.op == "STARTSWITH":
            return found.startswith(self.value)
        compare: dict[str, Callable[[str, str], bool]] = {
            "=": str.__eq__, "!=": str.__ne__, ">=": str.__ge__, "<=": str.__le__,
            ">": str.__gt__, "<": str.__lt__,
        }
        return compare[self.op](found, self.value)


@dataclass(frozen=True)
class Query:
    """A parsed encoded query: AND-ed conditions and the sort order."""

    conditions: tuple[Condition, ...] = ()
    order: tuple[tuple[str, bool], ...] = field(default_factory=tuple)  # (field, descending)

    def select(self, records: Iterable[Record]) -> list[Record]:
        """The matching records, sorted (a stable sort: ties keep their insertion order)."""
        out = [r for r in records if all(c.test(r) for c in self.conditions)]
        for name, descending in reversed(self.order):
            out.sort(key=lambda r, n=name: text(r.get(n)), reverse=descending)
        return out

    def lower_bound(self, name: str) -> str | None:
        """The largest ``name>=value`` / ``name>value`` bound (for a fast start in sorted rows)."""
        bounds = [c.value for c in self.conditions if c.field == name and c.op in (">=", ">")]
        return max(bounds) if bounds else None


def text(value: Any) -> str:
    """A record value as the text the instance compares (booleans as ``true``/``false``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_query(encoded: str | None) -> Query:
    """Parse ``sysparm_query`` (QueryError for what the sandbox does not support)."""
    conditions: list[Condition] = []
    order: list[tuple[str, bool]] = []
    for part in (encoded or "").split("^"):
        if not part or part == "EQ":  # EQ only marks the end of the query
            continue
        if part.startswith("ORDERBYDESC"):
            order.append((part.removeprefix("ORDERBYDESC"), True))
            continue
        if part.startswith("ORDERBY"):
            order.append((part.removeprefix("ORDERBY"), False))
            continue
        if part.startswith(_UNSUPPORTED):
            raise QueryError(f"encoded query part {part!r}: only AND (^) conditions are supported")
        match = _CONDITION.match(part)
        if match is None or not match.group("field"):
            raise QueryError(f"encoded query part {part!r} is not <field><operator><value>")
        conditions.append(Condition(match.group("field"), match.group("op"), match.group("value")))
    return Query(tuple(conditions), tuple(order))


def pick_fields(record: Record, fields: str | None) -> Record:
    """The record limited to ``sysparm_fields`` (comma-separated; all fields when empty)."""
    if not fields:
        return dict(record)
    return {name: record.get(name, "") for name in (f.strip() for f in fields.split(",")) if name}


__all__ = ["Condition", "Query", "QueryError", "parse_query", "pick_fields", "text"]
