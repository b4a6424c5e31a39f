"""Forms for generated code, as one table of rewrite rules.

The derivation keeps the textbook form (``log σ(z)``); code must not: at
z = −1000, σ(z) underflows to 0 and its log is −inf. Each "stable" :class:`Rule`
rewrites one such pattern into an equal expression whose NumPy form stays
finite (``log σ(z) = −softplus(−z)``, computed by ``np.logaddexp``). A rule
sees through names: ``log(p)`` with ``p = σ(z)`` defined earlier matches too.
"Efficient" rules remove products with a ones-matrix (``c𝟏 B``, from the
gradient of a mean) and matrix products by a 1×1 factor (a scaling).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.codegen.reductions import factor_out_of_sum, scale_smaller, sum_of_products
from backprop.expr import ir
from backprop.expr.ir import OpNode, is_const

#: Looks a value up: a forward variable -> its defining expression, else itself.
Resolver = Callable[[Basic], Basic]


@dataclass(frozen=True)
class Rule:
    """One rewrite: ``before`` becomes ``after`` (documentation text), applied to ``op`` nodes."""

    op: str
    before: str
    after: str
    apply: Callable[[OpNode, Resolver], Basic | None]
    why: str = "stable"  # "stable" or "efficient"

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


def _unit(x: Basic) -> bool:
    return ir.is_scalar(x)


def _scale_product(e: OpNode, see: Resolver) -> Basic | None:
    a, b = e.children
    if _unit(a) or _unit(b):  # (1×1)(1×n) or (n×1)(1×1): a scaling
        return ir.mul(a, b)
    return None


def _ones_left(e: OpNode, see: Resolver) -> Basic | None:
    """broadcast(x) B without the ones: x a scalar, a column or a row."""
    a, b = e.children
    if not _is(a, "broadcast"):
        return None
    x = a.children[0]
    out_shape = e.shape
    rows, cols = ir.shape_of(x)
    if rows == 1 and cols == 1:
        return ir.mul(x, ir.broadcast_to(ir.total(b, 0), out_shape))
    if cols == 1:  # a column repeated: x (1ᵀB) = x colsum(B)
        return ir.matmul(x, ir.total(b, 0))
    return ir.broadcast_to(ir.matmul(x, b), out_shape)  # a row repeated


def _ones_right(e: OpNode, see: Resolver) -> Basic | None:
    """A broadcast(x) without the ones: x a scalar, a row or a column."""
    a, b = e.children
    if not _is(b, "broadcast"):
        return None
    x = b.children[0]
    out_shape = e.shape
    rows, cols = ir.shape_of(x)
    if rows == 1 and cols == 1:
        return ir.mul(x, ir.broadcast_to(ir.total(a, 1), out_shape))
    if rows == 1:  # a row repeated: rowsum(A) x
        return ir.matmul(ir.total(a, 1), x)
    return ir.broadcast_to(ir.matmul(a, x), out_shape)  # a column repeated


def _sum_of_transpose(e: OpNode, see: Resolver) -> Basic | None:
    x = e.children[0]
    axes = tuple(int(a) for a in e.attrs[-1])
    if not _is(x, "transpose") or len(axes) != 1:
        return None
    return ir.transpose(ir.total(x.children[0], 1 - axes[0]))


def _labels_of(x: Basic) -> tuple[Basic, sympy.Tuple] | None:
    """The labels and the axis of a one-hot value ``onehot(y, c)``."""
    return (x.children[0], x.args[-1]) if _is(x, "onehot") else None


def _pick_labels(e: OpNode, see: Resolver) -> Basic | None:
    """Σ(onehot(y) ⊙ A) over the class axis (and maybe others): Σ of the entries at the labels,
    np.take_along_axis, with no c×m one-hot matrix built (cross-entropy on integer labels)."""
    x = e.children[0]
    if not _is(x, "mul"):
        return None
    for hot, a in (x.children, reversed(x.children)):
        found = _labels_of(see(hot))
        if found is not None and ir.shape_of(a) == ir.shape_of(hot) and int(found[1][0]) in ir.axes_tuple(
                tuple(int(k) for k in e.attrs[-1])):
            return ir.total(ir.node("pick", a, *found), tuple(int(k) for k in e.attrs[-1]))
    return None


def _minus_onehot(e: OpNode, see: Resolver) -> Basic | None:
    """A − onehot(y): A with 1 taken off at each label's entry (softmax's cross-entropy gradient),
    no one-hot matrix built."""
    a, hot = e.children
    found = _labels_of(see(hot))
    if found is None or ir.shape_of(a) != ir.shape_of(hot):
        return None
    return ir.node("add_at", a, found[0], sympy.Integer(-1), found[1])


#: Every rewrite, in the order they are tried.
RULES: tuple[Rule, ...] = (
    Rule("log", "log σ(x)", "−softplus(−x)", _log_sigmoid),
    Rule("log", "log(1 − σ(x))", "−softplus(x)", _log_one_minus_sigmoid),
    Rule("log", "log softmax(x)", "log_softmax(x)", _log_softmax),
    Rule("log", "log(1 + exp(x))", "softplus(x)", _log_one_plus_exp),
    Rule("matmul", "(c𝟏) B", "c colsum(B) repeated", _ones_left, "efficient"),
    Rule("matmul", "A (c𝟏)", "c rowsum(A) repeated", _ones_right, "efficient"),
    Rule("matmul", "a B, a 1×1", "a · B", _scale_product, "efficient"),
    Rule("sum", "colsum(Aᵀ)", "rowsum(A)ᵀ", _sum_of_transpose, "efficient"),
    Rule("sum", "Σ(onehot(y) ⊙ A)", "Σ pick(A, y)", _pick_labels, "efficient"),
    Rule("sum", "Σ(A ⊙ b), b constant along the sum", "Σ(A) ⊙ b", factor_out_of_sum, "efficient"),
    Rule("mean", "mean(A ⊙ b), b constant along the mean", "mean(A) ⊙ b", factor_out_of_sum, "efficient"),
    Rule("sum", "Σ(A ⊙ B)", "einsum(A, B)", sum_of_products, "efficient"),
    Rule("mean", "mean(A ⊙ B)", "einsum(A, B)/n", sum_of_products, "efficient"),
    Rule("div", "(A ⊙ B)/c, A the smaller", "(A/c) ⊙ B", scale_smaller, "efficient"),
    Rule("sub", "A − onehot(y)", "add_at(A, y, −1)", _minus_onehot, "efficient"),
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


def _bottom_up(e: Basic, table: Mapping[str, Sequence[Any]], ctx: Any, again: bool) -> tuple[Basic, list[Any]]:
    """Apply the first matching rule of ``table`` (keyed by op name) at every node, leaves
    first; with ``again``, a node a rule produced is rewritten in turn. Returns the result
    and the rules that fired, in order."""
    fired: list[Any] = []

    def walk(x: Basic) -> Basic:
        if not isinstance(x, OpNode):
            return x
        kids = [walk(c) for c in x.children]
        if any(k is not c for k, c in zip(kids, x.children)):
            x = x.func(*kids, *x.attrs)
        for rule in table.get(x.op.name, ()):
            out = rule.apply(x, ctx)
            if out is not None:
                fired.append(rule)
                return walk(out) if again else out
        return x

    return walk(e), fired


def stabilize(e: Basic, see: Resolver) -> tuple[Basic, tuple[Rule, ...]]:
    """``e`` with every rule applied bottom-up, and the rules that fired (in order).

    When a rule fired, negations are then moved outwards (:func:`tidy_signs`).
    """
    out, fired = _bottom_up(e, _BY_OP, see, again=True)
    if any(r.why == "stable" for r in fired):
        out = tidy_signs(out)
    return out, tuple(dict.fromkeys(fired))


# ---------------------------------------------------------------------------
# Reusing forward values in backward (these rules need the forward pass)
# ---------------------------------------------------------------------------

#: Forward subexpressions available to backward: expression -> the value that holds it.
Available = Mapping[Basic, Basic]


@dataclass(frozen=True)
class Reuse:
    """A backward form rewritten to read a value forward computes anyway."""

    op: str
    before: str
    after: str
    apply: Callable[[OpNode, Available], Basic | None]

    @property
    def name(self) -> str:
        return f"{self.before} = {self.after}"


def _step_of_relu(e: OpNode, have: Available) -> Basic | None:
    a = have.get(ir.node("relu", e.children[0]))
    return ir.node("step", a) if a is not None else None


def _softmax_from_log(e: OpNode, have: Available) -> Basic | None:
    ls = ir.node("log_softmax", e.children[0], *e.attrs)
    return ir.node("exp", ls) if ls in have else None


#: Backward forms that reuse forward values, so the cache can skip the pre-activation.
REUSES: tuple[Reuse, ...] = (
    Reuse("step", "[x > 0]", "[ReLU(x) > 0]", _step_of_relu),
    Reuse("softmax", "softmax(x)", "exp(log_softmax(x))", _softmax_from_log),
)
_REUSE_BY_OP: dict[str, list[Reuse]] = {}
for _u in REUSES:
    _REUSE_BY_OP.setdefault(_u.op, []).append(_u)


def available(forward: list[tuple[Basic, Basic]]) -> dict[Basic, Basic]:
    """Every subexpression of the forward statements ``(symbol, expr)``, mapped to what holds it:
    the statement's symbol for a whole right-hand side, else the expression itself."""
    out: dict[Basic, Basic] = {}

    def walk(e: Basic) -> None:
        if isinstance(e, OpNode):
            out.setdefault(e, e)
            for c in e.children:
                walk(c)

    for symbol, expr in forward:
        walk(expr)
        out[expr] = symbol
    return out


