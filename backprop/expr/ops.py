"""The operation registry: one row per operation, holding all of its forms.

Each :class:`Op` row says, in one place, how the operation
- checks and infers shapes (``shape``),
- pulls a gradient back to each operand (``vjps``: the adjoint, as a model
  expression built from other registered operations),
- reads in LaTeX, in Unicode text and in NumPy (``latex``, ``text``, ``numpy``),
- evaluates numerically (``np_eval``) and exactly on concrete SymPy matrices
  (``exact``, elementwise ops only; others give ``sym_eval``),
- is cited in a derivation (``rules``, one per operand).

Adding an operation is one ``defop`` call here plus one row in
``tests/test_ops.py``. Rows are grouped under banners, as in HIPS/autograd's
``numpy_vjps.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape, shape_of
from backprop.support.errors import ShapeError

# Printing precedence, as in Python: higher binds tighter.
ATOM, POW, UNARY, MUL, ADD = 100, 60, 50, 40, 30

VJP = Callable[[Basic, Basic, OpNode], Basic]
Form = Callable[[Any, OpNode], str]
Index = tuple[str | None, str | None]  # (row, column) index letters; None for a length-1 axis


class IndexForm(NamedTuple):
    """Entry ``(i, j)`` of an operation's result in index notation.

    The entry is ``scale`` times the sum, over the ``summed`` indices (each with
    its range), of the product of the operands' entries at ``operands``.
    """

    summed: tuple[tuple[str, Basic], ...]
    operands: tuple[Index, ...]
    scale: Basic = sympy.Integer(1)


#: (node, its entry's indices, a source of fresh index letters) -> IndexForm
IndexRule = Callable[[OpNode, Index, Callable[[], str]], IndexForm]


@dataclass(frozen=True)
class Op:
    """Everything the toolkit knows about one operation."""

    name: str
    arity: int
    shape: Callable[[list[Shape], OpNode], Shape]
    vjps: tuple[VJP | None, ...]
    rules: tuple[str, ...]
    latex: Form
    text: Form
    numpy: Form
    np_eval: Callable[..., Any]
    prec: int = ATOM
    elementwise: bool = False
    exact: Callable[..., Any] | None = None  # scalar SymPy form (elementwise ops)
    sym_eval: Callable[..., Any] | None = None  # on concrete sympy.Matrix (other ops)
    numpy_helper: str | None = None  # a helper function the NumPy form calls
    #: the NumPy form writing into its (fresh, last-read) argument, e.g. "np.tanh({0}, out={0})"
    numpy_inplace: str | None = None
    numpy_inplace_helper: str | None = None  # a helper function numpy_inplace calls
    spec_name: str | None = None  # name in the spec language, when callable there
    doc: str = ""
    attrs: tuple[str, ...] = field(default=())
    #: entry (i, j) in index notation; elementwise ops need none (same indices)
    index: IndexRule | None = None


REGISTRY: dict[str, Op] = {}
#: spec-language function name -> op
FUNCTIONS: dict[str, Op] = {}


def defop(op: Op) -> Op:
    """Register ``op`` and generate its node class (``SigmoidOp`` ...)."""
    cls = type(op.name.title().replace("_", "") + "Op", (OpNode,), {"op": op})
    REGISTRY[op.name] = op
    ir.NODE_CLASSES[op.name] = cls
    if op.spec_name:
        FUNCTIONS[op.spec_name] = op
    return op


# --- form helpers -----------------------------------------------------------


def fmt(template: str, prec: int = ATOM, child_prec: Sequence[int] | None = None) -> Form:
    """A form from a template over printed operands ``{0}``, ``{1}``.

    ``child_prec`` gives, per operand, the precedence below which it is
    parenthesized (function-call forms need none).
    """

    def form(p: Any, e: OpNode) -> str:
        needs = child_prec or [0] * e.op.arity
        return template.format(*(p.operand(c, n) for c, n in zip(e.children, needs)))

    return form


def _axes(e: OpNode) -> tuple[int, ...]:
    return tuple(int(a) for a in e.args[-1])


def _np_axis(axes: tuple[int, ...]) -> int | None:
    return None if len(axes) == 2 else axes[0]


def _is_scalar_node(x: Basic) -> bool:
    return ir.is_scalar(x)


def elementwise_shape(what: str) -> Callable[[list[Shape], OpNode], Shape]:
    def rule(shapes: list[Shape], e: OpNode) -> Shape:
        out = shapes[0]
        for s in shapes[1:]:
            out = ir.broadcast_shapes(out, s, what)
        return out

    return rule


def _reduce_shape(shapes: list[Shape], e: OpNode) -> Shape:
    axes = _axes(e)
    r, c = shapes[0]
    return (sympy.Integer(1) if 0 in axes else r, sympy.Integer(1) if 1 in axes else c)


def _same_shape(shapes: list[Shape], e: OpNode) -> Shape:
    return shapes[0]


def _matmul_shape(shapes: list[Shape], e: OpNode) -> Shape:
    (a, b), (c, d) = shapes
    if b != c:
        raise ShapeError(
            f"matrix product {fmt_shape(shapes[0])} @ {fmt_shape(shapes[1])}: inner dimensions "
            f"{b} and {c} differ"
        )
    return (a, d)


def _transpose_shape(shapes: list[Shape], e: OpNode) -> Shape:
    return (shapes[0][1], shapes[0][0])


def _broadcast_shape(shapes: list[Shape], e: OpNode) -> Shape:
    target = (e.args[1][0], e.args[1][1])
    ir.broadcast_shapes(shapes[0], target, "broadcast")
    return target


def _np_unary(f: Callable[[Any], Any]) -> Callable[..., Any]:
    return lambda x, e=None: f(x)


def _sym_unary(f: Callable[[Any], Any]) -> Callable[..., Any]:
    return f


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return np.exp(_log_softmax(x, axis))


def _func_latex(name: str) -> Form:
    # the name is LaTeX (\operatorname{ReLU}): its braces are not template fields
    return fmt(name.replace("{", "{{").replace("}", "}}") + r"\left({0}\right)")


def _func_text(name: str) -> Form:
    return fmt(name + "({0})")


def _axis_suffix(e: OpNode, latex: bool) -> str:
    return "" if _axes(e) == (0,) else (r"_{\mathrm{rows}}" if latex else "_rows")


_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow_text(p: Any, e: OpNode) -> str:
    """A small integer exponent as a superscript, as notes write it: (ŷ − y)²."""
    base, ex = e.children
    if isinstance(ex, sympy.Integer) and 0 <= ex <= 9:
        return p.operand(base, POW + 1) + str(ex).translate(_SUPERSCRIPT)
    return f"{p.operand(base, POW + 1)}^{p.operand(ex, POW)}"


# ============================================================================
# Elementwise arithmetic (operands broadcast: scalar, r×1 column, 1×c row)
# ============================================================================


def _left_of_hadamard(a: Basic) -> int:
    """A matrix product left of ⊙ keeps its parentheses: (w₂ᵀ δ) ⊙ A, not w₂ᵀ δ ⊙ A."""
    return MUL + 1 if isinstance(a, OpNode) and a.op.prec == MUL and not a.op.elementwise else MUL


def _mul_latex(p: Any, e: OpNode) -> str:
    a, b = e.children
    if _is_scalar_node(a) or _is_scalar_node(b):
        return f"{p.operand(a, MUL)} {p.operand(b, MUL + 1)}"
    return rf"{p.operand(a, _left_of_hadamard(a))} \odot {p.operand(b, MUL + 1)}"


def _mul_text(p: Any, e: OpNode) -> str:
    a, b = e.children
    if _is_scalar_node(a) or _is_scalar_node(b):
        return f"{p.operand(a, MUL)} · {p.operand(b, MUL + 1)}"
    return f"{p.operand(a, _left_of_hadamard(a))} ⊙ {p.operand(b, MUL + 1)}"


defop(Op(
    "add", 2, elementwise_shape("'+'"),
    vjps=(lambda g, out, e: g, lambda g, out, e: g),
    rules=("addition: ∂L/∂U = ∂L/∂(U + V)", "addition: ∂L/∂V = ∂L/∂(U + V)"),
    latex=fmt("{0} + {1}", ADD, [ADD, ADD + 1]), text=fmt("{0} + {1}", ADD, [ADD, ADD + 1]),
    numpy=fmt("{0} + {1}", ADD, [ADD, ADD + 1]), np_eval=lambda a, b, e=None: a + b,
    prec=ADD, elementwise=True, exact=lambda a, b: a + b,
))
defop(Op(
    "sub", 2, elementwise_shape("'-'"),
    vjps=(lambda g, out, e: g, lambda g, out, e: ir.neg(g)),
    rules=("difference: ∂L/∂U = ∂L/∂(U − V)", "difference: ∂L/∂V = −∂L/∂(U − V)"),
    latex=fmt("{0} - {1}", ADD, [ADD, ADD + 1]), text=fmt("{0} − {1}", ADD, [ADD, ADD + 1]),
    numpy=fmt("{0} - {1}", ADD, [ADD, ADD + 1]), np_eval=lambda a, b, e=None: a - b,
    prec=ADD, elementwise=True, exact=lambda a, b: a - b,
))
defop(Op(
    "mul", 2, elementwise_shape("'*'"),
    vjps=(lambda g, out, e: ir.mul(g, e.children[1]), lambda g, out, e: ir.mul(g, e.children[0])),
    rules=("elementwise product: ∂L/∂U = ∂L/∂(U ⊙ V) ⊙ V", "elementwise product: ∂L/∂V = U ⊙ ∂L/∂(U ⊙ V)"),
    latex=_mul_latex, text=_mul_text, numpy=fmt("{0} * {1}", MUL, [MUL, MUL + 1]),
    np_eval=lambda a, b, e=None: a * b, prec=MUL, elementwise=True, exact=lambda a, b: a * b,
))
defop(Op(
    "div", 2, elementwise_shape("'/'"),
    vjps=(
        lambda g, out, e: ir.div(g, e.children[1]),
        lambda g, out, e: ir.neg(ir.div(ir.mul(g, e.children[0]), ir.power(e.children[1], sympy.Integer(2)))),
    ),
    rules=("quotient, numerator: ∂L/∂U = ∂L/∂(U/V) / V", "quotient, denominator: ∂L/∂V = −∂L/∂(U/V) ⊙ U / V²"),
    latex=fmt(r"\frac{{{0}}}{{{1}}}", ATOM), text=fmt("{0}/{1}", MUL, [MUL, MUL + 1]),
    numpy=fmt("{0} / {1}", MUL, [MUL, MUL + 1]), np_eval=lambda a, b, e=None: a / b,
    prec=MUL, elementwise=True, exact=lambda a, b: a / b,
))
defop(Op(
    "pow", 2, elementwise_shape("'**'"),
    vjps=(
        lambda g, out, e: ir.mul(g, ir.mul(e.children[1], ir.power(e.children[0], ir.sub(e.children[1], sympy.Integer(1))))),
        lambda g, out, e: ir.mul(g, ir.mul(out, ir.node("log", e.children[0]))),
    ),
    rules=("power, base: ∂L/∂U = ∂L/∂Uᵖ ⊙ p U^(p−1)", "power, exponent: ∂L/∂p = ∂L/∂Uᵖ ⊙ Uᵖ log U"),
    latex=fmt("{0}^{{{1}}}", POW, [POW + 1, 0]), text=lambda p, e: _pow_text(p, e),
    numpy=fmt("{0} ** {1}", POW, [POW + 1, POW]), np_eval=lambda a, b, e=None: a**b,
    prec=POW, elementwise=True, exact=lambda a, b: a**b,
))
defop(Op(
    "neg", 1, _same_shape,
    vjps=(lambda g, out, e: ir.neg(g),),
    rules=("negation: ∂L/∂U = −∂L/∂(−U)",),
    # −(a/b) = (−a)/b: a product or quotient needs no parentheses after the sign. So that
    # −a/b never follows a factor bare (vᵀ −a/b reads as a difference), the negation
    # binds like a product: parenthesized as a right factor, vᵀ (−a/b).
    latex=fmt("-{0}", MUL, [MUL]), text=fmt("−{0}", MUL, [MUL]),
    numpy=fmt("-{0}", UNARY, [UNARY]), np_eval=lambda a, e=None: -a,
    prec=MUL, elementwise=True, exact=lambda a: -a,
))

# ============================================================================
# Elementwise functions (activations); derivatives through the forward value
# ============================================================================

defop(Op(
    "sigmoid", 1, _same_shape,
    vjps=(lambda g, out, e: ir.mul(g, ir.mul(out, ir.sub(sympy.Integer(1), out))),),
    rules=("logistic function: σ′(Z) = σ(Z) ⊙ (1 − σ(Z))",),
    latex=_func_latex(r"\sigma"), text=_func_text("σ"), numpy=fmt("_sigmoid({0})"),
    np_eval=_np_unary(_stable_sigmoid), elementwise=True, exact=lambda x: 1 / (1 + sympy.exp(-x)),
    spec_name="sigmoid", doc="logistic function 1/(1 + e^−x)",
    numpy_helper=(
        "def _sigmoid(x):\n"
        '    """Logistic function as (1 + tanh(x/2)) / 2: no overflow for any x, one transcendental\n'
        '    call per entry, and one new array (the steps after the first work in place)."""\n'
        "    s = 0.5 * x\n"
        "    s = np.tanh(s, out=s) if type(s) is np.ndarray else np.tanh(s)\n"
        "    s += 1.0\n"
        "    s *= 0.5\n"
        "    return s\n"
    ),
    numpy_inplace="_sigmoid_({0})",
    numpy_inplace_helper=(
        "def _sigmoid_(x):\n"
        '    """The logistic function as (1 + tanh(x/2)) / 2 (no overflow), computed in x itself:\n'
        '    x is a new array nothing reads again, so no array is allocated at all."""\n'
        "    x *= 0.5\n"
        "    np.tanh(x, out=x)\n"
        "    x += 1.0\n"
        "    x *= 0.5\n"
        "    return x\n"
    ),
))
defop(Op(
    "tanh", 1, _same_shape,
    vjps=(lambda g, out, e: ir.mul(g, ir.sub(sympy.Integer(1), ir.power(out, sympy.Integer(2)))),),
    rules=("hyperbolic tangent: tanh′(Z) = 1 − tanh²(Z)",),
    latex=_func_latex(r"\tanh"), text=_func_text("tanh"), numpy=fmt("np.tanh({0})"),
    numpy_inplace="np.tanh({0}, out={0})",
    np_eval=_np_unary(np.tanh), elementwise=True, exact=sympy.tanh, spec_name="tanh",
    doc="hyperbolic tangent",
))
def _step_numpy(p: Any, e: OpNode) -> str:
    """[x > 0] as the boolean mask ``(x > 0)`` where the printer allows one (a factor of a
    product with a number, a sum: ``dZ *= (A > 0)`` is the fast ReLU′), else as a number of
    x's dtype, ``np.heaviside(x, 0)``: NumPy refuses −mask and mask − mask, and adds masks
    as a logical or."""
    if getattr(p, "mask_ok", True):
        return f"({p.operand(e.children[0], MUL + 1)} > 0)"
    return f"np.heaviside({p.operand(e.children[0], 0)}, 0)"


