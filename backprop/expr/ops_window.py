"""Rows of the registry: dilation (``dilate``) and its adjoint, strided subsampling (``subsample``).

A convolution of stride s reads a window every s positions, so its δ has one entry per window:
to write ∂L/∂X as the full convolution it is, δ first goes back onto the positions of a stride-1
convolution, s − 1 zeros between neighbouring entries: ``dilate(dZ, 2)``. A student's claim spells
that step, and :mod:`backprop.verification.windows` names it when it is missing. Each row is the
other's adjoint: dilating puts entries every s positions, subsampling reads them back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.conv_index import dilate_index, subsample_index
from backprop.expr.ir import OpNode, Shape, fmt_shape, shape_of
from backprop.expr.ops_row import ATOM, Op
from backprop.support.errors import ShapeError


def _attrs(e: OpNode) -> tuple[int, tuple[int, ...]]:
    """(the factor s, the axes) of a dilation or a subsampling."""
    return int(e.attrs[0]), tuple(int(a) for a in e.attrs[1])


def _check(what: str, s: Shape, factor: int, axes: Sequence[int]) -> None:
    if factor < 1:
        raise ShapeError(f"{what}'s factor is the stride, a whole number at least 1; got {factor}")
    if not axes or len(set(axes)) != len(axes) or not all(0 <= k < len(s) for k in axes):
        raise ShapeError(f"{what} of a {fmt_shape(s)} value (rank {len(s)}) needs distinct axes from 0 to "
                         f"{len(s) - 1}, got [{', '.join(map(str, axes))}]")


def _dilate_shape(shapes: list[Shape], e: OpNode) -> Shape:
    (s,), (factor, axes) = shapes, _attrs(e)
    _check("dilate", s, factor, axes)
    return tuple(sympy.expand((d - 1) * factor + 1) if k in axes else d for k, d in enumerate(s))


def _subsample_shape(shapes: list[Shape], e: OpNode) -> Shape:
    (s,), (factor, axes) = shapes, _attrs(e)
    _check("subsample", s, factor, axes)
    out = []
    for k, d in enumerate(s):
        if k in axes:
            n = sympy.expand((d - 1) / factor + 1)
            if n.is_integer is not True:
                raise ShapeError(f"subsample by {factor} of axis {k} (length {d}) needs a length of the form "
                                 f"{factor}(n − 1) + 1")
            d = n
        out.append(d)
    return tuple(out)


def _unchanged(a: Basic, factor: int, axes: Sequence[int]) -> bool:
    """A factor of 1, or only axes of length 1: nothing moves (bad axes are left to the shape rule)."""
    s = shape_of(a)
    return factor == 1 or (factor > 1 and bool(axes) and all(0 <= k < len(s) and s[k] == 1 for k in axes))


def dilate(a: Basic, factor: int, axes: Sequence[int]) -> Basic:
    """``a`` with ``factor`` − 1 zeros between neighbouring entries along ``axes``; a factor of 1,
    or axes of length 1, leave it as it is."""
    axes = tuple(sorted(int(k) for k in axes))
    if _unchanged(a, int(factor), axes):
        return a
    return ir.node("dilate", a, sympy.Integer(factor), sympy.Tuple(*axes))


def subsample(a: Basic, factor: int, axes: Sequence[int]) -> Basic:
    """Every ``factor``-th entry of ``a`` along ``axes``, from the first: the adjoint of :func:`dilate`."""
    axes = tuple(sorted(int(k) for k in axes))
    if _unchanged(a, int(factor), axes):
        return a
    return ir.node("subsample", a, sympy.Integer(factor), sympy.Tuple(*axes))


def _strided(e: OpNode, ndim: int) -> tuple[slice, ...]:
    factor, axes = _attrs(e)
    return tuple(slice(None, None, factor) if k in axes else slice(None) for k in range(ndim))


def _dilate_eval(zero: Any) -> Callable[[Any, OpNode], np.ndarray]:
    """Evaluate a dilation on float arrays (``zero`` 0.0) or on object arrays of SymPy numbers."""
    def run(x: Any, e: OpNode) -> np.ndarray:
        x = np.asarray(x)
        factor, axes = _attrs(e)
        shape = tuple((n - 1) * factor + 1 if k in axes else n for k, n in enumerate(x.shape))
        out = np.full(shape, zero, dtype=object if isinstance(zero, Basic) else x.dtype)
        out[_strided(e, x.ndim)] = x
        return out

    return run


def _forms(name: str, latex: bool) -> Callable[[Any, OpNode], str]:
    """``dilate[2](x)``: the factor is what a reader needs; the axes are the value's spatial ones."""
    def form(p: Any, e: OpNode) -> str:
        factor, _ = _attrs(e)
        x = p.operand(e.children[0], 0)
        return rf"\operatorname{{{name}}}_{{{factor}}}\left({x}\right)" if latex else f"{name}[{factor}]({x})"

    return form


