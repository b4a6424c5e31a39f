"""The derivation as data: forward equations, backward steps, gradients.

A :class:`Derivation` shows itself in Jupyter, but the renderers sit above the engine in the
pipeline (:mod:`backprop.present`), so the engine cannot call them. It keeps a registry of display
formats (:data:`DISPLAY_FORMATS`) instead, which :mod:`backprop.present` fills when it is
imported (and ``import backprop`` imports it): the dependency points down, never up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.optim import Update, get_optimizer
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.ir import Shape
from backprop.expr.printing import GradSymbol, grad_symbol
from backprop.language.model import Model


@dataclass(frozen=True)
class Equation:
    """One forward equation ``name = expr``; ``lifted`` when the chain rule named it."""

    name: str
    expr: Basic
    symbol: MatrixSymbol
    lifted: bool = False
    line: int = 0

    @property
    def shape(self) -> Shape:
        return ir.shape_of(self.symbol)


@dataclass(frozen=True)
class Link:
    """One rule applied on the way down an equation: the gradient arriving at ``operand`` (a part of
    the equation's expression, or the target itself at the end of a path), as the rule passed it back."""

    rule: str
    operand: Basic
    grad: Basic


@dataclass(frozen=True)
class Path:
    """One use of a variable: the contribution that use sends back to it."""

    via: str  # the variable whose equation uses the target
    expr: Basic  # contribution, in terms of ∂L/∂via
    rules: tuple[str, ...]  # rules applied from ∂L/∂via down to the target
    #: the same walk one rule at a time, each with the gradient it produced (the notes' working)
    trail: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Cut:
    """A place where no gradient flows: ``expr`` (``stop_gradient(H)``, a mask ``[Z > 0]``) in the
    equation of ``via`` reads values that depend on params, and passes none of their gradient."""

    via: str
    expr: Basic
    rule: str


@dataclass(frozen=True)
class Step:
    """∂L/∂target: the chain rule over every path, its δ form and its result."""

    target: str
    shape: Shape
    kind: str  # "param" or "intermediate"
    paths: tuple[Path, ...]
    recursive: Basic  # sum over paths, simplified; refers to ∂L/∂(users)
    result: Basic  # final form: the recursive one, or an inlined one when smaller

    @property
    def grad(self) -> GradSymbol:
        return grad_symbol(self.target, self.shape)

    @property
    def rules(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for p in self.paths:
            for r in p.rules:
                seen.setdefault(r, None)
        return tuple(seen)

    @property
    def inlined(self) -> bool:
        return self.result != self.recursive


class Shown:
    """What every derivation has from its model and its equations (the last one the loss), and how it
    shows itself in Jupyter: a :class:`Derivation`, and one through time, alike."""

    model: Model
    equations: list[Equation]

    @property
    def loss(self) -> Equation:
        return self.equations[-1]

    @property
    def every_equation(self) -> list[Equation]:
        """Every forward equation, a loop's step's among them (what a param's initialization reads)."""
        return self.equations

    @property
    def params(self) -> list[str]:
        return [p.name for p in self.model.params]

    def _repr_latex_(self) -> str | None:
        """Jupyter's LaTeX form, from the registered display format (None: not available)."""
        show = DISPLAY_FORMATS.latex
        return None if show is None else show(self)  # type: ignore[arg-type]

    def _repr_markdown_(self) -> str | None:
        """Jupyter's Markdown form, from the registered display format (None: not available)."""
        show = DISPLAY_FORMATS.markdown
        return None if show is None else show(self)  # type: ignore[arg-type]


@dataclass
class Derivation(Shown):
    """Backpropagation through a model, ready to render, generate or verify."""

    model: Model
    equations: list[Equation]
    steps: list[Step]
    rate: sympy.Symbol = field(default_factory=lambda: sympy.Symbol("alpha"))
    #: the optimizer whose update equations end the derivation (a name in backprop.engine.optim.OPTIMIZERS)
    optimizer: str = "sgd"
    #: where the forward pass cuts a path: no gradient flows through these
    cuts: tuple[Cut, ...] = ()

    @cached_property
    def by_target(self) -> dict[str, Step]:
        return {s.target: s for s in self.steps}

    def step(self, name: str) -> Step:
        return self.by_target[name]

    def gradient(self, name: str) -> Basic:
        """∂L/∂name in recursive (δ) form."""
        return self.by_target[name].result

    @cached_property
    def _expanded(self) -> dict[str, Basic]:
        out: dict[str, Basic] = {}
        domains = self.model.domains()
        for s in self.steps:  # users come first, so their forms are ready
            subs = {g: out[g.of] for g in s.result.atoms(GradSymbol) if g.of in out}
            out[s.target] = simplify(s.result.xreplace(subs), domains)
        return out

    def expanded(self, name: str) -> Basic:
        """∂L/∂name with every δ substituted: in forward quantities only."""
        return self._expanded[name]

    def update(self, name: str) -> Basic:
        """The gradient-descent update of a param: name − α ∂L/∂name."""
        s = self.by_target[name]
        return ir.sub(self.model.symbol(name), ir.mul(self.rate, s.grad))

    def updates(self, name: str) -> tuple[Update, ...]:
        """The update equations of a param under :attr:`optimizer` (state first, the param last)."""
        return get_optimizer(self.optimizer).updates(name, self.model.shape(name))

    def equation(self, name: str) -> Equation:
        return next(e for e in self.equations if e.name == name)


#: A display format: the derivation as one MIME type's text.
DisplayFormat = Callable[[Derivation], str]


@dataclass
class DisplayFormats:
    """The forms a :class:`Derivation` shows itself in (Jupyter's ``_repr_*_`` hooks), one slot each.

    Empty until a presentation layer registers its renderers (:mod:`backprop.present` does on
    import); an empty slot tells Jupyter the form is not available.
    """

    latex: DisplayFormat | None = None
    markdown: DisplayFormat | None = None

    def register(self, *, latex: DisplayFormat, markdown: DisplayFormat) -> None:
        """Fill both slots (registering again replaces them)."""
        self.latex = latex
        self.markdown = markdown


#: The registry the Derivation's display hooks read.
DISPLAY_FORMATS = DisplayFormats()
