"""Rows of the registry: softmax and log-softmax along an axis (axis=0: each column is a distribution).

Both are computed through log-sum-exp so large logits do not overflow; the generated code gets
the same stable helpers (``numpy_helper``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape
from backprop.expr.ops_reduce import sym_sum
from backprop.expr.ops_row import MUL, Form, Op, axes_of
from backprop.support.errors import ShapeError


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _axis_suffix(e: OpNode, latex: bool) -> str:
    """A matrix's softmax is over each column (no suffix) or each row; any other rank's names its axis."""
    ax = axes_of(e)[0]
    if len(ir.shape_of(e.children[0])) != 2:
        return f"_{{{ax}}}" if latex else f"_({ax})"
    return "" if ax == 0 else (r"_{\mathrm{rows}}" if latex else "_rows")


def _along_axis(shapes: list[Shape], e: OpNode) -> Shape:
    """Same shape as the operand, along one of its axes."""
    ax = axes_of(e)
    if len(ax) != 1 or not 0 <= ax[0] < len(shapes[0]):
        raise ShapeError(f"axis {', '.join(map(str, ax))} is not an axis of a {ir.fmt_shape(shapes[0])} value")
    return shapes[0]


def _softmax_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    ax = axes_of(e)[0]
    return ir.mul(out, ir.sub(g, ir.total(ir.mul(g, out), ax)))


def _log_softmax_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    ax = axes_of(e)[0]
    return ir.sub(g, ir.mul(ir.node("softmax", e.children[0], e.args[1]), ir.total(g, ax)))


def _sym_softmax(x: np.ndarray, e: OpNode) -> np.ndarray:
    ex = np.vectorize(sympy.exp, otypes=[object])(x)
    return ex / sym_sum(ex, e)


def _softmax_forms(name: str) -> tuple[Form, Form]:
    def latex(p: Any, e: OpNode) -> str:
        return rf"\operatorname{{{name}}}{_axis_suffix(e, True)}\left({p.operand(e.children[0], 0)}\right)"

    def text(p: Any, e: OpNode) -> str:
        return f"{name}{_axis_suffix(e, False)}({p.operand(e.children[0], 0)})"

    return latex, text


def _softmax_numpy(helper: str) -> Form:
    """The helper along the axis; of a scalar (a Python number or 0-d value, which has no axis),
    the same function of one entry: log softmax(x) = 0.0 · x (a float 0, or nan as torch gives
    for ±inf), softmax(x) = exp(0.0 · x)."""

    def form(p: Any, e: OpNode) -> str:
        x = e.children[0]
        if ir.is_scalar(x):
            zero = f"0.0 * {p.operand(x, MUL + 1)}"
            return f"({zero})" if helper == "_log_softmax" else f"np.exp({zero})"
        return f"{helper}({p.operand(x, 0)}, axis={axes_of(e)[0]})"

    return form


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "softmax", 1, _along_axis,
        vjps=(_softmax_vjp,),
        rules=("softmax: ∂L/∂𝒰 = 𝒫 ⊙ (∂L/∂𝒫 − Σ(∂L/∂𝒫 ⊙ 𝒫)) along the axis, for 𝒫 = softmax(𝒰)",),
        latex=_softmax_forms("softmax")[0], text=_softmax_forms("softmax")[1],
        numpy=_softmax_numpy("_softmax"), np_eval=lambda x, e: _softmax(x, axes_of(e)[0]),
        sym_eval=_sym_softmax, spec_name="softmax", attrs=("axis",),
        doc="exp(x) normalized along axis=0 (each column) or axis=1 (each row)",
        slips=((lambda g, out, e: ir.mul(ir.mul(g, out), ir.sub(sympy.Integer(1), out)),
                "it keeps only the diagonal of the softmax Jacobian, ∂L/∂P ⊙ P ⊙ (1 − P), as if each entry "
                "were a sigmoid of its own; every entry of P depends on every entry of Z along the axis, so "
                "the off-diagonal terms −PᵢPⱼ add −P ⊙ Σ(∂L/∂P ⊙ P) along it"),),
        numpy_helper=(
            "def _softmax(x, axis):\n"
            '    """exp(x) normalized along axis, shifted by the max first so large logits do not overflow."""\n'
            "    e = np.exp(x - x.max(axis=axis, keepdims=True))\n"
            "    e /= e.sum(axis=axis, keepdims=True)\n"
            "    return e\n"
        ),
        jax_helper=(
            "def _softmax(x, axis):\n"
            '    """exp(x) normalized along axis, shifted by the max first so large logits do not overflow."""\n'
            "    e = jnp.exp(x - x.max(axis=axis, keepdims=True))\n"
            "    return e / e.sum(axis=axis, keepdims=True)\n"
        ),
        numpy_inplace="_softmax_({0}, {axis})",
        numpy_inplace_helper=(
            "def _softmax_(x, axis):\n"
            '    """softmax along axis in x\'s own array (x is spent): shift, exp and normalize in place."""\n'
            "    x -= x.max(axis=axis, keepdims=True)\n"
            "    np.exp(x, out=x)\n"
            "    x /= x.sum(axis=axis, keepdims=True)\n"
            "    return x\n"
        ),
    ),
    Op(
        "log_softmax", 1, _along_axis,
        vjps=(_log_softmax_vjp,),
        rules=("log-softmax: ∂L/∂𝒰 = ∂L/∂𝒮 − softmax(𝒰) ⊙ Σ ∂L/∂𝒮 along the axis, for 𝒮 = logsoftmax(𝒰)",),
        # one word, as logsumexp: "log softmax(Z)" would read as the log of a softmax
        latex=_softmax_forms("logsoftmax")[0], text=_softmax_forms("logsoftmax")[1],
        numpy=_softmax_numpy("_log_softmax"), np_eval=lambda x, e: _log_softmax(x, axes_of(e)[0]),
        sym_eval=lambda x, e: np.vectorize(sympy.log, otypes=[object])(_sym_softmax(x, e)), spec_name="log_softmax",
        attrs=("axis",), doc="log of softmax, computed stably (log-sum-exp)",
        numpy_helper=(
            "def _log_softmax(x, axis):\n"
            '    """x minus its log-sum-exp along axis, shifted by the max for stability."""\n'
            "    s = x - x.max(axis=axis, keepdims=True)\n"
            "    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))\n"
        ),
    ),
)
