"""Wording a missing (or extra) transpose: which square part of a claim, transposed, makes it hold.

A square gradient cannot show a transpose in its shape, and around an inverse the mistake is the
classic one (A⁻¹ where the identities put A⁻ᵀ). :mod:`backprop.verification.diagnose` tries each
part with these helpers and says what transposing it fixes.
"""

from __future__ import annotations

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.printing import text

#: Parts tried at most (bounds the work on huge claims), as the diagnosis's other searches.
MAX_PARTS = 120

#: Said where a transpose is missing around an inverse: the identities that put A⁻ᵀ in a gradient.
INVERSE_NOTE = ("; an inverse's gradient carries A⁻ᵀ, not A⁻¹: ∂ log det(A)/∂A = A⁻ᵀ, and Y = A⁻¹ "
                "sends ∂L/∂A = −A⁻ᵀ ∂L/∂Y A⁻ᵀ back (A⁻¹ and A⁻ᵀ differ unless A is symmetric)")


def holds_inverse(e: Basic) -> bool:
    return any(isinstance(x, OpNode) and x.op.name in ("inv", "solve") for x in sympy.preorder_traversal(e))


def square_places(e: Basic) -> list[tuple[tuple[int, ...], Basic]]:
    """Every square (non-scalar) matrix part of ``e`` but ``e`` itself, with its path of operand
    indices, in reading order (left to right, outermost first); at most :data:`MAX_PARTS`."""
    out: list[tuple[tuple[int, ...], Basic]] = []
    todo: list[tuple[tuple[int, ...], Basic]] = [((), e)]
    while todo and len(out) < MAX_PARTS:
        path, x = todo.pop()
        shape = shape_of(x)
        if path and len(shape) == 2 and shape[0] == shape[1] and not ir.is_scalar_shape(shape):
            out.append((path, x))
        if isinstance(x, OpNode):
            todo.extend(reversed([(path + (i,), c) for i, c in enumerate(x.children)]))
    return out


def replace_at(e: Basic, path: tuple[int, ...], new: Basic) -> Basic:
    """``e`` with the part at ``path`` (operand indices from the root) replaced by ``new``."""
    if not path:
        return new
    assert isinstance(e, OpNode)
    kids = list(e.children)
    kids[path[0]] = replace_at(kids[path[0]], path[1:], new)
    return e.func(*kids, *e.attrs)


def scaling(x: Basic) -> bool:
    """A negation or a scalar multiple of a matrix, which transposing passes through."""
    if not isinstance(x, OpNode):
        return False
    if x.op.name == "neg":
        return True
    return x.op.name in ("mul", "div") and sum(not ir.is_scalar(c) for c in x.children) == 1 and (
        x.op.name == "mul" or not ir.is_scalar(x.children[0]))


def flipped(x: Basic) -> Basic:
    """The transpose of ``x``; of a transpose, what it transposes."""
    return x.children[0] if isinstance(x, OpNode) and x.op.name == "transpose" else ir.transpose(x)


def ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def transpose_phrase(part: Basic, where: str, rec: str) -> tuple[str, str]:
    """What transposing ``part`` fixes, in words: a leaf needs a transpose, a transpose is one too many,
    any other part misses one."""
    if isinstance(part, MatrixSymbol):
        return "step", f"{text(part)} needs a transpose here{where}: {rec}"
    if isinstance(part, OpNode) and part.op.name == "transpose":
        return "transpose", (f"{text(part)} has a transpose too many{where}: {text(part.children[0])} belongs there; "
                             f"{rec}")
    note = INVERSE_NOTE if holds_inverse(part) else ""
    return "transpose", f"a transpose is missing: {text(part)} should be {text(flipped(part))}{where}{note}; {rec}"
