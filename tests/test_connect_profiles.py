"""The shipped connector profiles: five vendor-shaped APIs, each built, mapped and run end to end.

For each profile (ServiceNow Table API, Salesforce REST, SAP S/4HANA OData V2,
Dataverse Web API, Oracle Fusion Payables REST) the catalog builds, each
action's request is what the vendor expects, the example event page of the
profile folder maps to canonical rows, and the whole cycle (event pages with
paging and a watermark, state read, before-read, write, read-back,
compensation, read-back) runs against a loopback server of that API shape
with the profile's auth scheme.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from closedloop.tools.connect import (
    Catalog,
    CsrfTokenAuth,
    RequestBuildError,
    build_action_request,
    build_before_request,
    build_compensation_request,
    build_events_request,
    build_read_request,
    build_verify_request,
    load_overlay_text,
    load_profile,
    make_connector_auth,
    map_events_page,
    profile_names,
    verify_readback,
    watermark,
)
from closedloop.tools.connect.overlay import Overlay
from closedloop.tools.connect.profiles import profile_dir
from closedloop.tools.connect.readback import EVENT_ID
from closedloop.tools.connect.spec import pointer_get
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, TIMESTAMP
from tests.profile_servers import LoopbackApi, Reply, Seen, TokenIssuer, after, basic_check
from tests.test_connect_auth import serve

PROFILES = ["dataverse", "oracle-fusion-ap", "salesforce", "sap-s4hana", "servicenow"]
BASE = "https://vendor.example"


def example(name: str) -> Any:
    return json.loads((profile_dir(name) / "example_events.json").read_text(encoding="utf-8"))


def test_five_profiles_ship_each_building_a_full_catalog() -> None:
    assert profile_names() == PROFILES
    for name in PROFILES:
        catalog = load_profile(name)
        assert catalog.events is not None and catalog.state is not None, name
        assert catalog.actions, name
        for action in catalog.actions.values():
            assert action.reversible and action.annotation.verify is not None, (name, action.name)
        readme = (profile_dir(name) / "README.md").read_text(encoding="utf-8")
        assert "https://" in readme, f"{name}: README cites no public documentation"


# --- each action's request, built without sending, as the vendor expects it -------------------

SN_RULE, SN_OLD, SN_NEW = "3f1dd0e2c0a8010e0068cd1f3c7a2c33", "d625dccec0a8016700a222a0f7900d06", \
    "287ebd7da9fe198100f92cc8d1d2154e"
SF_CASE, SF_OLD, SF_QUEUE = "500RO00000Xy1aBYAR", "005RO000001AbcdYAC", "00GRO000002QueuYAA"
DV_INCIDENT = "0a6f2b4e-1c2d-ee11-9cbd-000d3a1b2c01"
ORA_VALUE = 300000001

ACTIONS: dict[str, tuple[str, dict[str, Any], Any]] = {
    "servicenow": ("set_assignment_rule_group", {"rule_sys_id": SN_RULE, "group_sys_id": SN_NEW},
                   {"result": {"sys_id": SN_RULE, "group": SN_OLD}}),
    "salesforce": ("route_case_to_queue", {"case_id": SF_CASE, "queue_id": SF_QUEUE},
                   {"Id": SF_CASE, "OwnerId": SF_OLD}),
    "sap-s4hana": ("release_delivery_block", {"sales_order": "4711"},
                   {"d": {"__metadata": {"etag": "W/\"e1\""}, "SalesOrder": "4711",
                          "DeliveryBlockReason": "01"}}),
    "dataverse": ("set_incident_priority", {"incident_id": DV_INCIDENT, "priority": 1},
                  {"incidentid": DV_INCIDENT, "prioritycode": 2}),
    "oracle-fusion-ap": ("set_invoice_approval_limit", {"value_id": ORA_VALUE, "limit": "2500"},
                         {"ValueId": ORA_VALUE, "Value": "5000"}),
}

# method, path, query, headers that must be there, JSON body; then the same for the undo
EXPECTED: dict[str, list[tuple[str, str, dict[str, str], dict[str, str], Any]]] = {
    "servicenow": [
        ("PATCH", f"/api/now/table/sysrule_assignment/{SN_RULE}",
         {"sysparm_exclude_reference_link": "true"}, {}, {"group": SN_NEW}),
        ("PATCH", f"/api/now/table/sysrule_assignment/{SN_RULE}",
         {"sysparm_exclude_reference_link": "true"}, {}, {"group": SN_OLD})],
    "salesforce": [
        ("PATCH", f"/services/data/v59.0/sobjects/Case/{SF_CASE}", {},
         {"sforce-auto-assign": "FALSE"}, {"OwnerId": SF_QUEUE}),
        ("PATCH", f"/services/data/v59.0/sobjects/Case/{SF_CASE}", {},
         {"sforce-auto-assign": "FALSE"}, {"OwnerId": SF_OLD})],
    "sap-s4hana": [
        ("PATCH", "/A_SalesOrder('4711')", {}, {"if-match": "W/\"e1\""},
         {"DeliveryBlockReason": ""}),
        ("PATCH", "/A_SalesOrder('4711')", {}, {"if-match": "*"}, {"DeliveryBlockReason": "01"})],
    "dataverse": [
        ("PATCH", f"/incidents({DV_INCIDENT})", {}, {"if-match": "*"}, {"prioritycode": 1}),
        ("PATCH", f"/incidents({DV_INCIDENT})", {}, {"if-match": "*"}, {"prioritycode": 2})],
    "oracle-fusion-ap": [
        ("PATCH", f"/valueSets/AP_INVOICE_APPROVAL_LIMIT/child/values/{ORA_VALUE}", {},
         {"content-type": "application/vnd.oracle.adf.resourceitem+json"}, {"Value": "2500"}),
        ("PATCH", f"/valueSets/AP_INVOICE_APPROVAL_LIMIT/child/values/{ORA_VALUE}", {},
         {"content-type": "application/vnd.oracle.adf.resourceitem+json"}, {"Value": "5000"})],
}


def _shape(request: httpx.Request) -> tuple[str, str, dict[str, str], dict[str, str], Any]:
    path = request.url.path[len(httpx.URL(BASE).path.rstrip("/")):]
    return (request.method, path, dict(request.url.params), dict(request.headers),
            json.loads(request.content) if request.content else None)


@pytest.mark.parametrize("name", PROFILES)
def test_each_action_and_its_undo_are_the_vendor_requests(name: str) -> None:
    catalog = load_profile(name)
    action, params, before = ACTIONS[name]
    built = [build_action_request(catalog, action, params, BASE, before=before),
             build_compensation_request(catalog, action, params, BASE, before=before)]
    for request, (method, path, query, headers, body) in zip(built, EXPECTED[name], strict=True):
        got_method, got_path, got_query, got_headers, got_body = _shape(request)
        assert (got_method, got_path, got_query, got_body) == (method, path, query, body)
        assert headers.items() <= got_headers.items(), got_headers


def test_bad_parameters_and_quoted_keys_cannot_break_the_url() -> None:
    sap = load_profile("sap-s4hana")
    with pytest.raises(RequestBuildError, match="sales_order"):
        build_action_request(sap, "release_delivery_block", {"sales_order": "1')/x"}, BASE,
                             before={"d": {"__metadata": {"etag": "*"}}})
    dataverse = load_profile("dataverse")
    with pytest.raises(RequestBuildError, match="priority"):
        build_action_request(dataverse, "set_incident_priority",
                             {"incident_id": DV_INCIDENT, "priority": 9}, BASE)
    from closedloop.tools.connect.urls import fill_path
    assert fill_path(BASE, "/A_SalesOrder('{SalesOrder}')", {"SalesOrder": "O'Brien"}, "t") \
        == f"{BASE}/A_SalesOrder('O%27%27Brien')"


# --- the first events request and the example page of each profile --------------------------

FIRST_EVENTS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "servicenow": ("/api/now/table/sys_audit", {
        "sysparm_query": "tablename=incident^fieldname=state^sys_created_on>=1970-01-01 00:00:00"
                         "^ORDERBYsys_created_on",
        "sysparm_offset": "0", "sysparm_limit": "1000", "sysparm_no_count": "true"}, {}),
    "salesforce": ("/services/data/v59.0/query", {
        "q": "SELECT Id, CaseId, Field, OldValue, NewValue, CreatedDate, CreatedBy.Name, "
             "Case.Priority, Case.Origin, Case.Type FROM CaseHistory WHERE Field = 'Status' AND "
             "CreatedDate >= 1970-01-01T00:00:00Z ORDER BY CreatedDate, Id"},
        {"sforce-query-options": "batchSize=2000"}),
    "sap-s4hana": ("/A_SalesOrder", {
        "$filter": "LastChangeDateTime gt datetimeoffset'1970-01-01T00:00:00Z'",
        "$orderby": "LastChangeDateTime asc", "$format": "json", "$skip": "0", "$top": "500"},
        {}),
    "dataverse": ("/incidents", {
        "$filter": "modifiedon gt 1970-01-01T00:00:00Z", "$orderby": "modifiedon asc"},
        {"prefer": 'odata.maxpagesize=500,odata.include-annotations='
                   '"OData.Community.Display.V1.FormattedValue"'}),
    "oracle-fusion-ap": ("/invoices", {
        "q": "LastUpdateDate > '1970-01-01T00:00:00+00:00'", "orderBy": "LastUpdateDate:asc",
        "onlyData": "true", "offset": "0", "limit": "500"}, {}),
}


@pytest.mark.parametrize("name", PROFILES)
def test_first_events_request_is_the_vendor_query(name: str) -> None:
    request = build_events_request(load_profile(name), BASE)
    method, path, query, headers, _ = _shape(request)
    want_path, want_query, want_headers = FIRST_EVENTS[name]
    assert (method, path) == ("GET", want_path)
    assert want_query.items() <= query.items(), query
    assert want_headers.items() <= headers.items(), headers


EXAMPLE_ROWS: dict[str, tuple[list[str], dict[str, Any], Any]] = {
    "servicenow": (["New", "In Progress", "New", "Resolved", "On Hold"],
                   {CASE: "9d385017c611228701d22104cc95c371", ACTIVITY: "Resolved",
                    TIMESTAMP: "2024-03-04 10:15:00", RESOURCE: "l1.agent.2",
                    EVENT_ID: "a1f0c2d3e4f5061728394a5b6c7d8e04"}, 5),
    "salesforce": (["Working", "Working", "Escalated", "Closed", "Closed"],
                   {CASE: "500RO00000Xy1aBYAR", ACTIVITY: "Escalated",
                    TIMESTAMP: "2024-03-04T10:15:00.000+0000", RESOURCE: "Dana Agent",
                    EVENT_ID: "017RO00000AbCdGYAV", "case:priority": "High",
                    "case:origin": "Email", "case:type": "Problem"},
                   "/services/data/v59.0/query/01gRO0000016PIAYA2-2000"),
    "sap-s4hana": (["Order created", "Credit check failed", "Credit check passed",
                    "Credit block released", "Fully delivered"],
                   {CASE: "4711", ACTIVITY: "Credit check failed",
                    TIMESTAMP: "2024-03-04T08:30:00Z", "case:order_type": "OR",
                    "case:sales_organization": "1010", "case:customer": "10100001",
                    "case:net_amount": "12500.00", "case:currency": "EUR",
                    "case:delivery_block": "01"}, 5),
    "dataverse": (["In Progress", "In Progress", "Waiting for Details", "Problem Solved"],
                  {CASE: DV_INCIDENT, ACTIVITY: "Waiting for Details",
                   TIMESTAMP: "2024-03-04T10:15:00Z", RESOURCE: "Alex Tier2",
                   "case:ticket": "CAS-01001-A1B2C3", "case:priority": "Normal",
                   "case:origin": "Email"}, "nextLink"),
    "oracle-fusion-ap": (["Invoice entered", "Approval requested", "Invoice on hold",
                          "Invoice approved", "Invoice paid"],
                         {CASE: 300000123456701, ACTIVITY: "Approval requested",
                          TIMESTAMP: "2024-03-04T09:10:00+00:00", RESOURCE: "AP.CLERK1",
                          "case:supplier": "Acme Industrial",
                          "case:business_unit": "US1 Business Unit", "case:amount": 1450.0,
                          "case:currency": "USD", "case:invoice_number": "INV-88001"}, 5),
}
SAMPLE_ROW = {"servicenow": 3, "salesforce": 2, "sap-s4hana": 1, "dataverse": 2,
              "oracle-fusion-ap": 1}


@pytest.mark.parametrize("name", PROFILES)
def test_example_page_maps_to_canonical_rows(name: str) -> None:
    catalog = load_profile(name)
    rows, cursor = map_events_page(catalog, example(name))
    activities, sample, next_cursor = EXAMPLE_ROWS[name]
    assert [r[ACTIVITY] for r in rows] == activities
    assert rows[SAMPLE_ROW[name]] == sample
    if next_cursor == "nextLink":
        assert cursor == example(name)["@odata.nextLink"]
    else:
        assert cursor == next_cursor
    assert all(r[CASE] is not None and r[TIMESTAMP] is not None for r in rows)


# --- end to end against a loopback server of each API shape ----------------------------------

@dataclass
class Setup:
    """One profile's loopback API and what the run needs to know about it."""

    api: LoopbackApi
    prefix: str
    env: dict[str, str]
    events: list[dict[str, Any]]
    new_event: dict[str, Any]
    site_overlays: Callable[[str], list[Overlay]] = lambda base: []
    extra: dict[str, Any] = field(default_factory=dict)


