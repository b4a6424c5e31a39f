"""A state's products with several weights in a loop's step, stacked into one product (a pass).

An LSTM's step reads Hₜ₋₁ Uᵢ, Hₜ₋₁ U_f, Hₜ₋₁ U_g, Hₜ₋₁ U_o: four narrow products of one operand.
With the weights stacked once before the loop, U = [Uᵢ U_f U_g U_o], each step computes one product
Hₜ₋₁ U four times as wide and reads each gate's part as a slice (a view) -- as hand-written LSTMs do,
and as :mod:`backprop.codegen.stack` does for einsums outside loops. The backward pass sends the
gates' δs back through the same stacked weight: Σ_g ∂L/∂Z_g U_gᵀ is [∂L/∂Zᵢ … ∂L/∂Z_o] Uᵀ, one
product of the δs side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from sympy import Basic, MatrixSymbol

from backprop.codegen.stmt import Stmt
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_tensor import take


@dataclass(frozen=True)
class Group:
    """Products ``operand @ W`` (``left``) or ``W @ operand`` of one carried operand with weights of one
    shape, in the order the step first reads them."""

    operand: MatrixSymbol
    left: bool
    weights: tuple[MatrixSymbol, ...]

    @property
    def axis(self) -> int:
        """The axis the weights are stacked along: the one the product keeps."""
        return 1 if self.left else 0


def _products(e: Basic) -> list[OpNode]:
    out, todo = [], [e]
    while todo:
        x = todo.pop()
        if isinstance(x, OpNode):
            if x.op.name == "matmul" and len(x.children) == 2:
                out.append(x)
            todo.extend(reversed(x.children))
    return out


def groups(stmts: list[Stmt], carried: set[Basic], outside: set[Basic]) -> list[Group]:
    """The groups of two or more products of one carried operand (a state's previous step) with
    distinct weights given from outside the loop, each weight of the group's shape."""
    found: dict[tuple, list[MatrixSymbol]] = {}
    for s in stmts:
        for p in _products(s.expr):
            a, b = p.children
            for operand, w, left in ((a, b, True), (b, a, False)):
                if operand in carried and isinstance(w, MatrixSymbol) and w in outside:
                    ws = found.setdefault((operand, left, shape_of(w)), [])
                    if w not in ws:
                        ws.append(w)
    return [Group(op, left, tuple(ws)) for (op, left, _), ws in found.items() if len(ws) > 1]


def forward(e: Basic, g: Group, product: MatrixSymbol) -> Basic:
    """``e`` with each product of the group read as its slice of ``product`` (operand @ stacked)."""
    size = shape_of(g.weights[0])[g.axis]
    table: dict[Basic, Basic] = {}
    for k, w in enumerate(g.weights):
        index = [(0, d) for d in shape_of(product)]
        index[g.axis] = (k * size, (k + 1) * size)
        mm = ir.node("matmul", g.operand, w) if g.left else ir.node("matmul", w, g.operand)
        table[mm] = take(product, index)
    return e.xreplace(table)


def backward(e: Basic, g: Group, stacked: MatrixSymbol) -> Basic:
    """``e`` with a sum Σ_k δ_k W_kᵀ over every weight of the group (``left``; Σ_k W_kᵀ δ_k otherwise)
    written as one product of the δs side by side with the stacked weight's transpose."""
    if not isinstance(e, OpNode):
        return e
    if e.op.name == "add":
        terms = [backward(c, g, stacked) for c in _terms(e)]
        per: dict[MatrixSymbol, Basic] = {}
        rest = []
        for c in terms:
            w, delta = _through(c, g)
            if w is not None and w not in per:
                per[w] = delta
            else:
                rest.append(c)
        if len(per) == len(g.weights):
            side = ir.node("concat", *[per[w] for w in g.weights], ir.axes_attr(g.axis))
            t = ir.node("transpose", stacked)
            terms = [ir.node("matmul", side, t) if g.left else ir.node("matmul", t, side), *rest]
        out = terms[0]
        for c in terms[1:]:
            out = ir.add(out, c)
        return out
    kids = [backward(c, g, stacked) for c in e.children]
    if all(k is c for k, c in zip(kids, e.children)):
        return e
    return e.func(*kids, *e.attrs)


def _terms(e: Basic) -> list[Basic]:
    """The terms of a chain of additions, in order (iteratively: a chain may be long)."""
    out, todo = [], [e]
    while todo:
        x = todo.pop()
        if isinstance(x, OpNode) and x.op.name == "add":
            todo.extend(reversed(x.children))
        else:
            out.append(x)
    return out


def _through(e: Basic, g: Group) -> tuple[MatrixSymbol | None, Basic]:
    """(W, δ) when ``e`` is δ Wᵀ (left) or Wᵀ δ with W a weight of the group, else (None, e)."""
    if isinstance(e, OpNode) and e.op.name == "matmul" and len(e.children) == 2:
        a, b = e.children
        t, delta = (b, a) if g.left else (a, b)
        if isinstance(t, OpNode) and t.op.name == "transpose" and not t.attrs and t.children[0] in g.weights:
            return t.children[0], delta
    return None, e


__all__ = ["Group", "backward", "forward", "groups"]
