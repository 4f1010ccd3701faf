"""The action catalog of a connector: built from an annotated OpenAPI document, no code.

:func:`build_catalog` checks every ``x-closedloop-*`` annotation against the
operations it sits on and names the operation and the annotation in each
error. The catalog lists the only operations a connector may call: the
actions, their compensations and verification reads, the event feed and the
state read. Its ``version`` is a hash of all of that, so plans and executions
can record which catalog they used.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, PrivateAttr, ValidationError

from closedloop.tools.connect.annotations import (
    ACTION_KEY,
    CONNECTOR_KEY,
    EVENT_FIELDS,
    EVENTS_KEY,
    OPERATION_KEYS,
    REQUIRED_ROLES,
    STATE_KEY,
    ActionAnnotation,
    ChangeKind,
    ChangeKindByParam,
    ConnectorAnnotation,
    EventFeedAnnotation,
    StateAnnotation,
)
from closedloop.tools.connect.checks import check_event_feed, check_fixed, check_request
from closedloop.tools.connect.errors import AnnotationError, NotInCatalogError
from closedloop.tools.connect.operations import OperationRef, operation_ref
from closedloop.tools.connect.params import ParamsSchemaError, params_model
from closedloop.tools.connect.spec import WRITE_METHODS, iter_operations
from closedloop.tools.connect.templates import template_problems


class CatalogAction(BaseModel):
    """One action the loop may request, resolved against its operation."""

    name: str
    description: str
    operation: OperationRef
    annotation: ActionAnnotation
    change_kinds: list[ChangeKind]
    risk: str
    reversible: bool
    treatment_share_param: str | None
    params_schema: dict[str, Any]


class EventFeed(BaseModel):
    """The operation that pages through events, with its mapping."""

    operation: OperationRef
    annotation: EventFeedAnnotation


class StateRead(BaseModel):
    """The operation that reads configuration/state."""

    operation: OperationRef
    annotation: StateAnnotation


class Catalog(BaseModel):
    """Everything a connector lets the loop read and do."""

    connector: ConnectorAnnotation
    title: str
    api_version: str
    version: str
    actions: dict[str, CatalogAction]
    events: EventFeed | None
    state: StateRead | None
    operations: dict[str, OperationRef]
    _models: dict[str, type[BaseModel]] = PrivateAttr(default_factory=dict)

    def action(self, name: str) -> CatalogAction:
        """The action ``name``; NotInCatalogError for anything else."""
        if name not in self.actions:
            raise NotInCatalogError(
                f"action {name!r} is not in the catalog of connector {self.connector.name!r}; "
                f"allowed: {sorted(self.actions)}"
            )
        return self.actions[name]

    def operation(self, operation_id: str) -> OperationRef:
        """An operation the catalog may call; NotInCatalogError for any other."""
        if operation_id not in self.operations:
            raise NotInCatalogError(
                f"operation {operation_id!r} is not in the catalog of connector "
                f"{self.connector.name!r}; callable: {sorted(self.operations)}"
            )
        return self.operations[operation_id]

    def validate_params(self, name: str, params: dict[str, Any]) -> BaseModel:
        """Typed parameters of action ``name`` (pydantic ValidationError when they do not fit)."""
        self.action(name)
        return self._models[name].model_validate(params)

    def action_specs(self) -> list[dict[str, Any]]:
        """The actions in the shape of ``closedloop.tools.act.catalog.ActionSpec``."""
        return [
            {"name": a.name, "description": a.description, "params_schema": a.params_schema,
             "risk": a.risk, "reversible": a.reversible}
            for a in self.actions.values()
        ]


def _validated(model: type[BaseModel], data: Any, key: str, label: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            if error["type"] == "missing":
                problems.append(f"{key} is missing '{loc}'")
            else:
                problems.append(f"{key}.{loc}: {error['msg']}" if loc else f"{key}: {error['msg']}")
        raise AnnotationError(f"{label}: " + "; ".join(problems)) from exc


class _Builder:
    """Collects operations and annotations, then checks references between them."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.ops: dict[str, OperationRef] = {}
        self.annotated: list[tuple[OperationRef, dict[str, Any]]] = []
        for method, path, operation, item in iter_operations(doc):
            ref = operation_ref(method, path, operation, item, doc)
            self.ops[ref.operation_id] = ref
            self.ops.setdefault(f"{ref.method} {ref.path}", ref)
            keys = {k for k in operation if k.startswith("x-closedloop")}
            unknown = keys - OPERATION_KEYS
            if unknown:
                raise AnnotationError(
                    f"operation {ref.label}: unknown annotation(s) {sorted(unknown)}; "
                    f"known: {sorted(OPERATION_KEYS)}"
                )
            if keys:
                self.annotated.append((ref, operation))

    def find(self, operation_id: str, label: str, what: str) -> OperationRef:
        if operation_id not in self.ops:
            raise AnnotationError(f"{label}: {what} names operation {operation_id!r}, "
                                  "which the spec does not have")
        return self.ops[operation_id]

    def single(self, key: str, model: type[BaseModel]) -> tuple[OperationRef, Any] | None:
        found = [(ref, op[key]) for ref, op in self.annotated if key in op]
        if len(found) > 1:
            names = ", ".join(ref.label for ref, _ in found)
            raise AnnotationError(f"{key} appears on {len(found)} operations ({names}); "
                                  "a connector has one")
        if not found:
            return None
        ref, data = found[0]
        label = f"operation {ref.label}"
        if ref.method != "GET":
            raise AnnotationError(f"{label}: {key} belongs on a GET operation")
        return ref, _validated(model, data, key, label)


