"""OCEL 2.0 input (JSON, XML, SQLite), flattened on one object type into an event table.

An object-centric log relates each event to any number of objects of several
types (an order, its items, the package). Process mining on the canonical
frame needs one case notion, so the log is flattened as pm4py does
(``pm4py.ocel_flattening``): each object of the chosen type becomes a case, and
each event related to it becomes one of its rows. An event related to two
objects of that type therefore appears in both cases; events related to no
object of that type are not in the frame. Both are counted in the warning.

Untrusted files are checked first: XML with the XES reader's guards (no DTD
or entity declarations, nesting depth, truncation), JSON with a size limit and
nesting caught, SQLite by its header. pm4py's readers do the rest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from closedloop.tools.errors import EventLogError
from closedloop.tools.log.xes import check_xes, rust_panics_silenced

__all__ = ["OCEL_SUFFIXES", "flatten_ocel", "read_ocel"]

OCEL_SUFFIXES = (".jsonocel", ".xmlocel", ".sqlite", ".sqlite3")
MAX_JSON_BYTES = 1 << 30
_SQLITE_HEADER = b"SQLite format 3\x00"


def read_ocel(path: Path) -> object:
    """Read an OCEL 2.0 file (pm4py ``OCEL``) after the safety checks; EventLogError if not."""
    import pm4py

    name = path.name.lower()
    try:
        if name.endswith(".xmlocel"):
            check_xes(path)  # same guards: an OCEL XML root is <log> too
            return pm4py.read_ocel2_xml(str(path))
        if name.endswith(".jsonocel"):
            if path.stat().st_size > MAX_JSON_BYTES:
                raise EventLogError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MB; refused")
            with rust_panics_silenced():  # pm4py reads OCEL JSON with Rust
                return pm4py.read_ocel2_json(str(path))
        with open(path, "rb") as stream:
            if stream.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                raise EventLogError(f"{path}: not an SQLite database (OCEL 2.0 SQLite expected)")
        return pm4py.read_ocel2_sqlite(str(path))
    except EventLogError:
        raise
    except RecursionError:
        raise EventLogError(f"{path}: nested too deeply to be an OCEL 2.0 log") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - json, sqlite3, lxml, Rust panics (pyo3)
        raise EventLogError(f"{path}: cannot read OCEL 2.0: {type(exc).__name__}: {exc}") from None


def flatten_ocel(ocel: object, object_type: str | None, source: str) -> tuple[pd.DataFrame, str]:
    """The event table of ``ocel`` flattened on ``object_type`` and a sentence saying what was
    flattened. Without ``object_type`` a log with one object type uses it; with several the
    error lists them (with their related events) so the user can choose."""
    import pm4py

    relations: pd.DataFrame = ocel.relations  # type: ignore[attr-defined]
    events: pd.DataFrame = ocel.events  # type: ignore[attr-defined]
    per_type = relations.groupby("ocel:type")["ocel:eid"].nunique().sort_values(ascending=False)
    if per_type.empty:
        raise EventLogError(f"{source}: the OCEL log relates no event to any object")
    listing = ", ".join(f"{t!r} ({n} events)" for t, n in per_type.items())
    if object_type is None:
        if len(per_type) > 1:
            raise EventLogError(
                f"{source}: an OCEL log with several object types; choose the case notion "
                f"with object_type (CLI --object-type): {listing}"
            )
        object_type = str(per_type.index[0])
    if object_type not in per_type.index:
        raise EventLogError(f"{source}: no object type {object_type!r}; the log has {listing}")
    flat = pm4py.ocel_flattening(ocel, object_type)
    flat = flat.drop(columns=["case:ocel:type"], errors="ignore")
    related = int(per_type[object_type])
    objects = int(relations.loc[relations["ocel:type"] == object_type, "ocel:oid"].nunique())
    others = [str(t) for t in per_type.index if t != object_type]
    note = (
        f"OCEL 2.0 flattened on object type {object_type!r}: {objects} objects became cases; "
        f"{related} of {len(events)} events relate to one, giving {len(flat)} rows (an event "
        f"related to several {object_type!r} objects appears once per object)"
        + (f"; object types not used as case: {', '.join(map(repr, others))}" if others else "")
    )
    return flat, note
