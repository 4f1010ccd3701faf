"""Safe XES reading: reject hostile XML first, then read with pm4py.

XES from outside is untrusted. Before pm4py sees a file we scan its prolog with
expat and refuse any DOCTYPE or ENTITY declaration (XES needs neither; they
are how entity-expansion "billion laughs" and external-entity attacks work),
and check that the document ends with ``</log>`` (a truncated upload fails
here with a line number instead of half a log). Reading then uses pm4py's
Rust backend (``rustxes``, ~10x faster) and falls back to pm4py's lxml
iterparse reader when that backend is missing or fails.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import IO
from xml.parsers import expat

import pandas as pd

from closedloop.tools.errors import EventLogError

_CHUNK = 1 << 16
_TAIL = 4096
# The document may end with whitespace, comments or processing instructions after </log>.
_END_RE = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?log\s*>(?:\s|<!--.*?-->|<\?.*?\?>)*\Z", re.DOTALL)


class _RootReached(Exception):
    """Internal: the prolog scan reached the root element (its name is the argument)."""


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _guarded_parser() -> expat.XMLParserType:
    """An expat parser that raises on DTDs and entity declarations."""
    parser = expat.ParserCreate()

    def doctype(name: str, *_: object) -> None:
        raise EventLogError(
            f"DOCTYPE declaration <!DOCTYPE {name} ...> refused: XES needs no DTD, and DTDs enable "
            "entity-expansion (billion laughs) and external-entity (XXE) attacks"
        )

    def entity(name: str, *_: object) -> None:
        raise EventLogError(f"ENTITY declaration '{name}' refused (entity expansion / XXE)")

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.ExternalEntityRefHandler = lambda *_: 0  # never fetch anything
    return parser


def _scan(path: Path, *, stop_at_root: bool) -> str | None:
    """Run expat over the file (or only its prolog) and turn problems into EventLogError.

    With ``stop_at_root`` returns the root element's name (None when there is none).
    """
    parser = _guarded_parser()
    if stop_at_root:

        def root(name: str, *_: object) -> None:
            raise _RootReached(name)

        parser.StartElementHandler = root
    try:
        with _open(path) as stream:
            while chunk := stream.read(_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except _RootReached as reached:
        return str(reached.args[0])
    except EventLogError as exc:
        raise EventLogError(f"{path}: line {parser.CurrentLineNumber}: {exc}") from None
    except expat.ExpatError as exc:
        reason = expat.errors.messages[exc.code] if exc.code else str(exc)
        hint = " (file truncated?)" if exc.code in _TRUNCATION_CODES else ""
        raise EventLogError(
            f"{path}: not well-formed XML at line {exc.lineno}, column {exc.offset}: {reason}{hint}"
        ) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise EventLogError(
            f"{path}: cannot decompress/read: {exc} (truncated or not gzip?)"
        ) from None
    return None


_TRUNCATION_CODES = {
    expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS],
    expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN],
    expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR],
}


def _tail(path: Path) -> bytes:
    """The last few KB of the (decompressed) document."""
    try:
        if path.name.lower().endswith(".gz"):
            tail = b""
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(1 << 20):
                    tail = (tail + chunk)[-_TAIL:]
            return tail
        with open(path, "rb") as stream:
            stream.seek(0, 2)
            size = stream.tell()
            stream.seek(max(0, size - _TAIL))
            return stream.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise EventLogError(
            f"{path}: cannot decompress/read: {exc} (truncated or not gzip?)"
        ) from None


def check_xes(path: Path) -> None:
    """Refuse DTD/ENTITY declarations, non-XES and truncated documents (cheap: prolog + tail)."""
    root = _scan(path, stop_at_root=True)
    if root is None:
        raise EventLogError(f"{path}: no XML element found (empty document?)")
    if root.rpartition(":")[2] != "log":
        raise EventLogError(f"{path}: root element is <{root}>, not <log>: not an XES document")
    if not _END_RE.search(_tail(path)):
        # Slow path: the full scan names the line of a truncation; a document that is
        # well-formed after all (say, a long trailing comment) passes.
        _scan(path, stop_at_root=False)


def read_xes(path: Path) -> pd.DataFrame:
    """Read a checked XES file into pm4py's dataframe layout (one row per event)."""
    check_xes(path)
    import pm4py  # heavy import, only when reading XES

    try:
        import rustxes  # noqa: F401

        rust_ok = True
    except ImportError:
        rust_ok = False
    if rust_ok:
        try:
            return pm4py.read_xes(str(path), variant="rustxes")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - rustxes panics raise pyo3 PanicException(BaseException)
            _scan(path, stop_at_root=False)  # a well-formedness error with line number, if any
    try:
        return pm4py.read_xes(str(path), variant="iterparse", show_progress_bar=False)
    except Exception as exc:  # noqa: BLE001 - lxml, date parsing, pm4py internals: never escape raw
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise EventLogError(f"{path}: cannot read XES{where}: {exc}") from None
