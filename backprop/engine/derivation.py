"""The derivation as data: forward equations, backward steps, gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import Shape
from backprop.expr.printing import GradSymbol, grad_symbol

if TYPE_CHECKING:  # pragma: no cover
    from backprop.engine.optim import Update
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
class Path:
    """One use of a variable: the contribution that use sends back to it."""

    via: str  # the variable whose equation uses the target
    expr: Basic  # contribution, in terms of ∂L/∂via
    rules: tuple[str, ...]  # rules applied from ∂L/∂via down to the target


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


@dataclass
class Derivation:
    """Backpropagation through a model, ready to render, generate or verify."""

    model: Model
    equations: list[Equation]
    steps: list[Step]
    rate: sympy.Symbol = field(default_factory=lambda: sympy.Symbol("alpha"))
    #: the optimizer whose update equations end the derivation (a name in backprop.engine.optim.OPTIMIZERS)
    optimizer: str = "sgd"

    @property
    def loss(self) -> Equation:
        return self.equations[-1]

    @property
    def params(self) -> list[str]:
        return [p.name for p in self.model.params]

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
        from backprop.engine.simplify import simplify

        out: dict[str, Basic] = {}
        domains = {d.name: d.domain for d in self.model.decls.values()}
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
        from backprop.engine.optim import get_optimizer

        return get_optimizer(self.optimizer).updates(name, self.model.shape(name))

    def equation(self, name: str) -> Equation:
        return next(e for e in self.equations if e.name == name)

    def _repr_latex_(self) -> str:
        from backprop.present.latex import to_latex

        return "$$" + to_latex(self, body_only=True) + "$$"

    def _repr_markdown_(self) -> str:
        from backprop.present.markdown import to_markdown

        return to_markdown(self)
