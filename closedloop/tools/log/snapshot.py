"""Dataset snapshots: the canonical event frame of a stored dataset, on disk, owner-only and
optionally encrypted at rest.

Without a key a snapshot is ``<digest>.parquet`` as before. With a key
(``CLOSEDLOOP_SNAPSHOT_KEY``: a Fernet key, ``python -c "from cryptography.fernet import
Fernet; print(Fernet.generate_key().decode())"``) it is ``<digest>.parquet.enc``: a short
header, then the parquet bytes encrypted and authenticated with Fernet (AES-128-CBC +
HMAC-SHA256). :func:`read_snapshot` tells the two apart by the header, so plain snapshots
written before a key was set still read, and an encrypted one without the key, or with a
wrong one, fails with a :class:`SnapshotError` naming the snapshot and the setting.
Files are 0600 in a 0700 folder, written to a temporary file and renamed (atomic, safe when
several processes snapshot the same events).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from closedloop.settings import Settings
from closedloop.tools.errors import ToolError

KEY_SETTING = "CLOSEDLOOP_SNAPSHOT_KEY"
#: First bytes of an encrypted snapshot (a parquet file starts with ``PAR1``).
MAGIC = b"CLOSEDLOOP-SNAPSHOT-FERNET-1\n"


class SnapshotError(ToolError):
    """A dataset snapshot cannot be read or written (missing, encrypted without the right key)."""


def configured_key(settings: Settings) -> str | None:
    """The snapshot key of ``settings`` (``CLOSEDLOOP_SNAPSHOT_KEY``; None: not encrypted)."""
    return settings.snapshot_key.get_secret_value() if settings.snapshot_key else None


def _fernet(key: str | None) -> Any:
    if not key:
        return None
    from cryptography.fernet import Fernet

    try:
        return Fernet(key.strip().encode())
    except ValueError as exc:
        raise SnapshotError(
            f"{KEY_SETTING} is not a Fernet key (32 url-safe base64-encoded bytes): {exc}"
        ) from exc


def snapshot_path(folder: Path, digest: str, key: str | None = None) -> Path:
    """Where the snapshot of ``digest`` lives (``.parquet.enc`` when encrypted)."""
    return folder / (f"{digest}.parquet.enc" if key else f"{digest}.parquet")


def write_snapshot(frame: Any, folder: Path, digest: str, key: str | None = None) -> Path:
    """Store ``frame`` as the snapshot of ``digest`` in ``folder`` (encrypted with ``key`` when
    given); an existing snapshot of the same digest is kept. Returns its path."""
    cipher = _fernet(key)
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    artifact = snapshot_path(folder, digest, key)
    if artifact.exists():
        return artifact
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    data = buffer.getvalue()
    if cipher is not None:
        data = MAGIC + cipher.encrypt(data)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{digest[:12]}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp creates it 0600
            out.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, artifact)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return artifact


def is_encrypted(path: str | Path) -> bool:
    """True when the snapshot at ``path`` is encrypted."""
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def read_snapshot(path: str | Path, key: str | None = None) -> Any:
    """The event frame of the snapshot at ``path``, decrypted with ``key`` when encrypted.

    SnapshotError names the snapshot when it is missing, encrypted while no key is set, or
    encrypted with another key (or damaged).
    """
    import pandas as pd
    from cryptography.fernet import InvalidToken

    path = Path(path)
    if not path.is_file():
        raise SnapshotError(f"dataset snapshot {path} does not exist")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return pd.read_parquet(io.BytesIO(data))
    cipher = _fernet(key)
    if cipher is None:
        raise SnapshotError(
            f"dataset snapshot {path} is encrypted; set {KEY_SETTING} to the key it was "
            f"written with"
        )
    try:
        plain = cipher.decrypt(data[len(MAGIC) :])
    except InvalidToken as exc:
        raise SnapshotError(
            f"dataset snapshot {path} cannot be decrypted with the configured {KEY_SETTING} "
            f"(a different key, or the file was altered)"
        ) from exc
    return pd.read_parquet(io.BytesIO(plain))


__all__ = [
    "KEY_SETTING",
    "MAGIC",
    "SnapshotError",
    "configured_key",
    "is_encrypted",
    "read_snapshot",
    "snapshot_path",
    "write_snapshot",
]
