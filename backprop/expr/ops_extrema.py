"""Rows of the registry: the reductions that pick or soften an extreme -- ``max``, ``min`` and
``logsumexp`` along axes (or over every entry).

Their results keep the reduced axes with length 1, as ``sum`` does, so they broadcast back.
``max``/``min`` with repeated extremes follow PyTorch's ``amax``/``amin`` (and ``max()`` over every
entry): the gradient is split evenly among the tied entries, ∂L/∂E = ∂L/∂M ⊙ [E ≥ M] / Σ[E ≥ M].
``logsumexp`` is shifted by the max, in the generated code too, so large entries do not overflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_reduce import np_axis, reduce_shape, sym_sum
from backprop.expr.ops_row import ATOM, Op, axes_of


def _extreme_vjp(mask: str) -> Any:
    """The entries equal to the extreme share the gradient evenly: [E ≥ M] marks them (no entry
    exceeds the max M), Σ[E ≥ M] counts them along the reduced axes."""

    def vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
        x = e.children[0]
        hit = ir.node(mask, x, out)
        return ir.div(ir.mul(g, hit), ir.total(hit, axes_of(e)))

    return vjp


def _name(e: OpNode, word: str, latex: bool) -> str:
    r"""``max`` over every entry; along axes, the axes as a subscript: max_(1), \max_{1}."""
    axes = axes_of(e)
    head = rf"\{word}" if latex and word in ("max", "min") else (rf"\operatorname{{{word}}}" if latex else word)
    if len(axes) == len(shape_of(e.children[0])):
        return head
    listed = ",".join(map(str, axes))
    return rf"{head}_{{{listed}}}" if latex else f"{word}_({listed})"


def _forms(word: str) -> tuple[Any, Any]:
    def latex(p: Any, e: OpNode) -> str:
        return rf"{_name(e, word, True)}\left({p.operand(e.children[0], 0)}\right)"

    def text(p: Any, e: OpNode) -> str:
        return f"{_name(e, word, False)}({p.operand(e.children[0], 0)})"

    return latex, text


def _extreme_numpy(method: str) -> Any:
    def form(p: Any, e: OpNode) -> str:
        x = e.children[0]
        if ir.is_scalar(x):  # may be a Python float, which has no .max
            return p.operand(x, ATOM)
        ax = np_axis(e)
        if ax is None:
            return f"{p.operand(x, ATOM)}.{method}()"
        return f"{p.operand(x, ATOM)}.{method}(axis={ax}, keepdims=True)"

    return form


def _np_extreme(f: Any) -> Any:
    def run(x: np.ndarray, e: OpNode) -> Any:
        ax = np_axis(e)
        return f(x) if ax is None else f(x, axis=ax, keepdims=True)

    return run


def _sym_extreme(f: Any) -> Any:
    """The exact extreme (SymPy's Max, Min) of an object array along the node's axes, keeping them."""

    def along(x: np.ndarray, k: int) -> np.ndarray:
        moved = np.moveaxis(x, k, -1)
        rows = moved.reshape(-1, moved.shape[-1])
        out = np.empty(len(rows), dtype=object)
        out[:] = [f(*row) for row in rows]
        return np.expand_dims(out.reshape(moved.shape[:-1]), k)

    def run(x: np.ndarray, e: OpNode) -> np.ndarray:
        if np_axis(e) is None:
            return np.array([[f(*x.ravel())]], dtype=object)
        for k in axes_of(e):
            x = along(x, k)
        return x

    return run


def _logsumexp(x: np.ndarray, axis: Any) -> Any:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    s = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    return s if axis is not None else s.reshape(())


def _logsumexp_numpy(p: Any, e: OpNode) -> str:
    x = e.children[0]
    if ir.is_scalar(x):  # of one entry, the entry itself
        return p.operand(x, ATOM)
    return f"_logsumexp({p.operand(x, 0)}, {np_axis(e)})"


def _logsumexp_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    """∂ log Σ exp(E)/∂E = exp(E − LSE(E)), the softmax along the axes (at most 1: no overflow)."""
    return ir.mul(g, ir.node("exp", ir.sub(e.children[0], out)))


def _sym_logsumexp(x: np.ndarray, e: OpNode) -> np.ndarray:
    ex = np.vectorize(sympy.exp, otypes=[object])(x)
    return np.vectorize(sympy.log, otypes=[object])(sym_sum(ex, e))


_MAX_RULE = "max, tied entries sharing evenly: ∂L/∂𝒰 = ∂L/∂ℳ ⊙ [𝒰 ≥ ℳ] / Σ[𝒰 ≥ ℳ] for ℳ = max(𝒰)"
_MIN_RULE = "min, tied entries sharing evenly: ∂L/∂𝒰 = ∂L/∂ℳ ⊙ [𝒰 ≤ ℳ] / Σ[𝒰 ≤ ℳ] for ℳ = min(𝒰)"

#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "max", 1, reduce_shape,
        vjps=(_extreme_vjp("ge"),), rules=(_MAX_RULE,),
        latex=_forms("max")[0], text=_forms("max")[1], numpy=_extreme_numpy("max"),
        np_eval=_np_extreme(np.max), sym_eval=_sym_extreme(sympy.Max), piecewise=True,
        spec_name="max", attrs=("axis",), doc="largest entry, of all or along axis=k; ties share the gradient",
    ),
    Op(
        "min", 1, reduce_shape,
        vjps=(_extreme_vjp("le"),), rules=(_MIN_RULE,),
        latex=_forms("min")[0], text=_forms("min")[1], numpy=_extreme_numpy("min"),
        np_eval=_np_extreme(np.min), sym_eval=_sym_extreme(sympy.Min), piecewise=True,
        spec_name="min", attrs=("axis",), doc="smallest entry, of all or along axis=k; ties share the gradient",
    ),
    Op(
        "logsumexp", 1, reduce_shape,
        vjps=(_logsumexp_vjp,),
        rules=("log-sum-exp, whose gradient is the softmax along the axes: ∂L/∂𝒰 = ∂L/∂𝒮 ⊙ exp(𝒰 − 𝒮) for 𝒮 = logsumexp(𝒰)",),
        latex=_forms("logsumexp")[0], text=_forms("logsumexp")[1], numpy=_logsumexp_numpy,
        np_eval=lambda x, e: _logsumexp(x, np_axis(e)), sym_eval=_sym_logsumexp,
        spec_name="logsumexp", attrs=("axis",), doc="log Σ exp(E), of all or along axis=k, computed stably",
        numpy_helper=(
            "def _logsumexp(x, axis):\n"
            '    """log Σ exp(x) along axis (None: every entry), shifted by the max so no exp overflows\n'
            '    (a max of ±inf is not subtracted: inf − inf would be nan)."""\n'
            "    m = np.max(x, axis=axis, keepdims=True)\n"
            "    m = np.where(np.isfinite(m), m, 0.0).astype(m.dtype)\n"
            "    s = np.log(np.exp(x - m).sum(axis=axis, keepdims=True))\n"
            "    s += m\n"
            "    return s if axis is not None else s.reshape(())[()]\n"
        ),
        jax_helper=(
            "def _logsumexp(x, axis):\n"
            '    """log Σ exp(x) along axis (None: every entry), shifted by the max so no exp overflows\n'
            '    (a max of ±inf is not subtracted: inf − inf would be nan)."""\n'
            "    m = jnp.max(x, axis=axis, keepdims=True)\n"
            "    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0).astype(m.dtype))\n"
            "    s = jnp.log(jnp.exp(x - m).sum(axis=axis, keepdims=True)) + m\n"
            "    return s if axis is not None else s.reshape(())\n"
        ),
    ),
)
