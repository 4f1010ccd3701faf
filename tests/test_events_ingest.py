"""Pushed events over real loopback HTTP: idempotent batches, errors by index and field, size
limits, concurrent duplicates, paging, mining a pushed source like a file, migration 0003."""

from __future__ import annotations

import random
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn
from alembic import command
from sqlalchemy import inspect
from sqlmodel import select

from closedloop.api import ingest
from closedloop.api.app import create_app
from closedloop.settings import Settings
from closedloop.store.db import get_engine, open_store, transaction
from closedloop.store.migrate import alembic_config
from closedloop.store.models import Alert, Insight, MiningRun, Opportunity, PushedEventRow
from closedloop.tools.log.ingest_events import frame_from_pushed
from closedloop.tools.mining.mine import mine, mine_file
from tests.test_api import KEY_ENTRIES, auth, free_port, serving

THRESHOLD = 1.5


@pytest.fixture
def settings(tmp_path: Path, migrated_db: Path) -> Settings:
    shutil.copyfile(migrated_db, tmp_path / "t.db")
    return Settings(DATABASE_URL=f"sqlite:///{tmp_path}/t.db", CLOSEDLOOP_HOME=str(tmp_path),
                    CLOSEDLOOP_API_KEYS=KEY_ENTRIES)


@pytest.fixture
def base(settings: Settings) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    with serving(server) as url:
        yield url


