"""Rows of the registry: reductions (sum, mean; results keep two dimensions) and broadcasting.

A reduction and a broadcast are each other's adjoint: the gradient of a sum is broadcast back,
the gradient of a broadcast is summed over the copies, so the two families sit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape, shape_of
from backprop.expr.ops_row import ATOM, MUL, Form, Index, IndexForm, Op, axes_of
from backprop.support.errors import ShapeError


def _every_axis(e: OpNode) -> bool:
    return len(axes_of(e)) == len(shape_of(e.children[0]))


def np_axis(e: OpNode) -> int | tuple[int, ...] | None:
    """NumPy's ``axis=`` for the node's reduced axes: None for all of them."""
    axes = axes_of(e)
    return None if _every_axis(e) else axes[0] if len(axes) == 1 else axes


def reduce_shape(shapes: list[Shape], e: OpNode) -> Shape:
    axes = axes_of(e)
    if not axes or len(set(axes)) != len(axes) or not all(0 <= ax < len(shapes[0]) for ax in axes):
        raise ShapeError(f"axis {', '.join(map(str, axes))} is not an axis of a {fmt_shape(shapes[0])} value")
    return ir.reduced_shape(shapes[0], axes)


def _broadcast_shape(shapes: list[Shape], e: OpNode) -> Shape:
    target = tuple(e.args[1])
    if ir.broadcast_shapes(shapes[0], target, "broadcast") != target:
        raise ShapeError(f"cannot broadcast {fmt_shape(shapes[0])} to the smaller {fmt_shape(target)}")
    return target


#: How notes name a matrix's reductions, by reduced axes: of everything, of each column, of each row.
#: A row sum runs over the column index t -- over the examples, when they are columns, as in
#: (1/m) Σₜ, and as index notation sums over them (Σₜ ∂L/∂Z_it) -- so it is written Σₜ: one name for
#: the bias gradient's sum and the loss's sum over a 1×m row alike (:data:`SUM_NAMES` says what each
#: name means, where the notes first use it).
_MATRIX_NAMES = {
    "sum": {(0, 1): ("Σ", r"\sum"), (0,): ("colsum", r"\operatorname{colsum}"), (1,): ("Σₜ", r"\sum_{t}")},
    "mean": {(0, 1): ("mean", r"\operatorname{mean}"), (0,): ("colmean", r"\operatorname{colmean}"),
             (1,): ("rowmean", r"\operatorname{rowmean}")},
}


def _matrix_axes(e: OpNode) -> tuple[int, ...]:
    """The axes a matrix's sum runs over as notes see them: the sum of every entry of a 1×c row is its
    row sum (over its columns), of an r×1 column its column sum. (A mean keeps its name: mean(·)
    of a row reads as it is.)"""
    axes, (rows, cols) = axes_of(e), shape_of(e.children[0])
    if axes == (0, 1) and rows == 1 and cols != 1:
        return (1,)
    if axes == (0, 1) and cols == 1 and rows != 1:
        return (0,)
    return axes


#: The sum names a derivation may print, each with what it means (text, LaTeX text mode), for the
#: sentence that defines them where they are first used.
SUM_NAMES: dict[str, tuple[str, str]] = {
    "Σₜ": ("Σₜ adds each row over its columns t (the examples, when examples are columns)",
           r"$\sum_{t}$ adds each row over its columns $t$ (the examples, when examples are columns)"),
    "Σ": ("Σ without an index adds every entry", r"$\sum$ without an index adds every entry"),
    "colsum": ("colsum adds each column over its rows", r"$\operatorname{colsum}$ adds each column over its rows"),
}


#: Whether a row sum is written ``rowsum``, not Σₜ: in the notes of a loop over t, Σₜ is the sum over
#: the steps, and the examples' sum must not read as one.
_ROWSUM_BY_WORD: ContextVar[bool] = ContextVar("rowsum_by_word", default=False)
ROWSUM_WORD = ("rowsum", r"\operatorname{rowsum}")


@contextmanager
def rowsum_by_word() -> Iterator[None]:
    """Print row sums as ``rowsum`` within the block (the notes of a loop over t)."""
    token = _ROWSUM_BY_WORD.set(True)
    try:
        yield
    finally:
        _ROWSUM_BY_WORD.reset(token)


def _reduction_name(e: OpNode, word: str, latex: bool) -> str:
    r"""``sum``/``mean`` of a matrix as notes name them (colsum, rowmean, Σ); of any other rank, the
    word with the reduced axes as a subscript: sum_(0,2), \operatorname{sum}_{0,2}."""
    axes = axes_of(e)
    if len(shape_of(e.children[0])) == 2:
        reduced = _matrix_axes(e) if word == "sum" else axes_of(e)
        if word == "sum" and reduced == (1,) and _ROWSUM_BY_WORD.get():
            return ROWSUM_WORD[latex]
        return _MATRIX_NAMES[word][reduced][latex]
    if _every_axis(e):
        return _MATRIX_NAMES[word][(0, 1)][latex]
    listed = ",".join(map(str, axes))
    return rf"\operatorname{{{word}}}_{{{listed}}}" if latex else f"{word}_({listed})"


def _broadcast_latex(p: Any, e: OpNode) -> str:
    r"""c 𝟏 with the broadcast shape as subscript: c \mathbf{1}_{k \times m}."""
    dims = r" \times ".join(p.doprint(d) for d in e.args[1])
    return rf"{p.operand(e.children[0], MUL)} \mathbf{{1}}_{{{dims}}}"


def _sum_latex(p: Any, e: OpNode) -> str:
    return rf"{_reduction_name(e, 'sum', True)}\left({p.operand(e.children[0], 0)}\right)"


def _sum_text(p: Any, e: OpNode) -> str:
    return f"{_reduction_name(e, 'sum', False)}({p.operand(e.children[0], 0)})"


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
    ax = np_axis(e)
    if ax is None or ir.is_scalar(e.children[0]):  # a scalar may be a Python float: no .sum(axis=)
        return _total_numpy(p, e.children[0])
    return f"{p.operand(e.children[0], ATOM)}.sum(axis={ax}, keepdims=True)"


def _np_sum(x: np.ndarray, e: OpNode) -> Any:
    ax = np_axis(e)
    return np.sum(x) if ax is None else np.sum(x, axis=ax, keepdims=True)


def sym_sum(x: np.ndarray, e: OpNode) -> np.ndarray:
    """The exact sum of an object array along the node's axes (softmax's exact form normalizes by it)."""
    ax = np_axis(e)
    return np.array([[x.sum()]], dtype=object) if ax is None else x.sum(axis=ax, keepdims=True)


def _sum_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """Each reduced axis gets a summed index over the operand's length."""
    xs = shape_of(e.children[0])
    idx: list[str | None] = list(ij) if len(ij) == len(xs) else [None] * len(xs)
    summed = []
    for ax in axes_of(e):
        if xs[ax] == 1:  # a sum of one term: no index
            continue
        t = fresh()
        idx[ax] = t
        summed.append((t, xs[ax]))
    return IndexForm(tuple(summed), (tuple(idx),))


