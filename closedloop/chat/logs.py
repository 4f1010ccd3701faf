"""Which logs the chat offers, and reading an uploaded one under its own name.

Chainlit stores an upload as ``.files/<session>/<uuid><ext guessed from MIME>``,
so ``helpdesk.xes.gz`` may arrive as ``<uuid>.gz`` or ``<uuid>.bin``. The reader
picks the format from the name, so the upload is linked into a private temporary
folder under its (sanitised) original name before it is read, and error messages
name the file the person uploaded, not the temporary path.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from closedloop.tools.errors import EventLogError
from closedloop.tools.log import SUFFIXES, ColumnMapping, load_event_log

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
MAX_UPLOAD_MB = 200
UPLOAD_TIMEOUT_S = 600
# react-dropzone / Chainlit accept spec: the MIME families browsers report for these
# files (text/csv, application/gzip, application/octet-stream, ...) with the
# extensions allowed under each; Chainlit's server checks both, the reader checks again.
UPLOAD_EXTENSIONS = [".csv", ".tsv", ".txt", ".xes", ".gz", ".parquet"]
UPLOAD_ACCEPT = {"text/*": UPLOAD_EXTENSIONS, "application/*": UPLOAD_EXTENSIONS}


@dataclass(frozen=True)
class BundledLog:
    """An event log shipped in ``closedloop/data``."""

    key: str
    label: str
    filename: str
    description: str

    @property
    def path(self) -> Path:
        return DATA_DIR / self.filename


BUNDLED: dict[str, BundledLog] = {
    log.key: log
    for log in (
        BundledLog(
            "helpdesk",
            "Helpdesk tickets",
            "helpdesk.xes.gz",
            "4,580 tickets of an Italian software company's help desk (2010-2014)",
        ),
        BundledLog(
            "repair",
            "Repair example",
            "03_repairExample.xes.gz",
            "1,104 repairs of telephones with start and complete events",
        ),
        BundledLog(
            "running",
            "Running example",
            "running-example.csv",
            "6 compensation requests: the classic process-mining textbook example",
        ),
    )
}


def bundled(key: str) -> BundledLog:
    """The bundled log called ``key``; EventLogError for anything else (keys come from the browser)."""
    try:
        return BUNDLED[key]
    except (KeyError, TypeError):
        raise EventLogError(
            f"unknown bundled log {str(key)[:40]!r}; choose one of {', '.join(BUNDLED)}"
        ) from None


def safe_filename(name: str) -> str:
    """The base name of an uploaded file, reduced to letters, digits, ``.``, ``-``, ``_``."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")
    return base[:120] or "upload"


def check_upload(name: str, size: int, max_mb: int = MAX_UPLOAD_MB) -> None:
    """Reject unsupported names and oversized files before reading anything."""
    if not safe_filename(name).lower().endswith(SUFFIXES):
        raise EventLogError(f"{name}: unsupported format; expected one of {', '.join(SUFFIXES)}")
    if size > max_mb * 1024 * 1024:
        raise EventLogError(
            f"{name}: {size / 1024 / 1024:.0f} MB is over the {max_mb} MB upload limit"
        )


@contextmanager
def staged(path: str | Path, name: str) -> Iterator[Path]:
    """``path`` visible as ``<tmp>/<safe name>`` for the duration of the block."""
    folder = Path(tempfile.mkdtemp(prefix="closedloop-upload-"))
    target = folder / safe_filename(name)
    try:
        try:
            os.link(path, target)
        except OSError:  # another filesystem, or links not allowed
            shutil.copyfile(path, target)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_log(
    path: str | Path, name: str | None = None, mapping: ColumnMapping | None = None
) -> pd.DataFrame:
    """Read an event log; with ``name`` (an upload), read it under that name and report errors with it.

    ``mapping`` names the columns detection could not find (the chat's column-mapping step)."""
    if name is None:
        return load_event_log(path, mapping)
    with staged(path, name) as target:
        try:
            frame = load_event_log(target, mapping)
        except EventLogError as exc:
            raise EventLogError(str(exc).replace(str(target), name)) from None
    frame.attrs["source"] = name
    frame.attrs["warnings"] = [
        str(w).replace(str(target), name) for w in frame.attrs.get("warnings", [])
    ]
    return frame
