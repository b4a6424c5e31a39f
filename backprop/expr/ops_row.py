"""What one operation row holds, and the helpers every family of rows builds its forms from.

An :class:`Op` row says, in one place, how an operation
- checks and infers shapes (``shape``),
- pulls a gradient back to each operand (``vjps``: the adjoint, as a model
  expression built from other registered operations),
- reads in LaTeX, in Unicode text and in NumPy (``latex``, ``text``, ``numpy``),
- evaluates numerically (``np_eval``) and exactly on NumPy arrays of SymPy numbers
  (``exact``, a scalar function, for elementwise ops; ``sym_eval`` for the others),
- is cited in a derivation (``rules``, one per operand).

This module is the shape of a row, separate from the rows themselves (the ``ops_*`` family
modules) and from the table that registers them (:mod:`backprop.expr.ops`), so the families and
the printers can share it without importing the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sympy
from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape

# Printing precedence, as in Python: higher binds tighter.
ATOM, POW, UNARY, MUL, ADD = 100, 60, 50, 40, 30

VJP = Callable[[Basic, Basic, OpNode], Basic]
Form = Callable[[Any, OpNode], str]
Index = tuple[str | None, ...]  # one index letter per axis ((row, column) for a matrix); None for a length-1 axis


class IndexForm(NamedTuple):
    """Entry ``(i, j)`` of an operation's result in index notation.

    The entry is ``scale`` times the sum, over the ``summed`` indices (each with
    its range), of the product of the operands' entries at ``operands``. An index
    may be a window position (``2(i-1)+k-1``, ``(j-k)/2+1``, ``ceil(j/2)``), counting
    from 1; a term whose position is not a whole number in range is 0.
    """

    summed: tuple[tuple[str, Basic], ...]
    operands: tuple[Index, ...]
    scale: Basic = sympy.Integer(1)
    #: Words said after the formula (a convolution's padding, its input gradient as the full
    #: convolution); ``{0}``, ``{1}`` name the operands, printed in the notes' format; ``$…$`` marks
    #: mathematics among the words.
    note: str = ""
    #: ``(operand, window, size, stride)``: that operand is no factor but the Iverson bracket "its entry
    #: is the first maximum of the size×size window at ``window``" (max pooling's route).
    first_max: tuple[int, Index, int, int] | None = None


#: (node, its entry's indices, a source of fresh index letters) -> IndexForm
IndexRule = Callable[[OpNode, Index, Callable[[], str]], IndexForm]


@dataclass(frozen=True)
class Op:
    """Everything the toolkit knows about one operation."""

    name: str
    arity: int
    shape: Callable[[list[Shape], OpNode], Shape]
    vjps: tuple[VJP | None, ...]
    rules: tuple[str, ...]
    latex: Form
    text: Form
    numpy: Form
    np_eval: Callable[..., Any]
    prec: int = ATOM
    elementwise: bool = False
    exact: Callable[..., Any] | None = None  # scalar SymPy form (elementwise ops)
    sym_eval: Callable[..., Any] | None = None  # on object arrays of SymPy values (other ops)
    numpy_helper: str | None = None  # a helper function the NumPy form calls
    #: the NumPy form writing into its (fresh, last-read) argument, e.g. "np.tanh({0}, out={0})"
    numpy_inplace: str | None = None
    numpy_inplace_helper: str | None = None  # a helper function numpy_inplace calls
    #: the JAX form, only where it must differ from ``numpy`` (which the JAX printer reuses, ``np.``
    #: printed as ``jnp.``): JAX arrays are immutable, so no ``out=``, scatter through ``.at[...]``
    jax: Form | None = None
    #: the JAX helper, of the same name as ``numpy_helper``, where that one works in place or
    #: branches on values (the JAX printer reuses the others, ``np.`` printed as ``jnp.``)
    jax_helper: str | None = None
    #: helpers ``numpy_helper`` calls that several rows share (a convolution's window view): each is
    #: written once in a generated module that needs it, found by name as the row helpers are
    shared_helpers: tuple[str, ...] = ()
    #: the same helpers for the JAX backend, where they cannot be ``shared_helpers`` with ``jnp.``
    jax_shared_helpers: tuple[str, ...] = ()
    #: reads windows ``stride`` apart (convolution, pooling): no index form, as an index ``s·i + p``
    #: is not a letter; derivations show such a value whole
    windowed: bool = False
    spec_name: str | None = None  # name in the spec language, when callable there
    doc: str = ""
    attrs: tuple[str, ...] = field(default=())
    #: entry (i, j) in index notation; elementwise ops need none (same indices)
    index: IndexRule | None = None
    #: (node, operand index) -> the operand's axes the operation sums over (a product's inner
    #: axes): a weight's fan-in is their length, its fan-out the length of the rest
    contracts: Callable[[OpNode, int], tuple[int, ...]] | None = None
    #: takes any number (at least ``arity``) of operands (einsum, concat): its one ``vjps`` entry
    #: and one ``rules`` entry then serve every operand, the VJP taking the operand's index last
    variadic: bool = False
    #: ``np_eval``/``sym_eval`` take the dims' sizes last ({symbol: int}): an attribute holds dims
    #: (a reshape's target shape, a slice's bounds) that the operands' arrays alone do not fix
    sized: bool = False
    #: the attribute values the NumPy form prints, where not all of them (a slice's ``a:`` omits its
    #: stop): the dims the generated code must have at hand
    code_attrs: Callable[[OpNode], tuple[Basic, ...]] | None = None
    #: the NumPy form returns a view of its operand, not a new array (a transpose, a reshape, a flip):
    #: naming it saves nothing, and writing into it would write into the operand, maybe the caller's
    view: bool = False
    #: the value is a 0/1 mask (a comparison): no gradient flows through it, the generated code may
    #: hold it as a boolean array, and a float is never written into it in place
    mask: bool = False
    #: the arguments as an error message shows a call: leaky_relu(E, slope)
    signature: str = "(E)"
    #: the exact form is piecewise (a kink or a jump): the exact check works at a rational point
    #: clear of the kinks rather than on symbolic entries
    piecewise: bool = False
    #: (latex, text) of the result transposed, where notes write that as one symbol: A⁻ᵀ for inv(A)ᵀ
    transposed: tuple[Form, Form] | None = None
    #: adjoints students commonly write instead of the right one, each with what it misses:
    #: (operand-0 VJP, explanation); verification names the slip when a claim matches one
    slips: tuple[tuple[VJP, str], ...] = ()

    def operand_vjp(self, i: int) -> VJP | None:
        """The VJP that pulls a gradient back to operand ``i``."""
        if not self.variadic:
            return self.vjps[i]
        each = self.vjps[0]
        return None if each is None else (lambda g, out, e: each(g, out, e, i))

    def rule(self, i: int) -> str:
        """The rule a derivation cites for operand ``i``."""
        return self.rules[0 if self.variadic else i]


# --- helpers the families share --------------------------------------------


def fmt(template: str, prec: int = ATOM, child_prec: Sequence[int] | None = None) -> Form:
    """A form from a template over printed operands ``{0}``, ``{1}``.

    ``child_prec`` gives, per operand, the precedence below which it is
    parenthesized (function-call forms need none).
    """

    def form(p: Any, e: OpNode) -> str:
        needs = child_prec or [0] * len(e.children)
        return template.format(*(p.operand(c, n) for c, n in zip(e.children, needs)))

    return form


def axes_of(e: OpNode) -> tuple[int, ...]:
    """The axes an operation works along: its last attribute (see :func:`backprop.expr.ir.axes_attr`)."""
    return tuple(int(a) for a in e.args[-1])


def elementwise_shape(what: str) -> Callable[[list[Shape], OpNode], Shape]:
    def rule(shapes: list[Shape], e: OpNode) -> Shape:
        out = shapes[0]
        for s in shapes[1:]:
            out = ir.broadcast_shapes(out, s, what)
        return out

    return rule


def same_shape(shapes: list[Shape], e: OpNode) -> Shape:
    return shapes[0]
