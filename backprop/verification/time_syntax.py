"""Reading a claim about a loop: its target (``dH[t]``, ``dWh``, ``dH[0]``) and its right side in the
general form, each step reference (``H[t-1]``, ``dZ[t+1]``, ``X[:, t]``, ``dH[:, t]``, ``H[T]``) a
symbol that :mod:`~backprop.verification.time_claims` binds to numbers at every step.

Kept apart from the judging: what a claim may say and what it may be about is one idea (the grader
asks it too, for the questions a loop can have); how a claim is checked and diagnosed is another.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from sympy import Basic, MatrixSymbol

from backprop.engine.through_time import ThroughTime, TimeDerivation
from backprop.expr import ir
from backprop.expr.ir import shape_of
from backprop.language.loop_syntax import _offset
from backprop.support.errors import SpecError
from backprop.support.naming import grad_name
from backprop.verification.claims import ClaimExprBuilder, ClaimSource

#: the function a claim sums a shared weight's steps' shares with
SUM = "sum_t"


@dataclass(frozen=True)
class StepRef:
    """What a step symbol of a claim stands for: a value or a δ of loop ``loop`` (``name`` its step
    name, ``Z[t]``), or the stacked gradient after the loop at the step (``own``); at the step ``t +
    offset``, or at the fixed step ``at`` (0-based; -1 is the last)."""

    loop: int
    kind: str  # "value", "grad" or "own"
    name: str
    offset: int = 0
    at: int | None = None


class StepBuilder(ClaimExprBuilder):
    """The claim language plus a loop's steps (see the module docstring)."""

    td: TimeDerivation
    refs: dict[str, StepRef]

    def _ref(self, ref: StepRef, shape: tuple) -> MatrixSymbol:
        key = f"@{ref.loop}:{ref.kind}:{ref.name}:{ref.offset}:{ref.at}"
        self.refs[key] = ref
        return ir.symbol(key, shape)

    def _loop_of(self, name: str) -> tuple[ThroughTime, str] | None:
        """The loop that makes step value ``name`` (``Z`` or a sequence ``H``), and its step name."""
        for tt in self.td.loops:
            for eq in tt.equations:
                if eq.name == f"{name}[{tt.loop.var}]":
                    return tt, eq.name
        return None

    def visit_Name(self, node: ast.Name) -> Basic:  # noqa: N802
        found = self._loop_of(node.id) if node.id not in self.names else None
        if found is not None and node.id not in self.td.model.sequences:
            tt, step = found
            return self._ref(StepRef(tt.index, "value", step), step_shape(tt, step))
        return super().visit_Name(node)

    def visit_Call(self, node: ast.Call) -> Basic:  # noqa: N802
        if isinstance(node.func, ast.Name) and node.func.id == SUM:
            raise self.fail(node, f"{SUM}(…) is a claim's whole right side: dW = {SUM}(share at step t)")
        return super().visit_Call(node)

    def visit_Subscript(self, node: ast.Subscript) -> Basic:  # noqa: N802
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        name = node.value.id if isinstance(node.value, ast.Name) else None
        if name is None:
            return super().visit_Subscript(node)
        if len(items) == 1 and isinstance(items[0], ast.Constant) and items[0].value == 0:
            first = f"{name}[0]" if f"{name}[0]" in self.names else None  # H[0], dH[0]: the first state's
            if first is not None:
                return self.names[first]
        grad = name.startswith("d") and self._loop_of(name[1:]) is not None and len(items) == 1
        found = self._loop_of(name[1:] if grad else name)
        if found is not None and len(items) == 1:
            tt, step = found
            where = self._where(node, items[0], tt, grad, name)
            return self._ref(StepRef(tt.index, "grad" if grad else "value", step, *where), step_shape(tt, step))
        for tt in self.td.loops:
            var = tt.loop.var
            if not any(_mentions(i, var) for i in items):
                continue
            for s in tt.loop.sequences:  # dH[:, t]: step t of the gradient from after the loop
                if name == grad_name(s.name):
                    self._whole(node, items, s.time_axis, var, name)
                    return self._ref(StepRef(tt.index, "own", s.name), shape_of(s.step))
            for sl in tt.loop.slices:  # X[:, t]
                if name == sl.source.name:
                    self._whole(node, items, sl.axis, var, name)
                    return self._ref(StepRef(tt.index, "value", sl.step.name), shape_of(sl.step))
        return super().visit_Subscript(node)

    def _whole(self, node: ast.Subscript, items: list[ast.expr], axis: int, var: str, name: str) -> None:
        ok = len(items) > axis and _offset(items[axis], var) == 0 and all(
            isinstance(it, ast.Slice) and it.lower is None and it.upper is None for k, it in enumerate(items) if k != axis)
        if not ok:
            raise self.fail(node, f"step {var} of '{name}' is {name}[{', '.join([':'] * axis + [var])}]")

    def _where(self, node: ast.Subscript, item: ast.expr, tt: ThroughTime, grad: bool, name: str) -> tuple[int, int | None]:
        var, length = tt.loop.var, str(tt.loop.length)
        lag = _offset(item, var)
        if lag is not None:
            k = -lag
            base = name[1:] if grad else name
            if grad and k not in (0, 1):
                raise self.fail(item, f"a δ is read at {var} or {var}+1 (the next step's, 0 past {length}): "
                                      f"{name}[{var}], {name}[{var}+1]")
            if not grad and k not in (0, -1, 1):
                raise self.fail(item, f"a step value is read at {var}, {var}+1 (beside a δ at {var}+1) and, for a "
                                      f"state, {var}-1: {base}[{var}]")
            if not grad and k == -1 and base not in {s.name for s in tt.loop.states}:
                raise self.fail(item, f"'{base}' is no state: only a state is read at {var}-1")
            return k, None
        lag = _offset(item, length)
        if lag is not None and lag in (0, 1):
            return 0, -1 - lag
        if isinstance(item, ast.Constant) and item.value == 1:
            return 0, 0
        raise self.fail(item, f"'{name}' is read at a step: {var}, {var}-1, {var}+1 (a δ), {length} or 1")


