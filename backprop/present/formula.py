"""One piece of mathematics in both notations the notes print: LaTeX and Unicode text.

Every format writes the same formulas; this module prints each once, in both notations, and knows
where a long sum may break over rows. It is separate from the layout (:mod:`backprop.present.layout`)
because it knows nothing of derivations: only expressions, names and shapes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape
from backprop.expr.ops_row import ADD, MUL
from backprop.expr.printing import LatexPrinter, TextPrinter
from backprop.support.notation import display_width, latex_name, text_name


@dataclass(frozen=True)
class Formula:
    """One piece of mathematics in both notations.

    ``pieces``: the same formula cut at its top-level ``+``/``−`` (each piece
    after the first starts with its operator), where a long line may break.
    """

    latex: str
    text: str
    pieces: tuple[Formula, ...] = ()
    #: the expression printed, for :meth:`latex_rows` to break inside it when the pieces are too long
    expr: Basic | None = field(default=None, compare=False, repr=False)

    def rows(self, width: int) -> list[Formula]:
        """The formula over as few rows as keep each under ``width`` columns of text."""
        if display_width(self.text) <= width or len(self.pieces) < 2:
            return [self]
        rows: list[list[Formula]] = [[]]
        used = 0
        for p in self.pieces:
            w = display_width(p.text) + 1
            if rows[-1] and used + w > width:
                rows.append([])
                used = 0
            rows[-1].append(p)
            used += w
        return [join_formulas(r, " ", " ") for r in rows]

    def latex_rows(self, width: int) -> list[str]:
        r"""The LaTeX over rows of at most about ``width`` text columns, as ``multline`` breaks a
        long formula: at its top-level ``+``/``−``, and where a row is still too long, before any
        sum's or product's operator outside a fraction or a script (an open ``\left(`` closes with
        ``\right.`` at the end of the row and reopens with ``\left.``). A formula no row can hold
        (one long factor) keeps that factor whole."""
        rows = self.rows(width)
        if self.expr is None or all(display_width(r.text) <= width for r in rows):
            return [r.latex for r in rows]
        segments = _segments(self.expr)
        if segments is None:
            return [r.latex for r in rows]
        lines: list[list[tuple[str, str]]] = [[]]
        used = 0
        for tex, txt in segments:
            w = display_width(txt)
            if lines[-1] and used + w > width:
                lines.append([])
                used = 0
            lines[-1].append((tex, txt))
            used += w
        out, depth = [], 0
        for line in lines:
            tex = "".join(t for t, _ in line)
            opened = depth
            depth += len(_LEFT.findall(tex)) - len(_RIGHT.findall(tex))
            out.append(r"\left." * opened + tex.strip() + r"\right." * depth)
        return out


_LATEX = LatexPrinter()
_TEXT = TextPrinter()


def formula(e: Basic) -> Formula:
    with _LATEX.memoized(), _TEXT.memoized():
        latex, text = _LATEX.doprint(e), _TEXT.doprint(e)
        pieces = [Formula(a, b) for a, b in zip(_pieces(e, _LATEX), _pieces(e, _TEXT))]
    return Formula(latex, text, tuple(pieces) if len(pieces) > 1 else (), expr=e)


#: Where a row may end: before the operator of a binary sum or product, numbered by node (see :class:`_Marked`).
_MARK = re.compile("\x00([0-9]+)\x01")
_LEFT = re.compile(r"\\left(?![A-Za-z])")
_RIGHT = re.compile(r"\\right(?![A-Za-z])")


class _Marked:
    """Mixin: print a break mark before the operator of every binary sum and product, found as
    what follows the printed left operand (so any registry form works; a form that prints its
    operands in another order gets no mark)."""

    def __init__(self, ids: dict[Basic, int]) -> None:
        super().__init__()
        self.ids = ids  # shared by the two notations: a mark is kept only where both print one

    def _print_OpNode(self, e: OpNode) -> str:  # noqa: N802 - SymPy dispatch name
        out: str = super()._print_OpNode(e)  # type: ignore[misc]
        if e.op.arity != 2 or e.op.prec not in (ADD, MUL):
            return out
        for prec in (e.op.prec, e.op.prec + 1):
            left: str = self.operand(e.children[0], prec)  # type: ignore[attr-defined]
            if out.startswith(left) and len(out) > len(left):
                return f"{left}\x00{self.ids.setdefault(e, len(self.ids))}\x01{out[len(left):]}"
        return out


class _MarkedLatex(_Marked, LatexPrinter):
    pass


class _MarkedText(_Marked, TextPrinter):
    pass


def _segments(e: Basic) -> list[tuple[str, str]] | None:
    """The formula cut at every mark outside braces, as (LaTeX, text) pairs; None when the two
    notations do not mark the same places."""
    ids: dict[Basic, int] = {}
    tex_printer, text_printer = _MarkedLatex(ids), _MarkedText(ids)
    with tex_printer.memoized(), text_printer.memoized():
        marked = tex_printer.doprint(e), text_printer.doprint(e)
    both = set(_MARK.findall(marked[0])) & set(_MARK.findall(marked[1]))
    tex, txt = (_MARK.split(_MARK.sub(lambda m: m.group() if m.group(1) in both else "", s)) for s in marked)
    if tex[1::2] != txt[1::2]:
        return None
    tex, txt = tex[::2], txt[::2]
    out: list[tuple[str, str]] = []
    depth = 0
    for t, x in zip(tex, txt):
        if out and depth:  # a mark inside {...} (a fraction, a script) cannot end a row
            out[-1] = (out[-1][0] + t, out[-1][1] + x)
        else:
            out.append((t, x))
        depth += _braces(t)
    return out


def _braces(tex: str) -> int:
    """Net ``{`` minus ``}`` in LaTeX source (escaped braces ``\\{`` do not count)."""
    plain = re.sub(r"\\[{}]", "", tex)
    return plain.count("{") - plain.count("}")


def _pieces(e: Basic, printer: LatexPrinter | TextPrinter) -> list[str]:
    """``a + b − c`` as ``["a", "+ b", "− c"]``: the left spine of a sum, cut where
    each operator starts (read off the printed forms, so any registry form works)."""
    spine = []
    x = e
    while isinstance(x, OpNode) and x.op.prec == ADD and x.op.arity == 2:
        spine.append(x)
        x = x.children[0]
    pieces = [printer.doprint(x)]
    for node in reversed(spine):
        full, left = printer.doprint(node), printer.operand(node.children[0], ADD)
        if not full.startswith(left):
            return [printer.doprint(e)]
        pieces.append(full[len(left) :].strip())
    return pieces


def shape_formula(shape: Shape) -> Formula:
    if ir.is_scalar_shape(shape):
        return Formula(r"\text{scalar}", "scalar")
    return Formula(r" \times ".join(_LATEX.doprint(d) for d in shape), ir.fmt_shape(shape))


def name_formula(name: str) -> Formula:
    return Formula(latex_name(name), text_name(name))


def grad_formula(name: str) -> Formula:
    return Formula(r"\frac{\partial \mathcal{L}}{\partial " + latex_name(name) + "}", "∂L/∂" + text_name(name))


def partial_formula(of: str, wrt: str) -> Formula:
    """The symbolic local derivative ∂of/∂wrt."""
    return Formula(
        r"\frac{\partial " + latex_name(of) + r"}{\partial " + latex_name(wrt) + "}",
        f"∂{text_name(of)}/∂{text_name(wrt)}",
    )


def join_formulas(parts: Sequence[Formula], latex_sep: str, text_sep: str) -> Formula:
    """Parts side by side; a ``+`` join can break between the parts."""
    latex = latex_sep.join(p.latex for p in parts)
    text = text_sep.join(p.text for p in parts)
    if latex_sep.strip() != "+" or len(parts) < 2:
        return Formula(latex, text)
    pieces = [parts[0]] + [Formula("+ " + p.latex, "+ " + p.text) for p in parts[1:]]
    return Formula(latex, text, tuple(pieces))


def unordered(e: Basic) -> object:
    """``e`` up to the order of a sum's terms and of a scalar product's factors: λ · W + ∂L/∂Z Hᵀ
    and ∂L/∂Z Hᵀ + W · λ have one key."""
    if not isinstance(e, OpNode):
        return e
    if e.op.name == "add" or (e.op.name == "mul" and any(ir.is_scalar(c) for c in e.children)):
        same = [e]
        flat: list[Basic] = []
        while same:
            x = same.pop()
            if isinstance(x, OpNode) and x.op.name == e.op.name and (
                    x.op.name == "add" or any(ir.is_scalar(c) for c in x.children)):
                same += x.children
            else:
                flat.append(x)
        return e.op.name, tuple(sorted((unordered(x) for x in flat), key=repr))
    return e.op.name, tuple(unordered(a) for a in e.args)
