"""The tools index (closedloop.tools): cheap to import, every name resolves, tools are listed."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from closedloop import tools
from closedloop.tools.base import ToolKind


def test_importing_the_index_imports_no_room() -> None:
    code = (
        "import sys, closedloop.tools.errors, closedloop.tools\n"
        "rooms = [m for m in sys.modules if m.startswith('closedloop.tools.')\n"
        "         and m.split('.')[2] in closedloop.tools.ROOMS]\n"
        "heavy = [m for m in ('pandas', 'numpy', 'pm4py', 'sklearn') if m in sys.modules]\n"
        "print(rooms, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


@pytest.mark.parametrize("name", sorted(tools.TOOL_ROOMS))
def test_every_indexed_name_resolves_to_its_room_facade(name: str) -> None:
    room = importlib.import_module(tools.TOOL_ROOMS[name])
    assert name in getattr(room, "__all__", ()), f"{room.__name__} does not export {name}"
    assert getattr(tools, name) is getattr(room, name)
    assert callable(getattr(tools, name))


def test_rooms_resolve_and_unknown_names_raise() -> None:
    assert tools.twin is importlib.import_module("closedloop.tools.twin")
    with pytest.raises(AttributeError, match="no_such_tool"):
        _ = tools.no_such_tool
    from closedloop.tools import errors  # a submodule, not a lazy name

    assert errors.ToolError.__module__ == "closedloop.tools.errors"


def test_index_names_the_known_tools_of_each_room() -> None:
    rooms = {name: module.rsplit(".", 1)[1] for name, module in tools.TOOL_ROOMS.items()}
    assert rooms["fit_twin"] == "twin"
    assert rooms["optimize_staffing"] == "optimize"
    assert rooms["generate_rules"] == "rules"
    assert rooms["mine"] == "mining"
    assert set(rooms.values()) == set(tools.ROOMS)


def test_all_tools_lists_tagged_functions_per_room_and_the_index_has_them_all() -> None:
    found = tools.all_tools()
    assert tuple(found) == tools.ROOMS
    for room, functions in found.items():
        for fn in functions:
            assert isinstance(fn.tool_kind, ToolKind), fn
            assert fn.__module__.startswith(f"closedloop.tools.{room}.")
            assert tools.TOOL_ROOMS.get(fn.__name__) == f"closedloop.tools.{room}", (
                f"tagged tool {fn.__module__}.{fn.__name__} is missing from TOOL_ROOMS"
            )
    names = {room: [fn.__name__ for fn in fns] for room, fns in found.items()}
    assert "simulate" in names["twin"]
    assert set(names["optimize"]) >= {"optimize_staffing", "optimize_shifts"}
    assert {"invoke_api"} <= set(names["act"])
    assert all(fn.tool_kind is ToolKind.WRITE for fn in found["act"] if fn.__name__ == "invoke_api")
