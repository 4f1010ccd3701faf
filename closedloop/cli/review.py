"""Shadow reviews from the command line: ``review pending|record|list``.

In shadow mode the loop only records its plans; a person's review of each ("would I have
approved it?") is the evidence a scope needs to move to assisted
(``closedloop policy SCOPE --set-mode assisted``). Recording goes through
:func:`closedloop.governance.review_shadow_plan` (a named person, one review per person and
plan, audited with channel ``cli``).
"""

from __future__ import annotations

import argparse
from typing import Any

from closedloop.cli.common import add_json, current_user, emit, settings_from


def _session(args: argparse.Namespace) -> Any:
    from closedloop.store.db import open_store, transaction

    return transaction(open_store(settings_from(args).resolved_database_url()))


def cmd_pending(args: argparse.Namespace) -> int:
    """The shadowed plans ``--by`` has not reviewed yet."""
    from closedloop.autonomy import plans_to_review

    with _session(args) as session:
        plans = [
            {
                "id": p.id,
                "scope": p.scope,
                "run_id": p.run_id,
                "hypothesis": p.hypothesis,
                "actions": p.actions,
                "predicted_delta_pct": p.predicted.get("delta_pct"),
                "risk_tier": p.risk_tier,
            }
            for p in plans_to_review(session, args.scope, by=args.by)
        ]
    lines = [f"{len(plans)} shadowed plan(s) waiting for a review by {args.by}"]
    for p in plans:
        actions = ", ".join(a.get("action", "?") for a in p["actions"])
        lines.append(
            f"  plan {p['id']} (scope {p['scope']}, risk {p['risk_tier']}): {actions}; "
            f"predicted {p['predicted_delta_pct']} %"
        )
    emit(args, plans, "\n".join(lines))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """Record ``--by``'s review of one shadowed plan; shows the scope's evidence after it."""
    from closedloop.governance import review_shadow_plan

    with _session(args) as session:
        review = review_shadow_plan(
            session, args.plan_id, args.agrees, by=args.by, channel="cli", comment=args.comment
        )
    evidence = review.evidence or {}
    missing = "; ".join(evidence.get("missing", [])) or "none"
    emit(
        args,
        review,
        f"review {review.id}: {review.by} {'agrees' if review.agrees else 'disagrees'} with "
        f"plan {review.plan_id} (scope {review.scope}). Evidence for assisted: "
        f"{evidence.get('shadow_reviews')} reviews, agreement {evidence.get('agreement', 0):.0%}; "
        f"missing: {missing}",
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """The shadow reviews on record, newest first."""
    from closedloop.autonomy import shadow_reviews
    from closedloop.governance import review_view

    with _session(args) as session:
        rows = [review_view(a, p) for a, p in shadow_reviews(session, args.scope)]
    lines = [f"{len(rows)} shadow review(s)"]
    lines += [
        f"  review {r.id}: plan {r.plan_id} (scope {r.scope}) "
        f"{'agreed' if r.agrees else 'disagreed'} by {r.by}"
        for r in rows
    ]
    emit(args, [r.model_dump(mode="json") for r in rows], "\n".join(lines))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``review pending|record|list``."""
    r = sub.add_parser(
        "review", help="shadow reviews: would you have approved what the loop only recorded?"
    )
    rsub = r.add_subparsers(dest="action", required=True, metavar="ACTION")
    pe = rsub.add_parser("pending", help="shadowed plans you have not reviewed yet")
    pe.add_argument("--scope", help="only this scope")
    pe.add_argument("--by", default=current_user(), help="whose reviews (default: $USER)")
    add_json(pe)
    pe.set_defaults(func=cmd_pending)

    rec = rsub.add_parser("record", help="record your review of one shadowed plan")
    rec.add_argument("plan_id", type=int, help="the plan's id (review pending lists them)")
    verdict = rec.add_mutually_exclusive_group(required=True)
    verdict.add_argument(
        "--agree", dest="agrees", action="store_true", help="I would have approved it"
    )
    verdict.add_argument(
        "--disagree", dest="agrees", action="store_false", help="I would have rejected it"
    )
    rec.add_argument("--comment", default="", help="why, kept with the review")
    rec.add_argument("--by", default=current_user(), help="who reviews (default: $USER)")
    add_json(rec)
    rec.set_defaults(func=cmd_record)

    ls = rsub.add_parser("list", help="shadow reviews on record, newest first")
    ls.add_argument("--scope", help="only this scope")
    add_json(ls)
    ls.set_defaults(func=cmd_list)
