"""Shadow reviews, the evidence for shadow -> assisted, recorded over REST (a real server on
loopback: approver role, 401/403 change nothing) and from the CLI (`closedloop review`), and
then used by a promotion."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import uvicorn
from sqlmodel import Session, select

from closedloop.api.app import create_app
from closedloop.cli import main
from closedloop.governance import find_policy, policy_for
from closedloop.sandbox.server import bind_socket
from closedloop.settings import Settings
from closedloop.store.db import transaction
from closedloop.store.models import Approval, AuditEvent
from tests.helpers_store import add_plan, add_run, opportunity
from tests.test_api import KEY_ENTRIES, auth


@pytest.fixture
def shadow_store(migrated_engine, tmp_path):
    """A shadow scope with five recorded (shadowed) plans and one kept plan; yields the store
    URL, the plan ids and the engine."""
    with transaction(migrated_engine) as s:
        policy_for(s, "helpdesk", "shadow")
        run = add_run(s, "run-shadow")
        opp = opportunity(s)
        shadowed = [add_plan(s, run, opp, status="shadowed").id for _ in range(5)]
        kept = add_plan(s, run, opp, status="kept").id
    return f"sqlite:///{tmp_path}/s.db", shadowed, kept, migrated_engine


def _reviews(engine) -> list[Approval]:
    with Session(engine) as s:
        return list(s.exec(select(Approval).where(Approval.channel == "shadow-review")).all())


@pytest.fixture
def api(shadow_store, tmp_path):
    url = shadow_store[0]
    settings = Settings(DATABASE_URL=url, CLOSEDLOOP_HOME=tmp_path, CLOSEDLOOP_API_KEYS=KEY_ENTRIES)
    sock = bind_socket()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def test_rest_records_a_review_only_for_an_approver(api, shadow_store):
    _, shadowed, kept, engine = shadow_store
    body = {"plan_id": shadowed[0], "agrees": True, "comment": "fine", "by": "the CFO"}
    assert api.post("/reviews", json=body).status_code == 401
    for role in ("analyst", "admin"):  # no approver role: refused before anything is stored
        r = api.post("/reviews", json=body, headers=auth(role))
        assert r.status_code == 403, r.text
    assert _reviews(engine) == []

    r = api.post("/reviews", json=body, headers=auth("approver"))
    assert r.status_code == 201, r.text
    review = r.json()
    # The authenticated approver is recorded, never the body's "by".
    assert review["by"] == "Paula Approver" and review["agrees"] and review["scope"] == "helpdesk"
    assert review["evidence"]["shadow_reviews"] == 1 and not review["evidence"]["ok"]
    [row] = _reviews(engine)
    assert row.decided_by == "Paula Approver" and row.plan_id == shadowed[0]
    with Session(engine) as s:
        [event] = s.exec(select(AuditEvent).where(AuditEvent.run_id == "run-shadow")).all()
    assert event.payload["channel"] == "api" and event.payload["shadow_review"] == row.id

    again = api.post("/reviews", json=body, headers=auth("approver"))
    assert again.status_code == 409 and "already" in again.json()["detail"]
    not_shadowed = api.post("/reviews", json={**body, "plan_id": kept}, headers=auth("approver"))
    assert not_shadowed.status_code == 409 and "kept" in not_shadowed.json()["detail"]
    missing = api.post("/reviews", json={**body, "plan_id": 9999}, headers=auth("approver"))
    assert missing.status_code == 404 and "9999" in missing.json()["detail"]
    assert len(_reviews(engine)) == 1

    assert api.get("/reviews").status_code == 401
    listed = api.get("/reviews", params={"scope": "helpdesk"}, headers=auth("analyst")).json()
    assert [x["plan_id"] for x in listed] == [shadowed[0]]
    pending = api.get("/reviews/pending", headers=auth("approver")).json()
    assert [p["id"] for p in pending] == shadowed[1:]  # not the one this caller reviewed


def test_cli_reviews_are_the_evidence_a_promotion_needs(shadow_store, capsys):
    url, shadowed, kept, engine = shadow_store
    db = ["--db", url]
    assert main([*db, "review", "pending", "--by", "ops-lead", "--json"]) == 0
    assert [p["id"] for p in json.loads(capsys.readouterr().out)] == shadowed

    assert main([*db, "review", "record", str(shadowed[0]), "--agree", "--by", "nobody"]) == 3
    assert "a named person" in capsys.readouterr().err
    assert main([*db, "review", "record", str(kept), "--agree", "--by", "ops-lead"]) == 3
    assert "not a shadowed plan" in capsys.readouterr().err
    assert _reviews(engine) == []

    for plan_id in shadowed[:3]:
        assert main([*db, "review", "record", str(plan_id), "--agree", "--by", "ops-lead"]) == 0
    assert "3 reviews" in capsys.readouterr().out
    # Three reviews are not enough evidence for assisted: the promotion is refused.
    assert main([*db, "policy", "helpdesk", "--set-mode", "assisted", "--by", "ops-lead"]) == 3
    assert "3 shadow reviews" in capsys.readouterr().err

    assert main([*db, "review", "record", str(shadowed[3]), "--disagree", "--by", "ops-lead",
                 "--comment", "too wide", "--json"]) == 0  # fmt: skip
    recorded = json.loads(capsys.readouterr().out)
    assert recorded["agrees"] is False and recorded["evidence"]["agreement"] == 0.75
    assert main([*db, "review", "record", str(shadowed[4]), "--agree", "--by", "ops-lead"]) == 0
    assert main([*db, "review", "record", str(shadowed[4]), "--agree", "--by", "ops-lead"]) == 3
    capsys.readouterr()
    assert main([*db, "review", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 5 and {r["by"] for r in listed} == {"ops-lead"}

    assert main([*db, "policy", "helpdesk", "--set-mode", "assisted", "--by", "ops-lead"]) == 0
    with Session(engine) as s:
        assert find_policy(s, "helpdesk").mode == "assisted"
        events = s.exec(select(AuditEvent).where(AuditEvent.run_id == "run-shadow")).all()
    assert len(events) == 5 and {e.payload["channel"] for e in events} == {"cli"}
