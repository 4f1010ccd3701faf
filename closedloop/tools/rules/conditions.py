"""Safe evaluation of rule and segment conditions over case attributes.

A condition is one Python-like expression over case attribute names, e.g.
``category == 'password' and priority in ('low', 'medium')`` or
``amount >= 1000 or not vip``. It is checked against a whitelist of syntax
(names, constants, comparisons, ``and``/``or``/``not``, ``in``, simple
arithmetic, tuples/lists/sets of constants) and then evaluated with
``simpleeval`` (never ``eval``). Attribute access (``x.y``), calls
(``__import__('os')``), subscripts, lambdas, comprehensions, f-strings, ``**``
and names starting with ``_`` are rejected with a :class:`ConditionError`.

Attribute names are the case attribute names without the ``case:`` prefix;
names that are not Python identifiers (``product type``) are reachable as
their identifier form (``product_type``, see :func:`identifier`).
"""

from __future__ import annotations

import ast
import keyword
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from simpleeval import DEFAULT_OPERATORS, EvalWithCompoundTypes, InvalidExpression

from closedloop.tools.errors import ScenarioError

MAX_CONDITION_LENGTH = 2000

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.Is, ast.IsNot, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.List, ast.Set,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.IfExp,
)  # fmt: skip

_FORBIDDEN_HINTS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access ('.')",
    ast.Call: "function calls",
    ast.Subscript: "subscripts ('[...]')",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignments (':=')",
    ast.Starred: "starred expressions",
    ast.Pow: "the power operator ('**')",
    ast.Dict: "dict literals",
}

# simpleeval's own operators (safe_add / safe_mult guard against huge strings), restricted
# to the syntax allowed above.
_OPERATORS = {op: fn for op, fn in DEFAULT_OPERATORS.items() if op in _ALLOWED_NODES}

_CONSTANT_NAMES = {"True": True, "False": False, "None": None}


class ConditionError(ScenarioError):
    """A condition expression is not allowed or names an unknown attribute."""


def identifier(name: str) -> str:
    """Identifier form of an attribute name: ``case:`` stripped, other characters -> ``_``."""
    name = name.removeprefix("case:")
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident):
        ident = "a_" + ident
    return ident


class Condition:
    """A validated, pre-parsed condition; call it with a mapping of attribute values."""

    def __init__(self, expression: str, tree: ast.Expression, names: frozenset[str]):
        self.expression = expression
        self.names = names
        self._tree = tree.body
        self._evaluator = EvalWithCompoundTypes(operators=_OPERATORS, functions={}, names={})
        self._lock = threading.Lock()  # the evaluator holds the names of the current call

    def __repr__(self) -> str:
        return f"Condition({self.expression!r})"

    def __call__(self, values: Mapping[str, Any]) -> bool:
        """True when the condition holds for ``values`` (attribute name -> value).

        Missing attributes count as ``None``; comparisons that cannot be made
        (``None > 3``, ``'a' < 1``) make the condition false rather than fail.
        """
        names = dict(_CONSTANT_NAMES)
        for key, value in values.items():
            names[identifier(key)] = value
            names[key] = value
        for name in self.names:
            names.setdefault(name, None)
        with self._lock:
            self._evaluator.names = names
            try:
                return bool(self._evaluator.eval(self.expression, previously_parsed=self._tree))
            except (TypeError, ValueError, ZeroDivisionError):
                return False
            except InvalidExpression as exc:  # defence in depth: the whitelist should catch it
                raise ConditionError(
                    f"condition {self.expression!r} is not allowed: {exc}"
                ) from exc

    def mask(self, rows: Iterable[Mapping[str, Any]]) -> list[bool]:
        """Evaluate the condition for each row."""
        return [self(row) for row in rows]


def compile_condition(expression: str, names: Iterable[str] | None = None) -> Condition:
    """Validate and pre-parse a condition.

    ``names`` (attribute names, with or without ``case:``) restricts which
    names the expression may use; an unknown name raises a ConditionError
    that lists the valid ones. Raises ConditionError for syntax errors and
    for anything outside the allowed syntax (see module docstring).
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ConditionError("condition must be a non-empty string")
    if len(expression) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"condition is longer than {MAX_CONDITION_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"condition {expression!r} is not valid syntax: {exc.msg}") from exc
    used: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            what = _FORBIDDEN_HINTS.get(type(node), f"'{type(node).__name__}' expressions")
            raise ConditionError(
                f"condition {expression!r} uses {what}, which is not allowed; use attribute "
                "names, constants, comparisons (== != < <= > >= in, not in) and and/or/not"
            )
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise ConditionError(
                    f"condition {expression!r} uses name {node.id!r}; names starting with '_' "
                    "are not allowed"
                )
            if node.id not in _CONSTANT_NAMES:
                used.add(node.id)
    if names is not None:
        known = {identifier(n) for n in names} | {n.removeprefix("case:") for n in names}
        unknown = sorted(used - known)
        if unknown:
            valid = ", ".join(sorted({identifier(n) for n in names})) or "(none)"
            raise ConditionError(
                f"condition {expression!r} uses unknown attribute(s) {', '.join(unknown)}; "
                f"valid case attributes: {valid}"
            )
    return Condition(expression.strip(), tree, frozenset(used))


def evaluate_condition(expression: str, values: Mapping[str, Any]) -> bool:
    """Compile ``expression`` and evaluate it once against ``values``."""
    return compile_condition(expression)(values)
