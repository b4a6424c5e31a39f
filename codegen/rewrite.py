"""Numerically stable forms for generated code, as one table of rewrite rules.

The derivation keeps the textbook form (``log σ(z)``); code must not: at
z = −1000, σ(z) underflows to 0 and its log is −inf. Each :class:`Rule`
rewrites one such pattern into an equal expression whose NumPy form stays
finite (``log σ(z) = −softplus(−z)``, computed by ``np.logaddexp``). A rule
sees through names: ``log(p)`` with ``p = σ(z)`` defined earlier matches too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sympy import Basic, MatrixSymbol

from derive import ir
from derive.ir import OpNode, is_const

#: Looks a value up: a forward variable -> its defining expression, else itself.
Resolver = Callable[[Basic], Basic]


@dataclass(frozen=True)
class Rule:
    """One rewrite: ``before`` becomes ``after`` (documentation text), applied to ``op`` nodes."""

    op: str
    before: str
    after: str
    apply: Callable[[OpNode, Resolver], Basic | None]

    @property
    def name(self) -> str:
        return f"{self.before} = {self.after}"


def _is(x: Basic, op: str) -> bool:
    return isinstance(x, OpNode) and x.op.name == op


def _log_sigmoid(e: OpNode, see: Resolver) -> Basic | None:
    s = see(e.children[0])
    return ir.neg(ir.node("softplus", ir.neg(s.children[0]))) if _is(s, "sigmoid") else None


def _log_one_minus_sigmoid(e: OpNode, see: Resolver) -> Basic | None:
    d = see(e.children[0])
    if not (_is(d, "sub") and is_const(d.children[0]) and d.children[0] == 1):
        return None
    s = see(d.children[1])
    return ir.neg(ir.node("softplus", s.children[0])) if _is(s, "sigmoid") else None


def _log_softmax(e: OpNode, see: Resolver) -> Basic | None:
    s = see(e.children[0])
    return ir.node("log_softmax", s.children[0], *s.attrs) if _is(s, "softmax") else None


def _log_one_plus_exp(e: OpNode, see: Resolver) -> Basic | None:
    a = see(e.children[0])
    if not _is(a, "add"):
        return None
    x, y = a.children
    if is_const(x) and x == 1 and _is(y, "exp"):
        return ir.node("softplus", y.children[0])
    if is_const(y) and y == 1 and _is(x, "exp"):
        return ir.node("softplus", x.children[0])
    return None


#: Every stability rewrite, in the order they are tried.
RULES: tuple[Rule, ...] = (
    Rule("log", "log σ(x)", "−softplus(−x)", _log_sigmoid),
    Rule("log", "log(1 − σ(x))", "−softplus(x)", _log_one_minus_sigmoid),
    Rule("log", "log softmax(x)", "log_softmax(x)", _log_softmax),
    Rule("log", "log(1 + exp(x))", "softplus(x)", _log_one_plus_exp),
)
_BY_OP: dict[str, list[Rule]] = {}
for _r in RULES:
    _BY_OP.setdefault(_r.op, []).append(_r)


def resolver(defs: Mapping[str, Basic]) -> Resolver:
    """See through forward names: ``p`` -> ``σ(z)`` when ``p = σ(z)``."""

    def see(x: Basic) -> Basic:
        if isinstance(x, MatrixSymbol) and x.name in defs:
            return defs[x.name]
        return x

    return see


def _neg_arg(x: Basic) -> Basic | None:
    return x.children[0] if _is(x, "neg") else None


def _pull_sign(e: OpNode, kids: list[Basic]) -> Basic | None:
    """One step of moving a negation outwards: a ⊙ (−b) = −(a ⊙ b), Σ(−x) = −Σ(x), a + (−b) = a − b."""
    name = e.op.name
    negs = [_neg_arg(k) for k in kids]
    if name in ("mul", "div", "matmul") and any(n is not None for n in negs):
        a, b = (n if n is not None else k for n, k in zip(negs, kids))
        inner = ir.node(name, a, b) if name == "matmul" else getattr(ir, name)(a, b)
        return inner if all(n is not None for n in negs) else ir.neg(inner)
    if name in ("sum", "mean") and negs[0] is not None:
        return ir.neg(ir.node(name, negs[0], *e.attrs))
    if name == "add" and negs[0] is not None:
        return ir.neg(ir.add(negs[0], negs[1])) if negs[1] is not None else ir.sub(kids[1], negs[0])
    if name == "sub" and negs[1] is not None:
        return ir.add(kids[0], negs[1]) if negs[0] is None else ir.sub(negs[1], negs[0])
    if name == "sub" and negs[0] is not None:
        return ir.neg(ir.add(negs[0], kids[1]))
    return None


def tidy_signs(e: Basic) -> Basic:
    """Move negations outwards so rewritten forms read well: −Σ(y ⊙ −softplus(−z)) -> Σ(y ⊙ softplus(−z))."""
    if not isinstance(e, OpNode):
        return e
    kids = [tidy_signs(c) for c in e.children]
    out = _pull_sign(e, kids)
    if out is not None:
        return tidy_signs(out) if not _is(out, "neg") else ir.neg(tidy_signs(out.children[0]))
    if e.op.name == "neg":
        return ir.neg(kids[0])
    return e.func(*kids, *e.attrs)


def stabilize(e: Basic, see: Resolver) -> tuple[Basic, tuple[Rule, ...]]:
    """``e`` with every rule applied bottom-up, and the rules that fired (in order).

    When a rule fired, negations are then moved outwards (:func:`tidy_signs`).
    """
    fired: list[Rule] = []

    def walk(x: Basic) -> Basic:
        if not isinstance(x, OpNode):
            return x
        kids = [walk(c) for c in x.children]
        if any(k is not c for k, c in zip(kids, x.children)):
            x = x.func(*kids, *x.attrs)
        for rule in _BY_OP.get(x.op.name, ()):
            out = rule.apply(x, see)
            if out is not None:
                fired.append(rule)
                return walk(out)
        return x

    out = walk(e)
    if fired:
        out = tidy_signs(out)
    return out, tuple(dict.fromkeys(fired))
