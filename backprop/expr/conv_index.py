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


def _padded(x: str, pad: int) -> str:
    """The padding in words, where there is some."""
    if not pad:
        return ""
    return f"{x} zero-padded by {pad} on each side: a position outside {x} holds 0"


def _window_of(stride: int, pad: int, u: str | None, k: str | None) -> str:
    """The window (counting from 1) whose offset ``k`` reads input position ``u``, the inverse of
    :func:`_at`: ``(u − k + p)/s + 1``. ``None`` is an axis of length 1 (its one index, 1). A
    position that is no whole number in range reads no window (the term is 0)."""
    terms, const = [], pad + (u is None) - (k is None)
    if u is not None:
        terms.append(u)
    if k is not None:
        terms.append("-" + k)
    if stride == 1:
        const += 1
    head = "".join(terms).lstrip("+")
    inner = (head + (f"+{const}" if const > 0 else f"-{-const}" if const < 0 else "")) if head else str(const)
    if stride == 1:
        return inner
    if any(ch in inner[1:] for ch in "+-"):
        inner = f"({inner})"
    return f"{inner}/{stride}+1"


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
    return IndexForm(summed, (join_layout(c, at, t, batch), (f, c, *kern)),  # type: ignore[arg-type]
                     note=_padded("{0}", pad))


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
    return IndexForm(summed, (join_layout(c, at, t, batch), join_layout(f, out, t, batch)),  # type: ignore[arg-type]
                     note=_padded("{0}", pad))


def avg_pool_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """Y[c,i,j,t] = 1/k² Σ_k Σ_l X[c, s(i−1)+k, s(j−1)+l, t]: the mean of one window."""
    size, stride, batch = attr_ints(e)
    c, out, t = split_layout(ij, batch)  # type: ignore[arg-type]
    kern = _letters((sympy.Integer(size),) * len(out), fresh)
    at = tuple(_at(stride, 0, i, k) for i, k in zip(out, kern))
    return IndexForm(tuple((k, sympy.Integer(size)) for k in kern if k),
                     (join_layout(c, at, t, batch),),  # type: ignore[arg-type]
                     sympy.Rational(1, size ** len(out)))


def _spatial(nd: int) -> str:
    return "in both spatial axes" if nd == 2 else "along its spatial axis" if nd == 1 else "in every spatial axis"


def _full_padding(kernel: tuple[Basic, ...], pad: int) -> str:
    """δ's padding in the full convolution, k − 1 − p on each side (a crop when negative), said with
    numbers: a letter k would read as an index of the entry beside it."""
    amounts = sorted({int(k) - 1 - pad for k in kernel})
    sizes = sorted({int(k) for k in kernel})
    if amounts == [0]:
        return ""
    said = " and ".join(map(str, amounts))
    why = (f"${sizes[0]} − 1 − {pad}$: the filter size less 1, less the padding" if len(sizes) == 1
           else "the filter size less 1, less the padding")
    if all(a >= 0 for a in amounts):
        return f"padded by {said} zero{'s' if amounts != [1] else ''} on each side ({why})"
    return f"padded by {said} on each side ({why}: a negative padding crops)"


def conv_input_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """∂L/∂X[c,u,v,t] = Σ_f Σ_k Σ_l δ[f,(u−k+p)/s+1,(v−l+p)/s+1,t] W[f,c,k,l]: the full convolution
    of δ with the filters, every position u the windows that read it at offset k, the terms whose
    window position is not a whole number in range 0. In words: δ dilated by the stride (s − 1 zeros
    between its entries), padded by k − 1 − p zeros on each side, correlated with the filters flipped
    in space."""
    g, w = e.children
    stride, pad, batch = attr_ints(e)
    c, at, t = split_layout(ij, batch)  # type: ignore[arg-type]
    fs, _, _ = split_layout(shape_of(g), batch)
    kernel = tuple(shape_of(w)[2:])
    f, kern = fresh(), _letters(kernel, fresh)
    pos = tuple(_window_of(stride, pad, u, k) for u, k in zip(at, kern))
    summed = ((f, fs), *((k, n) for k, n in zip(kern, kernel) if k))
    steps = [f"dilated by the stride ({stride - 1} zero{'s' if stride > 2 else ''} between entries)"] if stride > 1 else []
    steps += [p for p in [_full_padding(kernel, pad)] if p]
    steps.append(f"correlated with {{1}} flipped {_spatial(len(kernel))}")
    where = ("where the position in {0} is not a whole number in range, the term is 0" if stride > 1
             else "an entry outside {0} is 0")
    note = f"the full convolution: {{0}} {', '.join(steps)}; {where}"
    return IndexForm(summed, (join_layout(f, pos, t, batch), (f, c, *kern)), note=note)  # type: ignore[arg-type]


