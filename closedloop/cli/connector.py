"""Connector commands: ``connector check FILE`` validates a connector against its live API.

The check loads the manifest (or annotated spec), its spec and overlays the way
the loop does (``closedloop.tools.act``), then lets
``closedloop.tools.connect.check_connector`` read one events page and the state and build
every action's request, compensation and read-back without sending them. Both
are imported inside the handler, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from closedloop.cli.common import EXIT_FAILED, EXIT_INPUT, EXIT_OK, add_json, emit, settings_from

CHECK_EPILOG = """exit codes:
  0    the connector has everything the loop needs
  1    something is missing or wrong (each MISSING / WRONG line says what)
  2    bad command line, or a file that cannot be read (manifest, spec, overlay)
  130  interrupted"""
_MARKS = {"ok": "ok", "note": "note", "missing": "MISSING", "wrong": "WRONG"}


def _unreadable(args: argparse.Namespace, message: str) -> int:
    print(f"closedloop: connector {args.file}: {message}", file=sys.stderr)
    return EXIT_INPUT


def _load_files(args: argparse.Namespace) -> Any:
    """The manifest, after reading every file it names (errors: unreadable input)."""
    from closedloop.tools.act import load_manifest
    from closedloop.tools.connect import load_overlay, load_spec

    manifest = load_manifest(args.file)
    for name in manifest.overlays:
        load_overlay(manifest.folder / name)
    if manifest.spec_file is not None:
        load_spec(manifest.folder / manifest.spec_file)
    return manifest


def render_check(check: Any) -> str:
    """A connector check as text: one line per finding, then the verdict."""
    head = f"connector {check.connector or '?'} at {check.base_url}"
    if check.catalog_version:
        head += f" (catalog {check.catalog_version})"
    lines = [head]
    lines += [f"  {_MARKS[f.status]:<8} {f.part}: {f.message}" for f in check.findings]
    problems = len(check.problems)
    lines.append("all good: the loop has what it needs" if check.ok
                 else f"{problems} problem(s): see MISSING / WRONG above")
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a connector against its live API; exit 1 when something is missing or wrong."""
    from closedloop.tools.act import connector_document
    from closedloop.tools.connect import ConnectorCheck, check_connector
    from closedloop.tools.errors import ToolError

    try:
        manifest = _load_files(args)
    except ToolError as exc:
        return _unreadable(args, str(exc))
    base_url = args.base_url or manifest.base_url
    if not base_url:
        return _unreadable(args, f"connector {manifest.name!r} has no base_url; "
                                 "give --base-url URL")
    settings = settings_from(args)
    try:
        document = connector_document(manifest, base_url, settings.secret_env(),
                                      timeout=settings.api_timeout_s)
    except ToolError as exc:
        check = ConnectorCheck(connector=manifest.name, base_url=base_url)
        check.add("wrong", "spec", f"{type(exc).__name__}: {exc}")
    else:
        check = check_connector(document, base_url, settings.secret_env(),
                                timeout=settings.api_timeout_s)
    payload = {**check.model_dump(mode="json"), "ok": check.ok}
    emit(args, payload, render_check(check))
    return EXIT_OK if check.ok else EXIT_FAILED


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``connector check``."""
    c = sub.add_parser("connector", help="work with connectors (OpenAPI spec + overlay)")
    commands = c.add_subparsers(dest="connector_command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check", help="validate a connector against its live API (reads events and state, "
                      "builds each action's request without sending it)", epilog=CHECK_EPILOG)
    check.add_argument("file", metavar="FILE", help="connector manifest (connector.yaml), a folder holding one, "
                                    "an annotated OpenAPI file, or a bundled name (helpdesk, o2c)")
    check.add_argument("--base-url", default=None, metavar="URL",
                       help="base URL of the API (default: the manifest's base_url)")
    add_json(check)
    check.set_defaults(func=cmd_check)
