"""Dataset snapshots encrypted at rest when CLOSEDLOOP_SNAPSHOT_KEY is set: written encrypted,
read back transparently by the loop, refused with a clear error naming the snapshot without
the key or with a wrong one; unchanged (plain parquet) without a key."""

from __future__ import annotations

import re
import stat

import pandas as pd
import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from closedloop.agents.context import LoopContext
from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import Dataset
from closedloop.tools.log.snapshot import (
    KEY_SETTING,
    MAGIC,
    SnapshotError,
    configured_key,
    is_encrypted,
    read_snapshot,
    write_snapshot,
)


def _only_ciphertext(raw: bytes) -> bool:
    """The file is the magic line and one Fernet token (base64url): no plaintext byte survives.

    The token's alphabet can spell ``PAR1`` by chance, so that is not what is checked."""
    return (
        raw.startswith(MAGIC)
        and re.fullmatch(rb"[A-Za-z0-9_=-]+\s*", raw[len(MAGIC) :]) is not None
    )


FRAME = pd.DataFrame(
    {"case_id": ["case-secret-42", "case-secret-42"], "activity": ["Open", "Close"]}
)


def test_with_a_key_a_snapshot_is_encrypted_and_reads_back(tmp_path):
    key = Fernet.generate_key().decode()
    path = write_snapshot(FRAME, tmp_path / "datasets", "a" * 64, key)
    assert path.name == "a" * 64 + ".parquet.enc" and is_encrypted(path)
    raw = path.read_bytes()
    assert _only_ciphertext(raw) and b"case-secret-42" not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    pd.testing.assert_frame_equal(read_snapshot(path, key), FRAME)
    # The same digest again keeps the snapshot that is there.
    assert write_snapshot(FRAME, tmp_path / "datasets", "a" * 64, key) == path


def test_a_missing_or_wrong_key_names_the_snapshot(tmp_path):
    key = Fernet.generate_key().decode()
    path = write_snapshot(FRAME, tmp_path, "b" * 64, key)
    with pytest.raises(SnapshotError, match=f"{path}.*encrypted.*{KEY_SETTING}"):
        read_snapshot(path, None)
    with pytest.raises(SnapshotError, match=f"{path} cannot be decrypted.*{KEY_SETTING}"):
        read_snapshot(path, Fernet.generate_key().decode())
    with pytest.raises(SnapshotError, match=f"{KEY_SETTING} is not a Fernet key"):
        read_snapshot(path, "not-a-key")
    with pytest.raises(SnapshotError, match=f"{KEY_SETTING} is not a Fernet key"):
        write_snapshot(FRAME, tmp_path, "c" * 64, "short")
    with pytest.raises(SnapshotError, match="does not exist"):
        read_snapshot(tmp_path / "nothing.parquet", None)
    tampered = bytearray(path.read_bytes())
    tampered[-5] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(SnapshotError, match="cannot be decrypted.*altered"):
        read_snapshot(path, key)  # the right key, but the file was changed


def test_without_a_key_nothing_changes_and_old_plain_snapshots_still_read(tmp_path):
    path = write_snapshot(FRAME, tmp_path, "d" * 64)
    assert path.name == "d" * 64 + ".parquet" and not is_encrypted(path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), FRAME)  # plain parquet, as before
    # A key set later still reads the plain snapshots written before it.
    pd.testing.assert_frame_equal(read_snapshot(path, Fernet.generate_key().decode()), FRAME)
    assert configured_key(Settings(CLOSEDLOOP_HOME=tmp_path)) is None


def test_the_loop_writes_and_reads_encrypted_snapshots(tmp_path):
    key = Fernet.generate_key().decode()
    settings = Settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/s.db",
        CLOSEDLOOP_HOME=str(tmp_path),
        CLOSEDLOOP_SNAPSHOT_KEY=key,
    )
    assert configured_key(settings) == key and key not in repr(settings)
    with SandboxServer(seed=3) as sandbox, LoopRunner(settings) as runner:
        advance_clock(sandbox.url, 21)
        state = runner.start(sandbox.url, scope="helpdesk")
        with Session(runner.engine) as s:
            dataset = s.exec(select(Dataset)).one()
    # Observe wrote it encrypted; triage and the planner read it back to reach a plan.
    assert state["pending"]["kind"] == "approval"
    assert dataset.artifact.endswith(".parquet.enc") and is_encrypted(dataset.artifact)
    with open(dataset.artifact, "rb") as handle:
        assert _only_ciphertext(handle.read())
    frame = LoopContext(settings, runner.engine).frame(dataset.sha256, dataset.artifact)
    assert frame["case:concept:name"].nunique() == dataset.cases
    # Another process with another key (or none) is refused, naming the snapshot.
    for other in ({"CLOSEDLOOP_SNAPSHOT_KEY": Fernet.generate_key().decode()}, {}):
        fresh = LoopContext(Settings(CLOSEDLOOP_HOME=str(tmp_path), **other), runner.engine)
        with pytest.raises(SnapshotError, match=dataset.artifact):
            fresh.frame(dataset.sha256, dataset.artifact)
