"""Rows of the registry: matrix calculus -- ``trace``, ``inv``, ``det``, ``logdet`` and ``solve``.

Each takes square matrices (rank 2; a 1×1 value is a scalar, for which the elementwise form is the
one to write) and cites the textbook identity its adjoint comes from:

- ∂ tr(A)/∂A = I (whence ∂ tr(A B)/∂A = Bᵀ through the product);
- ∂A⁻¹ = −A⁻¹ (∂A) A⁻¹, so ∂L/∂A = −A⁻ᵀ ∂L/∂A⁻¹ A⁻ᵀ (the forward inverse, reused);
- Jacobi's formula ∂ det(A)/∂A = det(A) A⁻ᵀ, and ∂ log det(A)/∂A = A⁻ᵀ;
- X = A⁻¹ B: ∂L/∂B = A⁻ᵀ ∂L/∂X, ∂L/∂A = −(A⁻ᵀ ∂L/∂X) Xᵀ, the solve's value X reused.

``logdet`` follows ``torch.logdet``: log det(A) where det(A) > 0 (a symmetric positive definite A, a
covariance, is the case it is for), −inf where det(A) = 0 and nan where det(A) < 0 -- not
``slogdet``'s log |det(A)|. ``solve(A, B)`` is A⁻¹ B, and reads so in the notes. Which products by
an inverse the generated code computes as solves is the code generator's choice
(:func:`backprop.codegen.rewrite.inverses`), measured in docs/operations.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape
from backprop.expr.ops_row import MUL, POW, Op, fmt
from backprop.support.errors import ShapeError

# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def _side(what: str, s: Shape, scalar_hint: str) -> Basic:
    """The side n of the square matrix ``s`` (n×n), or a ShapeError naming the shape."""
    if len(s) != 2:
        raise ShapeError(f"{what} needs a square matrix, got {fmt_shape(s)} (rank {len(s)}): "
                         "the linear-algebra functions take matrices only")
    if ir.is_scalar_shape(s):
        raise ShapeError(f"{what} needs a square matrix, got a scalar (1×1): {scalar_hint}")
    if s[0] != s[1]:
        raise ShapeError(f"{what} needs a square matrix, got {fmt_shape(s)}")
    return s[0]


def _to_scalar(what: str, hint: str) -> Any:
    def rule(shapes: list[Shape], e: OpNode) -> Shape:
        _side(what, shapes[0], hint)
        return ir.SCALAR

    return rule


def _inv_shape(shapes: list[Shape], e: OpNode) -> Shape:
    _side("inv", shapes[0], "write 1 / x")
    return shapes[0]


def _solve_shape(shapes: list[Shape], e: OpNode) -> Shape:
    a, b = shapes
    n = _side("solve(A, B)", a, "write B / a")
    if len(b) != 2:
        raise ShapeError(f"solve(A, B) needs B a matrix, got {fmt_shape(b)} (rank {len(b)})")
    if b[0] != n:
        raise ShapeError(f"solve(A, B) needs B with {n} rows, as A is {fmt_shape(a)}; got B {fmt_shape(b)}")
    return b


# ---------------------------------------------------------------------------
# Adjoints: model expressions of registered operations
# ---------------------------------------------------------------------------


def inverse_t(a: Basic) -> Basic:
    """A⁻ᵀ, as the transpose of the inverse: the forward ``inv(A)`` is then one value to reuse."""
    return ir.transpose(ir.node("inv", a))


def _trace_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return ir.mul(g, ir.node("eye", ir.shape_of(e.children[0])[0]))


def _inv_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    it = ir.transpose(out)
    return ir.neg(ir.matmul(ir.matmul(it, g), it))


def _det_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return ir.mul(ir.mul(g, out), inverse_t(e.children[0]))


def _logdet_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return ir.mul(g, inverse_t(e.children[0]))


def _solve_rhs_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return ir.node("solve", ir.transpose(e.children[0]), g)


def _solve_matrix_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    return ir.neg(ir.matmul(_solve_rhs_vjp(g, out, e), ir.transpose(out)))


# ---------------------------------------------------------------------------
# Forms
# ---------------------------------------------------------------------------


def _inv_latex(p: Any, e: OpNode) -> str:
    """A⁻¹; (Aᵀ)⁻¹ is A⁻ᵀ."""
    x = e.children[0]
    if isinstance(x, OpNode) and x.op.name == "transpose":
        return _inv_t_latex(p, ir.node("inv", x.children[0]))
    return rf"{p.operand(x, POW + 1)}^{{-1}}"


def _inv_text(p: Any, e: OpNode) -> str:
    x = e.children[0]
    if isinstance(x, OpNode) and x.op.name == "transpose":
        return _inv_t_text(p, ir.node("inv", x.children[0]))
    return f"{p.operand(x, POW + 1)}⁻¹"


def _inv_t_latex(p: Any, e: OpNode) -> str:
    r"""The inverse transposed, as one superscript: A^{-\top}."""
    return rf"{p.operand(e.children[0], POW + 1)}^{{-\top}}"


def _inv_t_text(p: Any, e: OpNode) -> str:
    return f"{p.operand(e.children[0], POW + 1)}⁻ᵀ"


def _solve_form(inverse: Any) -> Any:
    """solve(A, B) as the notes write it, A⁻¹ B (solve(Aᵀ, B) as A⁻ᵀ B)."""

    def form(p: Any, e: OpNode) -> str:
        a, b = e.children
        return f"{inverse(p, ir.node('inv', a))} {p.operand(b, MUL + 1)}"

    return form


def _logdet(a: np.ndarray) -> Any:
    """log det(a) as ``torch.logdet``: −inf where det(a) = 0, nan where it is negative (in a's float type)."""
    sign, logabs = np.linalg.slogdet(a)
    return logabs if sign > 0 else logabs.dtype.type(-np.inf if sign == 0 else np.nan)


_LOGDET_HELPER = (
    "def _logdet(a):\n"
    '    """log det(a) as torch.logdet: -inf where det(a) = 0, nan where det(a) < 0 (slogdet\'s LU, not a\n'
    '    Cholesky factor: a is meant to be symmetric positive definite, but nothing here assumes it)."""\n'
    "    sign, logabs = np.linalg.slogdet(a)\n"
    "    return logabs if sign > 0 else logabs.dtype.type(-np.inf if sign == 0 else np.nan)\n"
)
_LOGDET_JAX_HELPER = (
    "def _logdet(a):\n"
    '    """log det(a) as torch.logdet: -inf where det(a) = 0, nan where det(a) < 0 (slogdet\'s LU)."""\n'
    "    sign, logabs = jnp.linalg.slogdet(a)\n"
    "    return jnp.where(sign > 0, logabs, jnp.where(sign == 0, -jnp.inf, jnp.nan))\n"
)


# ---------------------------------------------------------------------------
# Exact forms: object arrays of SymPy values
# ---------------------------------------------------------------------------


def _matrix(a: np.ndarray) -> sympy.Matrix:
    return sympy.Matrix(a.tolist())


def _array(m: sympy.MatrixBase) -> np.ndarray:
    return np.array(m.tolist(), dtype=object)


def _sym_logdet(a: np.ndarray, e: OpNode | None = None) -> np.ndarray:
    d = _matrix(a).det()
    return np.array([[sympy.log(d)]], dtype=object)


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "trace", 1, _to_scalar("trace", "the trace of a scalar is the scalar itself"),
        vjps=(_trace_vjp,),
        rules=("trace: ∂ tr(𝒜)/∂𝒜 = I, so ∂L/∂𝒜 = ∂L/∂tr(𝒜) I and ∂ tr(𝒜 ℬ)/∂𝒜 = ℬᵀ",),
        latex=fmt(r"\operatorname{{tr}}\left({0}\right)"), text=fmt("tr({0})"), numpy=fmt("np.trace({0})"),
        np_eval=lambda a, e=None: np.trace(a),
        sym_eval=lambda a, e=None: np.array([[sum(a[i, i] for i in range(a.shape[0]))]], dtype=object),
        spec_name="trace", signature="(A)", doc="the sum of the diagonal of a square matrix: trace(A)",
    ),
    Op(
        "inv", 1, _inv_shape,
        vjps=(_inv_vjp,),
        rules=("inverse: ∂𝒜⁻¹ = −𝒜⁻¹ (∂𝒜) 𝒜⁻¹, so ∂L/∂𝒜 = −𝒜⁻ᵀ ∂L/∂𝒜⁻¹ 𝒜⁻ᵀ",),
        latex=_inv_latex, text=_inv_text, numpy=fmt("np.linalg.inv({0})"),
        np_eval=lambda a, e=None: np.linalg.inv(a), prec=POW,
        sym_eval=lambda a, e=None: _array(_matrix(a).inv()),
        transposed=(_inv_t_latex, _inv_t_text),
        spec_name="inv", signature="(A)",
        doc="the inverse of a square matrix (inv(A) @ B is computed as a solve): inv(A)",
    ),
    Op(
        "det", 1, _to_scalar("det", "the determinant of a scalar is the scalar itself"),
        vjps=(_det_vjp,),
        rules=("determinant, by Jacobi's formula: ∂ det(𝒜)/∂𝒜 = det(𝒜) 𝒜⁻ᵀ",),
        latex=fmt(r"\det\left({0}\right)"), text=fmt("det({0})"), numpy=fmt("np.linalg.det({0})"),
        np_eval=lambda a, e=None: np.linalg.det(a),
        sym_eval=lambda a, e=None: np.array([[_matrix(a).det()]], dtype=object),
        spec_name="det", signature="(A)", doc="the determinant of a square matrix (its gradient needs A invertible): det(A)",
    ),
    Op(
        "logdet", 1, _to_scalar("logdet", "write log(x)"),
        vjps=(_logdet_vjp,),
        rules=("log-determinant: ∂ log det(𝒜)/∂𝒜 = 𝒜⁻ᵀ",),
        latex=fmt(r"\log\det\left({0}\right)"), text=fmt("log det({0})"), numpy=fmt("_logdet({0})"),
        np_eval=lambda a, e=None: _logdet(a), sym_eval=_sym_logdet, numpy_helper=_LOGDET_HELPER, jax_helper=_LOGDET_JAX_HELPER,
        spec_name="logdet", signature="(A)",
        doc="log det(A), for A symmetric positive definite (as torch.logdet: nan where det(A) < 0)",
    ),
    Op(
        "solve", 2, _solve_shape,
        vjps=(_solve_matrix_vjp, _solve_rhs_vjp),
        rules=("linear solve, matrix: ∂L/∂𝒜 = −𝒜⁻ᵀ ∂L/∂𝒳 𝒳ᵀ for 𝒳 = 𝒜⁻¹ ℬ",
               "linear solve, right-hand side: ∂L/∂ℬ = 𝒜⁻ᵀ ∂L/∂𝒳 for 𝒳 = 𝒜⁻¹ ℬ"),
        latex=_solve_form(_inv_latex), text=_solve_form(_inv_text), numpy=fmt("np.linalg.solve({0}, {1})"),
        np_eval=lambda a, b, e=None: np.linalg.solve(a, b), prec=MUL,
        sym_eval=lambda a, b, e=None: _array(_matrix(a).LUsolve(_matrix(b))),
        spec_name="solve", signature="(A, B)", doc="A⁻¹ B without forming the inverse: solve(A, B)",
    ),
)
