"""Rows of the registry: integer class labels -- ``onehot(y, c)``, the lookup ``take(E, x, axis=k)``
and what the code generator writes instead of a one-hot matrix.

An input declared ``labels(c)`` holds whole numbers in 0..c−1 (one class per example, as every
PyTorch data set gives them). No gradient flows into labels; a gradient flows through a lookup
into the table looked up, and its adjoint is a scatter-add: each looked-up slice's gradient added
into the slice it came from (``scatter``). ``pick`` (``np.take_along_axis``: the entry of each
example's label) and ``add_at`` (a value plus v at each label's entry) are what cross-entropy on
integer labels is generated as, never building the c×m one-hot matrix
(:func:`backprop.codegen.rewrite.stabilize`); they are not spec functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape
from backprop.expr.ops_row import ATOM, Op, axes_of
from backprop.support.errors import ShapeError

# ---------------------------------------------------------------------------
# Evaluation, shared by np_eval, sym_eval and the generated code's helpers
# ---------------------------------------------------------------------------


def _ints(idx: Any) -> np.ndarray:
    """Labels as array indices (evaluation holds them as floats, or as exact SymPy integers)."""
    return np.vectorize(int, otypes=[np.intp])(idx) if np.asarray(idx).dtype == object else \
        np.asarray(idx).astype(np.intp)


def _classes_along(c: int, axis: int, rank: int) -> np.ndarray:
    """0..c−1 along ``axis`` of a value of ``rank``, length 1 elsewhere: compared with labels, a one-hot."""
    return np.arange(c).reshape(tuple(c if k == axis else 1 for k in range(rank)))


def _onehot_eval(y: Any, e: OpNode, sizes: Any, one: Any = 1.0) -> np.ndarray:
    c = ir.concrete(e.args[1], sizes)
    y = _ints(y)
    hit = y == _classes_along(c, axes_of(e)[0], y.ndim)
    return np.where(hit, one, 0 * one).astype(float if one == 1.0 else object)


def _gather_eval(a: Any, idx: Any, e: OpNode) -> np.ndarray:
    return np.take(np.asarray(a), _ints(idx), axis=axes_of(e)[0])


def scatter_add(g: np.ndarray, idx: np.ndarray, n: int, axis: int) -> np.ndarray:
    """The adjoint of ``np.take(a, idx, axis)`` for an ``a`` with ``n`` entries along ``axis``: every
    slice of ``g`` added into the slice of ``a`` it was taken from (exact: any dtype, object too)."""
    idx = _ints(idx)
    r = idx.ndim
    pre, post = g.shape[:axis], g.shape[axis + r:]
    out = np.zeros(pre + (n,) + post, dtype=g.dtype)
    lead = (slice(None),) * axis
    for pos in np.ndindex(*idx.shape):
        out[(*lead, int(idx[pos]))] = out[(*lead, int(idx[pos]))] + g[(*lead, *pos)]
    return out


def _pick_eval(a: Any, idx: Any, e: OpNode) -> np.ndarray:
    return np.take_along_axis(np.asarray(a), _ints(idx), axis=axes_of(e)[0])


def _add_at_eval(a: Any, idx: Any, v: Any, e: OpNode) -> np.ndarray:
    a = np.asarray(a)
    out = a.astype(object if a.dtype == object else float)  # a copy
    i, axis = _ints(idx), axes_of(e)[0]
    np.put_along_axis(out, i, np.take_along_axis(out, i, axis=axis) + np.asarray(v).reshape(()), axis=axis)
    return out


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def _axis(e: OpNode, rank: int, what: str) -> int:
    ax = axes_of(e)
    if len(ax) != 1 or not 0 <= ax[0] < rank:
        raise ShapeError(f"{what}: axis {', '.join(map(str, ax))} is not an axis of a rank-{rank} value")
    return ax[0]


def _onehot_shape(shapes: list[Shape], e: OpNode) -> Shape:
    """The labels' shape with the class axis (length 1 there: one label per example) grown to c."""
    (s,) = shapes
    k = _axis(e, len(s), "onehot")
    if s[k] != 1:
        raise ShapeError(f"onehot needs labels with length 1 along the class axis {k} (one label per example), "
                         f"got {fmt_shape(s)}")
    return s[:k] + (e.args[1],) + s[k + 1:]


