"""A convolution's gradient written as a convolution, and the classic slips in it, as rows.

A student writes ∂L/∂X of ``Z = conv2d(X, W, padding=p)`` as the full convolution of δ with
the filters turned in space and their two first axes swapped,
``conv2d(dZ, transpose(flip(W, [2, 3]), [1, 0, 2, 3]), padding=k - 1 - p)``, and ∂L/∂W as a
correlation of X with δ. The two slips every course warns about are the unflipped filters and
the padding of the full convolution. Each row below rewrites every convolution of a wrong claim
one way; when a rewritten claim is the gradient at every point, the row's words say what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_tensor import flip
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


def _flipped(e: OpNode, input_side: bool) -> Iterator[tuple[Basic, str]]:
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


def _padded(e: OpNode, input_side: bool) -> Iterator[tuple[Basic, str]]:
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


@dataclass(frozen=True)
class Slip:
    """One classic mistake: its kind, and the corrected convolutions to try in place of a claim's."""

    kind: str
    alternatives: Callable[[OpNode, bool], Iterator[tuple[Basic, str]]]


SLIPS = (Slip("flip", _flipped), Slip("padding", _padded))


def window_slip(e: Basic, shape: tuple[Basic, ...], want: Sequence[np.ndarray], input_side: bool,
                vals: Callable[[Basic], list[np.ndarray]],
                close: Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], bool]) -> tuple[str, str] | None:
    """The slip that makes claim ``e`` wrong, when correcting one convolution of it makes it the gradient
    ``want`` (of ``shape``): ``(kind, words)``; else None. ``input_side``: the gradient is not a param's."""
    convs = [x for x in sympy.preorder_traversal(e) if isinstance(x, OpNode) and x.op.name in CONVS]
    for slip in SLIPS:
        for node in convs:
            for alt, says in slip.alternatives(node, input_side):
                try:
                    fixed = e.xreplace({node: alt})
                    ok = shape_of(fixed) == shape and close(vals(fixed), want)
                except ShapeError:
                    continue
                if ok:
                    return slip.kind, says
    return None


__all__ = ["CONVS", "SLIPS", "Slip", "window_slip"]
