"""A convolution's gradient written as a convolution, and the classic slips in it, as rows.

A student writes ∂L/∂X of ``Z = conv2d(X, W, padding=p)`` as the full convolution of δ with
the filters turned in space and their two first axes swapped,
``conv2d(dZ, transpose(flip(W, [2, 3]), [1, 0, 2, 3]), padding=k - 1 - p)``, and ∂L/∂W as a
correlation of X with δ. The slips every course warns about are the unflipped filters, the
padding of the full convolution, and, after a strided convolution, the stride: δ has one entry per
window, so it must be dilated by the stride (``dilate(dZ, 2)``: s − 1 zeros between neighbouring
entries) before either convolution. Each row below rewrites every convolution of a wrong claim
one way; when a rewritten claim is the gradient at every point, the row's words say what was wrong.
A forgotten dilation gives the wrong shape, so the rows are tried on claims of the wrong shape too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_tensor import flip
from backprop.expr.ops_window import dilate
from backprop.support.errors import ShapeError

#: The convolutions a claim may write, and the position of their padding among the attributes.
CONVS = ("conv1d", "conv2d")
_PADDING = 1  # attrs: (stride, padding, batch)


def _spatial(w: Basic) -> list[int]:
    return list(range(2, len(shape_of(w))))


def _filters(w: Basic) -> str:
    """The param a filter argument is made of (W₂ in transpose(W2, …)), or "W"."""
    names = sorted(s.name for s in w.atoms(MatrixSymbol))
    return names[0] if len(names) == 1 else "W"


def _flipped(e: OpNode, input_side: bool, strides: Sequence[int]) -> Iterator[tuple[Basic, str]]:
    """The filters turned in space, or turned back when the claim turned them."""
    x, w = e.children
    axes = _spatial(w)
    if isinstance(w, OpNode) and w.op.name == "flip":
        yield ir.node(e.op.name, x, w.children[0], *e.attrs), "the filters are flipped where they should not be" + (
            "" if input_side else ": the filters' gradient correlates the input with δ as they are")
    else:
        yield ir.node(e.op.name, x, flip(w, axes), *e.attrs), (
            "the filters are not flipped: the input's gradient is the full convolution of δ with the filters "
            f"turned in space, flip({_filters(w)}, {axes}), their filter and channel axes swapped")


def _padded(e: OpNode, input_side: bool, strides: Sequence[int]) -> Iterator[tuple[Basic, str]]:
    """Every other padding up to the filters' size: a full convolution pads δ by k − 1 − p."""
    stride, pad, batch = e.attrs
    k = max((int(d) for d in shape_of(e.children[1])[2:] if d.is_Integer), default=0)
    for q in range(0, 2 * k + int(pad) + 1):
        if q == int(pad):
            continue
        why = (" (the full convolution that gives ∂L/∂X pads δ by k − 1 − p on each side: k the filters' "
               "size, p the forward padding)" if input_side else " (the forward pass's padding)")
        try:
            alt = ir.node(e.op.name, *e.children, stride, sympy.Integer(q), batch)
        except ShapeError:  # a padding the stride does not fit
            continue
        yield alt, f"padding={q}, not {int(pad)}{why}"


def _spatial_of(e: OpNode, i: int) -> list[int]:
    """The spatial axes of a convolution's operand ``i``: the input's sit between its channels and
    its examples (wherever the node's batch attribute puts them), the filters' after f and c."""
    rank, batch = len(shape_of(e.children[i])), int(e.attrs[2])
    return list(range(2, rank)) if i == 1 or batch == 0 else list(range(1, rank - 1))


