"""Optimizers as data: one row per optimizer, holding its update equations and its NumPy step.

Each :class:`Optimizer` row says, in one place,
- its hyperparameters (SymPy symbols with Greek names, so :mod:`backprop.support.notation`
  renders them α, β₁, ε), their Python argument names and defaults;
- its state: running averages kept per param (``v``, ``s``), each shaped like it;
- its update equations, as model expressions over the param, its gradient
  (:func:`backprop.expr.printing.grad_symbol`), its state and the hyperparameters --
  printed by the existing LaTeX and text printers, evaluated by
  :mod:`backprop.expr.evaluate`;
- next to each equation, the in-place NumPy statements that carry it out on
  local arrays ``p`` (the param), ``g`` (its gradient), the state arrays and one
  workspace ``buf`` shaped like ``p`` -- so a step allocates nothing beyond the
  optimizer's state and keeps every array's dtype.

:func:`backprop.codegen.step.step_source` renders a row's ``init_state``/``step``
functions through ``templates/optimizer.py.j2``; generated modules include them.
Adding an optimizer is one :func:`defoptimizer` call here plus one
hand-computed case in ``tests/test_optim.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import Shape
from backprop.expr.printing import grad_symbol, latex, text
from backprop.support.notation import latex_name, text_name, with_hat

# Hyperparameters. ``alpha`` is the same symbol as :attr:`Derivation.rate`.
ALPHA = sympy.Symbol("alpha")
BETA = sympy.Symbol("beta")
BETA1 = sympy.Symbol("beta1")
BETA2 = sympy.Symbol("beta2")
EPSILON = sympy.Symbol("epsilon")
#: the step counter of bias-corrected optimizers (1 at the first step)
T = sympy.Symbol("t", integer=True, positive=True)


class StateSymbol(ir.TensorSymbol):
    """One param's running average: ``v_dW1`` prints v_{dW₁}; ``vhat_dW1`` is its bias-corrected v̂.

    The printers reach it through SymPy's ``_latex``/``_sympystr`` hooks, so the
    notation of state lives here, beside the optimizers that own it.
    """

    @property
    def letter(self) -> str:
        return self.name.split("_d", 1)[0].removesuffix("hat")

    @property
    def corrected(self) -> bool:
        return self.name.split("_d", 1)[0].endswith("hat")

    @property
    def of(self) -> str:
        return self.name.split("_d", 1)[1]

    def _latex(self, printer: Any) -> str:
        body = latex_name(self.letter)
        if self.corrected:
            body = r"\hat{" + body + "}"
        return body + "_{d" + latex_name(self.of) + "}"

    def _sympystr(self, printer: Any) -> str:
        letter = text_name(self.letter)
        return (with_hat(letter) if self.corrected else letter) + "_d" + text_name(self.of)


def state_symbol(letter: str, param: str, shape: Shape, corrected: bool = False) -> StateSymbol:
    return StateSymbol(f"{letter}{'hat' if corrected else ''}_d{param}", *shape)


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter: its symbol in the equations, its argument name in ``step``, its default."""

    symbol: sympy.Symbol
    arg: str
    default: float
    doc: str

    @property
    def text(self) -> str:
        return text_name(self.symbol.name)


@dataclass(frozen=True)
class Slots:
    """What one param's update equations are written over."""

    param: MatrixSymbol
    grad: MatrixSymbol  # a GradSymbol, or the step's local name g
    state: Mapping[str, MatrixSymbol]
    corrected: Mapping[str, MatrixSymbol]

    @classmethod
    def of(cls, name: str, shape: Shape, letters: tuple[str, ...]) -> Slots:
        return cls(
            ir.symbol(name, shape),
            grad_symbol(name, shape),
            {c: state_symbol(c, name, shape) for c in letters},
            {c: state_symbol(c, name, shape, corrected=True) for c in letters},
        )


@dataclass(frozen=True)
class Update:
    """``target ← expr``, and the in-place NumPy statements that carry it out (none when folded into a later one)."""

    target: MatrixSymbol
    expr: Basic
    code: tuple[str, ...] = ()

    def latex(self) -> str:
        return rf"{latex(self.target)} \leftarrow {latex(self.expr)}"

    def text(self) -> str:
        return f"{text(self.target)} ← {text(self.expr)}"


@dataclass(frozen=True)
class Optimizer:
    """Everything the toolkit knows about one optimizer."""

    name: str
    title: str
    hypers: tuple[Hyper, ...]  # the learning rate first
    state: tuple[str, ...]  # running averages kept per param
    equations: Callable[[Slots], tuple[Update, ...]]
    prelude: tuple[str, ...] = ()  # once per step, before the params (bias corrections)
    counts_steps: bool = False  # the equations read the step number t
    doc: str = ""

    @property
    def lr(self) -> Hyper:
        return self.hypers[0]

    def updates(self, name: str, shape: Shape) -> tuple[Update, ...]:
        """The update equations of one param, in the order they are applied."""
        return self.equations(Slots.of(name, shape, self.state))

    def defaults(self) -> dict[str, float]:
        return {h.arg: h.default for h in self.hypers}


#: name -> optimizer, in the order they are taught
OPTIMIZERS: dict[str, Optimizer] = {}


def defoptimizer(opt: Optimizer) -> Optimizer:
    """Register ``opt``; its name is what ``--optimizer`` accepts."""
    OPTIMIZERS[opt.name] = opt
    return opt