def build_catalog(doc: dict[str, Any], require_events: bool = True,
                  require_state: bool = True) -> Catalog:
    """The catalog of an annotated OpenAPI document (spec with its overlay applied)."""
    if CONNECTOR_KEY not in doc:
        raise AnnotationError(f"document root: {CONNECTOR_KEY} is missing (connector name, auth)")
    connector = _validated(ConnectorAnnotation, doc[CONNECTOR_KEY], CONNECTOR_KEY, "document root")
    builder = _Builder(doc)
    events = builder.single(EVENTS_KEY, EventFeedAnnotation)
    state = builder.single(STATE_KEY, StateAnnotation)
    if events is None and require_events:
        raise AnnotationError(f"no operation carries {EVENTS_KEY} (how to read events)")
    if state is None and require_state:
        raise AnnotationError(f"no operation carries {STATE_KEY} (how to read current state)")
    callable_ops: dict[str, OperationRef] = {}
    if events is not None:
        check_event_feed(*events)
        callable_ops[events[0].operation_id] = events[0]
    if state is not None:
        check_fixed(state[0], state[1].request, f"operation {state[0].label}: {STATE_KEY}", ())
        callable_ops[state[0].operation_id] = state[0]
    actions: dict[str, CatalogAction] = {}
    models: dict[str, type[BaseModel]] = {}
    for ref, operation in builder.annotated:
        if ACTION_KEY not in operation:
            continue
        label = f"operation {ref.label}"
        if ref.method.lower() not in WRITE_METHODS:
            raise AnnotationError(f"{label}: {ACTION_KEY} belongs on a write operation "
                                  "(POST, PUT, PATCH, DELETE)")
        annotation = _validated(ActionAnnotation, operation[ACTION_KEY], ACTION_KEY, label)
        if annotation.name in actions:
            raise AnnotationError(f"{label}: action name {annotation.name!r} is used twice")
        try:
            model = params_model(annotation.name, annotation.params)
        except ParamsSchemaError as exc:
            raise AnnotationError(f"{label}: {ACTION_KEY}.{exc}") from exc
        related = _check_action(builder, ref, annotation, label, set(model.model_fields),
                                state[0] if state else None, events[1] if events else None)
        for op in [ref, *related]:
            callable_ops[op.operation_id] = op
        actions[annotation.name] = _catalog_action(ref, annotation, model)
        models[annotation.name] = model
    catalog = Catalog(
        connector=connector, title=str(doc.get("info", {}).get("title", connector.name)),
        api_version=str(doc.get("info", {}).get("version", "")),
        version=_version(connector, events, state, actions),
        actions=actions, events=EventFeed(operation=events[0], annotation=events[1])
        if events else None,
        state=StateRead(operation=state[0], annotation=state[1]) if state else None,
        operations=callable_ops,
    )
    catalog._models = models
    return catalog


def _catalog_action(ref: OperationRef, annotation: ActionAnnotation,
                    model: type[BaseModel]) -> CatalogAction:
    kind = annotation.change_kind
    kinds = sorted(set(kind.values.values())) if isinstance(kind, ChangeKindByParam) else [kind]
    return CatalogAction(
        name=annotation.name, description=annotation.description, operation=ref,
        annotation=annotation, change_kinds=kinds, risk=annotation.risk,
        reversible=annotation.compensation is not None,
        treatment_share_param=annotation.treatment_share.param
        if annotation.treatment_share else None,
        params_schema=model.model_json_schema(),
    )