defop(Op(
    "step", 1, _same_shape,
    vjps=(None,),
    rules=("indicator (derivative zero almost everywhere)",),
    latex=fmt(r"\left[{0} > 0\right]"), text=fmt("[{0} > 0]"),
    numpy=_step_numpy, np_eval=_np_unary(lambda x: (x > 0).astype(np.asarray(x).dtype)),
    elementwise=True, exact=lambda x: sympy.Piecewise((1, x > 0), (0, True)),
    doc="indicator [x > 0]",
))
defop(Op(
    "relu", 1, _same_shape,
    vjps=(lambda g, out, e: ir.mul(g, ir.node("step", e.children[0])),),
    rules=("rectifier: ReLU′(Z) = [Z > 0]",),
    latex=_func_latex(r"\operatorname{ReLU}"), text=_func_text("ReLU"), numpy=fmt("np.maximum({0}, 0)"),
    numpy_inplace="np.maximum({0}, 0, out={0})",
    np_eval=_np_unary(lambda x: np.maximum(x, 0)), elementwise=True,
    exact=lambda x: sympy.Piecewise((x, x > 0), (0, True)), spec_name="relu", doc="max(x, 0)",
))


def _leaky_slope(g: Basic, out: Basic, e: OpNode) -> Basic:
    x, s = e.children
    return ir.mul(g, ir.node("leaky_step", x, s))