def reuse(e: Basic, have: Available) -> tuple[Basic, tuple[Reuse, ...]]:
    """``e`` reading forward values where a :data:`REUSES` rule allows, and the rules used."""
    out, used = _bottom_up(e, _REUSE_BY_OP, have, again=False)
    return out, tuple(dict.fromkeys(used))


# ---------------------------------------------------------------------------
# Products by an inverse: solves, unless the inverse is computed anyway (a pass over the program)
# ---------------------------------------------------------------------------


def _inverse_factor(x: Basic) -> tuple[Basic, bool] | None:
    """inv(A) -> (A, False); inv(A)ᵀ -> (A, True); anything else -> None."""
    transposed = _is(x, "transpose")
    inner = x.children[0] if transposed else x
    return (inner.children[0], transposed) if _is(inner, "inv") else None


def _inverses_needed(exprs: Sequence[Basic]) -> set[Basic]:
    """The matrices A whose inverse the program needs as a value (not only as a factor of a product:
    the gradient of log det A is A⁻ᵀ itself). A product's left factor is taken first, so in A⁻¹ B⁻¹
    the right one counts as a value."""
    out: set[Basic] = set()
    seen: set[Basic] = set()
    todo = list(exprs)
    while todo:
        e = todo.pop()
        if not isinstance(e, OpNode) or e in seen:
            continue
        seen.add(e)
        kids = list(e.children)
        if _is(e, "matmul"):
            left, right = (_inverse_factor(k) for k in kids)
            spent = 0 if left is not None else (1 if right is not None else None)
            if spent is not None:
                factor = _inverse_factor(kids[spent])
                assert factor is not None
                kids[spent] = factor[0]
        elif _is(e, "inv"):
            out.add(e.children[0])
        todo.extend(kids)
    return out