def _args(e: OpNode) -> str:
    factor, axes = _attrs(e)
    return f"{factor}, {tuple(axes)}"


_DILATE = '''\
def _dilate(x, stride, axes):
    """x with stride - 1 zeros between neighbouring entries along axes: a strided convolution's δ
    put back on the positions of a stride-1 one."""
    x = np.asarray(x)
    out = np.zeros(tuple((n - 1) * stride + 1 if a in axes else n for a, n in enumerate(x.shape)), dtype=x.dtype)
    out[tuple(slice(None, None, stride) if a in axes else slice(None) for a in range(x.ndim))] = x
    return out
'''

_DILATE_JAX = '''\
def _dilate(x, stride, axes):
    """x with stride - 1 zeros between neighbouring entries along axes."""
    out = jnp.zeros(tuple((n - 1) * stride + 1 if a in axes else n for a, n in enumerate(x.shape)), dtype=x.dtype)
    return out.at[tuple(slice(None, None, stride) if a in axes else slice(None) for a in range(x.ndim))].set(x)
'''


def _subsample_numpy(p: Any, e: OpNode) -> str:
    index = ", ".join(f"::{_attrs(e)[0]}" if k in _attrs(e)[1] else ":" for k in range(len(shape_of(e))))
    return f"{p.operand(e.children[0], ATOM)}[{index}]"


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "dilate", 1, _dilate_shape,
        vjps=(lambda g, out, e: subsample(g, *_attrs(e)),),
        rules=("dilation: ∂L/∂𝒰 is every s-th entry of the gradient of the dilated 𝒰, where 𝒰's entries were put",),
        latex=_forms("dilate", True), text=_forms("dilate", False),
        numpy=lambda p, e: f"_dilate({p.operand(e.children[0], 0)}, {_args(e)})",
        np_eval=_dilate_eval(0.0), sym_eval=_dilate_eval(sympy.Integer(0)),
        numpy_helper=_DILATE, jax_helper=_DILATE_JAX,
        spec_name="dilate", attrs=("stride", "axes"), signature="(E, s)", index=dilate_index,
        doc="s − 1 zeros between neighbouring entries along the spatial axes: dilate(dZ, 2) for a stride-2 conv's δ",
    ),
    Op(
        "subsample", 1, _subsample_shape,
        vjps=(lambda g, out, e: dilate(g, *_attrs(e)),),
        rules=("strided subsampling: ∂L/∂𝒰 is the gradient of the subsample dilated back, s − 1 zeros between entries",),
        latex=_forms("subsample", True), text=_forms("subsample", False), numpy=_subsample_numpy,
        np_eval=lambda x, e: np.asarray(x)[_strided(e, np.ndim(x))],
        sym_eval=lambda x, e: np.asarray(x)[_strided(e, np.ndim(x))],
        attrs=("stride", "axes"), view=True, index=subsample_index,
        doc="every s-th entry along the given axes: the adjoint of dilate",
    ),
)


__all__ = ["ROWS", "dilate", "subsample"]