def _leaky_slope_grad(g: Basic, out: Basic, e: OpNode) -> Basic:
    x, s = e.children
    return ir.mul(g, ir.mul(x, ir.sub(sympy.Integer(1), ir.node("step", x))))


defop(Op(
    "leaky_step", 2, elementwise_shape("leaky_relu"),
    vjps=(None, None),
    rules=("leaky indicator", "leaky indicator"),
    latex=fmt(r"\left[{0} > 0\right] + {1} \left[{0} \le 0\right]", ADD, [ATOM, MUL]),
    text=fmt("([{0} > 0] + {1}·[{0} ≤ 0])", ATOM, [ATOM, MUL]),
    numpy=lambda p, e: (
        fmt("np.where({0} > 0, 1.0, {1})", ATOM, [MUL + 1, 0]) if _is_scalar_node(e.children[0])  # may be a float
        else fmt("np.where({0} > 0, 1, {1}).astype({0}.dtype)", ATOM, [ATOM, 0])  # keeps float32 float32
    )(p, e),
    np_eval=lambda x, s, e=None: np.where(x > 0, 1.0, s) * np.ones_like(x),
    elementwise=True, exact=lambda x, s: sympy.Piecewise((1, x > 0), (s, True)),
))
defop(Op(
    "leaky_relu", 2, elementwise_shape("leaky_relu"),
    vjps=(_leaky_slope, _leaky_slope_grad),
    rules=("leaky rectifier: LeakyReLU′(Z) = [Z > 0] + s [Z ≤ 0]", "leaky rectifier, slope: ∂/∂s = Z ⊙ [Z ≤ 0]"),
    latex=fmt(r"\operatorname{{LeakyReLU}}\left({0}, {1}\right)"), text=fmt("LeakyReLU({0}, {1})"),
    numpy=fmt("np.where({0} > 0, {0}, {1} * {0})", ATOM, [MUL + 1, MUL]),
    np_eval=lambda x, s, e=None: np.where(x > 0, x, s * x), elementwise=True,
    exact=lambda x, s: sympy.Piecewise((x, x > 0), (s * x, True)), spec_name="leaky_relu",
    doc="x for x > 0, slope·x otherwise",
))
defop(Op(
    "softplus", 1, _same_shape,
    vjps=(lambda g, out, e: ir.mul(g, ir.node("sigmoid", e.children[0])),),
    rules=("softplus: softplus′(Z) = σ(Z)",),
    latex=_func_latex(r"\operatorname{softplus}"), text=_func_text("softplus"),
    numpy=fmt("np.logaddexp(0, {0})"), np_eval=_np_unary(_softplus), elementwise=True,
    exact=lambda x: sympy.log(1 + sympy.exp(x)), spec_name="softplus", doc="log(1 + eˣ), computed stably",
))
defop(Op(
    "exp", 1, _same_shape,
    vjps=(lambda g, out, e: ir.mul(g, out),),
    rules=("exponential: exp′(Z) = exp(Z)",),
    latex=_func_latex(r"\exp"), text=_func_text("exp"), numpy=fmt("np.exp({0})"),
    np_eval=_np_unary(np.exp), elementwise=True, exact=sympy.exp, spec_name="exp", doc="eˣ",
))
defop(Op(
    "log", 1, _same_shape,
    vjps=(lambda g, out, e: ir.div(g, e.children[0]),),
    rules=("logarithm: log′(Z) = 1/Z",),
    latex=_func_latex(r"\log"), text=_func_text("log"), numpy=fmt("np.log({0})"),
    np_eval=_np_unary(np.log), elementwise=True, exact=sympy.log, spec_name="log", doc="natural logarithm",
))
defop(Op(
    "sqrt", 1, _same_shape,
    vjps=(lambda g, out, e: ir.div(g, ir.mul(sympy.Integer(2), out)),),
    rules=("square root: √′(Z) = 1/(2√Z)",),
    latex=fmt(r"\sqrt{{{0}}}"), text=fmt("√({0})"), numpy=fmt("np.sqrt({0})"),
    np_eval=_np_unary(np.sqrt), elementwise=True, exact=sympy.sqrt, spec_name="sqrt", doc="square root",
))
defop(Op(
    "sign", 1, _same_shape,
    vjps=(None,),
    rules=("sign (derivative zero almost everywhere)",),
    latex=_func_latex(r"\operatorname{sign}"), text=_func_text("sign"), numpy=fmt("np.sign({0})"),
    np_eval=_np_unary(np.sign), elementwise=True, exact=sympy.sign, doc="sign of x",
))
defop(Op(
    "abs", 1, _same_shape,
    vjps=(lambda g, out, e: ir.mul(g, ir.node("sign", e.children[0])),),
    rules=("absolute value: |Z|′ = sign(Z)",),
    latex=fmt(r"\left|{0}\right|"), text=fmt("|{0}|"), numpy=fmt("np.abs({0})"),
    np_eval=_np_unary(np.abs), elementwise=True, exact=sympy.Abs, spec_name="abs", doc="absolute value",
))