def _dilated(e: OpNode, input_side: bool, strides: Sequence[int]) -> Iterator[tuple[Basic, str]]:
    """δ dilated by each stride of the forward convolutions: where the claim dilates, by another
    factor (or not at all, for a stride of 1); where it does not, its input or its filters operand
    dilated along the spatial axes."""
    then = ("before the full convolution with the flipped filters" if input_side
            else "before it is correlated with the input")

    def fix(s: int) -> str:
        return f"dilate(δ, {s}) ({s - 1} zero{'s' if s > 2 else ''} between neighbouring entries), {then}"

    inner = [x for x in sympy.preorder_traversal(e) if isinstance(x, OpNode) and x.op.name == "dilate"]
    for d in inner:
        have, axes = int(d.attrs[0]), tuple(int(k) for k in d.attrs[1])
        for s in (*strides, 1):
            if s != have:
                yield e.xreplace({d: dilate(d.children[0], s, axes)}), (
                    f"the stride is not accounted for: δ is dilated by {have}, but the stride is {s}: {fix(s)}" if s > 1
                    else f"δ is dilated by {have}, but the convolution's stride is 1: δ needs no dilation")
    if inner:
        return
    for i, c in enumerate(e.children):
        for s in strides:
            try:
                alt = ir.node(e.op.name, *(dilate(c, s, _spatial_of(e, i)) if j == i else x
                                           for j, x in enumerate(e.children)), *e.attrs)
            except ShapeError:  # the dilated operand does not fit the window
                continue
            yield alt, f"the stride is not accounted for: δ must be dilated by the stride, {fix(s)}"


def _bias_axes(e: OpNode, input_side: bool, strides: Sequence[int]) -> Iterator[tuple[Basic, str]]:
    """A conv bias's gradient summed over other axes: every set of axes that is not merely more of
    the claim's (too few axes is the shape diagnosis's to name), for a value of rank 3 or more."""
    x = e.children[0]
    rank, have = len(shape_of(x)), tuple(int(a) for a in e.attrs[0])
    if input_side or e.op.name != "sum" or rank < 3:
        return
    for n in range(1, rank + 1):
        for axes in itertools.combinations(range(rank), n):
            if set(have) <= set(axes):
                continue
            kept = [k for k in range(rank) if k not in axes]
            why = (f"a bias's gradient sums δ over every axis the bias was broadcast along, all but axis {kept[0]} "
                   "(for a conv layer, the positions and the examples, not the channels)"
                   if len(kept) == 1 and kept[0] in (0, 1) else "the gradient keeps the others")
            yield ir.node("sum", x, ir.axes_attr(axes)), (
                f"it sums over the wrong axes: {why}: sum(..., axis={axes[0] if n == 1 else axes}), "
                f"not axis={have[0] if len(have) == 1 else have}")


@dataclass(frozen=True)
class Slip:
    """One classic mistake: its kind, the operations it corrects, and the corrected nodes to try in
    place of a claim's (given the node, whether the gradient is the input's, and the forward pass's strides)."""

    kind: str
    alternatives: Callable[[OpNode, bool, Sequence[int]], Iterator[tuple[Basic, str]]]
    ops: tuple[str, ...] = CONVS


SLIPS = (Slip("flip", _flipped), Slip("padding", _padded), Slip("stride", _dilated),
         Slip("sum", _bias_axes, ("sum",)))


def window_slip(e: Basic, shape: tuple[Basic, ...], want: Sequence[np.ndarray], input_side: bool,
                vals: Callable[[Basic], list[np.ndarray]],
                close: Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], bool],
                strides: Sequence[int] = ()) -> tuple[str, str] | None:
    """The slip that makes claim ``e`` wrong, when correcting one convolution of it makes it the gradient
    ``want`` (of ``shape``): ``(kind, words)``; else None. ``input_side``: the gradient is not a param's;
    ``strides``: the forward convolutions' strides above 1 (the dilations to try)."""
    nodes = [x for x in sympy.preorder_traversal(e) if isinstance(x, OpNode)]
    for slip in SLIPS:
        for node in (x for x in nodes if x.op.name in slip.ops):
            for alt, says in slip.alternatives(node, input_side, strides):
                try:
                    fixed = e.xreplace({node: alt})
                    ok = shape_of(fixed) == shape and close(vals(fixed), want)
                except ShapeError:
                    continue
                if ok:
                    return slip.kind, says
    return None


__all__ = ["CONVS", "SLIPS", "Slip", "window_slip"]
