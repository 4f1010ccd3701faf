"""The helpdesk simulation seen as ServiceNow tables: incident, sys_audit, groups, rules.

Nothing here changes the simulation; it reads its event log and configuration
and presents them as records:

* ``incident``: one record per ticket (``number`` ``INC0000042`` for ``T-000042``),
  with ``category``, ``priority``, ``contact_type`` (the channel),
  ``u_customer_tier``, ``u_experiment`` (``<rule>:treatment|control``), ``state``
  (1 New, 2 In Progress, 6 Resolved, 7 Closed), ``assignment_group``,
  ``assigned_to`` and ``u_work_step`` (the activity under way);
* ``sys_audit``: the field changes of incidents, oldest first. ``state`` changes,
  and one row per work-step transition of the custom field ``u_work_step``: the
  activity in ``newvalue``, the transition (``start``/``complete``) in ``reason``,
  the person (``L1-agent-2``, ``bot``, ``system``, ``customer``) in ``user``;
* ``sys_user_group``: the queues L1 and L2 with their headcount ``u_headcount``;
* ``u_closedloop_rule``: the active automation rules (same registry as ``/rules``).

``sys_id`` values are stable 32-hex digests of (seed, kind, key). Times are
``YYYY-MM-DD HH:MM:SS`` UTC, the Table API's format (whole seconds).
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any

from closedloop.sandbox.simulation import SimEvent, Simulation

Record = dict[str, Any]
STATE_NEW, STATE_IN_PROGRESS, STATE_RESOLVED, STATE_CLOSED = "1", "2", "6", "7"
#: Incident column of each case attribute the simulation's rules may test.
ATTRIBUTE_COLUMNS = {"category": "category", "priority": "priority", "channel": "contact_type",
                     "customer_tier": "u_customer_tier"}
COLUMN_ATTRIBUTES = {column: name for name, column in ATTRIBUTE_COLUMNS.items()}
_WORKING = ("Triage", "Resolve", "Auto-resolve", "Escalate")


def sys_id(seed: int, kind: str, key: object) -> str:
    """A stable ServiceNow-style sys_id (32 lowercase hex digits)."""
    return hashlib.md5(f"{seed}:{kind}:{key}".encode(), usedforsecurity=False).hexdigest()


def sn_time(sim: Simulation, t_ms: float) -> str:
    """Simulation milliseconds as the Table API's ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return sim.calendar.to_datetime(t_ms / 1000.0).strftime("%Y-%m-%d %H:%M:%S")


def _next_state(current: str, event: SimEvent) -> str:
    """The incident state after ``event`` (the base system's state model)."""
    if event.activity == "Register ticket" and event.lifecycle == "start":
        return STATE_NEW
    if event.lifecycle == "start" and event.activity in (*_WORKING, "Reopen"):
        return STATE_IN_PROGRESS
    if event.lifecycle == "complete" and event.activity in ("Resolve", "Auto-resolve"):
        return STATE_RESOLVED
    if event.lifecycle == "complete" and event.activity == "Close":
        return STATE_CLOSED
    return current