def _pool_back(e: OpNode, ij: Index, fresh: Callable[[], str]) -> tuple[tuple[tuple[str, Basic], ...], Index, Index, int]:
    """(summed offsets, δ's index, the window per axis, the window's entry count) for the entry ``ij`` of a
    pooling's input gradient. Windows that tile the input (stride = size) hold each entry once, in window
    ``⌈u/s⌉``; otherwise a sum over the offsets k, in window ``(u − k)/s + 1`` where that is whole."""
    size, stride, batch = attr_ints(e)
    c, at, t = split_layout(ij, batch)  # type: ignore[arg-type]
    if stride == size:
        win = tuple("1" if u is None else f"ceil({u if u.isalnum() else f'({u})'}/{size})" for u in at)
        summed: tuple[tuple[str, Basic], ...] = ()
    else:
        kern = _letters((sympy.Integer(size),) * len(at), fresh)
        win = tuple(_window_of(stride, 0, u, k) for u, k in zip(at, kern))
        summed = tuple((k, sympy.Integer(size)) for k in kern if k)
    return summed, join_layout(c, win, t, batch), join_layout(None, win, None, batch), size ** len(at)  # type: ignore[arg-type]


def avg_pool_spread_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """∂L/∂X[c,u,v,t] = 1/k² δ[c,⌈u/k⌉,⌈v/k⌉,t]: each entry of a window receives an equal share of the
    window's gradient (a sum over the windows holding it when they overlap)."""
    summed, at, _, count = _pool_back(e, ij, fresh)
    size = attr_ints(e)[0]
    stride = attr_ints(e)[1]
    overlap = "" if not summed else ("; every window holding the entry adds its share, a window position that is "
                                     f"{'out of range' if stride == 1 else 'not a whole number in range'} none")
    note = f"each entry of a ${size}×{size}$ window receives $1/{count}$ of {{0}} at that window{overlap}"
    return IndexForm(summed, (at,), sympy.Rational(1, count), note=note)


def max_pool_route_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """∂L/∂X[c,u,v,t] = δ[c,⌈u/k⌉,⌈v/k⌉,t] [X[c,u,v,t] is the first maximum of its window]: the
    gradient routed to the arg-max of each window, the first in row-major order on a tie (PyTorch's
    convention, as the generated code does)."""
    summed, at, win, _ = _pool_back(e, ij, fresh)
    size, stride, _ = attr_ints(e)
    note = ("each window's gradient goes to its largest entry alone; on a tie, to the first in row-major order "
            "(as PyTorch)")
    return IndexForm(summed, (at, ij), note=note, first_max=(1, win, size, stride))


def _dilation(e: OpNode) -> tuple[int, set[int]]:
    return int(e.attrs[0]), {int(k) for k in e.attrs[1]}


def dilate_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """D[c,u,t] = X[c,(u−1)/s+1,t]: entry u of the dilated value is an entry of X where (u − 1)/s is
    whole, and one of the s − 1 zeros between X's entries elsewhere."""
    stride, axes = _dilation(e)
    at = tuple(_window_of(stride, 0, u, None) if k in axes and u is not None else u for k, u in enumerate(ij))
    gap = f"{stride - 1} zero{'s' if stride > 2 else ''} between neighbouring entries"
    return IndexForm((), (at,), note=f"{{0}} dilated by {stride} ({gap}): where the position in {{0}} is not a "
                                     "whole number, the entry is 0")


def subsample_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """G[c,i,t] = g[c,s(i−1)+1,t]: every s-th entry, from the first (the adjoint of a dilation)."""
    stride, axes = _dilation(e)
    return IndexForm((), (tuple(_at(stride, 0, u, None) if k in axes and u is not None else u for k, u in enumerate(ij)),))


__all__ = ["attr_ints", "avg_pool_index", "avg_pool_spread_index", "conv_filter_index", "conv_index",
           "conv_input_index", "dilate_index", "join_layout", "max_pool_route_index", "split_layout", "subsample_index"]
