"""Rows of the registry: matrix calculus -- ``trace``, ``inv``, ``det``, ``logdet`` and ``solve``.

The adjoints are the textbook identities (The Matrix Cookbook, §2): ∂ tr(A) = I; ∂A⁻¹ = −A⁻¹ (∂A) A⁻¹,
so ∂L/∂A = −A⁻ᵀ ∂L/∂A⁻¹ A⁻ᵀ; ∂ det A/∂A = det(A) A⁻ᵀ; ∂ log det A/∂A = A⁻ᵀ; and for X = A⁻¹B,
∂L/∂B = A⁻ᵀ ∂L/∂X and ∂L/∂A = −A⁻ᵀ ∂L/∂X Xᵀ. The generated code solves rather than inverts where a
solve does the job: ``solve(A, B)`` is ``np.linalg.solve`` (LU, no inverse formed), and ``inv(A) @ B``
is rewritten to it (backprop/codegen/rewrite.py). ``logdet`` follows ``torch.logdet``: the log of a
positive determinant, NaN for a negative one (the argument is meant to be positive definite).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape, shape_of
from backprop.expr.ops_row import ATOM, MUL, POW, Op, fmt
from backprop.support.errors import ShapeError


def _square(what: str) -> Any:
    def check(shapes: list[Shape], e: OpNode) -> Shape:
        s = shapes[0]
        if len(s) != 2 or s[0] != s[1]:
            raise ShapeError(f"{what} needs a square matrix, got {fmt_shape(s)}")
        return s if what == "inv" else (sympy.Integer(1), sympy.Integer(1))

    return check


def _solve_shape(shapes: list[Shape], e: OpNode) -> Shape:
    a, b = shapes
    if len(a) != 2 or a[0] != a[1]:
        raise ShapeError(f"solve(A, B) needs a square A, got {fmt_shape(a)}")
    if len(b) != 2 or b[0] != a[1]:
        raise ShapeError(f"solve(A, B): A is {fmt_shape(a)}, so B needs {a[1]} rows, got {fmt_shape(b)}")
    return b


def _eye_like(a: Basic) -> Basic:
    return ir.node("eye", shape_of(a)[0])


def _inv_t(a: Basic) -> Basic:
    """A⁻ᵀ, as the derivation writes it."""
    return ir.transpose(ir.node("inv", a))


def _logdet(a: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(a)
    return float(value) if sign > 0 else float("nan")


def _sym_matrix(f: Any) -> Any:
    """A SymPy matrix function on an object array, as a 1×1 object array (a scalar) or a matrix."""

    def ev(a: np.ndarray, e: OpNode | None = None) -> np.ndarray:
        out = f(sympy.Matrix(a))
        if isinstance(out, sympy.MatrixBase):
            return np.array(out.tolist(), dtype=object)
        return np.array([[out]], dtype=object)

    return ev


def _sym_solve(a: np.ndarray, b: np.ndarray, e: OpNode | None = None) -> np.ndarray:
    return np.array(sympy.Matrix(a).LUsolve(sympy.Matrix(b)).tolist(), dtype=object)


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "trace", 1, _square("trace"),
        vjps=(lambda g, out, e: ir.mul(g, _eye_like(e.children[0])),),
        rules=("trace: ∂ tr(A)/∂A = I, so ∂L/∂A = ∂L/∂tr(A) · I",),
        latex=fmt(r"\operatorname{{tr}}\left({0}\right)", ATOM, [0]), text=fmt("tr({0})", ATOM, [0]),
        numpy=fmt("np.trace({0})", ATOM, [0]), np_eval=lambda a, e=None: np.trace(a),
        sym_eval=_sym_matrix(lambda m: m.trace()), spec_name="trace", doc="the sum of the diagonal of a square matrix",
        signature="(A)",
    ),
    Op(
        "inv", 1, _square("inv"),
        vjps=(lambda g, out, e: ir.neg(ir.matmul(ir.matmul(ir.transpose(out), g), ir.transpose(out))),),
        rules=("inverse: ∂A⁻¹ = −A⁻¹ (∂A) A⁻¹, so ∂L/∂A = −A⁻ᵀ ∂L/∂A⁻¹ A⁻ᵀ",),
        latex=fmt("{0}^{{-1}}", POW, [POW + 1]), text=fmt("{0}⁻¹", POW, [POW + 1]),
        numpy=fmt("np.linalg.inv({0})", ATOM, [0]), np_eval=lambda a, e=None: np.linalg.inv(a), prec=POW,
        sym_eval=_sym_matrix(lambda m: m.inv()), spec_name="inv",
        doc="the inverse of a square matrix (inv(A) @ B is computed as a solve)", signature="(A)",
    ),
    Op(
        "det", 1, _square("det"),
        vjps=(lambda g, out, e: ir.mul(ir.mul(g, out), _inv_t(e.children[0])),),
        rules=("determinant (Jacobi's formula): ∂ det A/∂A = det(A) A⁻ᵀ",),
        latex=fmt(r"\det\left({0}\right)", ATOM, [0]), text=fmt("det({0})", ATOM, [0]),
        numpy=fmt("np.linalg.det({0})", ATOM, [0]), np_eval=lambda a, e=None: np.linalg.det(a),
        sym_eval=_sym_matrix(lambda m: m.det()), spec_name="det", doc="the determinant of a square matrix",
        signature="(A)",
    ),
    Op(
        "logdet", 1, _square("logdet"),
        vjps=(lambda g, out, e: ir.mul(g, _inv_t(e.children[0])),),
        rules=("log-determinant: ∂ log det A/∂A = A⁻ᵀ",),
        latex=fmt(r"\log\det\left({0}\right)", ATOM, [0]), text=fmt("log det({0})", ATOM, [0]),
        numpy=fmt("_logdet({0})", ATOM, [0]), np_eval=lambda a, e=None: _logdet(a),
        sym_eval=_sym_matrix(lambda m: sympy.log(m.det())), spec_name="logdet",
        doc="log det(A) of a positive definite A (NaN where det(A) < 0, as torch.logdet)", signature="(A)",
        numpy_helper=(
            "def _logdet(a):\n"
            '    """log det(a) from an LU factorization (no overflow of det itself); NaN for a negative\n'
            '    determinant, as torch.logdet."""\n'
            "    sign, value = np.linalg.slogdet(a)\n"
            "    return value if sign > 0 else np.nan\n"
        ),
    ),
    Op(
        "solve", 2, _solve_shape,
        vjps=(
            lambda g, out, e: ir.neg(ir.matmul(ir.node("solve", ir.transpose(e.children[0]), g), ir.transpose(out))),
            lambda g, out, e: ir.node("solve", ir.transpose(e.children[0]), g),
        ),
        rules=(
            "solve, the matrix: for X = A⁻¹ B, ∂L/∂A = −A⁻ᵀ ∂L/∂X Xᵀ",
            "solve, the right side: for X = A⁻¹ B, ∂L/∂B = A⁻ᵀ ∂L/∂X",
        ),
        latex=fmt("{0}^{{-1}} {1}", MUL, [POW + 1, MUL + 1]), text=fmt("{0}⁻¹ {1}", MUL, [POW + 1, MUL + 1]),
        numpy=fmt("np.linalg.solve({0}, {1})", ATOM, [0, 0]), np_eval=lambda a, b, e=None: np.linalg.solve(a, b),
        prec=MUL, sym_eval=_sym_solve, spec_name="solve",
        doc="A⁻¹ B for a square A, by LU factorization (no inverse formed)", signature="(A, B)",
    ),
)
