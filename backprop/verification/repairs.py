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


#: Said where a transpose is missing around an inverse: the identities that put A⁻ᵀ in a gradient.
INVERSE_NOTE = ("; an inverse's gradient carries A⁻ᵀ, not A⁻¹: ∂ log det(A)/∂A = A⁻ᵀ, and Y = A⁻¹ sends "
                "∂L/∂A = −A⁻ᵀ ∂L/∂Y A⁻ᵀ back (A⁻¹ and A⁻ᵀ differ unless A is symmetric)")


def holds_inverse(e: Basic) -> bool:
    return any(isinstance(x, OpNode) and x.op.name in ("inv", "solve") for x in sympy.preorder_traversal(e))


def _square_places(e: Basic) -> list[tuple[tuple[int, ...], Basic]]:
    """Every square (non-scalar) part of ``e`` but ``e`` itself, with its path of operand indices, in
    reading order (left to right, outermost first); at most :data:`_MAX_PARTS`."""
    out: list[tuple[tuple[int, ...], Basic]] = []
    todo: list[tuple[tuple[int, ...], Basic]] = [((), e)]
    while todo and len(out) < _MAX_PARTS:
        path, x = todo.pop()
        if path and _square(x):
            out.append((path, x))
        if isinstance(x, OpNode):
            todo.extend(reversed([(path + (i,), c) for i, c in enumerate(x.children)]))
    return out


def _replace_at(e: Basic, path: tuple[int, ...], new: Basic) -> Basic:
    """``e`` with the part at ``path`` (operand indices from the root) replaced by ``new``."""
    if not path:
        return new
    assert isinstance(e, OpNode)
    kids = list(e.children)
    kids[path[0]] = _replace_at(kids[path[0]], path[1:], new)
    return e.func(*kids, *e.attrs)


def _flipped(x: Basic) -> Basic:
    """The transpose of ``x``; of a transpose, what it transposes."""
    return x.children[0] if _is_op(x, "transpose") else ir.transpose(x)


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _transpose_phrase(part: Basic, where: str, rec: str) -> tuple[str, str]:
    """What transposing ``part`` fixes, in words: a leaf needs a transpose (the slip of a step), a
    transposed part has one too many, any other part needs one (an inverse: the identity that says so)."""
    if isinstance(part, MatrixSymbol):
        return "step", f"{text(part)} needs a transpose here{where}: {rec}"
    if _is_op(part, "transpose"):
        return "transpose", f"{text(part)} has a transpose too many{where}: {text(part.children[0])} belongs there; {rec}"
    note = INVERSE_NOTE if holds_inverse(part) else ""
    return "transpose", f"{text(part)} needs a transpose here{where}: {text(_flipped(part))} belongs there{note}; {rec}"


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

    def _transposed_part(self, s: Basic, step: Step) -> tuple[str, str] | None:
        """A square part that needs a transpose -- the inverse's A⁻ᵀ written A⁻¹ -- or has one too many:
        one occurrence of it (reading order; the smallest such part, so the inverse is named, not −A⁻¹
        or A⁻¹ + I), else every occurrence at once, else some factors of a product."""
        want = self.at.grad(step.target)
        rec = f"{_grad_text(step.target)} = {text(step.recursive)}"
        places = _square_places(s)
        counts = {part: sum(1 for _, p in places if p == part) for _, part in places}

        def fixes(path: tuple[int, ...], part: Basic) -> bool:
            return self.at.close(self.at.vals(_replace_at(s, path, _flipped(part))), want)

        for path, part in places:
            if not fixes(path, part):
                continue
            while isinstance(part, OpNode) and part.op.name not in ("transpose", "inv"):
                # the smallest part that does it: A⁻¹ in A⁻¹ + I, in −A⁻¹ (a transpose's own operand, or
                # an inverse's, would read as a leaf needing one where the part has one too many)
                deeper = next(((q, c) for q, c in places if q[:-1] == path and fixes(q, c)), None)
                if deeper is None:
                    break
                path, part = deeper
            nth = sum(1 for q, p in places if p == part and q <= path)
            return _transpose_phrase(part, f" (its {_ordinal(nth)} occurrence)" if counts.get(part, 1) > 1 else "", rec)
        for part in dict.fromkeys(p for _, p in places):
            if counts[part] > 1 and self.at.close(self.at.vals(s.xreplace({part: _flipped(part)})), want):
                return _transpose_phrase(part, f" (in {counts[part]} places)", rec)
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