def _gather_shape(shapes: list[Shape], e: OpNode) -> Shape:
    """np.take's: the table's axis k replaced by the indices' shape."""
    a, idx = shapes
    k = _axis(e, len(a), "take")
    return a[:k] + idx + a[k + 1:]


def _scatter_shape(shapes: list[Shape], e: OpNode) -> Shape:
    g, idx = shapes
    k = axes_of(e)[0]
    if g[k:k + len(idx)] != idx:
        raise ShapeError(f"scatter: {fmt_shape(g)} does not hold the indices' shape {fmt_shape(idx)} at axis {k}")
    return g[:k] + (e.args[2],) + g[k + len(idx):]


def _pick_shape(shapes: list[Shape], e: OpNode) -> Shape:
    a, idx = shapes
    k = _axis(e, len(a), "pick")
    want = a[:k] + (sympy.Integer(1),) + a[k + 1:]
    if idx != want:
        raise ShapeError(f"pick from {fmt_shape(a)} along axis {k} needs labels of shape {fmt_shape(want)}, "
                         f"got {fmt_shape(idx)}")
    return want


def _add_at_shape(shapes: list[Shape], e: OpNode) -> Shape:
    a, idx, v = shapes
    if not ir.is_scalar_shape(v):
        raise ShapeError(f"add_at adds a scalar, got {fmt_shape(v)}")
    _pick_shape([a, idx], e)
    return a


# ---------------------------------------------------------------------------
# Adjoints
# ---------------------------------------------------------------------------


def onehot(y: Basic, classes: Basic, axis: int = 0) -> Basic:
    """The one-hot form of labels ``y`` along ``axis``."""
    return ir.node("onehot", y, classes, ir.axes_attr(axis, len(ir.shape_of(y))))


def _gather_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    a, idx = e.children
    k = axes_of(e)[0]
    return ir.node("scatter", g, idx, ir.shape_of(a)[k], e.args[-1])


def _scatter_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return ir.node("gather", g, e.children[1], e.args[-1])


def _pick_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    """Each example's gradient at its label's entry, 0 elsewhere: onehot(y) ⊙ ∂L/∂P."""
    a, idx = e.children
    k = axes_of(e)[0]
    return ir.mul(onehot(idx, ir.shape_of(a)[k], k), g)


def _add_at_value_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return g


def _add_at_amount_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return ir.total(ir.node("pick", g, e.children[1], e.args[-1]))


# ---------------------------------------------------------------------------
# Forms
# ---------------------------------------------------------------------------


def _index_latex(p: Any, e: OpNode) -> str:
    """E_{:, x}: the table's entries at the indices along the axis, every entry along the others."""
    a, idx = e.children
    k = axes_of(e)[0]
    where = [":"] * len(ir.shape_of(a))
    where[k] = p.doprint(idx)
    return f"{p.operand(a, ATOM)}_{{{', '.join(where)}}}"


def _index_text(p: Any, e: OpNode) -> str:
    a, idx = e.children
    k = axes_of(e)[0]
    where = [":"] * len(ir.shape_of(a))
    where[k] = p.doprint(idx)
    return f"{p.operand(a, ATOM)}[{', '.join(where)}]"


def _onehot_numpy(p: Any, e: OpNode) -> str:
    """``(y == np.arange(c)[:, None])``: a boolean mask where the printer allows one, else 0/1 floats."""
    y = e.children[0]
    k, rank = axes_of(e)[0], len(ir.shape_of(y))
    spread = "" if rank == 1 else "[" + ", ".join(":" if j == k else "None" for j in range(rank)) + "]"
    test = f"{p.operand(y, 0)} == np.arange({p.doprint(e.args[1])}){spread}"
    return f"({test})" if getattr(p, "mask_ok", True) else f"np.where({test}, 1.0, 0.0)"