def get_optimizer(opt: str | Optimizer) -> Optimizer:
    """The row for a name (``KeyError`` with the known names otherwise)."""
    if isinstance(opt, Optimizer):
        return opt
    try:
        return OPTIMIZERS[opt]
    except KeyError:
        raise KeyError(f"unknown optimizer '{opt}'; known: {', '.join(OPTIMIZERS)}") from None


# --- equation helpers --------------------------------------------------------


def _average(decay: Basic, avg: Basic, new: Basic) -> Basic:
    """Exponentially weighted average: decay·avg + (1 − decay)·new."""
    return ir.add(ir.mul(decay, avg), ir.mul(1 - decay, new))


def _square(x: Basic) -> Basic:
    return ir.power(x, sympy.Integer(2))


def _descend(s: Slots, direction: Basic, avg_square: Basic | None = None) -> Basic:
    """W − α·direction, or W − α·direction / (√avg_square + ε) when each entry is rescaled."""
    step = ir.mul(ALPHA, direction)
    if avg_square is not None:
        step = ir.div(step, ir.add(ir.node("sqrt", avg_square), EPSILON))
    return ir.sub(s.param, step)


_LR_DOC = "the learning rate"
_EPS = Hyper(EPSILON, "eps", 1e-8, "keeps the division finite")

# ============================================================================
# The optimizers
# ============================================================================

defoptimizer(Optimizer(
    "sgd", "gradient descent",
    hypers=(Hyper(ALPHA, "lr", 0.1, _LR_DOC),),
    state=(),
    equations=lambda s: (
        Update(s.param, _descend(s, s.grad), ("np.multiply(g, lr, out=buf)", "p -= buf")),
    ),
    doc="a step of size α down the gradient of the mini-batch loss",
))

defoptimizer(Optimizer(
    "momentum", "gradient descent with momentum",
    hypers=(Hyper(ALPHA, "lr", 0.1, _LR_DOC), Hyper(BETA, "beta", 0.9, "decay of the gradient average")),
    state=("v",),
    equations=lambda s: (
        Update(s.state["v"], _average(BETA, s.state["v"], s.grad),
               ("v *= beta", "np.multiply(g, 1 - beta, out=buf)", "v += buf")),
        Update(s.param, _descend(s, s.state["v"]), ("np.multiply(v, lr, out=buf)", "p -= buf")),
    ),
    doc="steps along an exponentially weighted average of the gradients, which damps oscillation",
))

defoptimizer(Optimizer(
    "rmsprop", "RMSprop",
    hypers=(
        Hyper(ALPHA, "lr", 0.01, _LR_DOC),
        Hyper(BETA, "beta", 0.9, "decay of the squared-gradient average"),
        _EPS,
    ),
    state=("s",),
    equations=lambda s: (
        Update(s.state["s"], _average(BETA, s.state["s"], _square(s.grad)),
               ("s *= beta", "np.multiply(g, g, out=buf)", "buf *= 1 - beta", "s += buf")),
        Update(s.param, _descend(s, s.grad, s.state["s"]),
               ("np.sqrt(s, out=buf)", "buf += eps", "np.divide(g, buf, out=buf)", "buf *= lr", "p -= buf")),
    ),
    doc="divides each gradient entry by the root mean square of its recent values",
))

defoptimizer(Optimizer(
    "adam", "Adam",
    hypers=(
        Hyper(ALPHA, "lr", 0.01, _LR_DOC),
        Hyper(BETA1, "beta1", 0.9, "decay of the gradient average (momentum)"),
        Hyper(BETA2, "beta2", 0.999, "decay of the squared-gradient average (RMSprop)"),
        _EPS,
    ),
    state=("v", "s"),
    prelude=("c1 = 1 - beta1 ** t", "c2 = 1 - beta2 ** t"),
    counts_steps=True,
    equations=lambda s: (
        Update(s.state["v"], _average(BETA1, s.state["v"], s.grad),
               ("v *= beta1", "np.multiply(g, 1 - beta1, out=buf)", "v += buf")),
        Update(s.state["s"], _average(BETA2, s.state["s"], _square(s.grad)),
               ("s *= beta2", "np.multiply(g, g, out=buf)", "buf *= 1 - beta2", "s += buf")),
        Update(s.corrected["v"], ir.div(s.state["v"], 1 - BETA1**T)),  # folded into the last update
        Update(s.corrected["s"], ir.div(s.state["s"], 1 - BETA2**T),
               ("np.divide(s, c2, out=buf)",)),
        Update(s.param, _descend(s, s.corrected["v"], s.corrected["s"]),
               ("np.sqrt(buf, out=buf)", "buf += eps", "np.divide(v, buf, out=buf)", "buf *= lr / c1", "p -= buf")),
    ),
    doc="momentum and RMSprop together, each average corrected for its bias toward 0 in early steps",
))


# ============================================================================
# Generic forms, for the generated step's docstring and comments
# ============================================================================


def generic_updates(optimizer: str | Optimizer, local: bool = False) -> tuple[Update, ...]:
    """The equations for a generic param W; ``local`` writes them over the step's local names (p, g, v, v̂)."""
    opt = get_optimizer(optimizer)
    shape = (sympy.Symbol("r"), sympy.Symbol("c"))
    if not local:
        return opt.updates("W", shape)
    return opt.equations(Slots(
        MatrixSymbol("p", *shape), MatrixSymbol("g", *shape),
        {c: MatrixSymbol(c, *shape) for c in opt.state},
        {c: MatrixSymbol(c + "hat", *shape) for c in opt.state},
    ))