class TableView:
    """Incidents and audit rows derived incrementally from one simulation's event log."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.incidents: dict[str, Record] = {}  # by case id
        self.by_sys_id: dict[str, Record] = {}
        self.audit: list[Record] = []
        self.audit_times: list[str] = []
        self._seen = 0

    def group_id(self, queue: str) -> str:
        """The sys_id of a queue's assignment group."""
        return sys_id(self.sim.seed, "sys_user_group", queue)

    def sync(self) -> None:
        """Take in the events emitted since the last call (the caller holds ``sim.lock``)."""
        events = self.sim.events
        for event in events[self._seen:]:
            self._take(event)
        self._seen = len(events)

    def _take(self, event: SimEvent) -> None:
        seed, when = self.sim.seed, sn_time(self.sim, event.t_ms)
        incident = self.incidents.get(event.case_id)
        if incident is None:
            incident = self._open(event, when)
        before_step = incident["u_work_step"]
        self._audit(sys_id(seed, "audit", event.seq), incident, "u_work_step", when,
                    before_step if event.lifecycle == "start" else event.activity,
                    event.activity, event.resource, event.lifecycle)
        state = _next_state(incident["state"], event)
        if state != incident["state"]:
            self._audit(sys_id(seed, "audit-state", event.seq), incident, "state", when,
                        incident["state"], state, event.resource, "")
            incident["state"] = state
            if state == STATE_RESOLVED:
                incident["resolved_at"] = when
            if state == STATE_CLOSED:
                incident["closed_at"] = incident["closed_at"] or when
        incident["u_work_step"] = event.activity if event.lifecycle == "start" else ""
        queue = event.attributes.get("queue", "")
        if queue in self.sim.staffing:
            incident["assignment_group"] = self.group_id(queue)
        if "-agent-" in event.resource:
            incident["assigned_to"] = event.resource
        incident["sys_updated_on"] = when

    def _open(self, event: SimEvent, when: str) -> Record:
        attributes = event.attributes
        number = event.case_id.rsplit("-", 1)[-1]
        incident: Record = {
            "sys_id": sys_id(self.sim.seed, "incident", event.case_id),
            "number": f"INC{int(number):07d}" if number.isdigit() else event.case_id,
            "short_description": f"{attributes.get('category', '')} ticket",
            **{column: attributes.get(name, "") for name, column in ATTRIBUTE_COLUMNS.items()},
            "u_experiment": attributes.get("experiment", ""),
            "state": "", "u_work_step": "", "assignment_group": "", "assigned_to": "",
            "opened_at": when, "resolved_at": "", "closed_at": "",
            "sys_created_on": when, "sys_updated_on": when,
        }
        self.incidents[event.case_id] = incident
        self.by_sys_id[incident["sys_id"]] = incident
        return incident

    def _audit(self, row_id: str, incident: Record, fieldname: str, when: str, old: str,
               new: str, user: str, reason: str) -> None:
        self.audit.append({
            "sys_id": row_id, "documentkey": incident["sys_id"], "tablename": "incident",
            "fieldname": fieldname, "oldvalue": old, "newvalue": new, "user": user,
            "reason": reason, "sys_created_on": when, "sys_created_by": "system",
        })
        self.audit_times.append(when)

    def audit_from(self, since: str | None) -> list[Record]:
        """Audit rows (oldest first) from the first one at or after ``since``."""
        if since is None:
            return self.audit
        return self.audit[bisect.bisect_left(self.audit_times, since):]

    def dot_walk(self, row: Record, name: str) -> Any:
        """A field of an audit row, ``documentkey.<column>`` reading the audited incident."""
        if name.startswith("documentkey."):
            incident = self.by_sys_id.get(str(row.get("documentkey")), {})
            return incident.get(name.removeprefix("documentkey."), "")
        return row.get(name, "")

    def groups(self) -> list[Record]:
        """The assignment groups (queues) with their headcount and members."""
        return [{
            "sys_id": self.group_id(queue), "name": queue, "active": True,
            "description": f"{queue} support queue", "u_headcount": agents,
        } for queue, agents in self.sim.staffing.items()]

    def members(self, queue: str) -> list[str]:
        """The user names working a queue (as they appear in ``sys_audit.user``)."""
        return [f"{queue}-agent-{k}" for k in range(1, self.sim.staffing[queue] + 1)]

    def rule_record(self, rule: Record) -> Record:
        """A rule of the sandbox's registry (``/rules`` shape) as a u_closedloop_rule record."""
        condition, action = rule["condition"], rule["action"]
        value = condition["value"]
        queue = action.get("queue")
        return {
            "sys_id": sys_id(self.sim.seed, "u_closedloop_rule", rule["rule_id"]),
            "u_number": rule["rule_id"], "u_name": rule["name"],
            "u_condition_field": ATTRIBUTE_COLUMNS.get(condition["field"], condition["field"]),
            "u_condition_operator": condition["op"],
            "u_condition_value": value if isinstance(value, str) else ",".join(value),
            "u_action": action["type"],
            "u_route_group": self.group_id(queue) if queue else "",
            "u_treatment_share": rule["treatment_share"], "active": True,
            "sys_created_on": rule["created_at"].replace("T", " ").removesuffix("Z")[:19],
        }


__all__ = ["ATTRIBUTE_COLUMNS", "COLUMN_ATTRIBUTES", "TableView", "sn_time", "sys_id"]