def _mean_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    return _sum_index(e, ij, fresh)._replace(scale=1 / _count(e))


def _count(e: OpNode) -> Basic:
    xs = shape_of(e.children[0])
    return sympy.Mul(*(xs[ax] for ax in axes_of(e)))


def _mean_form(latex: bool) -> Form:
    def form(p: Any, e: OpNode) -> str:
        name, inner = _reduction_name(e, "mean", latex), p.operand(e.children[0], 0)
        return rf"{name}\left({inner}\right)" if latex else f"{name}({inner})"

    return form


def _mean_numpy(p: Any, e: OpNode) -> str:
    ax = np_axis(e)
    if ir.is_scalar(e.children[0]):  # may be a Python float, which has no .mean
        return f"np.mean({p.operand(e.children[0], 0)})"
    if ax is None:
        return f"{p.operand(e.children[0], ATOM)}.mean()"
    return f"{p.operand(e.children[0], ATOM)}.mean(axis={ax}, keepdims=True)"


def _broadcast_numpy(p: Any, e: OpNode) -> str:
    shape = ", ".join(p.doprint(d) for d in e.args[1])
    return f"np.broadcast_to({p.operand(e.children[0], 0)}, ({shape}))"


def _broadcast_eval(x: np.ndarray, e: OpNode, sizes: Mapping[Basic, int]) -> np.ndarray:
    return np.array(np.broadcast_to(x, tuple(ir.concrete(d, sizes) for d in e.args[1])))


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "sum", 1, reduce_shape,
        vjps=(lambda g, out, e: g,),  # the engine broadcasts g back to the operand's shape
        rules=("sum: every entry of 𝒰 receives the gradient of the sum it went into (broadcast back)",),
        latex=_sum_latex, text=_sum_text, numpy=_sum_numpy, np_eval=_np_sum, sym_eval=sym_sum,
        spec_name="sum", doc="sum of all entries, or along axis=0 (1×c) / axis=1 (r×1)", attrs=("axis",),
        index=_sum_index,
    ),
    Op(
        "mean", 1, reduce_shape,
        vjps=(lambda g, out, e: ir.div(g, _count(e)),),
        rules=("mean: every entry of 𝒰 receives the gradient of the mean it went into, divided by the count",),
        latex=_mean_form(True), text=_mean_form(False), numpy=_mean_numpy,
        np_eval=lambda x, e: _np_sum(x, e) / (x.size / np.size(_np_sum(x, e))),
        sym_eval=lambda x, e: sym_sum(x, e) / sympy.Integer(x.size // sym_sum(x, e).size),
        spec_name="mean", doc="mean of all entries, or along axis=0 / axis=1", attrs=("axis",),
        index=_mean_index,
    ),
    Op(
        "broadcast", 1, _broadcast_shape,
        vjps=(lambda g, out, e: g,),  # the engine sums g back over the broadcast axes
        rules=("broadcast: ∂L/∂𝒰 sums the gradient of the broadcast 𝒰 over the copies",),
        latex=_broadcast_latex,
        text=lambda p, e: f"{p.operand(e.children[0], MUL)}·𝟏[{fmt_shape(tuple(e.args[1]))}]",
        numpy=_broadcast_numpy, np_eval=_broadcast_eval, sym_eval=_broadcast_eval, sized=True,
        prec=MUL, attrs=("shape",),
        index=lambda e, ij, fresh: IndexForm((), (ij,)),  # a length-1 axis of the operand drops its index,
        view=True,
    ),
)
