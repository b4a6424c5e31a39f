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

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, fmt_shape, shape_of
from backprop.expr.printing import text
from backprop.language.domains import domain

KINDS = ("input", "param")


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


def class_axis(rank: int, examples: int | None) -> int:
    """The axis a one-hot value's classes run along: its first axis that is not the examples axis
    (the rows of Y[c, m], the columns of Y[m, c])."""
    return 1 if examples == 0 and rank > 1 else 0


class Domains(dict[str, str | None]):
    """Each declaration's domain by name, and each one-hot input's class axis (simplification
    knows that a one-hot value summed over its classes is 1). ``unused``: names whose domain
    simplification may not use (the notes show a step without a fact, then name the fact that
    shortened it); ``facts=False`` stands for every name."""

    def __init__(self, domains: dict[str, str | None], class_axes: dict[str, int], facts: bool = True,
                 unused: frozenset[str] = frozenset()) -> None:
        super().__init__(domains)
        self.class_axes = class_axes
        self.facts = facts
        self.unused = unused

    def knows(self, name: str) -> bool:
        """Whether simplification may use what ``name``'s domain says about its values."""
        return self.facts and name not in self.unused


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


@dataclass(frozen=True)
class Sequence:
    """A value a loop defines at every step (``H[t] = …``): inside the loop ``step`` (H[t]) and, for a
    state, ``prev`` (H[t-1], starting from ``init``, the value ``H[0] = …`` sets); after it ``stacked``,
    every step along ``time_axis``."""

    name: str
    step: MatrixSymbol
    stacked: MatrixSymbol
    time_axis: int
    line: int
    prev: MatrixSymbol | None = None
    init: Basic | None = None
    init_line: int = 0

    @property
    def is_state(self) -> bool:
        """Whether the loop reads the previous step (the value is carried from step to step)."""
        return self.prev is not None


@dataclass(frozen=True)
class Slice:
    """Step t of a value with a time axis, as the loop reads it (``X[:, t]``): ``step`` has the
    source's shape without ``axis``."""

    source: MatrixSymbol
    axis: int
    step: MatrixSymbol


@dataclass(frozen=True)
class Recurrence:
    """``for t in 1..T:`` and its block: the step's equations once, over step symbols (H[t-1], X[:, t],
    the step's own values), for every t from 1 to ``length``. ``position``: how many of the model's
    assignments come before the loop."""

    var: str
    length: sympy.Symbol
    line: int
    position: int
    body: tuple[Assign, ...]
    sequences: tuple[Sequence, ...]
    slices: tuple[Slice, ...]

    @property
    def states(self) -> tuple[Sequence, ...]:
        return tuple(s for s in self.sequences if s.is_state)

    def header(self) -> str:
        return f"for {self.var} in 1..{self.length}:"

    @property
    def sequence_of(self) -> dict[str, str]:
        """A step symbol's name -> the sequence it is a step of (H[t], H[t-1] -> H)."""
        return {s.step.name: s.name for s in self.sequences} | {
            s.prev.name: s.name for s in self.states if s.prev is not None}

    @property
    def source_of(self) -> dict[str, str]:
        """A slice's step symbol name -> the value it is a step of (X[:, t] -> X)."""
        return {sl.step.name: sl.source.name for sl in self.slices}


