"""Rows of the registry: the matrix product and the transpose, the two operations that mix entries
across a whole row or column and so have an index-notation rule of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape, shape_of
from backprop.expr.ops_row import ATOM, MUL, POW, Form, Index, IndexForm, Op, fmt
from backprop.support.errors import ShapeError


def _matmul_shape(shapes: list[Shape], e: OpNode) -> Shape:
    for s in shapes:
        if len(s) != 2:
            raise ShapeError(
                f"'@' is the product of two matrices, but one operand is {fmt_shape(s)} (rank {len(s)}): "
                "write a product of tensors with einsum, e.g. einsum(\"fc,ctm->ftm\", W, X)"
            )
    (a, b), (c, d) = shapes
    if b != c:
        raise ShapeError(
            f"matrix product {fmt_shape(shapes[0])} @ {fmt_shape(shapes[1])}: inner dimensions "
            f"{b} and {c} differ"
        )
    return (a, d)


def _transpose_shape(shapes: list[Shape], e: OpNode) -> Shape:
    if len(shapes[0]) != 2:
        raise ShapeError(
            f".T transposes a matrix, but this value is {fmt_shape(shapes[0])} (rank {len(shapes[0])}): "
            f"to reorder its axes write transpose(E, [{', '.join(map(str, reversed(range(len(shapes[0])))))}])"
        )
    return (shapes[0][1], shapes[0][0])


def _hadamard(x: Basic) -> bool:
    """An elementwise product or quotient of matrices: A ⊙ B."""
    return (
        isinstance(x, OpNode) and x.op.elementwise and x.op.prec == MUL
        and not any(ir.is_scalar(c) for c in x.children)
    )


def _matmul_form(p: Any, e: OpNode) -> str:
    """``W X``; a ⊙ product as left factor keeps its parentheses: (A ⊙ B) Xᵀ."""
    a, b = e.children
    return f"{p.operand(a, MUL + 1 if _hadamard(a) else MUL)} {p.operand(b, MUL + 1)}"


def _matmul_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    inner = shape_of(e.children[0])[1]
    if inner == 1:  # an outer product sums nothing
        return IndexForm((), ((ij[0], None), (None, ij[1])))
    t = fresh()
    return IndexForm(((t, inner),), ((ij[0], t), (t, ij[1])))


def _transpose_form(i: int, plain: Form) -> Form:
    """Xᵀ; a value whose row says how it reads transposed (A⁻ᵀ for an inverse) in that form."""

    def form(p: Any, e: OpNode) -> str:
        x = e.children[0]
        own = x.op.transposed if isinstance(x, OpNode) else None
        return own[i](p, x) if own else plain(p, e)

    return form


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "matmul", 2, _matmul_shape,
        vjps=(
            lambda g, out, e: ir.matmul(g, ir.transpose(e.children[1])),
            lambda g, out, e: ir.matmul(ir.transpose(e.children[0]), g),
        ),
        rules=(
            "matrix product, left factor: ∂L/∂𝒰 = ∂L/∂(𝒰 𝒱) 𝒱ᵀ",
            "matrix product, right factor: ∂L/∂𝒱 = 𝒰ᵀ ∂L/∂(𝒰 𝒱)",
        ),
        latex=_matmul_form, text=_matmul_form,
        numpy=fmt("{0} @ {1}", MUL, [MUL, MUL + 1]), np_eval=lambda a, b, e=None: a @ b,
        prec=MUL, sym_eval=lambda a, b, e=None: a @ b, index=_matmul_index,
        contracts=lambda e, i: (1,) if i == 0 else (0,),
    ),
    Op(
        "transpose", 1, _transpose_shape,
        vjps=(lambda g, out, e: ir.transpose(g),),
        rules=("transpose: ∂L/∂𝒰 = (∂L/∂𝒰ᵀ)ᵀ",),
        latex=_transpose_form(0, fmt(r"{0}^{{\top}}", POW, [POW + 1])), text=_transpose_form(1, fmt("{0}ᵀ", POW, [POW + 1])),
        numpy=fmt("{0}.T", ATOM, [ATOM]), np_eval=lambda a, e=None: a.T,
        prec=POW, sym_eval=lambda a, e=None: a.T, index=lambda e, ij, fresh: IndexForm((), ((ij[1], ij[0]),)),
        view=True,
    ),
)
