"""Shared pytest fixtures: where the bundled and the large shared logs live, a migrated store,
a sandbox in a process of its own, and the Adaptive Card schema."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy.engine import Engine

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DATA = REPO_ROOT / "closedloop" / "data"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CARD_SCHEMA = REPO_ROOT / "closedloop" / "api" / "schemas" / "adaptive-card-1.5.json"


@pytest.fixture
def bundled_data() -> Path:
    """Small logs shipped inside the package (always present)."""
    return BUNDLED_DATA


@pytest.fixture
def shared_data() -> Path:
    """Large public logs beside the clone; skipped with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"../shared/data not found at {SHARED_DATA} (only present beside the dev clone)"
        )
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


@pytest.fixture
def migrated_engine(tmp_path: Path, migrated_db: Path) -> Engine:
    """An engine on this test's own copy of the migrated store (``tmp_path / "s.db"``)."""
    from closedloop.store.db import open_store

    db = tmp_path / "s.db"
    shutil.copyfile(migrated_db, db)
    return open_store(f"sqlite:///{db}")


@pytest.fixture
def sandbox_process() -> Iterator[str]:
    """The helpdesk sandbox (seed 5) in a process of its own on loopback, three weeks of history
    in; yields its URL, for the tests that drive it from CLI processes."""
    from tests.sandbox_process import standalone_sandbox

    with standalone_sandbox("--seed", "5") as client:
        client.post("/clock/advance", json={"hours": 21 * 24}, timeout=60).raise_for_status()
        yield str(client.base_url).rstrip("/")


@pytest.fixture(scope="session")
def validator() -> jsonschema.Draft6Validator:
    """The Adaptive Card 1.5 JSON Schema (itself checked first), to validate cards against."""
    schema = json.loads(CARD_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft6Validator.check_schema(schema)
    return jsonschema.Draft6Validator(schema)