@dataclass
class Model:
    """A parsed network: its dims, declarations and assignments, all shape-checked."""

    name: str
    dims: dict[str, sympy.Symbol] = field(default_factory=dict)
    decls: dict[str, Decl] = field(default_factory=dict)
    assigns: list[Assign] = field(default_factory=list)
    source: str = ""
    path: str = "<spec>"
    #: the dim that counts examples, as a line ``examples m`` declares it (None: the default)
    examples: str | None = None
    #: the loops over a time axis, in order (each knows where it stands among the assignments)
    loops: list[Recurrence] = field(default_factory=list)

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

    @property
    def sequences(self) -> dict[str, Sequence]:
        """Every value a loop defines at each step, by name."""
        return {s.name: s for r in self.loops for s in r.sequences}

    def steps_named(self, e: Basic) -> Basic:
        """``e`` with each last (first) step of a sequence read after its loop, a slice of the stacked
        value at T − 1 (0), written as the step it is: H[T] (H[1]), as the spec wrote it."""
        subs: dict[Basic, Basic] = {}
        seqs = self.sequences
        for x in sympy.preorder_traversal(e):
            if not (isinstance(x, OpNode) and x.op.name == "slice" and isinstance(x.children[0], MatrixSymbol)):
                continue
            seq = seqs.get(x.children[0].name)
            if seq is None or x.children[0] != seq.stacked:
                continue
            length = seq.stacked.shape[seq.time_axis]
            index = [tuple(i) for i in x.args[-1]]
            whole = all(i == (0, d) for k, (i, d) in enumerate(zip(index, seq.stacked.shape)) if k != seq.time_axis)
            at = index[seq.time_axis]
            if whole and at in ((length - 1,), (0,)):
                subs[x] = ir.symbol(f"{seq.name}[{length if at != (0,) else 1}]", shape_of(x))
        return e.xreplace(subs) if subs else e

    def symbol(self, name: str) -> MatrixSymbol:
        if name in self.decls:
            return self.decls[name].symbol
        seqs = self.sequences
        if name in seqs:
            return seqs[name].stacked
        return self.assigned[name].symbol

    def shape(self, name: str) -> Shape:
        return shape_of(self.symbol(name))

    def names(self) -> list[str]:
        """Every variable name, in declaration then assignment order."""
        return list(self.decls) + [a.name for a in self.assigns]

    def domain(self, name: str) -> str | None:
        d = self.decls.get(name)
        return d.domain if d else None

    # --- the examples axis ------------------------------------------------------
    def about(self) -> list[str]:
        """The spec's leading comment lines, without their ``#``: what the network is, in the
        user's words (raw text: every renderer escapes it)."""
        lines = []
        for raw in self.source.splitlines():
            if not raw.startswith("#"):
                break
            lines.append(raw.lstrip("#").strip())
        return lines

    @property
    def examples_dim(self) -> str | None:
        """The dim that counts examples: the one ``examples m`` names, else the last axis of the
        inputs (the columns, as the course writes X[n, m]; ``m`` preferred when several) -- not of an
        input one value of which serves every example (an ``spd`` covariance)."""
        if self.examples is not None:
            return self.examples
        last = [str(d.shape[-1]) for d in self.inputs
                if not d.scalar and isinstance(d.shape[-1], sympy.Symbol) and not domain(d.domain).shared]
        return "m" if "m" in last else (last[0] if last else None)

    def examples_axis(self, name: str) -> int | None:
        """The axis of ``name`` that runs over the examples, or None for a value shared by all of
        them (a param, a constant input)."""
        dim = self.examples_dim
        if dim is None or dim not in self.dims:
            return None
        decl = self.decls.get(name)
        if decl is not None and decl.kind == "input" and domain(decl.domain).shared:
            return None
        shape = self.shape(name)
        if self.examples is None:
            return len(shape) - 1 if shape[-1] == self.dims[dim] else None
        return next((ax for ax, d in enumerate(shape) if d == self.dims[dim]), None)

    def examples_phrase(self) -> str:
        """How the examples lie, in a few words: "examples are columns", "examples are rows"."""
        axes = {self.examples_axis(d.name) for d in self.inputs if not d.scalar} - {None}
        ranks = {len(d.shape) for d in self.inputs if self.examples_axis(d.name) is not None}
        if axes == {1} and ranks == {2}:
            return "examples are columns"
        if axes == {0} and ranks == {2}:
            return "examples are rows"
        if len(axes) == 1:
            return f"examples along axis {axes.pop()}"
        return f"examples along {self.examples_dim}" if axes else "no examples axis"

    def domains(self) -> Domains:
        """Each declaration's domain, with the class axis of each one-hot input."""
        return Domains(
            {d.name: d.domain for d in self.decls.values()},
            {d.name: class_axis(len(d.shape), self.examples_axis(d.name))
             for d in self.inputs if d.domain == "onehot"},
        )

    def describe(self) -> str:
        """The forward pass with shapes, one line per declaration/assignment."""
        lines = [f"# {self.name}: forward pass ({self.examples_phrase()})"]
        for d in self.decls.values():
            dom = f" {d.domain}" if d.domain else ""
            lines.append(f"{d.kind:5} {d.name:<10} {fmt_shape(d.shape):>9}{dom}")
        loops = {r.position: r for r in self.loops}
        for i, a in enumerate([*self.assigns, None]):
            if i in loops:
                lines.extend(_describe_loop(loops[i]))
            if a is not None:
                tag = "loss " if a is self.loss else "     "
                lines.append(f"{tag} {a.name:<10} {fmt_shape(a.shape):>9}  = {text(self.steps_named(a.expr))}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Model {self.name}: {len(self.decls)} declarations, {len(self.assigns)} assignments>"


def _describe_loop(r: Recurrence) -> list[str]:
    """A loop as ``describe`` prints it: the first states, the block indented, each sequence stacked."""
    lines = [f"{'':5} {s.name + '[0]':<10} {fmt_shape(shape_of(s.init)):>9}  = {text(s.init)}"
             for s in r.states if s.init is not None]
    lines.append(f"{'':5} {r.header()}")
    for a in r.body:
        lines.append(f"{'':5}   {a.symbol.name:<8} {fmt_shape(a.shape):>9}  = {text(a.expr)}")
    lines.extend(f"{'':5} {s.name:<10} {fmt_shape(shape_of(s.stacked)):>9}  (every {s.step.name}, along axis "
                 f"{s.time_axis})" for s in r.sequences)
    return lines
