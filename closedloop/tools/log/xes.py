"""Safe XES reading: reject hostile XML first, then read with pm4py.

XES from outside is untrusted. Before pm4py sees a file we scan its prolog with
expat and refuse any DOCTYPE or ENTITY declaration (XES needs neither; they
are how entity-expansion "billion laughs" and external-entity attacks work),
and check that the document ends with ``</log>`` (a truncated upload fails
here with a line number instead of half a log). One streaming pass over the
(decompressed) bytes also bounds the element nesting depth (``MAX_DEPTH``: a
deeply nested document crashes the readers' recursion) and the decompressed
size (``MAX_DECOMPRESSED_BYTES``: a gzip bomb stops there), in bounded memory. Reading then uses pm4py's
Rust backend (``rustxes``, ~10x faster) and falls back to pm4py's lxml
iterparse reader when that backend is missing or fails.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from xml.parsers import expat

import numpy as np
import pandas as pd

from closedloop.tools.errors import EventLogError
from closedloop.tools.log.pm4pylazy import submodule

_CHUNK = 1 << 16
_TAIL = 4096
MAX_DEPTH = 100  # XES needs ~6 levels (log, trace, event, attribute, list, value)
MAX_DECOMPRESSED_BYTES = 2 << 30  # 2 GiB of text; BPI 2012 (262k events) is ~74 MB
# Real logs inflate 20-45x (BPI 2012 22x, helpdesk 43x); a gzip bomb ~1000x. Past
# RATIO_FLOOR bytes, more than MAX_RATIO times the compressed size is refused.
MAX_RATIO = 200
RATIO_FLOOR = 64 << 20
_LT, _GT, _SLASH, _BANG, _QUESTION = (ord(c) for c in "<>/!?")
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


def check_inflation(path: Path, size: int, compressed: int) -> None:
    """Refuse a compressed file once it has inflated to ``size`` bytes beyond the limits."""
    if size > MAX_DECOMPRESSED_BYTES or (size > RATIO_FLOOR and size > MAX_RATIO * compressed):
        raise EventLogError(
            f"{path}: a {compressed:,}-byte file inflates to more than {size >> 20:,} MB "
            f"(limits: {MAX_DECOMPRESSED_BYTES >> 20:,} MB, or {MAX_RATIO}x the compressed "
            "size); refused as a gzip bomb. Decompress it yourself if the log is real"
        )


def _survey(path: Path, *, max_depth: int = MAX_DEPTH) -> bytes:
    """Stream the (decompressed) document once: refuse it when it nests deeper than
    ``max_depth`` or inflates past ``check_inflation``'s limits; return its last few KB.

    Depth is counted from the bytes (``<x`` opens, ``</`` and ``/>`` close), vectorised
    per chunk, so a hostile document is refused before any XML parser recurses into it.
    """
    tail, size, depth, carry = b"", 0, 0, b""
    compressed = path.stat().st_size
    gz = path.name.lower().endswith(".gz")
    try:
        with _open(path) as stream:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if gz:
                    check_inflation(path, size, compressed)
                data = carry + chunk
                depth, deepest = _depths(data[:-1], depth)
                carry = data[-1:]
                if deepest > max_depth:
                    raise EventLogError(
                        f"{path}: elements nested more than {max_depth} deep (an XES log needs "
                        "about 6); refused as malformed or hostile"
                    )
                tail = (tail + chunk)[-_TAIL:]
    except (OSError, EOFError, zlib.error) as exc:
        raise EventLogError(
            f"{path}: cannot decompress/read: {exc} (truncated or not gzip?)"
        ) from None
    return tail


def _depths(data: bytes, depth: int) -> tuple[int, int]:
    """Element depth after ``data`` (starting at ``depth``) and the deepest point reached."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if not len(arr):
        return depth, depth
    lt = np.flatnonzero(arr[:-1] == _LT)
    after = arr[lt + 1]
    opens = lt[(after != _SLASH) & (after != _BANG) & (after != _QUESTION)]
    closes = lt[after == _SLASH]
    gt = np.flatnonzero(arr[1:] == _GT) + 1
    selfclose = gt[arr[gt - 1] == _SLASH]
    pos = np.concatenate([opens, closes, selfclose])
    if not len(pos):
        return depth, depth
    delta = np.concatenate(
        [np.ones(len(opens)), -np.ones(len(closes)), -np.ones(len(selfclose))]
    ).astype(np.int64)
    order = np.argsort(pos, kind="stable")
    levels = depth + np.cumsum(delta[order])
    return int(levels[-1]), int(max(levels.max(), depth))


def check_xes(path: Path) -> None:
    """Refuse DTD/ENTITY declarations, non-XES and truncated documents (cheap: prolog + tail)."""
    root = _scan(path, stop_at_root=True)
    if root is None:
        raise EventLogError(f"{path}: no XML element found (empty document?)")
    if root.rpartition(":")[2] != "log":
        raise EventLogError(f"{path}: root element is <{root}>, not <log>: not an XES document")
    if not _END_RE.search(_survey(path)):
        # Slow path: the full scan names the line of a truncation; a document that is
        # well-formed after all (say, a long trailing comment) passes.
        _scan(path, stop_at_root=False)


_PANIC = re.compile(rb"thread '[^']*' panicked at .*?(?:backtrace\.\n|\Z)", re.DOTALL)


@contextmanager
def rust_panics_silenced() -> Iterator[None]:
    """Capture file descriptor 2 while rustxes runs: a Rust panic (e.g. a date past 2262)
    prints a stack backtrace there before it becomes a Python exception we handle. What
    else was written meanwhile is passed on; the panic text is dropped."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            rest = _PANIC.sub(b"", sink.read())
            if rest.strip():
                os.write(2, rest)


def read_xes(path: Path) -> pd.DataFrame:
    """Read a checked XES file into pm4py's dataframe layout (one row per event)."""
    check_xes(path)
    try:
        import rustxes  # noqa: F401

        rust_ok = True
    except ImportError:
        rust_ok = False
    if rust_ok:
        try:
            with rust_panics_silenced():
                # pm4py.read_xes(variant="rustxes") without pm4py's package start-up
                rust = submodule("objects.log.importer.xes.variants.rustxes")
                return rust.apply(str(path), {"return_legacy_log_object": False})
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - rustxes panics raise pyo3 PanicException(BaseException)
            _scan(path, stop_at_root=False)  # a well-formedness error with line number, if any
    import pm4py  # the fallback reader: pm4py's lxml parser

    try:
        return pm4py.read_xes(str(path), variant="iterparse", show_progress_bar=False)
    except Exception as exc:  # noqa: BLE001 - lxml, date parsing, pm4py internals: never escape raw
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise EventLogError(f"{path}: cannot read XES{where}: {exc}") from None
