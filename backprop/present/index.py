"""Index notation: one entry of a gradient, as a student checks it by hand.

``∂L/∂W₁ = ∂L/∂Z Xᵀ`` reads, entry by entry, ``∂L/∂W₁[i,j] = Σₜ ∂L/∂Z[i,t] X[j,t]``.
:func:`to_index` walks a model expression with the rules of the operation
registry (each ``Op.index``: a matrix product introduces a summed index, a
transpose swaps the two, a reduction sums over the reduced axis, a broadcast
keeps the indices); elementwise operations keep their indices and print with
their own registry forms over scalar entries, and an axis of length 1 drops
its index (a column ``b₁`` is ``b₁[i]``). Operations without an index rule
(softmax) stay whole: ``softmax(Z₂)[i,t]``. Index letters come from
:mod:`backprop.support.naming`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sympy
from sympy import Basic, MatrixSymbol

from backprop.expr.ir import OpNode, is_const, is_scalar_shape, shape_of, symbol
from backprop.expr.ops_row import ADD, ATOM, MUL, Index, IndexForm
from backprop.expr.printing import GradSymbol, LatexPrinter, TextPrinter, grad_symbol
from backprop.present.formula import Formula
from backprop.support import naming
from backprop.support.errors import UnsupportedError
from backprop.support.escape import tex_text
from backprop.support.notation import latex_name, math_to_latex, text_name, text_subscript

# ---------------------------------------------------------------------------
# The index-notation tree
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """Entry ``index`` of a variable, a gradient, or a whole opaque subexpression."""

    base: Basic
    index: Index


@dataclass(frozen=True)
class Sum:
    """``Σ`` over ``indices`` (each with its range) of ``body``."""

    indices: tuple[tuple[str, Basic], ...]
    body: Ix


@dataclass(frozen=True)
class Product:
    """The scalar product of entries that a matrix product sums."""

    factors: tuple[Ix, ...]


@dataclass(frozen=True)
class Scaled:
    """``coeff`` times ``body`` (a mean's 1/count)."""

    coeff: Basic
    body: Ix


@dataclass(frozen=True)
class FirstMax:
    """The Iverson bracket ``[value[index] is the first maximum of the size×size window at window]``:
    1 for the window's largest entry (the first in row-major order on a tie), else 0."""

    value: Basic
    index: Index
    window: Index
    size: int
    stride: int


@dataclass(frozen=True)
class Apply:
    """An elementwise operation applied to entries (constants stay as they are)."""

    node: OpNode
    args: tuple[Ix, ...]


Ix = Entry | Sum | Product | Scaled | Apply | FirstMax | Basic

#: Words said after an index form, ``{0}``, ``{1}`` naming the operands it was said of, ``$…$`` around
#: mathematics (LaTeX's text mode draws no −, ×).
Note = tuple[str, tuple[Basic, ...]]


def _drop_unit(ij: Index, shape: tuple[Basic, ...]) -> Index:
    """An axis of length 1 has no index: a column is b[i], a row x[t], a scalar b (which goes with
    a value of any rank)."""
    if is_scalar_shape(shape) or len(ij) != len(shape):
        return (None,) * len(shape)
    return tuple(None if d == 1 else x for x, d in zip(ij, shape))


class _Walker:
    """Build the index form of an expression, handing out fresh summed indices."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)
        self.notes: dict[Note, None] = {}  # in order, each once

    def fresh(self) -> str:
        t = naming.index_letter(self.taken, summed=True)
        self.taken.add(t)
        return t

    def walk(self, e: Basic, ij: Index) -> Ix:
        if is_const(e):
            return e
        ij = _drop_unit(ij, shape_of(e))
        if isinstance(e, MatrixSymbol):
            return Entry(e, ij)
        if not isinstance(e, OpNode):
            raise UnsupportedError(f"no index form for {type(e).__name__}")
        if e.op.index is not None:
            return self._by_rule(e, ij)
        if e.op.elementwise:
            return Apply(e, tuple(self.walk(c, ij) for c in e.children))
        return Entry(e, ij)  # no rule: the entry of the whole value

    def _factor(self, e: OpNode, form: IndexForm, k: int, idx: Index) -> Ix:
        c = e.children[k]
        if form.first_max is not None and form.first_max[0] == k:
            _, window, size, stride = form.first_max
            return FirstMax(c, _drop_unit(idx, shape_of(c)), window, size, stride)
        return self.walk(c, idx)

    def _by_rule(self, e: OpNode, ij: Index) -> Ix:
        assert e.op.index is not None
        form = e.op.index(e, ij, self.fresh)
        unit = {t for t, n in form.summed if n == 1}  # a sum over one term is that term
        operands = [tuple(None if x in unit else x for x in idx) for idx in form.operands]
        factors = tuple(self._factor(e, form, k, tuple(idx)) for k, idx in enumerate(operands))
        if form.note:
            self.notes[(form.note, tuple(e.children))] = None
        body: Ix = factors[0] if len(factors) == 1 else Product(factors)
        summed = tuple((t, n) for t, n in form.summed if n != 1)
        if summed:
            body = Sum(summed, body)
        if form.scale != 1:
            body = Scaled(form.scale, body)
        return body


def windowed(x: Ix) -> bool:
    """Whether ``x`` holds an entry of a convolution or pooling taken whole: a windowed operation
    without an ``Op.index`` rule (every conv and pooling row has one now, its window positions such
    as ``2(i-1)+k-1`` written as indices), whose line would only repeat the vectorized form with
    ``[i, j, k, l]`` appended, and so is left out of the notes."""
    if isinstance(x, Entry):
        return isinstance(x.base, OpNode) and x.base.op.windowed
    if isinstance(x, (Sum, Scaled)):
        return windowed(x.body)
    if isinstance(x, Product):
        return any(windowed(f) for f in x.factors)
    if isinstance(x, Apply):
        return any(windowed(a) for a in x.args)
    return False  # a FirstMax bracket names its window


@dataclass(frozen=True)
class IndexEquation:
    """``∂L/∂name[i,j] = rhs``: one entry of a gradient (or ``name[i,j] = rhs``, of a forward value)."""

    name: str
    shape: tuple[Basic, ...]
    index: Index
    rhs: Ix
    gradient: bool = True
    #: words said after the formula (a padding; the full convolution; max pooling's tie rule)
    notes: tuple[Note, ...] = ()

    @property
    def lhs(self) -> Entry:
        base = grad_symbol(self.name, self.shape) if self.gradient else symbol(self.name, self.shape)
        return Entry(base, self.index)

    def latex(self) -> tuple[str, str]:
        p = IndexLatexPrinter()
        return p.ix(self.lhs), p.ix(self.rhs)

    def text(self) -> tuple[str, str]:
        p = IndexTextPrinter()
        return p.ix(self.lhs), p.ix(self.rhs)

    def rhs_formula(self) -> Formula:
        """The right-hand side, then its notes in words, in pieces a long line breaks between."""
        main = Formula(self.latex()[1], self.text()[1])
        if not self.notes:
            return main
        tp, lp = IndexTextPrinter(), IndexLatexPrinter()
        clauses: list[Formula] = []
        said = {note.format(*map(tp.operand_text, operands)): (note, operands) for note, operands in self.notes}
        for n, (note, operands) in enumerate(said.values()):  # a note said of two layers alike, once
            note += ";" if n + 1 < len(said) else ""  # one note after another
            for part in re.split(r"(?<=[,;:]) ", note):
                words = part.format(*map(tp.operand_text, operands)).replace("$", "")
                clauses.append(Formula(_note_latex(part, operands, lp), words))
        # a space between clauses (the rows join them in math mode), the words in parentheses
        clauses = [Formula(r"\text{ }" + c.latex, c.text) if k else c for k, c in enumerate(clauses)]
        clauses[0] = Formula(r"\quad\text{(}" + clauses[0].latex, "(" + clauses[0].text)
        clauses[-1] = Formula(clauses[-1].latex + r"\text{)}", clauses[-1].text + ")")
        return Formula(main.latex + " " + " ".join(c.latex for c in clauses), main.text + "  " +
                       " ".join(c.text for c in clauses), (main, *clauses))


def _note_latex(part: str, operands: tuple[Basic, ...], p: IndexLatexPrinter) -> str:
    """A clause of a note in LaTeX math mode: its words in ``\\text``, its operands as mathematics."""
    out = []
    for words, field_name, _, _ in string.Formatter().parse(part):
        for k, piece in enumerate(words.split("$")):  # $k − 1 − p$: mathematics among the words
            if piece:
                out.append(math_to_latex(piece) if k % 2 else r"\text{" + tex_text(piece) + "}")
        if field_name is not None:
            out.append(p.operand_latex(operands[int(field_name)]))
    return " ".join(out)


def _ceilings(t: str, left: str, right: str) -> str:
    """``ceil(x)`` in a window position drawn as ``⌈x⌉`` (nested ones too)."""
    at = t.find("ceil(")
    if at < 0:
        return t
    depth, end = 0, at + 4
    for end in range(at + 4, len(t)):
        depth += {"(": 1, ")": -1}.get(t[end], 0)
        if depth == 0:
            break
    inner = _ceilings(t[at + 5:end], left, right)
    return t[:at] + left + inner + right + _ceilings(t[end + 1:], left, right)


def taken_letters(names: Iterable[str]) -> set[str]:
    """Letters an index must not look like: dimension names and one-letter variables."""
    return {n for n in names if len(n) == 1} | {n.lower() for n in names if len(n) == 1}


def to_index(e: Basic, name: str, shape: tuple[Basic, ...], taken: Iterable[str],
             gradient: bool = True) -> IndexEquation:
    """Entry ``[i, j]`` (``[i, j, k]`` ...: one letter per axis) of ``e``, the value of ``∂L/∂name``
    (or of ``name`` itself, a forward value) of ``shape``, in index notation."""
    taken = set(taken)
    letters: list[str] = []
    for _ in shape:
        letters.append(naming.index_letter(taken | set(letters), summed=False))
    ij = _drop_unit(tuple(letters), shape)
    walker = _Walker(taken | {x for x in ij if x})
    rhs = walker.walk(e, ij)
    return IndexEquation(name, shape, ij, rhs, gradient, tuple(walker.notes))


def _taken(d: Any) -> set[str]:
    return taken_letters(list(d.model.dims) + d.model.names() + [e.name for e in d.equations])


def gradient_index(d: Any, name: str) -> IndexEquation:
    """∂L/∂name of a :class:`~backprop.engine.derivation.Derivation`, one entry at a time."""
    step = d.step(name)
    return to_index(step.result, name, step.shape, _taken(d))


def value_index(d: Any, name: str) -> IndexEquation:
    """The forward equation of ``name``, one entry at a time: Z[f,t] = Σ_c W[f,c] X[c,t]."""
    eq = next(e for e in d.equations if e.name == name)
    return to_index(eq.expr, name, eq.shape, _taken(d), gradient=False)


# ---------------------------------------------------------------------------
# Printing: entries, sums and products here; elementwise operations through
# their registry forms, with each operand printed as an index expression
# ---------------------------------------------------------------------------

_SUM_PREC = ADD - 1  # Σₜ a + b is ambiguous: a sum inside a sum keeps its parentheses


class _IndexPrinting:
    """Mixin over a model-expression printer: prints :data:`Ix` trees."""

    slots: dict[str, tuple[str, int]]

    def ix(self, x: Ix) -> str:
        return getattr(self, "_ix_" + type(x).__name__, self._ix_const)(x)

    def ix_prec(self, x: Ix) -> int:
        if isinstance(x, Entry):
            return ATOM
        if isinstance(x, Sum):
            return _SUM_PREC
        if isinstance(x, Product | Scaled):
            return MUL
        if isinstance(x, FirstMax):
            return ATOM
        if isinstance(x, Apply):
            return x.node.op.prec
        return self.prec_of(x)  # type: ignore[attr-defined]

    def ix_operand(self, x: Ix, prec: int) -> str:
        s = self.ix(x)
        return f"{self.open_paren}{s}{self.close_paren}" if self.ix_prec(x) < prec else s  # type: ignore[attr-defined]

    def operand_text(self, e: Basic) -> str:
        """An operand named in a note, whole."""
        return "∂L/∂" + text_name(e.of) if isinstance(e, GradSymbol) else self.doprint(e)  # type: ignore[attr-defined]

    def operand_latex(self, e: Basic) -> str:
        if isinstance(e, GradSymbol):
            return r"\partial \mathcal{L}/\partial " + latex_name(e.of)
        return self.doprint(e)  # type: ignore[attr-defined]

    def _ix_FirstMax(self, x: FirstMax) -> str:  # noqa: N802
        """``[A[i,j,k,l] is the first maximum of window (⌈j/2⌉,⌈k/2⌉)]``."""
        entry = self.ix(Entry(x.value, x.index))
        window = ",".join(self.position(t) for t in x.window if t)
        return self.bracket(entry, f"is the first maximum of its window ({window})")

    def _ix_const(self, x: Basic) -> str:
        return self.doprint(x)  # type: ignore[attr-defined]

    def _ix_Apply(self, x: Apply) -> str:  # noqa: N802
        """The registry form of the operation, over one slot per operand."""
        saved = dict(self.slots)
        children: list[Basic] = []
        for k, arg in enumerate(x.args):
            if isinstance(arg, Basic) and is_const(arg):
                children.append(arg)
                continue
            slot = f"\x00slot{len(self.slots)}_{k}"
            self.slots[slot] = (self.ix(arg), self.ix_prec(arg))
            children.append(MatrixSymbol(slot, 1, 1))
        template = x.node.func(*children, *x.node.attrs)
        try:
            return self.doprint(template)  # type: ignore[attr-defined]
        finally:
            self.slots = saved

    def prec_of(self, e: Basic) -> int:
        if isinstance(e, MatrixSymbol) and e.name in self.slots:
            return self.slots[e.name][1]
        return super().prec_of(e)  # type: ignore[misc]

    def _print_MatrixSymbol(self, e: MatrixSymbol) -> str:  # noqa: N802
        if e.name in self.slots:
            return self.slots[e.name][0]
        return super()._print_MatrixSymbol(e)  # type: ignore[misc]


class IndexLatexPrinter(_IndexPrinting, LatexPrinter):
    """Index notation in LaTeX: ``\\sum_{t=1}^{m} \\frac{∂L}{∂Z_{it}} X_{jt}``."""

    def __init__(self) -> None:
        super().__init__()
        self.slots = {}

    def _entry_name(self, base: Basic, idx: str) -> str:
        body = self.doprint(base) if not isinstance(base, GradSymbol) else latex_name(base.of)
        if not idx:
            return body
        if isinstance(base, OpNode):
            return r"\left[" + body + r"\right]_{" + idx + "}"
        if "_{" in body or "^" in body:
            return "(" + body + ")_{" + idx + "}"
        return body + "_{" + idx + "}"

    @staticmethod
    def position(t: str) -> str:
        """A window position: ``ceil(j/2)`` as ``\\lceil j/2\\rceil``."""
        return _ceilings(t, r"\lceil ", r"\rceil ").rstrip()

    def bracket(self, entry: str, words: str) -> str:
        head, _, window = words.rpartition(" (")
        return rf"\left[{entry} \text{{ {head} }}({window}\right]"

    def _ix_Entry(self, x: Entry) -> str:  # noqa: N802
        letters = [self.position(t) for t in x.index if t]
        idx = ("," if any(len(t) > 1 for t in letters) else "").join(letters)
        if isinstance(x.base, GradSymbol):
            return r"\frac{\partial \mathcal{L}}{\partial " + self._entry_name(x.base, idx) + "}"
        return self._entry_name(x.base, idx)

    def _ix_Sum(self, x: Sum) -> str:  # noqa: N802
        sums = "".join(rf"\sum_{{{t}=1}}^{{{self.doprint(n)}}} " for t, n in x.indices)
        return sums + self.ix_operand(x.body, MUL)

    def _ix_Product(self, x: Product) -> str:  # noqa: N802
        return " ".join(self.ix_operand(f, MUL + 1) for f in x.factors)

    def _ix_Scaled(self, x: Scaled) -> str:  # noqa: N802
        return f"{self.doprint(x.coeff)} {self.ix_operand(x.body, MUL)}"


class IndexTextPrinter(_IndexPrinting, TextPrinter):
    """Index notation in Unicode: ``Σₜ ∂L/∂Z[i,t] X[j,t]``."""

    def __init__(self) -> None:
        super().__init__()
        self.slots = {}

    def _ix_Entry(self, x: Entry) -> str:  # noqa: N802
        idx = ",".join(self.position(t) for t in x.index if t)
        if isinstance(x.base, GradSymbol):
            name = "∂L/∂" + text_name(x.base.of)
        elif isinstance(x.base, OpNode):
            name = self.operand(x.base, ATOM)
        else:
            name = text_name(x.base.name)  # type: ignore[attr-defined]
        return f"{name}[{idx}]" if idx else name

    @staticmethod
    def position(t: str) -> str:
        """A window position: ``ceil(j/2)`` as ``⌈j/2⌉``."""
        return _ceilings(t, "⌈", "⌉")

    def bracket(self, entry: str, words: str) -> str:
        return f"[{entry} {words}]"

    def _ix_Sum(self, x: Sum) -> str:  # noqa: N802
        sums = " ".join("Σ" + text_subscript(t) for t, _ in x.indices)
        return f"{sums} {self.ix_operand(x.body, MUL)}"

    def _ix_Product(self, x: Product) -> str:  # noqa: N802
        return " ".join(self.ix_operand(f, MUL + 1) for f in x.factors)

    def _ix_Scaled(self, x: Scaled) -> str:  # noqa: N802
        coeff = self.doprint(x.coeff)
        if self.prec_of(x.coeff) < ATOM:
            coeff = f"({coeff})"
        return f"{coeff} {self.ix_operand(x.body, MUL)}"


def latex(x: Ix) -> str:
    return IndexLatexPrinter().ix(x)


def text(x: Ix) -> str:
    return IndexTextPrinter().ix(x)


__all__ = [
    "Apply", "Entry", "FirstMax", "IndexEquation", "Ix", "Note", "Product", "Scaled", "Sum",
    "gradient_index", "latex", "text", "to_index", "sympy", "windowed",
]