def _check_action(builder: _Builder, ref: OperationRef, a: ActionAnnotation, label: str,
                  params: set[str], state: OperationRef | None,
                  feed: EventFeedAnnotation | None) -> list[OperationRef]:
    key = ACTION_KEY
    header = builder.doc.get(CONNECTOR_KEY, {}).get("idempotency_header")
    related: list[OperationRef] = []
    for role, param in a.roles.items():
        if param not in params:
            raise AnnotationError(f"{label}: {key}.roles.{role} names {param!r}, not a parameter")
    kinds = a.change_kind.values.values() if isinstance(a.change_kind, ChangeKindByParam) \
        else [a.change_kind]
    for kind in kinds:
        missing = sorted(REQUIRED_ROLES[kind] - set(a.roles))
        if missing:
            raise AnnotationError(f"{label}: {key}.roles is missing {missing} "
                                  f"(change kind {kind!r} needs them)")
    named = [("change_kind.param", a.change_kind.param)
             if isinstance(a.change_kind, ChangeKindByParam) else None,
             ("treatment_share.param", a.treatment_share.param) if a.treatment_share else None]
    for what, param in filter(None, named):
        if param not in params:
            raise AnnotationError(f"{label}: {key}.{what} names {param!r}, not a parameter")
    before = state
    if isinstance(a.before, str):
        before = builder.find(a.before, label, f"{key}.before")
    elif a.before is not None:
        before = builder.find(a.before.operation, label, f"{key}.before.operation")
        check_request(before, a.before, params, {"$param", "$const"}, f"{label}: {key}.before",
                       None)
    related += [before] if before is not None and a.before is not None else []
    sources = {"$param", "$const"} | ({"$before"} if before else set())
    check_request(ref, a.request, params, sources, f"{label}: {key}.request", header)
    if a.compensation is not None:
        target = builder.find(a.compensation.operation, label, f"{key}.compensation.operation")
        allowed = {"$param", "$const", "$response"} | ({"$before"} if before else set())
        check_request(target, a.compensation, params, allowed,
                       f"{label}: {key}.compensation", header)
        related.append(target)
    if a.verify is not None:
        if a.verify.operation is None and state is None:
            raise AnnotationError(f"{label}: {key}.verify needs an operation (no state read)")
        target = builder.find(a.verify.operation, label, f"{key}.verify.operation") \
            if a.verify.operation else state
        related.append(target)
        if a.verify.operation:
            check_request(target, a.verify, params, {"$param", "$const", "$response"},
                           f"{label}: {key}.verify", None)
        problems = template_problems(a.verify.model_dump(include={"equals", "contains"}),
                                     params, {"$param", "$const", "$response"},
                                     f"{label}: {key}.verify")
        problems += template_problems({"$before": a.verify.pointer}, params, {"$before"},
                                      f"{label}: {key}.verify.pointer")
        if problems:
            raise AnnotationError("; ".join(problems))
    if a.data_contract.required_fields and feed is not None:
        mapped = {f for f in EVENT_FIELDS if getattr(feed.fields, f) is not None}
        mapped |= set(feed.fields.case_attributes) | ({"cohort"} if feed.cohort else set())
        if feed.fields.case_attributes_from is not None:
            mapped.add("case_attributes")
        missing = [f for f in a.data_contract.required_fields if f not in mapped]
        if missing:
            raise AnnotationError(f"{label}: {key}.data_contract.required_fields {missing} "
                                  f"are not mapped by {EVENTS_KEY} (mapped: {sorted(mapped)})")
    return related


def _version(connector: ConnectorAnnotation, events: Any, state: Any,
             actions: dict[str, CatalogAction]) -> str:
    content = {
        "connector": connector.model_dump(mode="json"),
        "events": [events[0].model_dump(), events[1].model_dump(mode="json")] if events else None,
        "state": [state[0].model_dump(), state[1].model_dump(mode="json")] if state else None,
        "actions": {n: a.model_dump(mode="json") for n, a in sorted(actions.items())},
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"{connector.name}@{digest[:16]}"


__all__ = ["Catalog", "CatalogAction", "EventFeed", "OperationRef", "StateRead", "build_catalog"]
