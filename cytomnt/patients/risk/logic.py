"""Tier-rule expressions with three-valued (Kleene) logic: True, False, or None for unknown.

Grammar: factor ids, ``and``/``or``/``not``, ``any(...)``, ``all(...)``, ``count(...) >= n``
(any comparison), ``True``/``False``. Parsed with :mod:`ast`; nothing is executed.
"""
from __future__ import annotations

import ast
import operator
from typing import Mapping

_CMP = {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}


class RuleSyntaxError(ValueError):
    """A tier rule is not a valid expression, or names an unknown factor."""


def parse(expr: str) -> ast.Expression:
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise RuleSyntaxError(f"'{expr}': {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Name,
                                 ast.Load, ast.Call, ast.Compare, ast.Constant, *_CMP)):
            raise RuleSyntaxError(f"'{expr}': '{type(node).__name__}' is not allowed in a tier rule")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in ("any", "all", "count")):
            raise RuleSyntaxError(f"'{expr}': only any(), all() and count() may be called")
    return tree


def names(expr: str) -> set[str]:
    """Factor ids an expression refers to."""
    return {n.id for n in ast.walk(parse(expr)) if isinstance(n, ast.Name) and n.id not in ("any", "all", "count")}


def _and(vals):
    if any(v is False for v in vals):
        return False
    return None if any(v is None for v in vals) else True


def _or(vals):
    if any(v is True for v in vals):
        return True
    return None if any(v is None for v in vals) else False


def evaluate(expr: str | ast.Expression, facts: Mapping[str, bool | None]):
    """Value of the expression: True, False or None (cannot tell: depends on unknown facts)."""
    tree = parse(expr) if isinstance(expr, str) else expr

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in facts:
                raise RuleSyntaxError(f"unknown factor '{node.id}' in tier rule")
            return facts[node.id]
        if isinstance(node, ast.BoolOp):
            vals = [ev(v) for v in node.values]
            return _and(vals) if isinstance(node.op, ast.And) else _or(vals)
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return None if v is None else (not v)
        if isinstance(node, ast.Call):
            vals = [ev(a) for a in node.args]
            if node.func.id == "any":
                return _or(vals)
            if node.func.id == "all":
                return _and(vals)
            return (sum(v is True for v in vals), sum(v is not False for v in vals))   # count: (min, max)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            if len(node.ops) != 1:
                raise RuleSyntaxError("chained comparisons are not allowed in tier rules")
            right = ev(node.comparators[0])
            op = _CMP[type(node.ops[0])]
            lo, hi = left if isinstance(left, tuple) else (left, left)
            if lo is None or right is None:
                return None
            a, b = op(lo, right), op(hi, right)
            return a if a == b else None      # undecided when the unknowns could tip it
        raise RuleSyntaxError(f"cannot evaluate {type(node).__name__}")
    return ev(tree)