# ============================================================================
# Matrix operations
# ============================================================================


def _hadamard(x: Basic) -> bool:
    """An elementwise product or quotient of matrices: A ⊙ B."""
    return (
        isinstance(x, OpNode) and x.op.elementwise and x.op.prec == MUL
        and not any(_is_scalar_node(c) for c in x.children)
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


defop(Op(
    "matmul", 2, _matmul_shape,
    vjps=(
        lambda g, out, e: ir.matmul(g, ir.transpose(e.children[1])),
        lambda g, out, e: ir.matmul(ir.transpose(e.children[0]), g),
    ),
    rules=(
        "matrix product, left factor: ∂L/∂W = ∂L/∂Z Xᵀ for Z = W X",
        "matrix product, right factor: ∂L/∂X = Wᵀ ∂L/∂Z for Z = W X",
    ),
    latex=_matmul_form, text=_matmul_form,
    numpy=fmt("{0} @ {1}", MUL, [MUL, MUL + 1]), np_eval=lambda a, b, e=None: a @ b,
    prec=MUL, sym_eval=lambda a, b, e=None: a * b, index=_matmul_index,
))
defop(Op(
    "transpose", 1, _transpose_shape,
    vjps=(lambda g, out, e: ir.transpose(g),),
    rules=("transpose: ∂L/∂U = (∂L/∂Uᵀ)ᵀ",),
    latex=fmt(r"{0}^{{\top}}", POW, [POW + 1]), text=fmt("{0}ᵀ", POW, [POW + 1]),
    numpy=fmt("{0}.T", ATOM, [ATOM]), np_eval=lambda a, e=None: a.T,
    prec=POW, sym_eval=lambda a, e=None: a.T, index=lambda e, ij, fresh: IndexForm((), ((ij[1], ij[0]),)),
))

# ============================================================================
# Reductions (keep two dimensions) and broadcasting
# ============================================================================


def _sum_latex(p: Any, e: OpNode) -> str:
    name = {(0, 1): r"\sum", (0,): r"\operatorname{colsum}", (1,): r"\operatorname{rowsum}"}[_axes(e)]
    return rf"{name}\left({p.operand(e.children[0], 0)}\right)"


def _sum_text(p: Any, e: OpNode) -> str:
    name = {(0, 1): "Σ", (0,): "colsum", (1,): "rowsum"}[_axes(e)]
    return f"{name}({p.operand(e.children[0], 0)})"


def _total_numpy(p: Any, x: Basic) -> str:
    """The sum of every entry of ``x``: ``x.sum()``, which skips ``np.sum``'s dispatch; a sum of
    squares of a named matrix as one dot product, ``np.vdot(x, x)``, with no squared temporary;
    ``np.sum(x)`` for a scalar, which may be a Python float without a ``.sum`` method."""
    if _is_scalar_node(x):
        return f"np.sum({p.operand(x, 0)})"
    if isinstance(x, OpNode) and x.op.name == "pow" and x.children[1] == 2:
        base = x.children[0]
        if not isinstance(base, OpNode) and not _is_scalar_node(base):
            name = p.operand(base, 0)
            return f"np.vdot({name}, {name})"
    return f"{p.operand(x, ATOM)}.sum()"


def _sum_numpy(p: Any, e: OpNode) -> str:
    axes = _axes(e)
    if len(axes) == 2 or _is_scalar_node(e.children[0]):  # a scalar may be a Python float: no .sum(axis=)
        return _total_numpy(p, e.children[0])
    return f"{p.operand(e.children[0], ATOM)}.sum(axis={axes[0]}, keepdims=True)"


def _np_sum(x: np.ndarray, e: OpNode) -> Any:
    ax = _np_axis(_axes(e))
    return np.sum(x) if ax is None else np.sum(x, axis=ax, keepdims=True)


def _sym_sum(x: sympy.Matrix, e: OpNode) -> sympy.Matrix:
    axes = _axes(e)
    if len(axes) == 2:
        return sympy.Matrix([[sum(x)]])
    if axes == (0,):
        return sympy.Matrix([[sum(x[:, j]) for j in range(x.cols)]])
    return sympy.Matrix([[sum(x[i, :])] for i in range(x.rows)])


def _sum_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    """Each reduced axis gets a summed index over the operand's length."""
    idx, summed = list(ij), []
    for ax in _axes(e):
        if shape_of(e.children[0])[ax] == 1:  # a sum of one term: no index
            continue
        t = fresh()
        idx[ax] = t
        summed.append((t, shape_of(e.children[0])[ax]))
    return IndexForm(tuple(summed), ((idx[0], idx[1]),))


def _mean_index(e: OpNode, ij: Index, fresh: Callable[[], str]) -> IndexForm:
    return _sum_index(e, ij, fresh)._replace(scale=1 / _count(e))


def _count(e: OpNode) -> Basic:
    r, c = shape_of(e.children[0])
    return {(0, 1): r * c, (0,): r, (1,): c}[_axes(e)]


defop(Op(
    "sum", 1, _reduce_shape,
    vjps=(lambda g, out, e: g,),  # the engine broadcasts g back to the operand's shape
    rules=("sum: every entry receives ∂L/∂Σ (broadcast back)",),
    latex=_sum_latex, text=_sum_text, numpy=_sum_numpy, np_eval=_np_sum, sym_eval=_sym_sum,
    spec_name="sum", doc="sum of all entries, or along axis=0 (1×c) / axis=1 (r×1)", attrs=("axis",),
    index=_sum_index,
))


def _mean_form(latex: bool) -> Form:
    def form(p: Any, e: OpNode) -> str:
        name = {(0, 1): "mean", (0,): "colmean", (1,): "rowmean"}[_axes(e)]
        inner = p.operand(e.children[0], 0)
        return rf"\operatorname{{{name}}}\left({inner}\right)" if latex else f"{name}({inner})"

    return form


def _mean_numpy(p: Any, e: OpNode) -> str:
    ax = _np_axis(_axes(e))
    if _is_scalar_node(e.children[0]):  # may be a Python float, which has no .mean
        return f"np.mean({p.operand(e.children[0], 0)})"
    if ax is None:
        return f"{p.operand(e.children[0], ATOM)}.mean()"
    return f"{p.operand(e.children[0], ATOM)}.mean(axis={ax}, keepdims=True)"


defop(Op(
    "mean", 1, _reduce_shape,
    vjps=(lambda g, out, e: ir.div(g, _count(e)),),
    rules=("mean: every entry receives ∂L/∂mean divided by the count",),
    latex=_mean_form(True), text=_mean_form(False), numpy=_mean_numpy,
    np_eval=lambda x, e: _np_sum(x, e) / (x.size / np.size(_np_sum(x, e))),
    sym_eval=lambda x, e: _sym_sum(x, e) / (len(x) // len(_sym_sum(x, e))),
    spec_name="mean", doc="mean of all entries, or along axis=0 / axis=1", attrs=("axis",),
    index=_mean_index,
))


def _broadcast_numpy(p: Any, e: OpNode) -> str:
    shape = ", ".join(p.doprint(d) for d in e.args[1])
    return f"np.broadcast_to({p.operand(e.children[0], 0)}, ({shape}))"


def _sym_broadcast(x: sympy.Matrix, e: OpNode) -> sympy.Matrix:
    r, c = (int(d) for d in e.args[1])
    return sympy.Matrix(r, c, lambda i, j: x[i if x.rows > 1 else 0, j if x.cols > 1 else 0])


defop(Op(
    "broadcast", 1, _broadcast_shape,
    vjps=(lambda g, out, e: g,),  # the engine sums g back over the broadcast axes
    rules=("broadcast: ∂L/∂U sums ∂L/∂(broadcast U) over the copies",),
    latex=lambda p, e: (
        rf"{p.operand(e.children[0], MUL)} \mathbf{{1}}_{{{p.doprint(e.args[1][0])} \times {p.doprint(e.args[1][1])}}}"
    ),
    text=lambda p, e: f"{p.operand(e.children[0], MUL)}·𝟏[{fmt_shape(tuple(e.args[1]))}]",
    numpy=_broadcast_numpy, np_eval=lambda x, e: np.broadcast_to(x, tuple(int(d) for d in e.args[1])),
    sym_eval=_sym_broadcast, prec=MUL, attrs=("shape",),
    index=lambda e, ij, fresh: IndexForm((), (ij,)),  # a length-1 axis of the operand drops its index
))

# ============================================================================
# Softmax family (along axis=0: each column is a distribution)
# ============================================================================


def _softmax_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    ax = _axes(e)[0]
    return ir.mul(out, ir.sub(g, ir.total(ir.mul(g, out), ax)))


def _log_softmax_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    ax = _axes(e)[0]
    return ir.sub(g, ir.mul(ir.node("softmax", e.children[0], e.args[1]), ir.total(g, ax)))


def _sym_softmax(x: sympy.Matrix, e: OpNode) -> sympy.Matrix:
    ex = x.applyfunc(sympy.exp)
    sums = _sym_sum(ex, e)
    return sympy.Matrix(x.rows, x.cols, lambda i, j: ex[i, j] / sums[0 if sums.rows == 1 else i, 0 if sums.cols == 1 else j])


def _softmax_forms(name: str) -> tuple[Form, Form]:
    def latex(p: Any, e: OpNode) -> str:
        return rf"\operatorname{{{name}}}{_axis_suffix(e, True)}\left({p.operand(e.children[0], 0)}\right)"

    def text(p: Any, e: OpNode) -> str:
        return f"{name}{_axis_suffix(e, False)}({p.operand(e.children[0], 0)})"

    return latex, text


def _softmax_numpy(helper: str) -> Form:
    """The helper along the axis; of a scalar (a Python number or 0-d value, which has no axis),
    the same function of one entry: log softmax(x) = 0.0 · x (a float 0, or nan as torch gives
    for ±inf), softmax(x) = exp(0.0 · x)."""

    def form(p: Any, e: OpNode) -> str:
        x = e.children[0]
        if _is_scalar_node(x):
            zero = f"0.0 * {p.operand(x, MUL + 1)}"
            return f"({zero})" if helper == "_log_softmax" else f"np.exp({zero})"
        return f"{helper}({p.operand(x, 0)}, axis={_axes(e)[0]})"

    return form


defop(Op(
    "softmax", 1, _same_shape,
    vjps=(_softmax_vjp,),
    rules=("softmax: ∂L/∂Z = P ⊙ (∂L/∂P − Σ(∂L/∂P ⊙ P)) along the axis",),
    latex=_softmax_forms("softmax")[0], text=_softmax_forms("softmax")[1],
    numpy=_softmax_numpy("_softmax"), np_eval=lambda x, e: _softmax(x, _axes(e)[0]),
    sym_eval=_sym_softmax, spec_name="softmax", attrs=("axis",),
    doc="exp(x) normalized along axis=0 (each column) or axis=1 (each row)",
    numpy_helper=(
        "def _softmax(x, axis):\n"
        '    """Softmax through log-sum-exp, so large logits do not overflow."""\n'
        "    return np.exp(_log_softmax(x, axis))\n"
    ),
))
defop(Op(
    "log_softmax", 1, _same_shape,
    vjps=(_log_softmax_vjp,),
    rules=("log-softmax: ∂L/∂Z = ∂L/∂S − softmax(Z) ⊙ Σ ∂L/∂S along the axis",),
    latex=_softmax_forms("log\\,softmax")[0], text=_softmax_forms("log_softmax")[1],
    numpy=_softmax_numpy("_log_softmax"), np_eval=lambda x, e: _log_softmax(x, _axes(e)[0]),
    sym_eval=lambda x, e: _sym_softmax(x, e).applyfunc(sympy.log), spec_name="log_softmax",
    attrs=("axis",), doc="log of softmax, computed stably (log-sum-exp)",
    numpy_helper=(
        "def _log_softmax(x, axis):\n"
        '    """x minus its log-sum-exp along axis, shifted by the max for stability."""\n'
        "    s = x - x.max(axis=axis, keepdims=True)\n"
        "    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))\n"
    ),
))

#: Functions taking ``axis=``; the ones in ``AXIS_REQUIRED`` must be given it.
AXIS_FUNCTIONS = frozenset({"sum", "mean", "softmax", "log_softmax"})
AXIS_REQUIRED = frozenset({"softmax", "log_softmax"})
