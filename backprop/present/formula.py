"""One piece of mathematics in both notations the notes print: LaTeX and Unicode text.

Every format writes the same formulas; this module prints each once, in both notations, and knows
where a long sum may break over rows. It is separate from the layout (:mod:`backprop.present.layout`)
because it knows nothing of derivations: only expressions, names and shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sympy import Basic

from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape
from backprop.expr.ops_row import ADD
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


_LATEX = LatexPrinter()
_TEXT = TextPrinter()


def formula(e: Basic) -> Formula:
    with _LATEX.memoized(), _TEXT.memoized():
        latex, text = _LATEX.doprint(e), _TEXT.doprint(e)
        pieces = [Formula(a, b) for a, b in zip(_pieces(e, _LATEX), _pieces(e, _TEXT))]
    return Formula(latex, text, tuple(pieces) if len(pieces) > 1 else ())


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

