"""The layout's rules, checked on the source: no import circle, arrows only downward.

Every ``import`` in ``closedloop/`` and ``app.py`` counts, including imports
inside functions (a lazy import hides a circle from Python, not from this test).
Layers, from the bottom: store -> settings/contracts -> tools, governance ->
agents -> graphs -> surfaces (cli, api, chat, demo, report, app.py) -> evals.
A module may import its own layer or any layer below; the sandbox stands for
the outside world and shares nothing with the rest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "closedloop"

# (prefix, rank): the longest matching prefix decides a module's layer.
LAYERS: list[tuple[str, int]] = [
    ("closedloop.store", 0),
    ("closedloop.settings", 1),
    ("closedloop.contracts", 1),
    ("closedloop.privacy", 1),  # pseudonymisation before a model, imports nothing of ours
    ("closedloop.crashpoints", 1),  # SIGKILL test points, imports nothing of ours
    ("closedloop.identity", 1),  # principals and roles, used by every surface
    ("closedloop.tools", 2),
    ("closedloop.governance", 2),
    ("closedloop.autonomy", 2),  # the evidence governance promotes on (store only)
    ("closedloop.prompts", 3),
    ("closedloop.agents", 3),
    ("closedloop.graphs", 4),
    ("closedloop.cli", 5),
    ("closedloop.api", 5),
    ("closedloop.chat", 5),
    ("closedloop.demo", 5),
    ("closedloop.report", 5),
    ("app", 5),
    ("closedloop.evals", 5),  # evals drive the graph like a surface (the CLI runs them)
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    files = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]
    files.append(ROOT / "app.py")
    return {module_name(p): p for p in files}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ours that ``name`` imports (a ``from pkg import sub`` counts as importing ``pkg.sub``)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def graph() -> dict[str, set[str]]:
    modules = source_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def layer(module: str) -> int | None:
    best = None
    for prefix, rank in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rank)
    return None if best is None else best[1]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_sees_a_circle_and_a_wrong_way_arrow():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer("closedloop.tools.mining.mine") < layer("closedloop.agents.planner")
    assert layer("closedloop.cli.mining") == 5


def test_no_import_circle():
    assert cycles(graph()) == []


def test_arrows_point_down_only():
    wrong = []
    for source, targets in graph().items():
        if source.startswith("closedloop.sandbox"):
            continue
        for target in targets:
            if target.startswith("closedloop.sandbox"):
                continue  # checked below: only surfaces, evals and demo start a sandbox
            s, t = layer(source), layer(target)
            if s is None or t is None:
                wrong.append(f"{source} -> {target} (module outside every layer)")
            elif t > s:
                wrong.append(f"{source} -> {target}")
    assert wrong == []


def test_sandbox_shares_nothing_with_the_loop():
    edges = graph()
    for source, targets in edges.items():
        if source.startswith("closedloop.sandbox"):
            assert {t for t in targets if not t.startswith("closedloop.sandbox")} == set(), source
        elif any(t.startswith("closedloop.sandbox") for t in targets):
            assert layer(source) is not None and layer(source) >= 5, f"{source} imports the sandbox"


def test_store_imports_nothing_of_ours():
    for source, targets in graph().items():
        if source.startswith("closedloop.store"):
            assert all(t.startswith("closedloop.store") for t in targets), (source, targets)


@pytest.mark.parametrize("room", ["log", "mining", "twin", "optimize", "rules", "act", "measure"])
def test_every_tool_room_has_a_facade(room):
    init = PACKAGE / "tools" / room / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
    assert names, f"closedloop/tools/{room}/__init__.py declares no __all__"
