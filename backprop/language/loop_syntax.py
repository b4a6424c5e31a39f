"""The spec language's loop over a time axis: ``for t in 1..T:`` and its indented block.

    H[0] = h0
    for t in 1..T:
        H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1] + b)
    loss = -sum(Y * log_softmax(U @ H[T], axis=0)) / m

A name assigned ``H[t] = …`` in the block is a *sequence*. Inside the block ``H[t]`` is this step's
value and ``H[t-1]`` the previous step's, which makes ``H`` a *state*: ``H[0] = …`` before the loop
sets its first value. After the block ``H`` is every step stacked along a time axis, and ``H[T]`` is
the last step. ``X[:, t]`` is step t of any value with an axis of length T. A plain ``Z = …`` in the
block is the step's own value, local to it.

The block's expressions go through the same whitelist as every expression
(:class:`~backprop.language.expression.ExprBuilder`); :class:`StepReads` adds only the subscripts
that name a step, and :class:`LoopStatements` the statement-level rules. Every mistake is a
located :class:`SpecError`.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr import ir
from backprop.expr.ir import Shape, fmt_shape, shape_of
from backprop.expr.ops import FUNCTIONS
from backprop.expr.ops_select import is_mask
from backprop.expr.ops_tensor import take
from backprop.language.expression import ExprBuilder
from backprop.language.model import Assign, Recurrence, Sequence, Slice
from backprop.support.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    _Base = Any
else:
    _Base = object

#: ``for t in 1..T:``; group 1 is the indentation.
FOR = re.compile(r"(\s*)for(?=\s|$)")
_HEADER = re.compile(r"for\s+(?P<var>\S+)\s+in\s+(?P<range>.*?)\s*:\s*$")
_RANGE = re.compile(r"1\s*\.\.\s*(?P<dim>[A-Za-z_]\w*)$")
#: ``NAME[INDEX] = …``: a sequence's step, or a state's first value.
INDEXED_TARGET = re.compile(r"(\s*)([A-Za-z_]\w*)\s*\[([^\]]*)\]\s*=(?!=)")
_PLAIN_TARGET = re.compile(r"(\s*)([A-Za-z_]\w*)\s*=(?!=)")
SHAPE_EXAMPLE = "for t in 1..T:"


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _offset(item: ast.expr, base: str) -> int | None:
    """k when ``item`` is ``base - k`` (``base`` alone: 0; ``base + k``: -k), else None."""
    if isinstance(item, ast.Name) and item.id == base:
        return 0
    if (isinstance(item, ast.BinOp) and isinstance(item.op, (ast.Sub, ast.Add))
            and isinstance(item.left, ast.Name) and item.left.id == base
            and isinstance(item.right, ast.Constant) and type(item.right.value) is int):
        k = item.right.value
        return k if isinstance(item.op, ast.Sub) else -k
    return None


def _mentions(item: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(item))


def stacked_shape(step: Shape, examples_axis: int | None, length: Basic) -> tuple[Shape, int]:
    """Every step of a ``step``-shaped value stacked, and where its time axis goes: just before the
    examples axis when it is last ([h, T, m], as X[d, T, m]), just after it when it is first
    ([m, T, h], PyTorch's batch_first), first when there is none."""
    if examples_axis is None:
        at = 0
    elif examples_axis == 0 and len(step) > 1:
        at = 1
    else:
        at = examples_axis
    return (*step[:at], length, *step[at:]), at


def broadcasts_to(small: Shape, big: Shape) -> bool:
    return len(small) == len(big) and all(a == b or a == 1 for a, b in zip(small, big))


@dataclass
class Scope:
    """The loop whose block is being read: its step, its sequences, what the step has made so far."""

    var: str
    length: sympy.Symbol
    line: int
    sequences: dict[str, int]  # every name the block assigns NAME[t], and the line
    prev: dict[str, MatrixSymbol] = field(default_factory=dict)  # states' H[t-1]
    current: dict[str, MatrixSymbol] = field(default_factory=dict)  # H[t] once assigned
    slices: dict[tuple[str, int], Slice] = field(default_factory=dict)
    defining: str | None = None  # the sequence the line being read assigns


class StepReads(ExprBuilder):
    """An expression builder that also reads steps: ``H[t]``, ``H[t-1]``, ``X[:, t]`` in a loop's
    block, ``H[T]`` (and ``H[1]``, ``H[0]``) after it. Everything else is the ordinary builder's."""

    scope: Scope | None = None
    #: sequences of loops already read (their stacked values are ordinary names)
    done: Mapping[str, Sequence] = {}
    #: states whose first value is set (``H[0] = …``), and the line
    inits: Mapping[str, tuple[Basic, int]] = {}
    #: every loop's step name, and its line (``t`` read where it is not defined)
    loop_vars: Mapping[str, int] = {}

    def visit_Name(self, node: ast.Name) -> Basic:  # noqa: N802
        if self.scope is not None and node.id in self.scope.sequences and node.id not in self.names:
            raise self.fail(node, f"'{node.id}' is a sequence: read it at a step, {node.id}[t] or {node.id}[t-1]")
        if node.id in self.loop_vars and node.id not in self.names and node.id not in self.dims:
            where = ("" if self.scope is not None and self.scope.var == node.id
                     else f" of the loop at line {self.loop_vars[node.id]}, and exists only in its block")
            raise self.fail(node, f"'{node.id}' is the step{where}: it indexes a sequence (X[:, {node.id}], "
                                  f"H[{node.id}-1]) and is not a value")
        return super().visit_Name(node)

    def visit_Subscript(self, node: ast.Subscript) -> Basic:  # noqa: N802
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        name = node.value.id if isinstance(node.value, ast.Name) else None
        scope = self.scope
        if scope is not None and name in scope.sequences:
            return self._step(node, name, items, scope)
        if scope is not None and any(_mentions(i, scope.var) for i in items):
            if name in self.done and len(items) == 1:  # a sequence of a loop before: H[t] is its step t
                seq = self.done[name]
                rank = len(shape_of(seq.stacked))
                items = [ast.Slice() if k != seq.time_axis else items[0] for k in range(rank)]
            return self._slice(node, items, scope)
        if name in self.done and len(items) == 1:
            return self._at(node, self.done[name], items[0])
        return super().visit_Subscript(node)

    # --- in the block ----------------------------------------------------------------
    def _step(self, node: ast.Subscript, name: str, items: list[ast.expr], scope: Scope) -> Basic:
        """``H[t]`` or ``H[t-1]`` of a sequence the block assigns."""
        t = scope.var
        k = _offset(items[0], t) if len(items) == 1 else None
        if k is None:
            raise self.fail(node.slice, f"inside the loop, '{name}' is read at a step: {name}[{t}] (this step, once "
                                        f"assigned) or {name}[{t}-1] (the previous one)")
        if k < 0 or (k == 0 and name not in scope.current):
            if k == 0 and name == scope.defining:
                raise self.fail(node, f"{name}[{t}] is what this line defines: its right side can read the previous "
                                      f"step, {name}[{t}-1]")
            if k == 0:
                raise self.fail(node, f"{name}[{t}] is read before it is assigned (line {scope.sequences[name]}): "
                                      "a step reads what earlier lines of the block made")
            raise self.fail(node, f"{name}[{ast.unparse(items[0])}] reads the future: a step can read {name}[{t}] "
                                  f"and {name}[{t}-1]")
        if k == 0:
            return scope.current[name]
        if k > 1:
            raise self.fail(node, f"{name}[{t}-{k}] reaches back {k} steps: a loop carries one step, {name}[{t}-1] "
                                  f"(carry an older value in a state of its own, e.g. P[{t}] = {name}[{t}-1])")
        if name not in scope.prev:
            raise self.fail(node, f"{name}[{t}-1] at {t} = 1 is {name}[0], which is not set: write "
                                  f"'{name}[0] = …' before the loop (its first state)")
        return scope.prev[name]

    def _slice(self, node: ast.Subscript, items: list[ast.expr], scope: Scope) -> Basic:
        """``X[:, t]``: step t of a named value with an axis of length T."""
        t = scope.var
        if not isinstance(node.value, ast.Name):
            raise self.fail(node.value, f"a step is read from a named value: name it first, then read NAME[:, {t}]")
        x = self.visit(node.value)
        if not isinstance(x, MatrixSymbol):
            raise self.fail(node.value, f"'{node.value.id}' has no time axis to read at step {t}")
        shape = shape_of(x)
        if len(items) > len(shape):
            raise self.fail(node.slice, f"{len(items)} indices for a {fmt_shape(shape)} value (rank {len(shape)})")
        at = [i for i, item in enumerate(items) if _mentions(item, t)]
        for i, item in enumerate(items):
            full = isinstance(item, ast.Slice) and item.lower is None and item.upper is None and item.step is None
            if i not in at and not full:
                raise self.fail(item, f"a step of '{x.name}' keeps its other axes whole: write ':' here")
        axis = at[0]
        if len(at) > 1 or _offset(items[axis], t) != 0:
            raise self.fail(items[at[-1]], f"'{x.name}' is read at step {t}, the same step on one axis: "
                                           f"{x.name}[{', '.join([':'] * axis + [t])}]")
        if shape[axis] != scope.length:
            raise self.fail(items[axis], f"axis {axis} of '{x.name}' has length {shape[axis]}, but {t} runs over "
                                         f"1..{scope.length}: the time axis has length {scope.length}")
        key = (x.name, axis)
        other = next((a for n, a in scope.slices if n == x.name and a != axis), None)
        if other is not None:
            raise self.fail(items[axis], f"'{x.name}' is already read at step {t} along axis {other}: a value has "
                                         "one time axis in a loop")
        if key not in scope.slices:
            written = ", ".join([":"] * axis + [t])
            step = ir.symbol(f"{x.name}[{written}]", tuple(d for i, d in enumerate(shape) if i != axis))
            scope.slices[key] = Slice(x, axis, step)
        return scope.slices[key].step

    # --- after the block -----------------------------------------------------------------
    def _at(self, node: ast.Subscript, seq: Sequence, item: ast.expr) -> Basic:
        """``H[T]`` (the last step), ``H[1]`` (the first) or ``H[0]`` (a state's first value)."""
        length = shape_of(seq.stacked)[seq.time_axis]
        if isinstance(item, ast.Constant) and type(item.value) is int and item.value in (0, 1):
            if item.value == 0:
                if seq.init is None:
                    raise self.fail(item, f"'{seq.name}' has no first state {seq.name}[0]: its steps run from 1 to {length}")
                return ir.symbol(f"{seq.name}[0]", shape_of(seq.init))  # the first state, computed once
            at: Basic = sympy.Integer(0)
        elif isinstance(length, sympy.Symbol) and _offset(item, length.name) == 0:
            at = length - 1
        else:
            raise self.fail(item, f"after the loop, '{seq.name}' is read at {seq.name}[{length}] (the last step) or "
                                  f"{seq.name}[1] (the first); '{seq.name}' alone is every step, "
                                  f"{fmt_shape(shape_of(seq.stacked))}")
        shape = shape_of(seq.stacked)
        index = [(sympy.Integer(0), d) if i != seq.time_axis else (at,) for i, d in enumerate(shape)]
        return take(seq.stacked, index)


class LoopStatements(_Base):
    """The loop's statements, for :class:`~backprop.language.parse.SpecParser`: a state's first value
    ``H[0] = …``, the header, and the block, read whole once it ends (so the block knows every
    sequence it assigns before its first line is read)."""

    def _init_loops(self) -> None:
        self.inits: dict[str, tuple[Basic, int, int]] = {}  # H -> (value, line, col)
        self.loop_vars: dict[str, int] = {}
        self.open_loop: tuple[int, int, str, sympy.Symbol, int] | None = None  # (line, indent, var, T, col)
        self.block: list[tuple[int, str]] = []
        #: a step's own values, by name: what reading one after its loop says
        self.loop_locals: dict[str, str] = {}

    def _first_state(self, line: str, no: int, m: re.Match) -> None:
        """``H[0] = …`` before a loop (any other index outside a block is a mistake, said)."""
        name, index = m.group(2), m.group(3).strip()
        col = m.start(2) + 1
        icol = m.start(3) + 1 + indent(m.group(3))
        if index != "0":
            var = index.split("-")[0].split("+")[0].strip()
            if var.isidentifier() and var not in self.model.dims:
                raise SpecError(f"{name}[{index}] is a step: it is assigned inside a loop, "
                                f"'for {var} in 1..T:' with the line indented under it", no, icol)
            raise SpecError(f"outside a loop only a state's first value is assigned, {name}[0] = …", no, icol)
        if name in self.inits:
            raise SpecError(f"{name}[0] is assigned twice (first on line {self.inits[name][1]})", no, col)
        self._check_name(name, no, col, declaring=False)
        start = m.end() + indent(line[m.end():])
        value = self._expression(line[start:], start, no)
        self.inits[name] = (value, no, col)

    def _loop_header(self, line: str, no: int, m: re.Match) -> None:
        if self.open_loop is not None:
            raise SpecError("loops do not nest: a spec's loops run over one time axis, each block on its own",
                            no, m.end(1) + 1)
        start = m.end(1)
        h = _HEADER.match(line, start)
        if h is None:
            raise SpecError(f"expected a loop over the time axis, '{SHAPE_EXAMPLE}' (T a dim, the steps 1 to T), "
                            "then its lines indented under it", no, start + 1)
        var, rng = h.group("var"), h.group("range")
        vcol, rcol = h.start("var") + 1, h.start("range") + 1
        if not var.isidentifier() or keyword.iskeyword(var):
            raise SpecError(f"the loop's step is a name, as in '{SHAPE_EXAMPLE}'; got '{var}'", no, vcol)
        taken = (var in FUNCTIONS and "a function") or (var in self.model.dims and "a dim") or (
            (var in self.model.decls or var in self.assign_lines) and "a variable")
        if taken:
            raise SpecError(f"'{var}' is {taken}: name the loop's step something else, e.g. t", no, vcol)
        r = _RANGE.match(rng)
        if r is None:
            hint = " (range(…) counts from 0: the steps of a sequence are 1..T)" if rng.startswith("range") else ""
            raise SpecError(f"a loop runs over the steps 1..T of a time axis, T a dim; got '{rng}'{hint}", no, rcol)
        dim = r.group("dim")
        if dim not in self.model.dims:
            raise SpecError(f"'{dim}' is not a dim: a loop runs over a time axis declared in a sequence input, "
                            f"e.g. 'input X[d, {dim}, m]'", no, rcol + r.start("dim"))
        self.open_loop = (no, indent(line), var, self.model.dims[dim], start + 1)
        self.loop_vars.setdefault(var, no)
        self.block = []

    def _close_loop(self) -> None:
        """Read the block that just ended: its sequences, each line in order, each state's shape."""
        assert self.open_loop is not None
        no, _, var, length, col = self.open_loop
        self.open_loop = None
        if not self.block:
            raise SpecError(f"the loop has no block: indent the lines of each step under '{SHAPE_EXAMPLE}'", no, col)
        targets = [self._block_target(line, lno, var) for lno, line in self.block]
        sequences = {name: lno for (name, indexed), (lno, _) in zip(targets, self.block) if indexed}
        for name, (_, line, c) in self.inits.items():
            if name not in sequences:
                raise SpecError(f"{name}[0] sets the first state of a loop, but the loop at line {no} does not "
                                f"assign {name}[{var}]", line, c)
        guess = {name: shape_of(v) for name, (v, _, _) in self.inits.items()}
        for _ in range(len(guess) + 1):  # a first state that broadcasts ([h, 1] for [h, m]) takes the step's shape
            body, scope = self._read_block(var, length, no, sequences, targets, guess)
            grown = {n: a.shape for n, a in zip((t for t, _ in targets), body)
                     if n in guess and a.shape != guess[n] and broadcasts_to(guess[n], a.shape)}
            if not grown:
                break
            guess.update(grown)
        for (name, indexed), a, (lno, line) in zip(targets, body, self.block):
            if indexed and name in scope.prev and a.shape != shape_of(scope.prev[name]):
                init, iline, _ = self.inits[name]
                raise SpecError(f"{name}[{var}] is {fmt_shape(a.shape)}, but {name}[0] (line {iline}) is "
                                f"{fmt_shape(shape_of(init))}: a state keeps one shape from step to step", lno,
                                indent(line) + 1)
        self._add_loop(var, length, no, body, scope, targets)

    def _block_target(self, line: str, no: int, var: str) -> tuple[str, bool]:
        """The name a block line assigns, and whether as a sequence (``H[t] = …``)."""
        if FOR.match(line):
            raise SpecError("loops do not nest: a spec's loops run over one time axis", no, indent(line) + 1)
        m = INDEXED_TARGET.match(line)
        if m:
            index = m.group(3).strip()
            if index != var:
                raise SpecError(f"inside the loop a sequence is assigned at the step: {m.group(2)}[{var}] = …",
                                no, m.start(3) + 1 + indent(m.group(3)))
            self._check_name(m.group(2), no, m.start(2) + 1, declaring=False)
            return m.group(2), True
        m = _PLAIN_TARGET.match(line)
        if m is None:
            word = line.split()[0]
            what = ("declarations go before the loop" if word in ("input", "param", "examples")
                    else f"a loop's block holds assignments, 'Z = …' or 'H[{var}] = …'")
            raise SpecError(what, no, indent(line) + 1)
        self._check_name(m.group(2), no, m.start(2) + 1, declaring=False)
        return m.group(2), False

    def _read_block(self, var: str, length: sympy.Symbol, no: int, sequences: dict[str, int],
                    targets: list[tuple[str, bool]], guess: dict[str, Shape]) -> tuple[list[Assign], Scope]:
        scope = Scope(var, length, no, sequences)
        scope.prev = {n: ir.symbol(f"{n}[{var}-1]", s) for n, s in guess.items()}
        local: dict[str, MatrixSymbol] = {}
        body: list[Assign] = []
        seen: set[str] = set()
        for (name, indexed), (lno, line) in zip(targets, self.block):
            if name in seen:
                first = next(ln for (n, _), (ln, _) in zip(targets, self.block) if n == name)
                raise SpecError(f"'{name}' is assigned twice in the loop (first on line {first})", lno, indent(line) + 1)
            seen.add(name)
            eq = (INDEXED_TARGET if indexed else _PLAIN_TARGET).match(line)
            assert eq is not None
            start = eq.end() + indent(line[eq.end():])
            scope.defining = name if indexed else None
            try:
                value = self._expression(line[start:], start, lno, scope, local)
            except SpecError as e:
                e.line = e.line or lno
                raise
            shape = shape_of(value)
            symbol = ir.symbol(f"{name}[{var}]" if indexed else name, shape)
            if indexed:
                scope.current[name] = symbol
            else:
                local[name] = symbol
                if is_mask(value, self.masks):
                    self.masks.add(name)
            body.append(Assign(name, value, symbol, lno, line[start:].strip()))
        return body, scope

    def _expression(self, text: str, col0: int, no: int, scope: Scope | None = None,
                    local: Mapping[str, MatrixSymbol] | None = None) -> Basic:
        """An expression read with the names visible at line ``no`` (and in a block, the step's)."""
        names = {n: d.symbol for n, d in self.model.decls.items()}
        names.update({a.name: a.symbol for a in self.model.assigns})
        names.update({n: s.stacked for n, s in self.model.sequences.items()})
        names.update(local or {})
        later = {n: ln for n, ln in self.assign_lines.items() if ln >= no and n not in names}
        reserved = {"d" + n: f"'d{n}' means the gradient of {n}; it can be used in claims, not in a spec"
                    for n in names}
        reserved.update(self.loop_locals)
        builder = StepReads(text, col0, names, self.model.dims, later, reserved, self.masks, self.labels)
        builder.examples = self.model.examples
        builder.scope, builder.done, builder.loop_vars = scope, self.model.sequences, self.loop_vars
        return builder.build()

    def _add_loop(self, var: str, length: sympy.Symbol, no: int, body: list[Assign], scope: Scope,
                  targets: list[tuple[str, bool]]) -> None:
        seqs = []
        examples = self.model.examples_dim
        for (name, indexed), a in zip(targets, body):
            if not indexed:
                self.loop_locals[name] = (f"'{name}' is the step's own value in the loop at line {no}: to read it "
                                          f"after the loop, assign {name}[{var}] = … (then {name}[{length}] is "
                                          "its last step)")
                continue
            ex_dim = self.model.dims.get(examples) if examples else None
            ex_axis = next((i for i, d in enumerate(a.shape) if d == ex_dim), None)
            stacked, axis = stacked_shape(a.shape, ex_axis, length)
            init = self.inits.pop(name, None)
            seqs.append(Sequence(name, a.symbol, ir.symbol(name, stacked), axis, a.line, scope.prev.get(name),
                                 init[0] if init else None, init[1] if init else 0))
            self.lines_of[name] = a.line
        for name, _ in targets:
            self.lines_of.setdefault(name, no)
        self.model.loops.append(Recurrence(var, length, no, len(self.model.assigns), tuple(body), tuple(seqs),
                                           tuple(scope.slices.values())))

    def _finish_loops(self) -> None:
        """At the end of the text: a block still open is read; a first state no loop follows is said."""
        if self.open_loop is not None:
            self._close_loop()
        for name, (_, line, col) in self.inits.items():
            raise SpecError(f"{name}[0] sets the first state of a loop, but no loop follows: "
                            f"'{SHAPE_EXAMPLE}' with {name}[t] = … indented under it", line, col)


__all__ = ["FOR", "INDEXED_TARGET", "LoopStatements", "StepReads", "stacked_shape"]
