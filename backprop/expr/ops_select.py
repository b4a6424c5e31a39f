"""Rows of the registry: comparisons and what selects by them -- masks, ``where``, ``maximum``,
``minimum``, ``clip`` -- plus ``stop_gradient`` and the identity matrix ``eye(n)``.

A comparison is a 0/1 mask: no gradient flows through it (as in PyTorch, where ``a > b`` is a
boolean tensor). Ties and kinks follow PyTorch 2.13's autograd, measured (docs/operations.md):
``maximum``/``minimum`` split the gradient evenly at a tie, which is the unit step ``H`` with
H(0) = ½ of the difference; ``clip`` passes the gradient on the boundary (lo ≤ x ≤ hi), and a
bound receives it only where it is strictly the result.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape
from backprop.expr.ops_row import ADD, ATOM, Form, Op, elementwise_shape, fmt
from backprop.support.errors import ShapeError

# ---------------------------------------------------------------------------
# Comparisons: 0/1 masks
# ---------------------------------------------------------------------------


def _compare_numpy(symbol: str, at_tie: int, flip: bool) -> Form:
    """``(A > B)``, a boolean mask, where the printer allows one (a factor of a product with a
    number, a sum, the condition of ``where``); else the same 0/1 value as a number of the
    operands' float type, ``np.heaviside(A - B, 0)``: NumPy refuses −mask and mask − mask, and
    adds masks as a logical or. A difference is 0 exactly when finite operands are equal."""

    def form(p: Any, e: OpNode) -> str:
        a, b = e.children
        if getattr(p, "mask_ok", True):
            return f"({p.operand(a, ADD)} {symbol} {p.operand(b, ADD)})"
        hi, lo = (b, a) if flip else (a, b)
        if ir.is_const(lo) and lo == 0:
            return f"np.heaviside({p.operand(hi, 0)}, {at_tie})"
        return f"np.heaviside({p.operand(hi, ADD)} - {p.operand(lo, ADD + 1)}, {at_tie})"

    return form


def _compare(name: str, symbol: str, latex: str, text: str, test: Any) -> Op:
    at_tie = int(bool(test(0, 0)))
    flip = not test(1, 0)
    return Op(
        name, 2, elementwise_shape(f"'{symbol}'"),
        vjps=(None, None),
        rules=("comparison, a 0/1 mask (no gradient flows through it)",) * 2,
        latex=fmt(rf"\left[{{0}} {latex} {{1}}\right]"), text=fmt(f"[{{0}} {text} {{1}}]"),
        numpy=_compare_numpy(symbol, at_tie, flip),
        np_eval=lambda a, b, e=None: test(np.asarray(a), np.asarray(b)).astype(float),
        elementwise=True, exact=lambda a, b: sympy.Piecewise((1, test(a, b)), (0, True)),
        spec_name=None, doc=f"1 where A {symbol} B, else 0 (a mask: no gradient)", mask=True, piecewise=True,
    )


def is_mask(e: Basic, masks: Container[str] = ()) -> bool:
    """Whether ``e`` is surely 0 or 1 in every entry: a comparison, a product of masks (and),
    1 − a mask (not), or a name in ``masks`` (a value assigned one, a binary input)."""
    if isinstance(e, MatrixSymbol):
        return e.name in masks
    if not isinstance(e, OpNode):
        return False
    if e.op.mask:
        return True
    if e.op.name == "mul":
        return all(is_mask(c, masks) for c in e.children)
    if e.op.name == "sub":
        one, x = e.children
        return ir.is_const(one) and one == 1 and is_mask(x, masks)
    return False


# ---------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------


def _where_vjp(i: int) -> Any:
    """The branch taken receives the gradient, the other none: where(C, g, 0), as PyTorch writes it
    (not g ⊙ C, which would make 0 · ∞ = nan of an infinite gradient of the branch not taken)."""
    zero = sympy.Integer(0)

    def vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
        c = e.children[0]
        return ir.node("where", c, g, zero) if i == 1 else ir.node("where", c, zero, g)

    return vjp


def _where_numpy(p: Any, e: OpNode) -> str:
    c, a, b = e.children
    return f"np.where({p.factor(c)}, {p.operand(a, 0)}, {p.operand(b, 0)})"  # the condition as a mask


def _where_eval(c: Any, a: Any, b: Any, e: OpNode | None = None) -> Any:
    return np.where(np.asarray(c) != 0, a, b)


def _extremum_vjp(i: int, larger: bool) -> Any:
    """∂max(A, B)/∂A = H(A − B) with H(0) = ½: the larger operand gets the gradient, a tie splits it
    evenly (PyTorch's ``maximum``); for the minimum, H(B − A)."""

    def vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
        a, b = e.children if (i == 0) == larger else reversed(e.children)
        return ir.mul(g, ir.node("half_step", ir.sub(a, b)))

    return vjp


def _clip_shape(shapes: list[Shape], e: OpNode) -> Shape:
    return elementwise_shape("clip")(shapes, e)


def _clip_vjps() -> tuple[Any, Any, Any]:
    """PyTorch's clamp, measured at every tie of E, lo, hi: the value passes the gradient inside
    the range and on its boundary, [E ≥ lo] ⊙ [E ≤ hi]; a bound receives it where it is the
    result, strictly: lo where E < lo < hi, hi where max(E, lo) > hi (so hi wins when lo > hi,
    and at lo = hi with E below it no one does)."""

    def value(g: Basic, out: Basic, e: OpNode) -> Basic:
        x, lo, hi = e.children
        return ir.mul(ir.mul(g, ir.node("ge", x, lo)), ir.node("le", x, hi))

    def low(g: Basic, out: Basic, e: OpNode) -> Basic:
        x, lo, hi = e.children
        return ir.mul(ir.mul(g, ir.node("lt", x, lo)), ir.node("lt", lo, hi))

    def high(g: Basic, out: Basic, e: OpNode) -> Basic:
        x, lo, hi = e.children
        return ir.mul(g, ir.node("gt", ir.node("maximum", x, lo), hi))

    return value, low, high


def _clip_exact(x: Basic, lo: Basic, hi: Basic) -> Basic:
    return sympy.Min(sympy.Max(x, lo), hi)


# ---------------------------------------------------------------------------
# Constant matrices: the identity, ones, zeros
# ---------------------------------------------------------------------------


def _fill_shape(shapes: list[Shape], e: OpNode) -> Shape:
    """The shape written in the call: at least one dim, each a positive whole number or a dim expression."""
    dims = tuple(e.args[0])
    if not dims:
        raise ShapeError("a constant array needs at least one dim: ones(r, c)")
    bad = next((d for d in dims if not (ir.is_const(d) and d.is_integer and d.is_positive)), None)
    if bad is not None:
        raise ShapeError(f"a shape needs positive whole numbers or dims, got {bad}")
    return dims


def _shape_tuple(p: Any, dims: Basic) -> str:
    """A shape as Python writes the tuple: (n, m), (n,)."""
    items = [p.doprint(d) for d in dims]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _fill(value: int) -> Op:
    """``ones(r, c)``/``zeros(r, c)``: a constant array of the shape (a new float array in the code)."""
    name = "ones" if value else "zeros"
    bold = r"\mathbf{1}" if value else r"\mathbf{0}"
    return Op(
        name, 0, _fill_shape, vjps=(), rules=(),
        latex=lambda p, e: bold + "_{" + r" \times ".join(p.doprint(d) for d in e.args[0]) + "}",
        text=lambda p, e: f"{'𝟏' if value else '𝟎'}[{fmt_shape(tuple(e.args[0]))}]",
        numpy=lambda p, e: f"np.{name}({_shape_tuple(p, e.args[0])})",
        np_eval=lambda e, sizes: np.full(tuple(ir.concrete(d, sizes) for d in e.args[0]), float(value)),
        sym_eval=lambda e, sizes: np.full(tuple(ir.concrete(d, sizes) for d in e.args[0]), sympy.Integer(value),
                                          dtype=object),
        sized=True, attrs=("shape",), spec_name=name, signature="(rows, cols)",
        doc=f"the array of {name} of a shape: {name}(m, 1)",
    )



def _eye_shape(shapes: list[Shape], e: OpNode) -> Shape:
    (n,) = e.args
    if not (ir.is_const(n) and n.is_integer and n.is_positive):
        raise ShapeError(f"eye(n) needs a positive whole number or a dim, got {n}")
    return (n, n)


def _eye_eval(e: OpNode, sizes: Mapping[Basic, int], one: Any = 1.0) -> np.ndarray:
    n = ir.concrete(e.args[0], sizes)
    out = np.full((n, n), 0 * one, dtype=float if one == 1.0 else object)
    np.fill_diagonal(out, one)
    return out


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    _compare("gt", ">", ">", ">", lambda a, b: a > b),
    _compare("ge", ">=", r"\ge", "≥", lambda a, b: a >= b),
    _compare("lt", "<", "<", "<", lambda a, b: a < b),
    _compare("le", "<=", r"\le", "≤", lambda a, b: a <= b),
    Op(
        "half_step", 1, lambda shapes, e: shapes[0],
        vjps=(None,),
        rules=("unit step with H(0) = ½ (derivative zero almost everywhere)",),
        latex=fmt(r"H\left({0}\right)"), text=fmt("H({0})"), numpy=fmt("np.heaviside({0}, 0.5)"),
        np_eval=lambda x, e=None: np.heaviside(x, 0.5), elementwise=True,
        exact=lambda x: sympy.Heaviside(x, sympy.S.Half), doc="the unit step, ½ at 0", piecewise=True,
    ),
    Op(
        "where", 3, elementwise_shape("where"),
        vjps=(None, _where_vjp(1), _where_vjp(2)),
        rules=("condition of where, a mask (no gradient flows through it)",
               "where: ∂L/∂𝒰 = ∂L/∂𝒲 where 𝒞 holds, 0 elsewhere, for 𝒲 = where(𝒞, 𝒰, 𝒱)",
               "where: ∂L/∂𝒱 = ∂L/∂𝒲 where 𝒞 does not hold, 0 elsewhere, for 𝒲 = where(𝒞, 𝒰, 𝒱)"),
        latex=fmt(r"\operatorname{{where}}\left({0}, {1}, {2}\right)"), text=fmt("where({0}, {1}, {2})"),
        numpy=_where_numpy, np_eval=_where_eval, elementwise=True,
        exact=lambda c, a, b: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True)),
        spec_name="where", signature="(C, A, B)", piecewise=True,
        doc="A where the mask C is 1, B where it is 0: where(X > 0, X, 0.1 * X)",
    ),
    Op(
        "maximum", 2, elementwise_shape("maximum"),
        vjps=(_extremum_vjp(0, True), _extremum_vjp(1, True)),
        rules=("maximum, a tie splitting the gradient evenly (as PyTorch): ∂L/∂𝒰 = ∂L/∂ℳ ⊙ "
            "H(𝒰 − 𝒱) for ℳ = max(𝒰, 𝒱), H the unit step with H(0) = ½",
               "maximum, a tie splitting the gradient evenly (as PyTorch): ∂L/∂𝒱 = ∂L/∂ℳ ⊙ "
                   "H(𝒱 − 𝒰) for ℳ = max(𝒰, 𝒱), H the unit step with H(0) = ½"),
        latex=fmt(r"\max\left({0}, {1}\right)"), text=fmt("max({0}, {1})"), numpy=fmt("np.maximum({0}, {1})"),
        np_eval=lambda a, b, e=None: np.maximum(a, b), elementwise=True, exact=sympy.Max,
        spec_name="maximum", signature="(A, B)", piecewise=True,
        doc="the larger entry of A and B; a tie splits the gradient evenly",
    ),
    Op(
        "minimum", 2, elementwise_shape("minimum"),
        vjps=(_extremum_vjp(0, False), _extremum_vjp(1, False)),
        rules=("minimum, a tie splitting the gradient evenly (as PyTorch): ∂L/∂𝒰 = ∂L/∂ℳ ⊙ "
            "H(𝒱 − 𝒰) for ℳ = min(𝒰, 𝒱), H the unit step with H(0) = ½",
               "minimum, a tie splitting the gradient evenly (as PyTorch): ∂L/∂𝒱 = ∂L/∂ℳ ⊙ "
                   "H(𝒰 − 𝒱) for ℳ = min(𝒰, 𝒱), H the unit step with H(0) = ½"),
        latex=fmt(r"\min\left({0}, {1}\right)"), text=fmt("min({0}, {1})"), numpy=fmt("np.minimum({0}, {1})"),
        np_eval=lambda a, b, e=None: np.minimum(a, b), elementwise=True, exact=sympy.Min,
        spec_name="minimum", signature="(A, B)", piecewise=True,
        doc="the smaller entry of A and B; a tie splits the gradient evenly",
    ),
    Op(
        "clip", 3, _clip_shape,
        vjps=_clip_vjps(),
        rules=("clip, the boundary passing the gradient (as PyTorch's clamp): ∂L/∂𝒰 "
            "= ∂L/∂𝒴 ⊙ [𝒰 ≥ 𝒜] ⊙ [𝒰 ≤ ℬ] for 𝒴 = clip(𝒰, 𝒜, ℬ)",
               "clip, lower bound: ∂L/∂𝒜 = ∂L/∂𝒴 ⊙ [𝒰 < 𝒜] ⊙ [𝒜 < ℬ] for 𝒴 = clip(𝒰, 𝒜, ℬ)",
               "clip, upper bound: ∂L/∂ℬ = ∂L/∂𝒴 ⊙ [max(𝒰, 𝒜) > ℬ] for 𝒴 = clip(𝒰, 𝒜, ℬ)"),
        latex=fmt(r"\operatorname{{clip}}\left({0}, {1}, {2}\right)"), text=fmt("clip({0}, {1}, {2})"),
        numpy=fmt("np.clip({0}, {1}, {2})"), np_eval=lambda x, lo, hi, e=None: np.minimum(np.maximum(x, lo), hi),
        elementwise=True, exact=_clip_exact, spec_name="clip", signature="(E, lo, hi)",
        doc="E limited to [lo, hi] (PyTorch's clamp): clip(Z, -1, 1)", piecewise=True,
    ),
    Op(
        "stop_gradient", 1, lambda shapes, e: shapes[0],
        vjps=(None,),
        rules=("stop-gradient, the value passing and no gradient flowing back",),
        latex=fmt(r"\operatorname{{sg}}\left({0}\right)"), text=fmt("stop_gradient({0})"), numpy=fmt("{0}", ATOM, [ATOM]),
        np_eval=lambda x, e=None: x, elementwise=True, exact=lambda x: x, spec_name="stop_gradient",
        doc="the value of E, through which no gradient flows (a target held fixed, a straight-through estimator)",
        view=True,
    ),
    Op(
        "eye", 0, _eye_shape,
        vjps=(),
        rules=(),
        latex=lambda p, e: rf"I_{{{p.doprint(e.args[0])}}}", text=lambda p, e: f"I[{p.doprint(e.args[0])}]",
        numpy=lambda p, e: f"np.eye({p.doprint(e.args[0])})", np_eval=lambda e, sizes: _eye_eval(e, sizes),
        sym_eval=lambda e, sizes: _eye_eval(e, sizes, sympy.Integer(1)), sized=True, attrs=("n",),
        spec_name="eye", doc="the n×n identity matrix: eye(n)", signature="(n)",
    ),
    _fill(1),
    _fill(0),
)
