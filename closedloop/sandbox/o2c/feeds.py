"""Paged reads of the o2c sandbox's entity sets: offset paging and the status-history feed.

Entity sets (orders, teams, rules) page by offset: ``$skiptoken`` counts the
rows already delivered after ``$skip`` and ``$top`` caps the total. The status
history is the event feed: its ``$skiptoken`` is the last ``ChangeSequence``
delivered, ``$top`` sets the page size (at most the server's) and ``__next``
links the rest while more rows match right now.
"""

from __future__ import annotations

from typing import Any

from closedloop.sandbox.o2c.odata import (
    ODataError,
    apply_query,
    envelope,
    next_link,
    parse_filter,
    parse_skiptoken,
)
from closedloop.sandbox.o2c.simulation import O2CSimulation


def offset_page(
    rows: list[dict[str, Any]], fields: set[str], query: dict[str, Any], base_url: str,
    page_size: int,
) -> dict[str, Any]:
    """One page of an entity set in the OData envelope."""
    kept = apply_query(rows, query.get("$filter"), query.get("$orderby"), fields)
    skip, top = query.get("$skip") or 0, query.get("$top")
    token = parse_skiptoken(query.get("$skiptoken"))
    limit = page_size if top is None else max(0, min(page_size, top - token))
    start = skip + token
    results = kept[start:start + limit]
    delivered = token + len(results)
    more = start + len(results) < len(kept) and (top is None or delivered < top)
    count = len(kept) if query.get("$inlinecount") == "allpages" else None
    if not more:
        return envelope(results, count=count)
    return envelope(results, next_link(base_url, query, delivered), delivered, count)


def history_page(
    sim: O2CSimulation, query: dict[str, Any], base_url: str, page_size: int,
) -> dict[str, Any]:
    """One page of the status history (the event feed) after the ``$skiptoken`` sequence."""
    orderby = (query.get("$orderby") or "").strip()
    if orderby not in ("", "ChangeSequence", "ChangeSequence asc"):
        raise ODataError("the status history is ordered by ChangeSequence only")
    if query.get("$skip"):
        raise ODataError("the status history pages by $skiptoken (a ChangeSequence), not $skip")
    after = parse_skiptoken(query.get("$skiptoken"))
    top = query.get("$top")
    limit = page_size if top is None else min(page_size, top)
    comparisons = parse_filter(query.get("$filter"), HISTORY_FIELDS)
    results: list[dict[str, Any]] = []
    more = False
    count = 0
    counting = query.get("$inlinecount") == "allpages"
    with sim.lock:
        for event in sim.events[after:]:
            row = sim.history_entity(event)
            if not all(c.test(row) for c in comparisons):
                continue
            count += 1
            if len(results) < limit:
                results.append(row)
            else:
                more = True
                if not counting:
                    break
    total = count if counting else None
    if not more or not results:
        return envelope(results, count=total)
    token = results[-1]["ChangeSequence"]
    link = next_link(base_url, {k: v for k, v in query.items() if k != "$inlinecount"}, token)
    return envelope(results, link, token, total)


ORDER_FIELDS = {
    "SalesOrder", "SalesOrganization", "SoldToParty", "CustomerSegment", "SalesRegion",
    "TotalNetAmount", "TransactionCurrency", "CustomerPaymentTerms", "Experiment",
    "CreationDateTime", "OverallStatus", "ApprovalStatus", "DueDate",
}
HISTORY_FIELDS = {
    "ChangeSequence", "ChangeDocument", "SalesOrder", "Activity", "ActivityStartedAt",
    "ActivityCompletedAt", "Resource", "Team", "SoldToParty", "CustomerSegment", "SalesRegion",
    "TotalNetAmount", "TransactionCurrency", "CustomerPaymentTerms", "Experiment",
}
TEAM_FIELDS = {"Team", "Headcount", "WorkingHoursStart", "WorkingHoursEnd", "BusyMembers",
               "WaitingItems"}
RULE_FIELDS = {"RuleID", "RuleName", "CustomerSegment", "MaxAmount", "TreatmentShare",
               "CreatedAt"}