_SCATTER_HELPER = '''\
def _scatter_add(g, idx, n, axis):
    """The adjoint of np.take(a, idx, axis) for an a with n entries along axis: every slice of g
    added into the slice of a it was taken from. One np.bincount over (index, position) pairs,
    several times faster than np.add.at (bench/labels.py)."""
    idx = np.asarray(idx, dtype=np.intp)
    r = idx.ndim
    pre, post = g.shape[:axis], g.shape[axis + r:]
    g = np.moveaxis(g, tuple(range(axis, axis + r)), tuple(range(r))).reshape(idx.size, -1)
    width = g.shape[1]
    flat = (idx.reshape(-1, 1) * width + np.arange(width)).ravel()
    out = np.bincount(flat, weights=g.ravel(), minlength=n * width).astype(g.dtype, copy=False)
    return np.moveaxis(out.reshape((n,) + pre + post), 0, axis)
'''

_ADD_AT_HELPER = '''\
def _add_at(a, idx, v, axis):
    """A copy of a with v added at each label's entry along axis (a − onehot(idx) for v = −1,
    without building the one-hot matrix)."""
    out = np.array(a, dtype=np.result_type(a, 1.0))
    np.put_along_axis(out, idx, np.take_along_axis(out, idx, axis=axis) + v, axis=axis)
    return out
'''

_SCATTER_JAX_HELPER = '''\
def _scatter_add(g, idx, n, axis):
    """The adjoint of jnp.take(a, idx, axis) for an a with n entries along axis: every slice of g
    added into the slice of a it was taken from (a repeated index adds up)."""
    shape = g.shape[:axis] + (n,) + g.shape[axis + jnp.ndim(idx):]
    return jnp.zeros(shape, g.dtype).at[(slice(None),) * axis + (idx,)].add(g)
'''

_ADD_AT_JAX_HELPER = '''\
def _add_at(a, idx, v, axis):
    """a with v added at each label's entry along axis (a − onehot(idx) for v = −1, without
    building the one-hot matrix)."""
    a = jnp.asarray(a, dtype=jnp.result_type(a, 1.0))
    at = [jnp.arange(size).reshape([-1 if k == j else 1 for j in range(a.ndim)]) for k, size in enumerate(a.shape)]
    at[axis] = idx
    return a.at[tuple(at)].add(v)
'''

