"""Rows of the registry: elementwise functions (activations, exp, log, sqrt, abs ...).

Each is a function of one entry; its derivative is written through the forward value where that
is cheaper (σ′ = σ(1 − σ), tanh′ = 1 − tanh²). Indicators (``step``, ``leaky_step``, ``sign``) are
rows too, so derivatives of piecewise functions stay model expressions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode
from backprop.expr.ops_row import ADD, ATOM, MUL, Form, Op, elementwise_shape, fmt, same_shape


def _np_unary(f: Callable[[Any], Any]) -> Callable[..., Any]:
    return lambda x, e=None: f(x)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)


def _func_latex(name: str) -> Form:
    # the name is LaTeX (\operatorname{ReLU}): its braces are not template fields
    return fmt(name.replace("{", "{{").replace("}", "}}") + r"\left({0}\right)")


def _func_text(name: str) -> Form:
    return fmt(name + "({0})")


def _step_numpy(p: Any, e: OpNode) -> str:
    """[x > 0] as the boolean mask ``(x > 0)`` where the printer allows one (a factor of a
    product with a number, a sum: ``dZ *= (A > 0)`` is the fast ReLU′), else as a number of
    x's dtype, ``np.heaviside(x, 0)``: NumPy refuses −mask and mask − mask, and adds masks
    as a logical or."""
    if getattr(p, "mask_ok", True):
        return f"({p.operand(e.children[0], MUL + 1)} > 0)"
    return f"np.heaviside({p.operand(e.children[0], 0)}, 0)"


def _np_erf(x: Any) -> np.ndarray:
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x), dtype=float)


def _erf_vjp(g: Basic, out: Basic, e: OpNode) -> Basic:
    """erf′(x) = (2/√π) exp(−x²), the Gaussian density the error function integrates."""
    x = e.children[0]
    slope = ir.node("exp", ir.neg(ir.power(x, sympy.Integer(2))))
    return ir.mul(g, ir.mul(2 / sympy.sqrt(sympy.pi), slope))


def _leaky_slope(g: Basic, out: Basic, e: OpNode) -> Basic:
    x, s = e.children
    return ir.mul(g, ir.node("leaky_step", x, s))


def _leaky_slope_grad(g: Basic, out: Basic, e: OpNode) -> Basic:
    x, s = e.children
    return ir.mul(g, ir.mul(x, ir.sub(sympy.Integer(1), ir.node("step", x))))


#: The family's rows, in registration order.
ROWS: tuple[Op, ...] = (
    Op(
        "sigmoid", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, ir.mul(out, ir.sub(sympy.Integer(1), out))),),
        rules=("logistic function: σ′(𝒰) = σ(𝒰) ⊙ (1 − σ(𝒰))",),
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
        jax_helper=(
            "def _sigmoid(x):\n"
            '    """Logistic function as (1 + tanh(x/2)) / 2: no overflow for any x, one transcendental\n'
            '    call per entry."""\n'
            "    return 0.5 * (jnp.tanh(0.5 * x) + 1.0)\n"
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
    ),
    Op(
        "tanh", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, ir.sub(sympy.Integer(1), ir.power(out, sympy.Integer(2)))),),
        rules=("hyperbolic tangent: tanh′(𝒰) = 1 − tanh²(𝒰)",),
        latex=_func_latex(r"\tanh"), text=_func_text("tanh"), numpy=fmt("np.tanh({0})"),
        numpy_inplace="np.tanh({0}, out={0})",
        np_eval=_np_unary(np.tanh), elementwise=True, exact=sympy.tanh, spec_name="tanh",
        doc="hyperbolic tangent",
    ),
    Op(
        "step", 1, same_shape,
        vjps=(None,),
        rules=("indicator (derivative zero almost everywhere)",),
        latex=fmt(r"\left[{0} > 0\right]"), text=fmt("[{0} > 0]"),
        numpy=_step_numpy, np_eval=_np_unary(lambda x: (x > 0).astype(np.asarray(x).dtype)),
        elementwise=True, exact=lambda x: sympy.Piecewise((1, x > 0), (0, True)),
        doc="indicator [x > 0]", mask=True, piecewise=True,
    ),
    Op(
        "relu", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, ir.node("step", e.children[0])),),
        rules=("rectifier: ReLU′(𝒰) = [𝒰 > 0]",),
        latex=_func_latex(r"\operatorname{ReLU}"), text=_func_text("ReLU"), numpy=fmt("np.maximum({0}, 0)"),
        numpy_inplace="np.maximum({0}, 0, out={0})",
        np_eval=_np_unary(lambda x: np.maximum(x, 0)), elementwise=True,
        exact=lambda x: sympy.Piecewise((x, x > 0), (0, True)), spec_name="relu", doc="max(x, 0); ReLU′(0) = 0",
        piecewise=True,
    ),
    Op(
        "leaky_step", 2, elementwise_shape("leaky_relu"),
        vjps=(None, None),
        rules=("leaky indicator", "leaky indicator"),
        latex=fmt(r"\left[{0} > 0\right] + {1} \left[{0} \le 0\right]", ADD, [ATOM, MUL]),
        text=fmt("([{0} > 0] + {1}·[{0} ≤ 0])", ATOM, [ATOM, MUL]),
        numpy=lambda p, e: (
            fmt("np.where({0} > 0, 1.0, {1})", ATOM, [MUL + 1, 0]) if ir.is_scalar(e.children[0])  # may be a float
            else fmt("np.where({0} > 0, 1, {1}).astype({0}.dtype)", ATOM, [ATOM, 0])  # keeps float32 float32
        )(p, e),
        np_eval=lambda x, s, e=None: np.where(x > 0, 1.0, s) * np.ones_like(x),
        elementwise=True, exact=lambda x, s: sympy.Piecewise((1, x > 0), (s, True)), piecewise=True,
    ),
    Op(
        "leaky_relu", 2, elementwise_shape("leaky_relu"),
        vjps=(_leaky_slope, _leaky_slope_grad),
        rules=("leaky rectifier: LeakyReLU′(𝒰, 𝒱) = [𝒰 > "
            "0] + 𝒱 [𝒰 ≤ 0] for slope 𝒱", "leaky rectifier, slope: ∂LeakyReLU(𝒰, 𝒱)/∂𝒱 = 𝒰 ⊙ [𝒰 ≤ 0]"),
        latex=fmt(r"\operatorname{{LeakyReLU}}\left({0}, {1}\right)"), text=fmt("LeakyReLU({0}, {1})"),
        numpy=fmt("np.where({0} > 0, {0}, {1} * {0})", ATOM, [MUL + 1, MUL]),
        np_eval=lambda x, s, e=None: np.where(x > 0, x, s * x), elementwise=True,
        exact=lambda x, s: sympy.Piecewise((x, x > 0), (s * x, True)), spec_name="leaky_relu",
        doc="x for x > 0, slope·x otherwise", piecewise=True, signature="(E, slope)",
    ),
    Op(
        "softplus", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, ir.node("sigmoid", e.children[0])),),
        rules=("softplus: softplus′(𝒰) = σ(𝒰)",),
        latex=_func_latex(r"\operatorname{softplus}"), text=_func_text("softplus"),
        numpy=fmt("np.logaddexp(0, {0})"), np_eval=_np_unary(_softplus), elementwise=True,
        exact=lambda x: sympy.log(1 + sympy.exp(x)), spec_name="softplus", doc="log(1 + eˣ), computed stably",
    ),
    Op(
        "exp", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, out),),
        rules=("exponential: exp′(𝒰) = exp(𝒰)",),
        latex=_func_latex(r"\exp"), text=_func_text("exp"), numpy=fmt("np.exp({0})"),
        np_eval=_np_unary(np.exp), elementwise=True, exact=sympy.exp, spec_name="exp", doc="eˣ",
    ),
    Op(
        "log", 1, same_shape,
        vjps=(lambda g, out, e: ir.div(g, e.children[0]),),
        rules=("logarithm: log′(𝒰) = 1/𝒰",),
        latex=_func_latex(r"\log"), text=_func_text("log"), numpy=fmt("np.log({0})"),
        np_eval=_np_unary(np.log), elementwise=True, exact=sympy.log, spec_name="log", doc="natural logarithm",
    ),
    Op(
        "sqrt", 1, same_shape,
        vjps=(lambda g, out, e: ir.div(g, ir.mul(sympy.Integer(2), out)),),
        rules=("square root: √′(𝒰) = 1/(2√𝒰)",),
        latex=fmt(r"\sqrt{{{0}}}"), text=fmt("√({0})"), numpy=fmt("np.sqrt({0})"),
        np_eval=_np_unary(np.sqrt), elementwise=True, exact=sympy.sqrt, spec_name="sqrt", doc="square root",
    ),
    Op(
        "sign", 1, same_shape,
        vjps=(None,),
        rules=("sign (derivative zero almost everywhere)",),
        latex=_func_latex(r"\operatorname{sign}"), text=_func_text("sign"), numpy=fmt("np.sign({0})"),
        np_eval=_np_unary(np.sign), elementwise=True, exact=sympy.sign, spec_name="sign",
        doc="−1, 0 or 1; no gradient (sign′ = 0, as PyTorch)", piecewise=True,
    ),
    Op(
        "abs", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, ir.node("sign", e.children[0])),),
        rules=("absolute value: |𝒰|′ = sign(𝒰)",),
        latex=fmt(r"\left|{0}\right|"), text=fmt("|{0}|"), numpy=fmt("np.abs({0})"),
        np_eval=_np_unary(np.abs), elementwise=True, exact=sympy.Abs, spec_name="abs",
        doc="absolute value; |x|′ = sign(x), 0 at 0 (as PyTorch)", piecewise=True,
    ),
    Op(
        "erf", 1, same_shape,
        vjps=(_erf_vjp,),
        rules=("error function: erf′(𝒰) = (2/√π) exp(−𝒰²)",),
        latex=_func_latex(r"\operatorname{erf}"), text=_func_text("erf"), numpy=fmt("_erf({0})"),
        np_eval=_np_unary(_np_erf), elementwise=True, exact=sympy.erf, spec_name="erf",
        doc="error function (exact GELU is x·(1 + erf(x/√2))/2)",
        numpy_helper=(
            "def _erf(x):\n"
            '    """The error function entry by entry (NumPy has none), by the C library\'s erf; an array\n'
            '    of floats keeps its dtype."""\n'
            "    import math\n"
            "\n"
            "    if np.ndim(x) == 0:\n"
            "        return math.erf(x)\n"
            "    x = np.asarray(x)\n"
            "    return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype if x.dtype.kind == \"f\" else np.float64)\n"
        ),
        jax_helper=(
            "def _erf(x):\n"
            '    """The error function entry by entry (jax.numpy has none; jax.scipy does)."""\n'
            "    import jax.scipy.special\n"
            "\n"
            "    return jax.scipy.special.erf(x)\n"
        ),
    ),
    Op(
        "sin", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, ir.node("cos", e.children[0])),),
        rules=("sine: sin′(𝒰) = cos(𝒰)",),
        latex=_func_latex(r"\sin"), text=_func_text("sin"), numpy=fmt("np.sin({0})"),
        numpy_inplace="np.sin({0}, out={0})",
        np_eval=_np_unary(np.sin), elementwise=True, exact=sympy.sin, spec_name="sin", doc="sine (radians)",
    ),
    Op(
        "cos", 1, same_shape,
        vjps=(lambda g, out, e: ir.neg(ir.mul(g, ir.node("sin", e.children[0]))),),
        rules=("cosine: cos′(𝒰) = −sin(𝒰)",),
        latex=_func_latex(r"\cos"), text=_func_text("cos"), numpy=fmt("np.cos({0})"),
        numpy_inplace="np.cos({0}, out={0})",
        np_eval=_np_unary(np.cos), elementwise=True, exact=sympy.cos, spec_name="cos", doc="cosine (radians)",
    ),
    Op(
        "log1p", 1, same_shape,
        vjps=(lambda g, out, e: ir.div(g, ir.add(sympy.Integer(1), e.children[0])),),
        rules=("log1p: log1p′(𝒰) = 1/(1 + 𝒰)",),
        latex=_func_latex(r"\operatorname{log1p}"), text=_func_text("log1p"), numpy=fmt("np.log1p({0})"),
        np_eval=_np_unary(np.log1p), elementwise=True, exact=lambda x: sympy.log(1 + x), spec_name="log1p",
        doc="log(1 + x), accurate for small x",
    ),
    Op(
        "expm1", 1, same_shape,
        vjps=(lambda g, out, e: ir.mul(g, ir.node("exp", e.children[0])),),
        rules=("expm1: expm1′(𝒰) = exp(𝒰)",),
        latex=_func_latex(r"\operatorname{expm1}"), text=_func_text("expm1"), numpy=fmt("np.expm1({0})"),
        np_eval=_np_unary(np.expm1), elementwise=True, exact=lambda x: sympy.exp(x) - 1, spec_name="expm1",
        doc="eˣ − 1, accurate for small x",
    ),
)
