"""Local repairs of a wrong claim: one edit that would make it right, named as the mistake.

:class:`~backprop.verification.diagnose.Diagnosis` descends to the part of a claim that stops
matching; these checks then try the edits students' slips undo -- a reduction or softmax along
another axis, a transpose of a leaf or of some factors of a product (the inverse's A⁻ᵀ written
A⁻¹), a forward value swapped for another of its shape, an adjoint the registry lists as a common
slip (softmax's diagonal-only Jacobian) -- and say which one holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.derivation import Derivation, Step
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.printing import GradSymbol, text
from backprop.support.errors import ShapeError
from backprop.support.naming import grad_name
from backprop.verification.numeric import Points

_MAX_PARTS = 120  # sub-expressions tried when locating a mistake (bounds the work on huge claims)


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _grad_text(name: str) -> str:
    return text(GradSymbol(grad_name(name), 1, 1))


def _subexpressions(e: Basic) -> list[Basic]:
    """Distinct operation and variable sub-expressions of ``e``, outermost first (constants left out)."""
    out: dict[Basic, None] = {}
    todo = [e]
    while todo:
        x = todo.pop(0)
        if isinstance(x, OpNode):
            out.setdefault(x, None)
            todo.extend(x.children)
        elif isinstance(x, MatrixSymbol):
            out.setdefault(x, None)
    return list(out)


def _is_op(x: Basic, name: str) -> bool:
    return isinstance(x, OpNode) and x.op.name == name


def _square(x: Basic) -> bool:
    shape = shape_of(x)
    return len(shape) == 2 and shape[0] == shape[1] and shape[0] != 1


def _unneg(x: Basic) -> Basic:
    return x.children[0] if _is_op(x, "neg") else x


def _matmul_factors(e: Basic) -> list[Basic]:
    """A @ B @ C as [A, B, C]."""
    return [f for c in e.children for f in _matmul_factors(c)] if _is_op(e, "matmul") else [e]


def _matmul_chain(fs: Sequence[Basic]) -> Basic:
    out = fs[0]
    for f in fs[1:]:
        out = ir.matmul(out, f)
    return out



class Repairs:
    """The repair checks; :class:`~backprop.verification.diagnose.Diagnosis` holds the state they read."""

    deriv: Derivation
    at: Points
    grads: list[str]
    forward_vars: dict[str, Any]

    def _slip(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """The part is an adjoint students commonly write instead of the right one (the registry's
        ``slips``: softmax's diagonal-only Jacobian): name what it misses."""
        target = self.forward_vars.get(step.target)
        for eq in self.deriv.equations:
            e = eq.expr
            if not (isinstance(e, OpNode) and e.op.slips and e.children and e.children[0] == target):
                continue
            if eq.name not in self.grads:
                continue
            for vjp, why in e.op.slips:
                slip = vjp(self.deriv.step(eq.name).grad, eq.symbol, e)
                if shape_of(slip) == step.shape and self.at.close(got, self.at.vals(slip)):
                    return "slip", f"{why}: {_grad_text(step.target)} = {text(step.recursive)}"
        return None

    def _axis_in_claim(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """A reduction or softmax in the claim runs along the wrong axis: along another it is right."""
        want = self.at.grad(step.target)
        for x in _subexpressions(s)[:_MAX_PARTS]:
            if not (isinstance(x, OpNode) and "axis" in x.op.attrs and x.children):
                continue
            rank = len(shape_of(x.children[0]))
            axes = tuple(int(a) for a in x.args[-1])
            for other in range(rank):
                if (other,) == axes or len(axes) != 1:
                    continue
                try:
                    fixed = s.xreplace({x: x.func(*x.args[:-1], sympy.Tuple(other))})
                except (ShapeError, ValueError, TypeError):
                    continue
                if shape_of(fixed) == step.shape and self.at.close(self.at.vals(fixed), want):
                    right = x.func(*x.args[:-1], sympy.Tuple(other))
                    return "axis", f"{text(x)} runs along axis {axes[0]}; it should run along axis {other}: {text(right)}"
        return None

    def _transposed_leaf(self, s: Basic, step: Step) -> tuple[str, str] | None:
        want = self.at.grad(step.target)
        for leaf in sorted(s.atoms(MatrixSymbol), key=lambda x: x.name):
            shape = shape_of(leaf)
            if len(shape) != 2 or shape[0] != shape[1] or shape[0] == 1:
                continue
            if self.at.close(self.at.vals(s, {leaf: [x.T for x in self.at.vals(leaf)]}), want):
                return "step", (f"{text(leaf)} needs a transpose here: "
                                f"{_grad_text(step.target)} = {text(step.recursive)}")
        return None

    def _transposed_part(self, s: Basic, step: Step) -> tuple[str, str] | None:
        """A square part that needs a transpose: the inverse's A⁻ᵀ written A⁻¹ (every copy of it)."""
        want = self.at.grad(step.target)
        for part in _subexpressions(s)[1:_MAX_PARTS]:
            shape = shape_of(part)
            if not isinstance(part, OpNode) or len(shape) != 2 or shape[0] != shape[1] or shape[0] == 1:
                continue
            if self.at.close(self.at.vals(s, {part: [x.T for x in self.at.vals(part)]}), want):
                return "transpose", (f"{text(part)} needs a transpose here: "
                                     f"{_grad_text(step.target)} = {text(step.recursive)}")
        for chain in (x for x in _subexpressions(s)[:_MAX_PARTS] if _is_op(x, "matmul")):
            factors = _matmul_factors(chain)
            square = [i for i, f in enumerate(factors) if _square(f)]
            for k in range(1, min(len(square), 3) + 1):
                for pick in itertools.combinations(square, k):  # -A⁻¹ G A⁻¹ for -A⁻ᵀ G A⁻ᵀ: some copies only
                    fixed = _matmul_chain([ir.transpose(f) if i in pick else f for i, f in enumerate(factors)])
                    if self.at.close(self.at.vals(s.xreplace({chain: fixed})), want):
                        names = sorted({text(_unneg(factors[i])) for i in pick})
                        where = "here" if len(names) == len(pick) else f"in {len(pick)} places"
                        verb = "needs" if len(names) == 1 else "need"
                        return "transpose", (f"{_and(names)} {verb} a transpose {where}: "
                                             f"{_grad_text(step.target)} = {text(step.recursive)}")
        return None

    def _swapped_leaf(self, s: Basic, step: Step) -> tuple[str, str] | None:
        want = self.at.grad(step.target)
        for leaf in sorted(s.atoms(MatrixSymbol), key=lambda x: x.name):
            if isinstance(leaf, GradSymbol):
                continue
            for name, sym in self.forward_vars.items():
                if name == leaf.name or shape_of(sym) != shape_of(leaf):
                    continue
                if self.at.close(self.at.vals(s, {leaf: self.at.var(name)}), want):
                    return "step", (f"has {text(leaf)} where {text(sym)} belongs: "
                                    f"{_grad_text(step.target)} = {text(step.recursive)}")
        return None
