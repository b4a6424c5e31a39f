"""Convolutions and pooling in index notation: one entry as a sum over a window.

The rows of :mod:`backprop.expr.ops_conv` take their ``Op.index`` rules from here,
so a derivation writes ``Z[f,i,j,t] = Σ_c Σ_k Σ_l X[c, s(i−1)+k−p, s(j−1)+l−p, t] W[f,c,k,l]``
under the vectorized ``conv2d`` and the filter gradient as the input correlated with δ. An index
is then a window position, not a letter: a string such as ``2(i-1)+k-1``, counting from 1 as
the sums do; a position outside the input is the zero padding. The layout helpers live here
too, as both the rows and their index rules split a value into channels, spatial axes and examples.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy
from sympy import Basic

from backprop.expr.ir import OpNode, Shape, shape_of
from backprop.expr.ops_row import Index, IndexForm


def attr_ints(e: OpNode) -> tuple[int, ...]:
    return tuple(int(v) for v in e.attrs)


def split_layout(shape: Shape, batch: int) -> tuple[Basic, tuple[Basic, ...], Basic]:
    """(channels, spatial sizes, examples) of a value laid out with its examples axis at ``batch``."""
    if batch == 0:
        return shape[1], tuple(shape[2:]), shape[0]
    return shape[0], tuple(shape[1:-1]), shape[-1]


def join_layout(channels: Basic, spatial: tuple[Basic, ...], m: Basic, batch: int) -> Shape:
    return (m, channels, *spatial) if batch == 0 else (channels, *spatial, m)


def _at(stride: int, pad: int, i: str | None, k: str | None) -> str:
    """The input position window ``i`` reads at offset ``k``, counting from 1 as the sums do:
    ``s(i−1) + k − p``; a position outside the input (the padding) holds 0. ``None`` is an axis of
    length 1 (its one index, 1)."""
    terms, const = [], -pad
    if i is not None:
        terms.append(i if stride == 1 else f"{stride}({i}-1)")
        const -= stride == 1
    if k is not None:
        terms.append(k)
    else:
        const += 1
    head = "+".join(terms)
    if not head:
        return str(const)
    return head + (f"+{const}" if const > 0 else f"-{-const}" if const < 0 else "")


def _letters(sizes: tuple[Basic, ...], fresh: Callable[[], str]) -> tuple[str | None, ...]:
    """A summed letter per axis, none for an axis of length 1 (a sum of one term is that term)."""
    return tuple(None if n == 1 else fresh() for n in sizes)


def conv_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """Z[f,i,j,t] = Σ_c Σ_k Σ_l W[f,c,k,l] X[c, s(i−1)+k−p, s(j−1)+l−p, t]: why a conv is a sum of
    products, written so a student can check one entry by hand."""
    x, w = e.children
    stride, pad, batch = attr_ints(e)
    f, out, t = split_layout(ij, batch)  # type: ignore[arg-type]
    cs, _, _ = split_layout(shape_of(x), batch)
    c, kern = fresh(), _letters(tuple(shape_of(w)[2:]), fresh)
    at = tuple(_at(stride, pad, i, k) for i, k in zip(out, kern))
    summed = ((c, cs), *((k, n) for k, n in zip(kern, shape_of(w)[2:]) if k))
    return IndexForm(summed, (join_layout(c, at, t, batch), (f, c, *kern)))  # type: ignore[arg-type]


def conv_filter_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """∂L/∂W[f,c,k,l] = Σ_i Σ_j Σ_t δ[f,i,j,t] X[c, s(i−1)+k−p, s(j−1)+l−p, t]: the input correlated
    with δ, each filter entry summing over every position and example it was used at."""
    _, g = e.children
    stride, pad, batch = attr_ints(e)
    f, c, *kern = ij
    _, out_sizes, m = split_layout(shape_of(g), batch)
    out, t = _letters(out_sizes, fresh), fresh()
    at = tuple(_at(stride, pad, i, k) for i, k in zip(out, kern))
    summed = (*((i, n) for i, n in zip(out, out_sizes) if i), (t, m))
    return IndexForm(summed, (join_layout(c, at, t, batch), join_layout(f, out, t, batch)))  # type: ignore[arg-type]


def avg_pool_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """Y[c,i,j,t] = 1/k² Σ_k Σ_l X[c, s(i−1)+k, s(j−1)+l, t]: the mean of one window."""
    size, stride, batch = attr_ints(e)
    c, out, t = split_layout(ij, batch)  # type: ignore[arg-type]
    kern = _letters((sympy.Integer(size),) * len(out), fresh)
    at = tuple(_at(stride, 0, i, k) for i, k in zip(out, kern))
    return IndexForm(tuple((k, sympy.Integer(size)) for k in kern if k),
                     (join_layout(c, at, t, batch),),  # type: ignore[arg-type]
                     sympy.Rational(1, size ** len(out)))


__all__ = ["attr_ints", "avg_pool_index", "conv_filter_index", "conv_index", "join_layout", "split_layout"]
