"""Rows of the registry: reductions (sum, mean; results keep two dimensions) and broadcasting.

A reduction and a broadcast are each other's adjoint: the gradient of a sum is broadcast back,
the gradient of a broadcast is summed over the copies, so the two families sit together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape, shape_of
from backprop.expr.ops_row import ATOM, MUL, Form, Index, IndexForm, Op, axes_of


def _np_axis(axes: tuple[int, ...]) -> int | None:
    return None if len(axes) == 2 else axes[0]


def _reduce_shape(shapes: list[Shape], e: OpNode) -> Shape:
    axes = axes_of(e)
    r, c = shapes[0]
    return (sympy.Integer(1) if 0 in axes else r, sympy.Integer(1) if 1 in axes else c)


def _broadcast_shape(shapes: list[Shape], e: OpNode) -> Shape:
    target = (e.args[1][0], e.args[1][1])
    ir.broadcast_shapes(shapes[0], target, "broadcast")
    return target


def _sum_latex(p: Any, e: OpNode) -> str:
    name = {(0, 1): r"\sum", (0,): r"\operatorname{colsum}", (1,): r"\operatorname{rowsum}"}[axes_of(e)]
    return rf"{name}\left({p.operand(e.children[0], 0)}\right)"


def _sum_text(p: Any, e: OpNode) -> str:
    name = {(0, 1): "Σ", (0,): "colsum", (1,): "rowsum"}[axes_of(e)]
    return f"{name}({p.operand(e.children[0], 0)})"


def _total_numpy(p: Any, x: Basic) -> str:
    """The sum of every entry of ``x``: ``x.sum()``, which skips ``np.sum``'s dispatch; a sum of
    squares of a named matrix as one dot product, ``np.vdot(x, x)``, with no squared temporary;
    ``np.sum(x)`` for a scalar, which may be a Python float without a ``.sum`` method."""
    if ir.is_scalar(x):
        return f"np.sum({p.operand(x, 0)})"
    if isinstance(x, OpNode) and x.op.name == "pow" and x.children[1] == 2:
        base = x.children[0]
        if not isinstance(base, OpNode) and not ir.is_scalar(base):
            name = p.operand(base, 0)
            return f"np.vdot({name}, {name})"
    return f"{p.operand(x, ATOM)}.sum()"


def _sum_numpy(p: Any, e: OpNode) -> str:
    axes = axes_of(e)
    if len(axes) == 2 or ir.is_scalar(e.children[0]):  # a scalar may be a Python float: no .sum(axis=)
        return _total_numpy(p, e.children[0])
    return f"{p.operand(e.children[0], ATOM)}.sum(axis={axes[0]}, keepdims=True)"


def _np_sum(x: np.ndarray, e: OpNode) -> Any:
    ax = _np_axis(axes_of(e))
    return np.sum(x) if ax is None else np.sum(x, axis=ax, keepdims=True)


def sym_sum(x: sympy.Matrix, e: OpNode) -> sympy.Matrix:
    """The exact sum of a concrete matrix along the node's axes (softmax's exact form normalizes by it)."""
    axes = axes_of(e)
    if len(axes) == 2:
        return sympy.Matrix([[sum(x)]])
    if axes == (0,):
        return sympy.Matrix([[sum(x[:, j]) for j in range(x.cols)]])
    return sympy.Matrix([[sum(x[i, :])] for i in range(x.rows)])


def _sum_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """Each reduced axis gets a summed index over the operand's length."""
    idx, summed = list(ij), []
    for ax in axes_of(e):
        if shape_of(e.children[0])[ax] == 1:  # a sum of one term: no index
            continue
        t = fresh()
        idx[ax] = t
        summed.append((t, shape_of(e.children[0])[ax]))
    return IndexForm(tuple(summed), ((idx[0], idx[1]),))


def _mean_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    return _sum_index(e, ij, fresh)._replace(scale=1 / _count(e))


def _count(e: OpNode) -> Basic:
    r, c = shape_of(e.children[0])
    return {(0, 1): r * c, (0,): r, (1,): c}[axes_of(e)]


def _mean_form(latex: bool) -> Form:
    def form(p: Any, e: OpNode) -> str:
        name = {(0, 1): "mean", (0,): "colmean", (1,): "rowmean"}[axes_of(e)]
        inner = p.operand(e.children[0], 0)
        return rf"\operatorname{{{name}}}\left({inner}\right)" if latex else f"{name}({inner})"

    return form


def _mean_numpy(p: Any, e: OpNode) -> str:
    ax = _np_axis(axes_of(e))
    if ir.is_scalar(e.children[0]):  # may be a Python float, which has no .mean
        return f"np.mean({p.operand(e.children[0], 0)})"
    if ax is None:
        return f"{p.operand(e.children[0], ATOM)}.mean()"
    return f"{p.operand(e.children[0], ATOM)}.mean(axis={ax}, keepdims=True)"


def _broadcast_numpy(p: Any, e: OpNode) -> str:
    shape = ", ".join(p.doprint(d) for d in e.args[1])
    return f"np.broadcast_to({p.operand(e.children[0], 0)}, ({shape}))"


def _sym_broadcast(x: sympy.Matrix, e: OpNode) -> sympy.Matrix:
    r, c = (int(d) for d in e.args[1])
    return sympy.Matrix(r, c, lambda i, j: x[i if x.rows > 1 else 0, j if x.cols > 1 else 0])


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "sum", 1, _reduce_shape,
        vjps=(lambda g, out, e: g,),  # the engine broadcasts g back to the operand's shape
        rules=("sum: every entry receives ∂L/∂Σ (broadcast back)",),
        latex=_sum_latex, text=_sum_text, numpy=_sum_numpy, np_eval=_np_sum, sym_eval=sym_sum,
        spec_name="sum", doc="sum of all entries, or along axis=0 (1×c) / axis=1 (r×1)", attrs=("axis",),
        index=_sum_index,
    ),
    Op(
        "mean", 1, _reduce_shape,
        vjps=(lambda g, out, e: ir.div(g, _count(e)),),
        rules=("mean: every entry receives ∂L/∂mean divided by the count",),
        latex=_mean_form(True), text=_mean_form(False), numpy=_mean_numpy,
        np_eval=lambda x, e: _np_sum(x, e) / (x.size / np.size(_np_sum(x, e))),
        sym_eval=lambda x, e: sym_sum(x, e) / (len(x) // len(sym_sum(x, e))),
        spec_name="mean", doc="mean of all entries, or along axis=0 / axis=1", attrs=("axis",),
        index=_mean_index,
    ),
    Op(
        "broadcast", 1, _broadcast_shape,
        vjps=(lambda g, out, e: g,),  # the engine sums g back over the broadcast axes
        rules=("broadcast: ∂L/∂U sums ∂L/∂(broadcast U) over the copies",),
        latex=lambda p, e: (
            rf"{p.operand(e.children[0], MUL)} \mathbf{{1}}_{{{p.doprint(e.args[1][0])} \times {p.doprint(e.args[1][1])}}}"
        ),
        text=lambda p, e: f"{p.operand(e.children[0], MUL)}·𝟏[{fmt_shape(tuple(e.args[1]))}]",
        numpy=_broadcast_numpy, np_eval=lambda x, e: np.broadcast_to(x, tuple(int(d) for d in e.args[1])),
        sym_eval=_sym_broadcast, prec=MUL, attrs=("shape",),
        index=lambda e, ij, fresh: IndexForm((), (ij,)),  # a length-1 axis of the operand drops its index
    ),
)
