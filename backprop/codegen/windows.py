"""A convolution's windows gathered once for its forward pass and its filter gradient, and a max
pooling's route handed the pooled value (a pass over the program, NumPy modules only).

``conv2d(X, W)`` and ``corr2d(X, δ)`` (the filter gradient) both read every window of X; each
helper alone gathers them into an im2col copy for its matrix product. Rewritten as
``conv_windows(im2col(X), W)`` and ``corr_windows(im2col(X), δ)``, common-subexpression
elimination computes ``im2col(X)`` once, in the forward pass, and the cache carries it to the
backward pass, as a hand-written im2col layer keeps its columns: the backward pass neither copies
the windows again nor faults in fresh memory for them. Likewise ``route_max(δ, X)`` pools X again
to find each window's maximum; where the statements compute ``maxpool(X)`` it becomes
``route_max_at(δ, X, maxpool(X))``, which elimination reads from the forward pass's variable.

Only pairs that are both there are rewritten (a convolution whose filters are constants keeps its
one helper), and only with the kernel's sizes as numbers. The values are the same products in the
same order: the generated gradients do not change by a bit.
"""

from __future__ import annotations

from dataclasses import replace

from sympy import Basic, Integer

from backprop.codegen.stmt import Stmt
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of

CONVS = {"conv1d": "conv1d_filter", "conv2d": "conv2d_filter"}


def _nodes(stmts: list[Stmt]) -> set[OpNode]:
    """Every operation node of every statement (iteratively: chains are deep)."""
    found: set[OpNode] = set()
    todo = [s.expr for s in stmts]
    while todo:
        x = todo.pop()
        if isinstance(x, OpNode) and x not in found:
            found.add(x)
            todo.extend(x.children)
    return found


def _kernel(w: Basic) -> tuple[int, ...] | None:
    sizes = shape_of(w)[2:]
    return tuple(int(k) for k in sizes) if all(getattr(k, "is_Integer", False) for k in sizes) else None


def share(stmts: list[Stmt]) -> list[Stmt]:
    """The statements with each convolution and its filter gradient reading one gathered im2col value,
    and each max pooling's route reading the pooled value."""
    nodes = _nodes(stmts)
    filters = {(n.op.name, n.children[0], n.attrs) for n in nodes if n.op.name in CONVS.values()}
    kernels = {(n.children[0], n.attrs): k for n in nodes if n.op.name in CONVS
               and (CONVS[n.op.name], n.children[0], n.attrs) in filters and (k := _kernel(n.children[1]))}
    pooled = {(n.children[0], n.attrs) for n in nodes if n.op.name == "max_pool2d"}
    routes = {n for n in nodes if n.op.name == "max_pool2d_route" and (n.children[1], n.attrs) in pooled}
    if not kernels and not routes:
        return stmts

    def new(n: OpNode, kids: list[Basic]) -> Basic:
        name = n.op.name
        if (name in CONVS or name in CONVS.values()) and (key := (n.children[0], n.attrs)) in kernels:
            stride, pad, batch = n.attrs
            cols = ir.node("im2col", kids[0], stride, pad, batch, *map(Integer, kernels[key]))
            return ir.node("conv_windows" if name in CONVS else "corr_windows", cols, kids[1], batch)
        if n in routes:
            return ir.node("max_pool2d_route_at", *kids, ir.node("max_pool2d", kids[1], *n.attrs), *n.attrs)
        return n if all(k is c for k, c in zip(kids, n.children)) else n.func(*kids, *n.attrs)

    done: dict[Basic, Basic] = {}
    for s in stmts:  # children before parents, without recursion: chains are deep
        todo = [(s.expr, False)]
        while todo:
            e, ready = todo.pop()
            if e in done or not isinstance(e, OpNode):
                continue
            if ready:
                done[e] = new(e, [done.get(c, c) for c in e.children])
            else:
                todo.append((e, True))
                todo.extend((c, False) for c in e.children)
    return [replace(s, expr=done.get(s.expr, s.expr)) for s in stmts]
