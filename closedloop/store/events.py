"""Pushed events in the store: insert a batch once per (source, event_id), page them back.

A batch is one transaction. Inserting uses the database's own conflict handling
(``INSERT ... ON CONFLICT DO NOTHING``), so two requests racing with the same
events insert each event once, on SQLite and on PostgreSQL. The row id is the
arrival order and the paging cursor; on PostgreSQL each batch first takes a table
lock so ids are committed in the order they are given (a reader paging with
``after`` never skips an id committed late).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from closedloop.store.models import PushedEventRow


@dataclass
class InsertResult:
    """What one batch did: the event ids inserted, those already stored, and the stored ones
    whose content differs from what was sent now (the stored version is kept)."""

    inserted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def insert_events(session: Session, source: str, rows: Sequence[dict[str, Any]]) -> InsertResult:
    """Insert ``rows`` (PushedEventRow fields without ``source``, each with its ``digest``) of
    ``source``; an event id already stored, or repeated in the batch, is not inserted again."""
    table = PushedEventRow.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.connection().exec_driver_sql("LOCK TABLE pushedevent IN SHARE ROW EXCLUSIVE MODE")
        insert = postgresql.insert
    elif dialect == "sqlite":
        insert = sqlite.insert
    else:  # pragma: no cover - the store supports SQLite and PostgreSQL only
        raise RuntimeError(f"pushed events need SQLite or PostgreSQL, not {dialect}")
    params = [{**row, "source": source} for row in rows]
    result = InsertResult()
    if not params:
        return result
    # The write comes first: on SQLite a transaction that read before writing could not wait
    # for a concurrent writer (its snapshot would be stale) and would fail instead.
    stmt = (insert(table).on_conflict_do_nothing(index_elements=["source", "event_id"])
            .returning(table.c.event_id))
    inserted = set(session.connection().execute(stmt, params).scalars().all())
    first: dict[str, str] = {}  # event id -> digest of its first row in this batch
    repeated: list[dict[str, Any]] = []
    for row in rows:
        if row["event_id"] in inserted and row["event_id"] not in first:
            result.inserted.append(row["event_id"])
            first[row["event_id"]] = row["digest"]
        else:
            result.duplicates.append(row["event_id"])
            repeated.append(row)
    stored = dict(first)
    earlier = list(dict.fromkeys(r["event_id"] for r in repeated if r["event_id"] not in first))
    for start in range(0, len(earlier), 500):  # stay under every driver's parameter limit
        chunk = earlier[start:start + 500]
        stored.update(session.exec(select(PushedEventRow.event_id, PushedEventRow.digest).where(
            PushedEventRow.source == source, PushedEventRow.event_id.in_(chunk))).all())
    result.conflicts = list(dict.fromkeys(r["event_id"] for r in repeated
                                          if stored.get(r["event_id"]) != r["digest"]))
    return result


def page_events(session: Session, source: str, after: int = 0, limit: int = 1000) -> list[PushedEventRow]:
    """Up to ``limit`` events of ``source`` that arrived after cursor ``after``, oldest first."""
    query = (select(PushedEventRow).where(PushedEventRow.source == source, PushedEventRow.id > after)
             .order_by(PushedEventRow.id).limit(limit))
    return list(session.exec(query).all())


def count_events(session: Session, source: str) -> int:
    """How many events ``source`` has pushed."""
    return int(session.exec(select(func.count()).select_from(PushedEventRow)
                            .where(PushedEventRow.source == source)).one())
