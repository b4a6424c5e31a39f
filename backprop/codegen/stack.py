"""Products of one operand with several weights, stacked into one product (a pass over the program).

Attention's projections Q = einsum(N, Wq), K = einsum(N, Wk), V = einsum(N, Wv) read the same N
with weights of one shape: written as one einsum(N, concat(Wq, Wk, Wv)) whose slices are Q, K
and V (views, no copy), BLAS runs one product three times as wide, which it spreads over its
threads better than three narrow ones -- as hand-written code stacks the weights into one
d × 3ak matrix. Copying the weights costs a pass over them, small next to the product.

Each statement's value becomes a slice of the stacked product; common-subexpression elimination
then computes the product once. Values are the same up to rounding order inside BLAS.
"""

from __future__ import annotations

from dataclasses import replace

from sympy import Basic, MatrixSymbol

from backprop.codegen.stmt import Stmt
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_einsum import parse_subscripts
from backprop.expr.ops_tensor import take

NOTE = "one product for {}: einsum(X, concat(W₁, W₂, …)) sliced"


def _member(s: Stmt) -> tuple[tuple, Basic] | None:
    """(group key, weight) for a statement ``einsum(X, W)`` (either order) whose weight W is a name with
    an axis in the output; None for anything else."""
    e = s.expr
    if not (isinstance(e, OpNode) and e.op.name == "einsum" and len(e.children) == 2):
        return None
    ins, out = parse_subscripts(str(e.args[-1]))
    for k in (1, 0):
        w = e.children[k]
        if isinstance(w, MatrixSymbol) and any(ch in out for ch in ins[k]) and w != e.children[1 - k]:
            return (s.section, _canonical(ins, out), k, e.children[1 - k], shape_of(w)), w
    return None


def _canonical(ins: tuple[str, ...], out: str) -> str:
    """Subscripts with letters renamed in order of first use: "mtd,dk->mtk" and "mtd,dj->mtj" agree."""
    names: dict[str, str] = {}
    for ch in "".join(ins):
        names.setdefault(ch, "abcdefghijklmnopqrstuvwxyz"[len(names)])
    return ",".join("".join(names[c] for c in part) for part in ins) + "->" + "".join(names[c] for c in out)


def stack(stmts: list[Stmt], given: set[Basic]) -> list[Stmt]:
    """The program with each group of two or more ``einsum(X, Wᵢ)`` of one X, one subscript string and
    weights of one shape computed as slices of one stacked product. ``given`` are the names the caller
    passes (params, inputs): a weight must be given, or made before the group's first statement."""
    groups: dict[tuple, list[tuple[int, Basic]]] = {}
    made_at = {s.symbol: i for i, s in enumerate(stmts)}
    for i, s in enumerate(stmts):
        found = _member(s)
        if found is not None:
            groups.setdefault(found[0], []).append((i, found[1]))
    out = list(stmts)
    for (_, _, k, x, _), members in groups.items():
        weights = list(dict.fromkeys(w for _, w in members))
        first = members[0][0]
        if len(weights) != len(members) or len(members) < 2:
            continue
        if any(w not in given and made_at.get(w, first) >= first for w in weights):
            continue
        first_expr = stmts[first].expr
        ins, res = parse_subscripts(str(first_expr.args[-1]))
        axis = next(j for j, ch in enumerate(ins[k]) if ch in res)  # the first weight axis the output keeps
        at = res.index(ins[k][axis])
        size = shape_of(weights[0])[axis]
        stacked = ir.node("concat", *weights, ir.axes_attr(axis))
        operands = [x, stacked] if k == 1 else [stacked, x]
        product = ir.node("einsum", *operands, first_expr.args[-1])
        note = NOTE.format(", ".join(str(w) for w in weights))
        for n, (i, _) in enumerate(members):
            index = [(0, d) for d in shape_of(product)]
            index[at] = (n * size, (n + 1) * size)
            out[i] = replace(out[i], expr=take(product, index), comment=out[i].comment + (note,))
    return out
