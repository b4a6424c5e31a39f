"""Rows of the registry: elementwise arithmetic (+, −, ⊙, /, **, negation).

Operands broadcast (a scalar, an r×1 column or a 1×c row against a matrix). These are the
operations the spec language writes as operators, so the chain rule meets them most; their text
and LaTeX forms decide where parentheses go, which is why the product's forms live here.
"""

from __future__ import annotations

from typing import Any

import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode
from backprop.expr.ops_row import ADD, ATOM, MUL, POW, UNARY, Op, elementwise_shape, fmt, same_shape

_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow_text(p: Any, e: OpNode) -> str:
    """A small integer exponent as a superscript, as notes write it: (ŷ − y)²."""
    base, ex = e.children
    if isinstance(ex, sympy.Integer) and 0 <= ex <= 9:
        return p.operand(base, POW + 1) + str(ex).translate(_SUPERSCRIPT)
    return f"{p.operand(base, POW + 1)}^{p.operand(ex, POW)}"


def _pow_base_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    """∂L/∂U = ∂L/∂Uᵖ ⊙ p U^(p−1); zero for p = 0, as PyTorch has it: U⁰ = 1 is constant even at
    U = 0, where p U^(p−1) would be 0 · ∞ (``(s - s) ** 0`` would give every gradient nan)."""
    base, p = e.children
    if ir.is_const(p) and p.is_zero:
        return ir.mul(sympy.Integer(0), g)
    return ir.mul(g, ir.mul(p, ir.power(base, ir.sub(p, sympy.Integer(1)))))


def _left_of_hadamard(a: Basic) -> int:
    """A matrix product left of ⊙ keeps its parentheses: (w₂ᵀ δ) ⊙ A, not w₂ᵀ δ ⊙ A."""
    return MUL + 1 if isinstance(a, OpNode) and a.op.prec == MUL and not a.op.elementwise else MUL


def _mul_latex(p: Any, e: OpNode) -> str:
    a, b = e.children
    if ir.is_scalar(a) or ir.is_scalar(b):
        return f"{p.operand(a, MUL)} {p.operand(b, MUL + 1)}"
    return rf"{p.operand(a, _left_of_hadamard(a))} \odot {p.operand(b, MUL + 1)}"


def _mul_text(p: Any, e: OpNode) -> str:
    a, b = e.children
    if ir.is_scalar(a) or ir.is_scalar(b):
        return f"{p.operand(a, MUL)} · {p.operand(b, MUL + 1)}"
    return f"{p.operand(a, _left_of_hadamard(a))} ⊙ {p.operand(b, MUL + 1)}"


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "add", 2, elementwise_shape("'+'"),
        vjps=(lambda g, out, e: g, lambda g, out, e: g),
        rules=("addition: ∂L/∂𝒰 = ∂L/∂(𝒰 + 𝒱)", "addition: ∂L/∂𝒱 = ∂L/∂(𝒰 + 𝒱)"),
        latex=fmt("{0} + {1}", ADD, [ADD, ADD + 1]), text=fmt("{0} + {1}", ADD, [ADD, ADD + 1]),
        numpy=fmt("{0} + {1}", ADD, [ADD, ADD + 1]), np_eval=lambda a, b, e=None: a + b,
        prec=ADD, elementwise=True, exact=lambda a, b: a + b,
    ),
    Op(
        "sub", 2, elementwise_shape("'-'"),
        vjps=(lambda g, out, e: g, lambda g, out, e: ir.neg(g)),
        rules=("difference: ∂L/∂𝒰 = ∂L/∂(𝒰 − 𝒱)", "difference: ∂L/∂𝒱 = −∂L/∂(𝒰 − 𝒱)"),
        latex=fmt("{0} - {1}", ADD, [ADD, ADD + 1]), text=fmt("{0} − {1}", ADD, [ADD, ADD + 1]),
        numpy=fmt("{0} - {1}", ADD, [ADD, ADD + 1]), np_eval=lambda a, b, e=None: a - b,
        prec=ADD, elementwise=True, exact=lambda a, b: a - b,
    ),
    Op(
        "mul", 2, elementwise_shape("'*'"),
        vjps=(lambda g, out, e: ir.mul(g, e.children[1]), lambda g, out, e: ir.mul(g, e.children[0])),
        rules=("elementwise product: ∂L/∂𝒰 = ∂L/∂(𝒰 ⊙ 𝒱) ⊙ 𝒱", "elementwise product: ∂L/∂𝒱 = 𝒰 ⊙ ∂L/∂(𝒰 ⊙ 𝒱)"),
        latex=_mul_latex, text=_mul_text, numpy=fmt("{0} * {1}", MUL, [MUL, MUL + 1]),
        np_eval=lambda a, b, e=None: a * b, prec=MUL, elementwise=True, exact=lambda a, b: a * b,
    ),
    Op(
        "div", 2, elementwise_shape("'/'"),
        vjps=(
            lambda g, out, e: ir.div(g, e.children[1]),
            lambda g, out, e: ir.neg(ir.div(ir.mul(g, e.children[0]), ir.power(e.children[1], sympy.Integer(2)))),
        ),
        rules=("quotient, numerator: ∂L/∂𝒰 = ∂L/∂(𝒰/𝒱) ⊙ (1/𝒱)", "quotient, denominator: ∂L/∂𝒱 = −∂L/∂(𝒰/𝒱) ⊙ (𝒰/𝒱²)"),
        latex=fmt(r"\frac{{{0}}}{{{1}}}", ATOM), text=fmt("{0}/{1}", MUL, [MUL, MUL + 1]),
        numpy=fmt("{0} / {1}", MUL, [MUL, MUL + 1]), np_eval=lambda a, b, e=None: a / b,
        prec=MUL, elementwise=True, exact=lambda a, b: a / b,
    ),
    Op(
        "pow", 2, elementwise_shape("'**'"),
        vjps=(
            _pow_base_vjp,
            lambda g, out, e: ir.mul(g, ir.mul(out, ir.node("log", e.children[0]))),
        ),
        rules=("power, base: ∂L/∂𝒰 = ∂L/∂(𝒰^𝒫) ⊙ 𝒫 𝒰^(𝒫−1)", "power, exponent: ∂L/∂𝒫 = ∂L/∂(𝒰^𝒫) ⊙ 𝒰^𝒫 log 𝒰"),
        latex=fmt("{0}^{{{1}}}", POW, [POW + 1, 0]), text=lambda p, e: _pow_text(p, e),
        numpy=fmt("{0} ** {1}", POW, [POW + 1, POW]), np_eval=lambda a, b, e=None: a**b,
        prec=POW, elementwise=True, exact=lambda a, b: a**b,
    ),
    Op(
        "neg", 1, same_shape,
        vjps=(lambda g, out, e: ir.neg(g),),
        rules=("negation: ∂L/∂𝒰 = −∂L/∂(−𝒰)",),
        # −(a/b) = (−a)/b: a product or quotient needs no parentheses after the sign. So that
        # −a/b never follows a factor bare (vᵀ −a/b reads as a difference), the negation
        # binds like a product: parenthesized as a right factor, vᵀ (−a/b).
        latex=fmt("-{0}", MUL, [MUL]), text=fmt("−{0}", MUL, [MUL]),
        numpy=fmt("-{0}", UNARY, [UNARY]), np_eval=lambda a, e=None: -a,
        prec=MUL, elementwise=True, exact=lambda a: -a,
    ),
)
