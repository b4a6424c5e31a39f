"""A shared weight's gradient summed after its loop, in one contraction (a pass over a loop's shares).

Σₜ ∂L/∂Zₜ Hₜ₋₁ᵀ computed inside the backward loop is T small products added into one array. When a
share is a product of two values of the step (∂L/∂Zₜ and Hₜ₋₁, each as it is or transposed), its sum
over t is one contraction over the steps and the examples together: the two kept for every step,
then ``np.tensordot(dZ_steps, H_prev_steps, axes=([0, 2], [0, 2]))`` after the loop -- one product
T times as deep, which BLAS runs near its peak, as a hand-written LSTM computes its weights'
gradients. A share that is linear in one value of the step (a bias's rowsum(∂L/∂Zₜ)) is the same
function of that value summed over the steps.

The pass only decides; :mod:`backprop.codegen.through_time` keeps the values and prints the sums.
"""

from __future__ import annotations

from dataclasses import dataclass

from sympy import Basic, MatrixSymbol

from backprop.codegen.stmt import Stmt, reads
from backprop.expr.ir import OpNode, shape_of

#: Operations a sum over the steps passes through: Σₜ f(Sₜ) = f(Σₜ Sₜ).
LINEAR = frozenset({"sum", "transpose", "reshape", "neg"})


@dataclass(frozen=True)
class Contraction:
    """Σₜ Aₜ Bₜ (each side a step value as it is or transposed): ``left`` contracted on ``left_axis``
    with ``right`` on ``right_axis``, and over the steps."""

    stmt: Stmt
    left: MatrixSymbol
    left_axis: int
    right: MatrixSymbol
    right_axis: int


@dataclass(frozen=True)
class Linear:
    """Σₜ f(Sₜ) = f(Σₜ Sₜ) for ``stmt.expr`` = f(``value``), f linear."""

    stmt: Stmt
    value: MatrixSymbol


def _side(e: Basic, per_step: set[Basic], first: bool) -> tuple[MatrixSymbol, int] | None:
    """A product's operand as (a step value of rank 2, the axis the product contracts), or None."""
    flipped = isinstance(e, OpNode) and e.op.name == "transpose" and not e.attrs
    x = e.children[0] if flipped else e
    if not isinstance(x, MatrixSymbol) or x not in per_step or len(shape_of(x)) != 2:
        return None
    return x, (0 if flipped else 1) if first else (1 if flipped else 0)


def summed_after(share: Stmt, per_step: set[Basic]) -> Contraction | Linear | None:
    """How a shared value's share at step t is summed after the loop, or None (summed in the loop)."""
    e = share.expr
    if isinstance(e, OpNode) and e.op.name == "matmul" and len(e.children) == 2:
        left, right = _side(e.children[0], per_step, True), _side(e.children[1], per_step, False)
        if left is not None and right is not None:
            return Contraction(share, left[0], left[1], right[0], right[1])
    values = reads(e) & per_step
    if len(values) != 1 or isinstance(e, MatrixSymbol):
        return None
    todo = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, OpNode):
            if x.op.name not in LINEAR:
                return None
            todo.extend(x.children)
    (value,) = values
    return Linear(share, value)  # type: ignore[arg-type]


__all__ = ["Contraction", "LINEAR", "Linear", "summed_after"]
