"""The statement ``symbol = expr``: the unit every code-generation pass reads and writes.

Each pass (:mod:`backprop.codegen.equations`, :mod:`backprop.codegen.cse`,
:mod:`backprop.codegen.liveness`, :mod:`backprop.codegen.inplace`) takes a list of
these and gives back a list or a decision about it; keeping the type apart from
every pass lets each import it without importing another pass, and the printer
print a temporary without knowing where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sympy import Basic, MatrixSymbol

from backprop.expr.ir import OpNode, TensorSymbol
from backprop.expr.ops import REGISTRY

#: Operations NumPy computes as views of their operand, not new arrays (the rows marked ``view``):
#: naming them saves nothing (common subexpressions), and writing into one would write into the
#: operand (in-place reuse).
VIEWS = frozenset(name for name, op in REGISTRY.items() if op.view)


class TempSymbol(TensorSymbol):
    """A common subexpression's temporary; prints as its own (already unique) name."""


@dataclass(frozen=True)
class Stmt:
    """``symbol = expr`` in the generated code.

    ``symbol`` is the leaf that stands for the value in other expressions: the
    spec variable (a ``MatrixSymbol``), its gradient (a ``GradSymbol``) or a
    temporary (a :class:`TempSymbol`).
    """

    symbol: MatrixSymbol
    expr: Basic
    kind: str  # "forward", "backward" or "temp"
    section: str  # "forward" or "backward": the function it belongs to
    comment: tuple[str, ...] = ()


@lru_cache(maxsize=1 << 14)
def reads(e: Basic) -> frozenset[Basic]:
    """The values ``e`` reads. Memoized: liveness, frees, the cache and in-place reuse each ask of every statement."""
    return frozenset(e.atoms(MatrixSymbol))


def substitute(e: Basic, table: dict[Basic, Basic]) -> Basic:
    """Replace whole subexpressions (operands only; attributes stay)."""
    if e in table:
        return table[e]
    if not isinstance(e, OpNode):
        return e
    kids = [substitute(c, table) for c in e.children]
    if all(k is c for k, c in zip(kids, e.children)):
        return e
    return e.func(*kids, *e.attrs)