def _record(store: dict[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
    return store.get(key)


def servicenow() -> Setup:
    audit = list(example("servicenow")["result"])
    rules = {SN_RULE: {"sys_id": SN_RULE, "name": "Network incidents", "active": "true",
                       "condition": "category=network", "group": SN_OLD, "order": "100"}}
    api = LoopbackApi(basic_check("closedloop.integration", "sn-pass"))

    @api.on("GET", r"/api/now/table/sys_audit")
    def audit_page(seen: Seen, _: Any) -> Reply:
        since = re.fullmatch(r"tablename=incident\^fieldname=state\^sys_created_on>=(.+)"
                             r"\^ORDERBYsys_created_on", seen.query["sysparm_query"])
        assert since, seen.query
        rows = after(audit, "sys_created_on", since.group(1), inclusive=True)
        offset, limit = int(seen.query["sysparm_offset"]), int(seen.query["sysparm_limit"])
        return 200, {"result": rows[offset:offset + limit]}, {}

    @api.on("GET", r"/api/now/table/sysrule_assignment")
    def rule_list(seen: Seen, _: Any) -> Reply:
        return 200, {"result": list(rules.values())}, {}

    @api.on("GET", r"/api/now/table/sysrule_assignment/(\w+)")
    def rule(seen: Seen, m: re.Match[str]) -> Reply:
        fields = seen.query.get("sysparm_fields", "").split(",")
        return 200, {"result": {k: rules[m[1]][k] for k in fields}}, {}

    @api.on("PATCH", r"/api/now/table/sysrule_assignment/(\w+)")
    def patch(seen: Seen, m: re.Match[str]) -> Reply:
        rules[m[1]].update(seen.body)
        return 200, {"result": rules[m[1]]}, {}

    new = {**audit[-1], "sys_id": "a1f0c2d3e4f5061728394a5b6c7d8e06", "oldvalue": "3",
           "newvalue": "2", "sys_created_on": "2024-03-04 12:00:00"}
    return Setup(api, "", {"SERVICENOW_USERNAME": "closedloop.integration",
                           "SERVICENOW_PASSWORD": "sn-pass"}, audit, new,
                 extra={"store": rules, "restored": lambda: rules[SN_RULE]["group"] == SN_OLD})


def salesforce() -> Setup:
    history = list(example("salesforce")["records"])
    cases = {SF_CASE: {"attributes": {"type": "Case"}, "Id": SF_CASE, "OwnerId": SF_OLD,
                       "Status": "Escalated", "Priority": "High"}}
    issuer = TokenIssuer("sf-client", "sf-secret",
                         {"instance_url": "http://127.0.0.1", "issued_at": "1709539200000"})
    api = LoopbackApi(issuer.check)
    issuer.install(api, "/services/oauth2/token")
    locators: dict[str, tuple[list[Any], int]] = {}

    def batch(rows: list[Any], start: int, size: int) -> Reply:
        done = start + size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done,
                                "records": rows[start:start + size]}
        if not done:
            locator = f"01gRO{secrets.token_hex(4)}-{start + size}"
            locators[locator] = (rows, size)
            body["nextRecordsUrl"] = f"/services/data/v59.0/query/{locator}"
        return 200, body, {}

    @api.on("GET", r"/services/data/v59.0/query")
    def query(seen: Seen, _: Any) -> Reply:
        q = seen.query["q"]
        if "FROM Group" in q:
            return 200, {"totalSize": 1, "done": True, "records": [
                {"Id": SF_QUEUE, "DeveloperName": "Tier2", "Name": "Tier 2"}]}, {}
        since = re.search(r"CreatedDate >= (\S+) ORDER BY", q)
        assert since and "FROM CaseHistory" in q, q
        size = int(seen.headers["sforce-query-options"].removeprefix("batchSize="))
        return batch(after(history, "CreatedDate", since.group(1), inclusive=True), 0, size)

    @api.on("GET", r"/services/data/v59.0/query/([\w-]+)")
    def query_more(seen: Seen, m: re.Match[str]) -> Reply:
        rows, size = locators.pop(m[1])
        return batch(rows, int(m[1].rsplit("-", 1)[1]), size)

    @api.on("GET", r"/services/data/v59.0/sobjects/Case/(\w+)")
    def get_case(seen: Seen, m: re.Match[str]) -> Reply:
        fields = seen.query.get("fields", "").split(",")
        return 200, {"attributes": {"type": "Case"},
                     **{k: cases[m[1]][k] for k in fields}}, {}

    @api.on("PATCH", r"/services/data/v59.0/sobjects/Case/(\w+)")
    def patch_case(seen: Seen, m: re.Match[str]) -> Reply:
        assert seen.headers.get("sforce-auto-assign") == "FALSE"
        cases[m[1]].update(seen.body)
        return 204, None, {}

    new = {**history[-1], "Id": "017RO00000AbCdJYAV", "NewValue": "Reopened",
           "CreatedDate": "2024-03-04T13:00:00.000+0000"}
    return Setup(api, "", {"SALESFORCE_CLIENT_ID": "sf-client",
                           "SALESFORCE_CLIENT_SECRET": "sf-secret"}, history, new,
                 extra={"issuer": issuer, "restored": lambda: cases[SF_CASE]["OwnerId"] == SF_OLD})


SAP = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"


def sap() -> Setup:
    snapshots = list(example("sap-s4hana")["d"]["results"])
    orders = {"4711": {"SalesOrder": "4711", "DeliveryBlockReason": "01", "etag": 1,
                       "TotalCreditCheckStatus": "B"}}
    session: dict[str, str] = {}
    api = LoopbackApi(basic_check("CL_INTEGRATION", "sap-pass"))

    @api.on("GET", re.escape(SAP) + "/?")
    def service_root(seen: Seen, _: Any) -> Reply:
        if seen.headers.get("x-csrf-token") != "Fetch":
            return 200, {"d": {"EntitySets": ["A_SalesOrder"]}}, {}
        session.update(token=secrets.token_urlsafe(12), cookie=secrets.token_hex(8))
        return 200, {"d": {"EntitySets": ["A_SalesOrder"]}}, {
            "x-csrf-token": session["token"],
            "set-cookie": f"SAP_SESSIONID_S4H_100={session['cookie']}; path=/"}

    @api.on("GET", re.escape(SAP) + r"/A_SalesOrder")
    def list_orders(seen: Seen, _: Any) -> Reply:
        where = seen.query["$filter"]
        if where == "DeliveryBlockReason ne ''":
            blocked = [{"SalesOrder": o["SalesOrder"], "DeliveryBlockReason": o[
                "DeliveryBlockReason"]} for o in orders.values() if o["DeliveryBlockReason"]]
            return 200, {"d": {"results": blocked}}, {}
        since = re.fullmatch(r"LastChangeDateTime gt datetimeoffset'(.+)'", where)
        assert since, where
        rows = after(snapshots, "LastChangeDateTime", since.group(1), inclusive=False)
        skip, top = int(seen.query["$skip"]), int(seen.query["$top"])
        return 200, {"d": {"results": rows[skip:skip + top]}}, {}

    def entity(order: dict[str, Any]) -> dict[str, Any]:
        return {"__metadata": {"etag": f"W/\"{order['etag']}\""}, "SalesOrder": order[
            "SalesOrder"], "DeliveryBlockReason": order["DeliveryBlockReason"]}

    @api.on("GET", re.escape(SAP) + r"/A_SalesOrder\('(\d+)'\)")
    def get_order(seen: Seen, m: re.Match[str]) -> Reply:
        return 200, {"d": entity(orders[m[1]])}, {}

    @api.on("PATCH", re.escape(SAP) + r"/A_SalesOrder\('(\d+)'\)")
    def patch_order(seen: Seen, m: re.Match[str]) -> Reply:
        cookie = f"SAP_SESSIONID_S4H_100={session.get('cookie')}"
        if seen.headers.get("x-csrf-token") != session.get("token") or \
                cookie not in seen.headers.get("cookie", ""):
            return 403, {"error": {"message": {"value": "CSRF token validation failed"}}}, {
                "x-csrf-token": "Required"}
        order = orders[m[1]]
        if seen.headers.get("if-match") not in ("*", entity(order)["__metadata"]["etag"]):
            return 412, {"error": {"message": {"value": "Precondition failed"}}}, {}
        order.update(seen.body)
        order["etag"] += 1
        session["token"] = secrets.token_urlsafe(12)  # tokens expire: the next write must refetch
        return 204, None, {}

    new = {**snapshots[-1], "SalesOrder": "4713", "LastChangeDateTime": "/Date(1709557200000+0000)/"}
    return Setup(api, SAP, {"SAP_USERNAME": "CL_INTEGRATION", "SAP_PASSWORD": "sap-pass"},
                 snapshots, new,
                 extra={"restored": lambda: orders["4711"]["DeliveryBlockReason"] == "01"})


DV = "/api/data/v9.2"


def dataverse() -> Setup:
    snapshots = list(example("dataverse")["value"])
    for row in snapshots:
        row.pop("@odata.etag", None)
    incidents = {DV_INCIDENT: {"incidentid": DV_INCIDENT, "prioritycode": 2}}
    issuer = TokenIssuer("dv-client", "dv-secret", {"expires_in": 3599, "ext_expires_in": 3599})
    api = LoopbackApi(issuer.check)
    issuer.install(api, "/tenant-0000/oauth2/v2.0/token")
    pages: dict[str, tuple[list[Any], int]] = {}

    @api.on("GET", re.escape(DV) + "/incidents")
    def list_incidents(seen: Seen, _: Any) -> Reply:
        prefer = seen.headers.get("prefer", "")
        assert "OData.Community.Display.V1.FormattedValue" in prefer, "Prefer not sent again"
        if "$skiptoken" in seen.query:
            rows, start = pages.pop(seen.query["$skiptoken"])
        else:
            since = re.fullmatch(r"modifiedon gt (\S+)", seen.query["$filter"])
            assert since, seen.query
            rows, start = after(snapshots, "modifiedon", since.group(1), inclusive=False), 0
        size = int(re.search(r"odata\.maxpagesize=(\d+)", prefer).group(1))  # type: ignore[union-attr]
        body: dict[str, Any] = {"@odata.context": "$metadata#incidents",
                                "value": rows[start:start + size]}
        if start + size < len(rows):
            token = secrets.token_hex(6)
            pages[token] = (rows, start + size)
            body["@odata.nextLink"] = (f"http://{seen.headers['host']}{DV}/incidents?$select="
                                       f"incidentid&$skiptoken={token}")
        return 200, body, {}

    @api.on("GET", re.escape(DV) + r"/incidents\(([0-9a-f-]{36})\)")
    def get_incident(seen: Seen, m: re.Match[str]) -> Reply:
        return 200, {"@odata.etag": "W/\"1\"", **incidents[m[1]]}, {}

    @api.on("PATCH", re.escape(DV) + r"/incidents\(([0-9a-f-]{36})\)")
    def patch_incident(seen: Seen, m: re.Match[str]) -> Reply:
        if seen.headers.get("if-match") != "*" or m[1] not in incidents:
            return 404, {"error": {"code": "0x80040217"}}, {}
        incidents[m[1]].update(seen.body)
        return 204, None, {}

    @api.on("GET", re.escape(DV) + "/queues")
    def queues(seen: Seen, _: Any) -> Reply:
        return 200, {"value": [{"queueid": "5a1f0000-0000-ee11-9cbd-000d3a1b2c33",
                                "name": "Tier 1"}]}, {}

    def site(base: str) -> list[Overlay]:
        return [load_overlay_text(f"""
overlay: 1.0.0
info: {{title: contoso site settings, version: "1"}}
actions:
  - target: $['x-closedloop-connector'].auth
    update:
      token_url: {base}/tenant-0000/oauth2/v2.0/token
      scopes: ["{base}/.default"]
""", "site overlay")]

    new = {**snapshots[-1], "modifiedon": "2024-03-04T12:30:00Z"}
    return Setup(api, DV, {"DATAVERSE_CLIENT_ID": "dv-client",
                           "DATAVERSE_CLIENT_SECRET": "dv-secret"}, snapshots, new, site,
                 extra={"issuer": issuer,
                        "restored": lambda: incidents[DV_INCIDENT]["prioritycode"] == 2})


ORA = "/fscmRestApi/resources/11.13.18.05"


def oracle() -> Setup:
    invoices = list(example("oracle-fusion-ap")["items"])
    values = {str(ORA_VALUE): {"ValueId": ORA_VALUE, "Value": "5000", "EnabledFlag": "Y",
                               "Description": "US1 Business Unit"}}
    api = LoopbackApi(basic_check("AP.INTEGRATION", "ora-pass"))

    def collection(rows: list[Any], offset: int, limit: int) -> Reply:
        chunk = rows[offset:offset + limit]
        return 200, {"items": chunk, "count": len(chunk), "hasMore": offset + limit < len(rows),
                     "limit": limit, "offset": offset, "links": []}, {}

    @api.on("GET", re.escape(ORA) + "/invoices")
    def list_invoices(seen: Seen, _: Any) -> Reply:
        since = re.fullmatch(r"LastUpdateDate > '(.+)'", seen.query["q"])
        assert since and seen.query["orderBy"] == "LastUpdateDate:asc", seen.query
        rows = after(invoices, "LastUpdateDate", since.group(1), inclusive=False)
        return collection(rows, int(seen.query["offset"]), int(seen.query["limit"]))

    @api.on("GET", re.escape(ORA) + "/valueSets/AP_INVOICE_APPROVAL_LIMIT/child/values")
    def list_values(seen: Seen, _: Any) -> Reply:
        return collection(list(values.values()), 0, 25)

    @api.on("GET", re.escape(ORA) + r"/valueSets/AP_INVOICE_APPROVAL_LIMIT/child/values/(\d+)")
    def get_value(seen: Seen, m: re.Match[str]) -> Reply:
        return 200, values[m[1]], {}

    @api.on("PATCH", re.escape(ORA) + r"/valueSets/AP_INVOICE_APPROVAL_LIMIT/child/values/(\d+)")
    def patch_value(seen: Seen, m: re.Match[str]) -> Reply:
        if seen.headers.get("content-type") != "application/vnd.oracle.adf.resourceitem+json":
            return 415, {"title": "Unsupported media type"}, {}
        values[m[1]].update(seen.body)
        return 200, values[m[1]], {}

    new = {**invoices[-1], "InvoiceId": 300000123456703, "ApprovalStatus": "Required",
           "PaymentStatus": "Not paid", "LastUpdateDate": "2024-03-07T08:00:00+00:00"}
    return Setup(api, ORA, {"ORACLE_FUSION_USERNAME": "AP.INTEGRATION",
                            "ORACLE_FUSION_PASSWORD": "ora-pass"}, invoices, new,
                 extra={"restored": lambda: values[str(ORA_VALUE)]["Value"] == "5000"})


SETUPS: dict[str, Callable[[], Setup]] = {
    "servicenow": servicenow, "salesforce": salesforce, "sap-s4hana": sap,
    "dataverse": dataverse, "oracle-fusion-ap": oracle,
}


def read_feed(client: httpx.Client, catalog: Catalog, root: str,
              since: str | None) -> tuple[list[dict[str, Any]], int]:
    """All rows after ``since``, page by page (two items a page), and the number of pages."""
    rows: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        response = client.send(build_events_request(catalog, root, cursor, page_size=2,
                                                    since=since))
        assert response.status_code == 200, response.text
        batch, cursor = map_events_page(catalog, response.json(), cursor)
        rows += batch
        pages += 1
        if cursor is None:
            return rows, pages
        assert pages < 20, "paging does not end"


def _key(row: dict[str, Any]) -> Any:
    return row.get(EVENT_ID) or (row[CASE], row[ACTIVITY], row[TIMESTAMP])


@pytest.fixture(params=PROFILES)
def running(request: pytest.FixtureRequest) -> Iterator[tuple[str, Setup, str]]:
    setup = SETUPS[request.param]()
    with serve(setup.api.app()) as base:
        yield request.param, setup, base


def test_profile_end_to_end_against_its_loopback_api(running: tuple[str, Setup, str]) -> None:
    name, setup, base = running
    catalog = load_profile(name, *setup.site_overlays(base))
    root = base + setup.prefix
    auth = make_connector_auth(catalog.connector, root, setup.env)
    action, params, _ = ACTIONS[name]
    with httpx.Client(auth=auth, timeout=10) as client:
        rows, pages = read_feed(client, catalog, root, since=None)
        assert [_key(r) for r in rows] == [_key(r) for r in map_events_page(
            catalog, {**example(name)})[0]]
        assert pages >= -(-len(rows) // 2) >= 2
        mark = watermark(catalog, [r[TIMESTAMP] for r in rows])
        setup.events.append(setup.new_event)
        more, _ = read_feed(client, catalog, root, since=mark)
        fresh = [r for r in more if _key(r) not in {_key(x) for x in rows}]
        assert len(fresh) == 1 and len(more) <= 2, more

        state = client.send(build_read_request(catalog, root))
        assert state.status_code == 200, state.text
        for pointer in catalog.state.annotation.values.values():  # type: ignore[union-attr]
            assert pointer_get(state.json(), pointer)

        before = client.send(build_before_request(catalog, action, params, root)).json()
        done = client.send(build_action_request(catalog, action, params, root, before=before))
        assert done.is_success, done.text
        body = done.json() if done.content else None
        check = client.send(build_verify_request(catalog, action, params, root, body)).json()
        assert verify_readback(catalog, action, params, body, check)
        undo = client.send(build_compensation_request(catalog, action, params, root,
                                                      response=body, before=before))
        assert undo.is_success, undo.text
        check = client.send(build_verify_request(catalog, action, params, root, body)).json()
        assert not verify_readback(catalog, action, params, body, check)
    assert setup.extra["restored"]()
    writes = setup.api.writes()
    assert [(w.method, w.path) for w in writes if "token" not in w.path] == [
        ("PATCH", setup.prefix + EXPECTED[name][0][1]),
        ("PATCH", setup.prefix + EXPECTED[name][1][1])]
    assert not [s for s in setup.api.seen if s.path.startswith(setup.prefix or "/api")
                and "token" not in s.path and not s.headers.get("authorization")]
    if "issuer" in setup.extra:
        assert len(setup.extra["issuer"].issued) == 1, "one OAuth2 token, cached and reused"
    if isinstance(auth, CsrfTokenAuth):
        assert auth.fetches == 2, "CSRF token fetched before the write and again after a 403"


def test_a_next_link_to_another_host_is_not_followed() -> None:
    catalog = load_profile("dataverse")
    with pytest.raises(RequestBuildError, match="leaves the API"):
        build_events_request(catalog, BASE + DV, "https://evil.example/api/data/v9.2/incidents")
    inside = build_events_request(catalog, BASE + DV, f"{BASE}{DV}/incidents?$skiptoken=x")
    assert inside.headers["prefer"].startswith("odata.maxpagesize=")
    salesforce = load_profile("salesforce")
    relative = build_events_request(salesforce, BASE, "/services/data/v59.0/query/01g-2000")
    assert str(relative.url) == f"{BASE}/services/data/v59.0/query/01g-2000"


def test_wrong_credentials_are_refused_by_each_loopback_api(
        running: tuple[str, Setup, str]) -> None:
    name, setup, base = running
    catalog = load_profile(name, *setup.site_overlays(base))
    root = base + setup.prefix
    wrong = {k: "wrong" for k in setup.env}
    with httpx.Client(auth=make_connector_auth(catalog.connector, root, wrong)) as client:
        try:
            status = client.send(build_read_request(catalog, root)).status_code
        except Exception as exc:  # OAuth2: the token endpoint refuses the client  # noqa: BLE001
            assert "refused the client credentials" in str(exc)
        else:
            assert status == 401


# --- the room capabilities the profiles needed ------------------------------------------------

def test_feed_annotations_that_do_not_fit_are_named() -> None:
    from closedloop.tools.connect import AnnotationError, profile_document
    from closedloop.tools.connect.catalog import build_catalog

    doc = profile_document("servicenow")
    feed = doc["paths"]["/api/now/table/{tableName}"]["get"]["x-closedloop-events"]
    feed["cursor"] = {"kind": "next_link", "param": "sysparm_offset",
                      "response_pointer": "/next"}
    with pytest.raises(AnnotationError, match="'next_link' takes no 'param'"):
        build_catalog(doc)
    feed["cursor"] = {"kind": "offset", "param": "sysparm_offset"}
    del feed["request"]["path"]
    with pytest.raises(AnnotationError, match=r"does not fill path parameter\(s\) \['tableName'\]"):
        build_catalog(doc)
    feed["request"]["path"] = {"tableName": "sys_audit"}
    del feed["since"]
    with pytest.raises(AnnotationError, match="'since' and a \\{since\\}"):
        build_catalog(doc)


def test_times_activity_rules_and_watermarks() -> None:
    from closedloop.tools.connect.feed import event_time

    assert event_time("/Date(1709541000000+0000)/", "odata_date") == "2024-03-04T08:30:00Z"
    assert event_time("/Date(1709541000000)/", "odata_date") == "2024-03-04T08:30:00Z"
    assert event_time(1709541000, "epoch_s") == "2024-03-04T08:30:00Z"
    assert event_time("2024-03-04 08:30:00", "as_is") == "2024-03-04 08:30:00"
    salesforce = load_profile("salesforce")
    stamps = ["2024-03-04T10:15:00.000+0000", "2024-03-04T12:00:00.000+0200"]
    assert watermark(salesforce, stamps) == "2024-03-04T10:15:00Z"  # 12:00+02 is 10:00 UTC
    assert watermark(salesforce, [], previous="2024-03-05T00:00:00Z") == "2024-03-05T00:00:00Z"
    assert watermark(salesforce, stamps, "2024-03-05T00:00:00Z") == "2024-03-05T00:00:00Z"
    servicenow = load_profile("servicenow")
    assert watermark(servicenow, ["2024-03-04 10:15:00"]) == "2024-03-04 10:15:00"
    rows, _ = map_events_page(servicenow, {"result": [
        {"documentkey": "x", "newvalue": "42", "sys_created_on": "2024-03-04 10:15:00"}]})
    assert rows[0][ACTIVITY] == "42", "no rule matches: the raw value stays"


def test_csrf_fetch_that_gives_no_token_is_an_auth_error() -> None:
    from closedloop.tools.connect import AuthError

    api = LoopbackApi(basic_check("u", "p"))
    api.on("GET", "/svc/?")(lambda seen, _: (200, {"d": {}}, {}))
    catalog = load_profile("sap-s4hana")
    with serve(api.app()) as base:
        auth = make_connector_auth(catalog.connector, base + "/svc",
                                   {"SAP_USERNAME": "u", "SAP_PASSWORD": "p"})
        request = build_action_request(catalog, "release_delivery_block", {"sales_order": "1"},
                                       base + "/svc", before={"d": {"__metadata": {"etag": "*"}}})
        with httpx.Client(auth=auth) as client, pytest.raises(AuthError, match="CSRF"):
            client.send(request)
    assert not api.writes(), "no write goes out without a token"
