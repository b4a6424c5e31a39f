"""The symbolic model of a network: declarations, assignments, shapes.

A :class:`Model` is what every later stage works on. It is built by
:func:`backprop.language.parse.parse_spec` from spec text, or from Python with
:class:`~backprop.language.builder.NetworkBuilder` or :func:`backprop.network`, which go
through the same parser. This module holds the data only and imports no parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr.ir import Shape, fmt_shape, shape_of
from backprop.expr.printing import text

KINDS = ("input", "param")
DOMAINS = ("onehot", "binary", "positive", "prob")


@dataclass(frozen=True)
class Decl:
    """``input`` or ``param`` declaration of one variable."""

    name: str
    kind: str
    symbol: MatrixSymbol
    domain: str | None = None
    scalar: bool = False  # declared without brackets
    line: int = 0

    @property
    def shape(self) -> Shape:
        return shape_of(self.symbol)


@dataclass(frozen=True)
class Assign:
    """``NAME = EXPR``: the SymPy expression and the symbol naming its value."""

    name: str
    expr: Basic
    symbol: MatrixSymbol
    line: int = 0
    source: str = ""

    @property
    def shape(self) -> Shape:
        return shape_of(self.symbol)


@dataclass
class Model:
    """A parsed network: its dims, declarations and assignments, all shape-checked."""

    name: str
    dims: dict[str, sympy.Symbol] = field(default_factory=dict)
    decls: dict[str, Decl] = field(default_factory=dict)
    assigns: list[Assign] = field(default_factory=list)
    source: str = ""
    path: str = "<spec>"

    # --- queries -------------------------------------------------------------
    @property
    def inputs(self) -> list[Decl]:
        return [d for d in self.decls.values() if d.kind == "input"]

    @property
    def params(self) -> list[Decl]:
        return [d for d in self.decls.values() if d.kind == "param"]

    @property
    def loss(self) -> Assign:
        return self.assigns[-1]

    @property
    def assigned(self) -> dict[str, Assign]:
        return {a.name: a for a in self.assigns}

    def symbol(self, name: str) -> MatrixSymbol:
        if name in self.decls:
            return self.decls[name].symbol
        return self.assigned[name].symbol

    def shape(self, name: str) -> Shape:
        return shape_of(self.symbol(name))

    def names(self) -> list[str]:
        """Every variable name, in declaration then assignment order."""
        return list(self.decls) + [a.name for a in self.assigns]

    def domain(self, name: str) -> str | None:
        d = self.decls.get(name)
        return d.domain if d else None

    def describe(self) -> str:
        """The forward pass with shapes, one line per declaration/assignment."""
        lines = [f"# {self.name}: forward pass (examples are columns)"]
        for d in self.decls.values():
            dom = f" {d.domain}" if d.domain else ""
            lines.append(f"{d.kind:5} {d.name:<10} {fmt_shape(d.shape):>9}{dom}")
        for a in self.assigns:
            tag = "loss " if a is self.loss else "     "
            lines.append(f"{tag} {a.name:<10} {fmt_shape(a.shape):>9}  = {text(a.expr)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Model {self.name}: {len(self.decls)} declarations, {len(self.assigns)} assignments>"
