"""Shared pytest fixtures: where the bundled and the large shared logs live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DATA = REPO_ROOT / "closedloop" / "data"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def bundled_data() -> Path:
    """Small logs shipped inside the package (always present)."""
    return BUNDLED_DATA


@pytest.fixture
def shared_data() -> Path:
    """Large public logs beside the clone; skipped with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found at {SHARED_DATA} (only present beside the dev clone)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store at the latest schema, migrated once; tests copy it (migrations take ~1 s)."""
    from closedloop.store.db import open_store

    path = tmp_path_factory.mktemp("template") / "t.db"
    engine = open_store(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path
