"""Efficient forms of reductions and scalings: rows of :data:`backprop.codegen.rewrite.RULES`.

NumPy computes ``(A * B).sum(axis)`` by first writing the product to a new array as large as A,
then reading it back; ``(A * b).sum(axis)`` with ``b`` the same along the summed axes multiplies
every entry where the reduced array would do; ``(A * B) / c`` divides the larger operand. Each
function here rewrites one such node into an equal one that NumPy computes with less memory
traffic; the rule table lists them beside the other rewrites.
"""

from __future__ import annotations

from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import OpNode
from backprop.expr.ops_einsum import PATH_SIZE, einsum
from backprop.expr.ops_tensor import reshape


def _is(x: Basic, op: str) -> bool:
    return isinstance(x, OpNode) and x.op.name == op


def _nominal_size(shape: ir.Shape) -> int:
    """Entries of a value of ``shape`` with each symbolic dim at the size einsum paths are chosen at."""
    out = 1
    for d in shape:
        out *= int(d) if d.is_Integer else PATH_SIZE
    return out


def _letters(shape: ir.Shape) -> str:
    """einsum subscripts for the axes of ``shape``: a dim's own name where it is one free letter
    (``mTd`` for m×T×d), else the first letter not taken."""
    named = [str(d) if d.is_Symbol and len(str(d)) == 1 and str(d).isalpha() else "" for d in shape]
    out = ""
    for ch in named:
        if not ch or ch in out or named.count(ch) > 1:
            ch = next(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in out and c not in named)
        out += ch
    return out


def sum_of_products(e: OpNode, see: Any) -> Basic | None:
    """Σ(A ⊙ B) or Σ(A²) along some axes of equal-shaped arrays: one einsum, which multiplies and adds
    in one loop (``np.einsum("mtd,mtd->mt", U, U)``, a dot product for a full sum) where NumPy would
    first write the product to a new array as large as A, then read it back. Only for tensors of at
    least PATH_SIZE³ entries at nominal size: on small ones einsum's call costs more than it saves."""
    x = e.children[0]
    shape = ir.shape_of(x)
    if not shape or _nominal_size(shape) < PATH_SIZE ** 3 or len(shape) > 26:
        return None
    if _is(x, "mul") and all(ir.shape_of(c) == shape for c in x.children):
        a, b = x.children
    elif _is(x, "pow") and x.children[1] == 2:  # a repeated operand is named once (CSE)
        a = b = x.children[0]
    else:
        return None
    axes = tuple(int(k) for k in e.attrs[-1])
    letters = _letters(shape)
    kept = "".join(ch for ax, ch in enumerate(letters) if ax not in axes)
    out = einsum(f"{letters},{letters}->{kept}", a, b)
    want = ir.reduced_shape(shape, axes)
    if kept:
        out = reshape(out, want)
    if e.op.name == "mean":
        out = ir.div(out, sympy.Mul(*(shape[ax] for ax in axes)))
    return out


def _constant_along(b: Basic, shape: ir.Shape, axes: tuple[int, ...]) -> bool:
    """``b`` broadcast to ``shape`` is the same along every axis in ``axes`` (length 1 there)."""
    bs = ir.shape_of(b)
    if ir.is_scalar_shape(bs):
        return True
    return len(bs) == len(shape) and all(bs[ax] == 1 for ax in axes)


def factor_out_of_sum(e: OpNode, see: Any) -> Basic | None:
    """Σ(A ⊙ b) = Σ(A) ⊙ b and Σ(A / b) = Σ(A) / b when b is the same along every summed axis: the
    product or quotient is taken on the reduced array, not on one as large as A."""
    x = e.children[0]
    if not (_is(x, "mul") or _is(x, "div")):
        return None
    shape = ir.shape_of(x)
    axes = tuple(int(k) for k in e.attrs[-1])
    if ir.is_scalar_shape(ir.reduced_shape(shape, axes)):
        return None
    pairs = [x.children] if _is(x, "div") else [x.children, x.children[::-1]]
    for a, b in pairs:
        if ir.shape_of(a) == shape and ir.shape_of(b) != shape and _constant_along(b, shape, axes):
            return ir.node(x.op.name, ir.node(e.op.name, a, *e.attrs), b)
    return None


def scale_smaller(e: OpNode, see: Any) -> Basic | None:
    """(A ⊙ B)/c = (A/c) ⊙ B for a constant c and A broadcast along some axis of B: the division
    is taken on the smaller array."""
    x, c = e.children
    if not (_is(x, "mul") and ir.is_scalar(c) and not c.atoms(MatrixSymbol)):
        return None
    a, b = x.children
    shape = ir.shape_of(x)
    for small, big in ((a, b), (b, a)):
        if ir.shape_of(big) == shape and not ir.is_scalar(small) and ir.stretched(ir.shape_of(small), shape):
            return ir.mul(ir.div(small, c), big) if small is a else ir.mul(big, ir.div(small, c))
    return None
