"""The symbolic model of a network: declarations, assignments, shapes.

A :class:`Model` is what every later stage works on. It is built by
:func:`backprop.language.parse.parse_spec` from spec text, or from Python with
:class:`NetworkBuilder`, which goes through the same checks line by line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr.ir import Shape, fmt_shape, shape_of

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
        from backprop.expr.printing import text

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


class NetworkBuilder:
    """Build a :class:`Model` from Python, one spec line per call.

    >>> net = NetworkBuilder("neuron")
    >>> net.input("x", "n", "m").input("y", 1, "m").param("w", 1, "n").param("b")
    >>> net.assign("a", "sigmoid(w @ x + b)").assign("loss", "sum((a - y)**2) / m")
    >>> model = net.build()

    Expressions are spec-language text and go through the same parser and
    checks as a spec file; nothing is evaluated.
    """

    def __init__(self, name: str = "network") -> None:
        self.name = name
        self.lines: list[str] = []

    def _decl(self, kind: str, name: str, dims: tuple, domain: str | None) -> NetworkBuilder:
        if len(dims) == 1 and isinstance(dims[0], str) and " " in dims[0].strip():
            dims = tuple(dims[0].split())
        shape = f"[{', '.join(str(d) for d in dims)}]" if dims else ""
        self.lines.append(f"{kind} {name}{shape}" + (f" {domain}" if domain else ""))
        return self

    def input(self, name: str, *dims: str | int, domain: str | None = None) -> NetworkBuilder:
        return self._decl("input", name, dims, domain)

    def param(self, name: str, *dims: str | int) -> NetworkBuilder:
        return self._decl("param", name, dims, None)

    def assign(self, name: str, expr: str) -> NetworkBuilder:
        self.lines.append(f"{name} = {expr}")
        return self

    @property
    def source(self) -> str:
        return "\n".join(self.lines) + "\n"

    def build(self) -> Model:
        from backprop.language.parse import parse_spec

        return parse_spec(self.source, path=f"<{self.name}>", name=self.name)