#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "onehot", 1, _onehot_shape,
        vjps=(None,),
        rules=("one-hot labels, a 0/1 mask (no gradient flows into labels)",),
        latex=lambda p, e: rf"\operatorname{{onehot}}_{{{p.doprint(e.args[1])}}}\left({p.doprint(e.children[0])}\right)",
        text=lambda p, e: f"onehot({p.doprint(e.children[0])}, {p.doprint(e.args[1])})",
        numpy=_onehot_numpy, np_eval=_onehot_eval,
        sym_eval=lambda y, e, sizes: _onehot_eval(y, e, sizes, sympy.Integer(1)),
        sized=True, attrs=("classes", "axis"), mask=True, spec_name="onehot", signature="(y, c)",
        doc="labels y[1, m] declared labels(c) as one-hot columns, c×m: onehot(y, c)",
    ),
    Op(
        "gather", 2, _gather_shape,
        vjps=(_gather_vjp, None),
        rules=("lookup: ∂L/∂𝒰 adds each slice's gradient where it was taken (a scatter-add)",
               "the indices of a lookup, labels (no gradient flows into them)"),
        latex=_index_latex, text=_index_text,
        numpy=lambda p, e: f"np.take({p.operand(e.children[0], 0)}, {p.operand(e.children[1], 0)}, "
                           f"axis={axes_of(e)[0]})",
        np_eval=_gather_eval, sym_eval=_gather_eval, attrs=("axis",), spec_name="take",
        signature="(E, x, axis=k)",
        doc="the slices of E at the indices x along axis k (an embedding lookup): take(E, x, axis=1)",
    ),
    Op(
        "scatter", 2, _scatter_shape,
        vjps=(_scatter_vjp, None),
        rules=("scatter-add: ∂L/∂𝒰 is the gradient of the "
            "scatter-add looked up at the indices", "the indices, labels (no gradient)"),
        latex=lambda p, e: rf"\operatorname{{scatter}}_{{{p.doprint(e.args[2])}}}\left({p.doprint(e.children[0])}, "
                           rf"{p.doprint(e.children[1])}\right)",
        text=lambda p, e: f"scatter_add({p.doprint(e.children[0])}, {p.doprint(e.children[1])}, "
                          f"{p.doprint(e.args[2])})",
        numpy=lambda p, e: f"_scatter_add({p.operand(e.children[0], 0)}, {p.operand(e.children[1], 0)}, "
                           f"{p.doprint(e.args[2])}, {axes_of(e)[0]})",
        np_eval=lambda g, idx, e, sizes: scatter_add(np.asarray(g, dtype=float), idx, ir.concrete(e.args[2], sizes),
                                                     axes_of(e)[0]),
        sym_eval=lambda g, idx, e, sizes: scatter_add(np.asarray(g, dtype=object), idx,
                                                      ir.concrete(e.args[2], sizes), axes_of(e)[0]),
        sized=True, attrs=("size", "axis"), numpy_helper=_SCATTER_HELPER, jax_helper=_SCATTER_JAX_HELPER,
        doc="zeros with each slice of G added at its index along the axis: the adjoint of a lookup",
    ),
    Op(
        "pick", 2, _pick_shape,
        vjps=(_pick_vjp, None),
        rules=("pick: ∂L/∂𝒰 is the gradient of the picked entries "
            "at each label's entry, 0 elsewhere", "the labels (no gradient)"),
        latex=lambda p, e: rf"\operatorname{{pick}}\left({p.doprint(e.children[0])}, {p.doprint(e.children[1])}\right)",
        text=lambda p, e: f"pick({p.doprint(e.children[0])}, {p.doprint(e.children[1])})",
        numpy=lambda p, e: f"np.take_along_axis({p.operand(e.children[0], 0)}, {p.operand(e.children[1], 0)}, "
                           f"axis={axes_of(e)[0]})",
        np_eval=_pick_eval, sym_eval=_pick_eval, attrs=("axis",),
        doc="the entry at each example's label along the axis: Σ(onehot(y) ⊙ A) without the one-hot matrix",
    ),
    Op(
        "add_at", 3, _add_at_shape,
        vjps=(_add_at_value_vjp, None, _add_at_amount_vjp),
        rules=("add_at: ∂L/∂𝒰 = ∂L/∂ℬ, ℬ being 𝒰 with 𝒱 added at the labels 𝒴", "the labels (no gradient)",
               "add_at: ∂L/∂𝒱 = Σ pick(∂L/∂ℬ, 𝒴), ℬ being 𝒰 with 𝒱 added at the labels 𝒴"),
        latex=lambda p, e: rf"\operatorname{{add\_at}}\left({p.doprint(e.children[0])}, {p.doprint(e.children[1])}, "
                           rf"{p.doprint(e.children[2])}\right)",
        text=lambda p, e: f"add_at({', '.join(p.doprint(c) for c in e.children)})",
        numpy=lambda p, e: f"_add_at({p.operand(e.children[0], 0)}, {p.operand(e.children[1], 0)}, "
                           f"{p.operand(e.children[2], 0)}, {axes_of(e)[0]})",
        np_eval=_add_at_eval, sym_eval=_add_at_eval, attrs=("axis",), numpy_helper=_ADD_AT_HELPER, jax_helper=_ADD_AT_JAX_HELPER,
        doc="A plus v at each label's entry along the axis: A − onehot(y) without the one-hot matrix",
    ),
)
