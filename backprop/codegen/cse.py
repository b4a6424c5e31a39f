"""Common-subexpression elimination over model expressions.

``sympy.cse`` does not know our operation nodes, so this is a small structural
pass on the trees: a subexpression met twice or more -- anywhere in the forward
or backward statements -- is computed once into a temporary, placed right
before its first use. Views (``W.T``) and leaves are never worth a name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from sympy import Basic

from backprop.codegen.stmt import VIEWS, Stmt, TempSymbol, substitute
from backprop.expr.ir import OpNode, shape_of


def worth_naming(e: Basic) -> bool:
    if not isinstance(e, OpNode):
        return False
    if e.op.name in VIEWS and not any(isinstance(c, OpNode) for c in e.children):
        return False
    return True


def _count(stmts: list[Stmt]) -> Counter[Basic]:
    """Occurrences of each subexpression; a repeat is not descended into (tree_cse's rule)."""
    counts: Counter[Basic] = Counter()

    def visit(e: Basic) -> None:
        if not isinstance(e, OpNode):
            return
        counts[e] += 1
        if counts[e] > 1:
            return
        for c in e.children:
            visit(c)

    for s in stmts:
        visit(s.expr)
    return counts


def _size(e: Basic) -> int:
    return 1 + sum(_size(c) for c in e.children) if isinstance(e, OpNode) else 1


def eliminate(stmts: list[Stmt], new_temp: Callable[[], str], comment: Callable[[Basic, Basic], tuple[str, ...]],
              duplicated: Callable[[OpNode], set[int]] = lambda e: set(),
              holds: Callable[[Stmt], bool] = lambda s: True) -> list[Stmt]:
    """Statements where each repeated subexpression is computed once.

    A subexpression equal to an earlier statement's whole right-hand side reuses
    that statement's variable (unless ``holds`` says the variable does not hold it: a running sum
    ``dW += share``); any other repeat gets a temporary from
    ``new_temp``, numbered in the order the temporaries are computed. An operand
    that an operation's NumPy form spells more than once (``duplicated`` gives
    the operand indices) is named too, so it is not computed twice.
    """
    stmts = _reuse_targets(stmts, holds)
    counts = _count(stmts)
    repeated = sorted((e for e, n in counts.items() if n > 1 and worth_naming(e)), key=_size, reverse=True)
    placeholders = 0
    # Each statement's subtrees, counted: a hoist rewrites only the statements holding its
    # expression, so 1,000 chained layers cost linear work, not a scan of every statement per repeat.
    held = [_subtrees(s.expr) for s in stmts]

    def hoist(e: Basic) -> None:
        nonlocal placeholders
        sym = TempSymbol(f"_cse{placeholders}", *shape_of(e))
        placeholders += 1
        users = [i for i, h in enumerate(held) if e in h]
        for i in users:
            stmts[i] = replace(stmts[i], expr=substitute(stmts[i].expr, {e: sym}))
            held[i] = _subtrees(stmts[i].expr)
        stmts.insert(users[0], Stmt(sym, e, "temp", stmts[users[0]].section))
        held.insert(users[0], _subtrees(e))

    for e in repeated:  # largest first: a repeat inside a larger one is absorbed by it
        if sum(h.get(e, 0) for h in held) >= 2:
            hoist(e)
    while (e := _duplicated_operand(stmts, duplicated)) is not None:
        hoist(e)
    final: dict[Basic, Basic] = {}
    for s in stmts:  # real names, in the order the temporaries are computed
        if s.kind == "temp":
            final[s.symbol] = TempSymbol(new_temp(), *shape_of(s.symbol))
    out = []
    for s in stmts:
        expr = substitute(s.expr, final)
        if s.kind == "temp":
            s = replace(s, symbol=final[s.symbol], comment=comment(final[s.symbol], expr))
        out.append(replace(s, expr=expr))
    return out


def _duplicated_operand(stmts: list[Stmt], duplicated: Callable[[OpNode], set[int]]) -> Basic | None:
    """A compound operand that some NumPy form would spell (and compute) twice."""

    def find(e: Basic) -> Basic | None:
        if not isinstance(e, OpNode):
            return None
        for i in sorted(duplicated(e)):
            if worth_naming(e.children[i]):
                return e.children[i]
        for c in e.children:
            if (hit := find(c)) is not None:
                return hit
        return None

    for s in stmts:
        if (hit := find(s.expr)) is not None:
            return hit
    return None


def _reuse_targets(stmts: list[Stmt], holds: Callable[[Stmt], bool]) -> list[Stmt]:
    """An expression some earlier statement already computed is read from its variable."""
    out: list[Stmt] = []
    defined: dict[Basic, Basic] = {}
    for s in stmts:
        expr = substitute(s.expr, defined) if defined else s.expr
        out.append(replace(s, expr=expr))
        if holds(s) and worth_naming(expr) and expr not in defined:
            defined[expr] = s.symbol
    return out


def _subtrees(e: Basic) -> Counter[Basic]:
    """Every operation node in ``e``, counted as often as it occurs (iteratively: chains are deep)."""
    found: Counter[Basic] = Counter()
    todo = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, OpNode):
            found[x] += 1
            todo.extend(x.children)
    return found