def _solve(a: Basic, transposed: bool, b: Basic) -> Basic:
    return ir.node("solve", ir.transpose(a) if transposed else a, b)


def _by_inverse(e: Basic, needed: set[Basic]) -> Basic:
    """``e`` with each product by an unneeded inverse a solve, each solve by a needed one a product:
    A⁻¹ B = solve(A, B), A⁻ᵀ B = solve(Aᵀ, B), B A⁻¹ = solve(Aᵀ, Bᵀ)ᵀ, B A⁻ᵀ = solve(A, Bᵀ)ᵀ."""
    if not isinstance(e, OpNode):
        return e
    kids = [_by_inverse(c, needed) for c in e.children]
    if any(k is not c for k, c in zip(kids, e.children)):
        e = e.func(*kids, *e.attrs)
    if _is(e, "matmul"):
        left, right = (_inverse_factor(k) for k in kids)
        if left is not None and left[0] not in needed:
            return _solve(left[0], left[1], kids[1])
        if left is None and right is not None and right[0] not in needed:
            return ir.transpose(_solve(right[0], not right[1], ir.transpose(kids[0])))
    if _is(e, "solve"):
        a, b = kids
        transposed = _is(a, "transpose")
        base = a.children[0] if transposed else a
        if base in needed:
            inverse = ir.node("inv", base)
            return ir.matmul(ir.transpose(inverse) if transposed else inverse, b)
    return e


#: How :func:`inverses` reads in a statement's comment.
SOLVE_NOTE = "no inverse formed: A⁻¹ B = solve(A, B)"
REUSE_INVERSE_NOTE = "the inverse is computed anyway: solve(A, B) = A⁻¹ B"


def inverses(exprs: Sequence[Basic]) -> tuple[list[Basic], list[str]]:
    """Each expression of the program with every product by an inverse computed as a solve (LU and
    triangular solves, no explicit inverse: far smaller residuals, and faster unless B has many more
    columns than A, docs/operations.md) -- unless the program needs the inverse as a value anyway:
    then products by it, and solves with the same matrix, multiply by that one inverse instead of
    factorizing the matrix again. Returns the expressions and, per expression, the note for its
    comment ("" where nothing changed).

    A pass over the whole program, not a :class:`Rule`: whether A⁻¹ is needed is a property of every
    statement at once.
    """
    needed = _inverses_needed(exprs)
    out, notes = [], []
    for e in exprs:
        new = _by_inverse(e, needed)
        out.append(new)
        solves = sum(isinstance(x, OpNode) and x.op.name == "solve" for x in sympy.preorder_traversal(new))
        before = sum(isinstance(x, OpNode) and x.op.name == "solve" for x in sympy.preorder_traversal(e))
        notes.append("" if new == e else (SOLVE_NOTE if solves > before else REUSE_INVERSE_NOTE))
    return out, notes