def make_events(cases: int = 40, seed: int = 7) -> list[dict[str, Any]]:
    """A small process with starts, resources, case attributes and a slow 'Review'."""
    rng = random.Random(seed)
    t0 = datetime(2024, 3, 1, 8, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for c in range(cases):
        now = t0 + timedelta(hours=3 * c)
        tier = rng.choice(["gold", "silver"])
        for activity in ["Register", "Review", "Approve", "Close"] + (["Review"] if c % 5 == 0 else []):
            wait = rng.uniform(2, 9) if activity == "Review" else rng.uniform(0.1, 1)
            start = now + timedelta(hours=wait)
            end = start + timedelta(hours=rng.uniform(0.2, 1.5))
            out.append({"event_id": f"ev-{len(out)}", "case_id": f"case-{c:03d}", "activity": activity,
                        "start_timestamp": start.isoformat(), "timestamp": end.isoformat(),
                        "resource": f"clerk-{rng.randint(1, 4)}", "attributes": {"tier": tier}})
            now = end
    return out


def stored(settings: Settings, source: str) -> list[PushedEventRow]:
    with transaction(get_engine(settings.resolved_database_url())) as s:
        return list(s.exec(select(PushedEventRow).where(PushedEventRow.source == source)
                           .order_by(PushedEventRow.id)).all())


def test_a_replayed_batch_inserts_nothing_twice(base: str, settings: Settings) -> None:
    events = make_events(5)
    with httpx.Client(base_url=base, headers=auth("analyst"), timeout=30) as client:
        first = client.post("/events", json={"source": "erp", "events": events})
        again = client.post("/events", json={"source": "erp", "events": events})
        partly = client.post("/events/erp", json=events[-3:] + [{**events[0], "event_id": "new-1"}])
        other = client.post("/events", json={"source": "crm", "events": events[:2]})
    assert first.status_code == 200, first.text
    assert first.json() | {} == {"source": "erp", "received": len(events), "inserted": len(events),
                                 "duplicates": 0, "conflicts": []}
    assert again.json()["inserted"] == 0 and again.json()["duplicates"] == len(events)
    assert again.json()["conflicts"] == []
    assert (partly.json()["inserted"], partly.json()["duplicates"]) == (1, 3)
    assert other.json()["inserted"] == 2  # event ids are unique per source, not across sources
    assert [r.event_id for r in stored(settings, "erp")] == [e["event_id"] for e in events] + ["new-1"]


def test_a_known_id_with_other_content_is_a_reported_conflict_and_the_first_is_kept(
        base: str, settings: Settings) -> None:
    events = make_events(2)
    changed = {**events[1], "activity": "Something else"}
    with httpx.Client(base_url=base, headers=auth("analyst"), timeout=30) as client:
        client.post("/events", json={"source": "erp", "events": events})
        answer = client.post("/events", json={"source": "erp", "events": [changed, events[2]]}).json()
        within = client.post("/events", json={"source": "erp", "events": [
            {**events[0], "event_id": "x"}, {**events[0], "event_id": "x"}]}).json()
    assert answer["conflicts"] == [changed["event_id"]] and answer["duplicates"] == 2
    assert within["inserted"] == 1 and within["duplicates"] == 1 and within["conflicts"] == []
    rows = {r.event_id: r for r in stored(settings, "erp")}
    assert rows[changed["event_id"]].activity == events[1]["activity"]


def test_validation_errors_name_the_item_index_and_field_and_store_nothing(
        base: str, settings: Settings) -> None:
    events = make_events(2)
    events[1] = {**events[1], "timestamp": "2024-03-01T10:00:00"}  # no zone
    events[3] = {**events[3], "event_id": "x" * 201}
    events[4] = {k: v for k, v in events[4].items() if k != "activity"}
    events[5] = {**events[5], "attributes": {"concept:name": "hijack"}}
    with httpx.Client(base_url=base, headers=auth("analyst"), timeout=30) as client:
        answer = client.post("/events", json={"source": "erp", "events": events})
        not_json = client.post("/events", content=b"{nope", headers={"Content-Type": "application/json"})
        no_source = client.post("/events", json={"events": events[:1], "extra": 1})
    assert answer.status_code == 422
    found = {(e["index"], e["field"]) for e in answer.json()["errors"]}
    assert {(1, "timestamp"), (3, "event_id"), (4, "activity"), (5, "attributes.concept:name.[key]")} <= found
    assert "events[1].timestamp" in answer.json()["detail"]
    assert not_json.status_code == 422 and not_json.json()["error"] == "bad_body"
    assert no_source.status_code == 422
    assert {e["field"] for e in no_source.json()["errors"]} == {"source", "extra"}
    assert stored(settings, "erp") == []  # all or nothing


def test_an_oversize_batch_or_body_is_refused_with_413(base: str, settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    one = make_events(1)[0]
    many = [{**one, "event_id": f"e{i}"} for i in range(10_001)]
    with httpx.Client(base_url=base, headers=auth("analyst"), timeout=60) as client:
        too_many = client.post("/events", json={"source": "erp", "events": many})
        monkeypatch.setattr(ingest, "MAX_BODY_BYTES", 2_000)
        too_big = client.post("/events", json={"source": "erp", "events": many[:50]})
        fits = client.post("/events", json={"source": "erp", "events": many[:2]})
    assert too_many.status_code == 413 and "10000" in too_many.json()["detail"]
    assert too_big.status_code == 413 and too_big.json()["error"] == "too_large"
    assert fits.status_code == 200
    assert len(stored(settings, "erp")) == 2


def test_concurrent_duplicate_posts_insert_each_event_once(base: str, settings: Settings) -> None:
    events = make_events(300)
    barrier = threading.Barrier(2)
    answers: list[dict[str, Any]] = []

    def post() -> None:
        with httpx.Client(base_url=base, headers=auth("analyst"), timeout=60) as client:
            barrier.wait()
            response = client.post("/events", json={"source": "erp", "events": events})
            assert response.status_code == 200, response.text
            answers.append(response.json())

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 2
    assert sorted(a["inserted"] for a in answers) == [0, len(events)]
    assert sum(a["duplicates"] for a in answers) == len(events)
    rows = stored(settings, "erp")
    assert len(rows) == len({r.event_id for r in rows}) == len(events)


def test_events_page_back_in_arrival_order_with_a_cursor(base: str) -> None:
    events = make_events(6)
    with httpx.Client(base_url=base, headers=auth("analyst"), timeout=30) as client:
        for start in range(0, len(events), 7):
            client.post("/events", json={"source": "erp", "events": events[start:start + 7]})
        seen: list[str] = []
        after = 0
        while True:
            page = client.get("/events", params={"source": "erp", "after": after, "limit": 5}).json()
            seen += [e["event_id"] for e in page["events"]]
            after = page["next_after"]
            if not page["more"]:
                break
        empty = client.get("/events", params={"source": "nobody"}).json()
        bad = client.get("/events", params={"source": "../x"})
    assert seen == [e["event_id"] for e in events]
    assert empty == {"source": "nobody", "events": [], "next_after": 0, "more": False}
    assert bad.status_code == 422


def test_mining_a_pushed_source_gives_the_report_of_the_same_events_from_a_file(
        base: str, settings: Settings, tmp_path: Path) -> None:
    events = make_events(40)
    path = tmp_path / "log.csv"
    pd.DataFrame([{"case_id": e["case_id"], "activity": e["activity"], "timestamp": e["timestamp"],
                   "start_timestamp": e["start_timestamp"], "resource": e["resource"],
                   "case:tier": e["attributes"]["tier"]} for e in events]).to_csv(path, index=False)
    with httpx.Client(base_url=base, headers=auth("analyst"), timeout=120) as client:
        for start in range(0, len(events), 50):  # several batches and a replay
            client.post("/events", json={"source": "erp", "events": events[start:start + 50]})
        client.post("/events", json={"source": "erp", "events": events[:30]})
        answer = client.post("/mine", json={"source": "erp", "bottleneck_threshold_hours": THRESHOLD})
        unknown = client.post("/mine", json={"source": "nobody"})
    assert answer.status_code == 200, answer.text
    pushed = answer.json()
    from_file = mine_file(path, bottleneck_threshold_hours=THRESHOLD).model_dump(mode="json")
    volatile = {"source", "duration_s"}
    assert {k: v for k, v in pushed["report"].items() if k not in volatile} == \
        {k: v for k, v in from_file.items() if k not in volatile}
    assert pushed["report"]["bottlenecks"][0]["activity"] == "Review"
    assert pushed["report"]["rework"] and pushed["events"] == len(events)
    assert unknown.status_code == 404
    with transaction(get_engine(settings.resolved_database_url())) as s:
        run = s.get(MiningRun, pushed["mining_run_id"])
        insights = s.exec(select(Insight).where(Insight.mining_run_id == run.id)).all()
    assert run.report["bottlenecks"] == pushed["report"]["bottlenecks"]
    assert len(insights) == pushed["insights"] > 0


def test_frame_from_stored_rows_is_the_frame_of_the_pushed_text() -> None:
    events = make_events(3)
    rows = [{**e, "timestamp": datetime.fromisoformat(e["timestamp"]).replace(tzinfo=None),  # SQLite
             "start_timestamp": datetime.fromisoformat(e["start_timestamp"]), "cohort": "control"}
            for e in events]
    frame = frame_from_pushed(rows, "erp")
    text = frame_from_pushed([{**e, "cohort": "control"} for e in events], "erp")
    pd.testing.assert_frame_equal(frame, text)
    assert frame.attrs["source"] == "pushed:erp"
    assert set(frame["case:tier"]) <= {"gold", "silver"} and set(frame["case:cohort"]) == {"control"}
    assert "event_id" not in frame.columns  # bookkeeping, not an event attribute
    assert len(mine(frame, bottleneck_threshold_hours=THRESHOLD).activities) == 4


def test_migration_0003_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    engine = open_store(url)
    with transaction(engine) as s:  # an opportunity only an alert made (no insight)
        opp = Opportunity(fingerprint="f", process="p", pattern="kpi", activity="a", impact=0,
                          feasibility=0.5, risk=0.3, priority=0)
        s.add(opp)
        s.flush()
        s.add(Alert(source="celonis", fingerprint="f", opportunity_id=opp.id))
    cfg = alembic_config(url)
    command.downgrade(cfg, "0002")
    tables = set(inspect(engine).get_table_names())
    assert "pushedevent" not in tables and "alert" not in tables
    insight_id = next(c for c in inspect(engine).get_columns("opportunity") if c["name"] == "insight_id")
    assert insight_id["nullable"] is False
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM opportunity").scalar() == 0
    command.upgrade(cfg, "head")
    assert {"pushedevent", "alert"} <= set(inspect(engine).get_table_names())
    engine.dispose()