def _mentions(item: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(item))


def step_shape(tt: ThroughTime, step: str) -> tuple:
    return next(eq.shape for eq in tt.equations if eq.name == step)


@dataclass(frozen=True)
class TimeClaim:
    target: str  # a step name (Z[t]) of loop ``loop``, or an outside name (Wh, H[0])
    loop: int | None
    text: str
    expr: Basic
    summed: bool
    refs: dict[str, StepRef]
    src: ClaimSource


def claim_targets(td: TimeDerivation) -> list[str]:
    """What a claim about ``td`` may be about, in the order a class is asked: the params, each loop's
    step values at a general t (``H[t]``, ``Z[t]``: the recursion), then the other values outside the
    loops (the stacked ``H``, the first state ``H[0]``)."""
    outside = [s.target for s in td.steps]
    params = [p.name for p in td.model.params if p.name in outside]
    steps = [d.target for tt in td.loops for d in tt.deltas]
    return params + steps + [n for n in outside if n not in params]


def parse_time_claim(td: TimeDerivation, names: dict[str, Basic], src: ClaimSource) -> TimeClaim:
    """One claim read (``names``: the spec's names and the outside gradients); raises :class:`SpecError`
    located in ``src``."""
    line = src.text.split("#", 1)[0].rstrip()
    m = re.match(r"\s*(d\w+)\s*(\[\s*(\w+)\s*\])?\s*=(?!=)\s*", line)
    if not m:
        raise SpecError("a claim reads dNAME = EXPR (dW = sum_t(…) for a shared weight) or dH[t] = EXPR for a "
                        "loop's step", src.line, 1, src.file, src.text)
    lhs, at = m.group(1), m.group(3)
    col0 = m.end()
    rhs = line[col0:]
    loop, target = None, lhs[1:]
    outside = {s.target for s in td.steps}
    for tt in td.loops:
        if at == tt.loop.var and any(d.target == f"{lhs[1:]}[{at}]" for d in tt.deltas):
            loop, target = tt.index, f"{lhs[1:]}[{at}]"
    if loop is None and at is not None and f"{target}[{at}]" in outside:  # dH[0]: the first state's
        target = f"{target}[{at}]"
    elif loop is None and (at is not None or target not in outside):
        raise SpecError(f"'{line[:col0].rstrip(' =')}' is no gradient of {td.model.name}: claims are about "
                        f"{', '.join(grad_name(n) for n in claim_targets(td))}", src.line, 1, src.file, src.text)
    summed = False
    tree = _parse(rhs)
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == SUM:
        if len(tree.args) != 1 or tree.keywords or loop is not None:
            raise SpecError(f"{SUM}(EXPR) sums one expression over the steps, for a shared weight's gradient",
                            src.line, col0 + 1, src.file, src.text)
        inner = tree.args[0]
        col0 += inner.col_offset
        rhs = ast.get_source_segment(rhs, inner) or ""
        summed = True
    builder = StepBuilder(rhs, col0, names, td.model.dims)
    builder.td, builder.refs = td, {}
    builder.examples = td.model.examples
    try:
        expr = builder.build()
    except SpecError as e:
        raise SpecError(e.message, src.line, e.col, src.file, src.text, shapes=e.shapes) from None
    return TimeClaim(target, loop, line.strip(), expr, summed, builder.refs, src)


def _parse(text: str) -> ast.expr | None:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None


__all__ = ["SUM", "StepBuilder", "StepRef", "TimeClaim", "claim_targets", "parse_time_claim", "step_shape"]
