"""Data protection: the store and dataset snapshots are owner-only; secrets never reach the
store (also when a model or a server echoes them); people are pseudonymised before a model
sees them; a connector's credentials only go to its trusted base URL (no SSRF leak)."""

from __future__ import annotations

import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pandas as pd
import pytest
from sqlmodel import select

from closedloop.graphs.observe import write_snapshot
from closedloop.privacy import configured_fields, mask_for_model
from closedloop.store.db import open_store, transaction
from closedloop.store.models import AuditEvent, Execution, LoopRun
from closedloop.store.redact import REDACTED, redact
from closedloop.tools.act.invoke import ApiRequest, send
from closedloop.tools.connect.annotations import ConnectorAnnotation
from closedloop.tools.connect.auth import make_connector_auth
from tests.helpers_store import add_plan, add_run, opportunity


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_and_snapshots_are_owner_only(tmp_path):
    db = tmp_path / "home" / "closedloop.db"
    engine = open_store(f"sqlite:///{db}")
    with transaction(engine) as s:
        s.add(LoopRun(id="r", scope="s"))
    assert _mode(db) == 0o600 and _mode(db.parent) == 0o700
    for companion in db.parent.glob("closedloop.db-*"):
        assert _mode(companion) & 0o077 == 0, companion
    snap = write_snapshot(pd.DataFrame({"case": ["a"]}), tmp_path / "home" / "datasets", "f" * 64)
    assert _mode(snap) == 0o600 and _mode(snap.parent) == 0o700
    assert [p.name for p in snap.parent.iterdir()] == [snap.name]  # no temporary file left

    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    open_store(f"sqlite:///{loose}")
    assert _mode(loose) == 0o600  # an existing world-readable store is tightened


def test_secrets_are_redacted_whoever_writes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOSEDLOOP_SANDBOX_TOKEN", "tok-very-secret-123456")
    engine = open_store(f"sqlite:///{tmp_path}/s.db")
    echoed = {
        "message": {"content": "the key is sk-abcdefghijklmnop0123 and tok-very-secret-123456"},
        "headers": {"Authorization": "Bearer abc.def.ghi123456", "Idempotency-Key": "keep-me-123"},
        "config": {"api_key": "k-1234567890", "token_env": "CLOSEDLOOP_SANDBOX_TOKEN"},
        "note": "password=hunter2hunter2",
    }
    with transaction(engine) as s:
        s.add(AuditEvent(run_id="r", actor="model", kind="model_answer", payload=echoed))
        plan = add_plan(s, add_run(s, "r", "s"), opportunity(s))
        s.add(
            Execution(
                plan_id=plan.id,
                action="a",
                idempotency_key="key-12345678",
                response={"echo": "Bearer tok-very-secret-123456"},
            )
        )
    with transaction(engine) as s:
        [event] = s.exec(select(AuditEvent)).all()
        [row] = s.exec(select(Execution)).all()
    text = repr(event.payload) + repr(row.response)
    for secret in (
        "sk-abcdefghijklmnop0123",
        "tok-very-secret-123456",
        "abc.def.ghi123456",
        "k-1234567890",
        "hunter2hunter2",
    ):
        assert secret not in text
    assert event.payload["headers"]["Idempotency-Key"] == "keep-me-123"
    assert event.payload["config"]["token_env"] == "CLOSEDLOOP_SANDBOX_TOKEN"
    assert redact({"n": 3, "ok": True}) == {"n": 3, "ok": True} and REDACTED in text


def test_people_are_pseudonymised_before_a_model_sees_them():
    task = {
        "bottlenecks": [{"activity": "Resolve", "resource": "alice@corp.example"}],
        "resources": {"alice@corp.example": 4, "bob": 2},
        "case": {"case:customer": "ACME GmbH", "amount": 12.5},
    }
    masked = mask_for_model(task, env={"CLOSEDLOOP_PSEUDONYM_SALT": "s1"})
    text = repr(masked)
    assert "alice" not in text and "bob" not in text
    assert masked["bottlenecks"][0]["activity"] == "Resolve"
    assert masked["bottlenecks"][0]["resource"] == next(iter(masked["resources"]))  # stable
    assert masked["case"]["case:customer"] == "ACME GmbH"  # not configured by default
    env = {"CLOSEDLOOP_PSEUDONYMISE": "resource,case:customer", "CLOSEDLOOP_PSEUDONYM_SALT": "s1"}
    assert mask_for_model(task, env=env)["case"]["case:customer"].startswith("anon-")
    assert mask_for_model(task, env={"CLOSEDLOOP_PSEUDONYMISE": "none"}) == task
    assert configured_fields({"CLOSEDLOOP_PSEUDONYMISE": "a, b"}) == {"a", "b"}


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def two_hosts():
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Recorder) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    for server in servers:
        server.shutdown()


def test_the_token_only_goes_to_the_trusted_base_url(two_hosts):
    import httpx

    trusted, attacker = two_hosts
    connector = ConnectorAnnotation.model_validate(
        {"name": "x", "auth": {"type": "bearer", "token_env": "TOK"}}
    )
    env = {"TOK": "secret-token-123456", "CLOSEDLOOP_TRUSTED_API_URLS": trusted}
    # A run pointed at the attacker's URL: no credentials at all.
    assert make_connector_auth(connector, attacker, env) is None
    # The trusted system's client never adds them to a request elsewhere either.
    auth = make_connector_auth(connector, trusted, env)
    with httpx.Client(auth=auth) as client:
        send(client, ApiRequest(method="GET", url=f"{trusted}/config"), retries=0)
        send(client, ApiRequest(method="GET", url=f"{attacker}/steal"), retries=0)
    by_path = {r["path"]: r["auth"] for r in _Recorder.seen}
    assert by_path == {"/config": "Bearer secret-token-123456", "/steal": None}
    # Without a trusted list, the credentials stay on the base URL the system is bound to.
    auth = make_connector_auth(connector, trusted, {"TOK": "secret-token-123456"})
    with httpx.Client(auth=auth) as client:
        send(client, ApiRequest(method="GET", url=f"{attacker}/other"), retries=0)
    assert _Recorder.seen[-1] == {"path": "/other", "auth": None}
