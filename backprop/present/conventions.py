"""Notation defined in words where the notes first use it: the sums' names and the Iverson bracket.

A student reading Σₜ(∂L/∂Z) or [Z₁ > 0] needs to be told once what it means, in the first section
whose equations use it (the legend states the bracket itself when a rule's formula has one). This
pass reads the laid-out notes -- the very text printed, so whatever form printed a sum or a mask is
covered -- and adds the sentence to that section's introduction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from backprop.expr.ops_reduce import SUM_NAMES

if TYPE_CHECKING:  # the layout calls this pass: its types only, no import cycle
    from backprop.present.layout import Section

#: A sum's name as the text form prints it, applied: Σₜ(…), Σ(…), colsum(…).
_SUM_CALLS = {name: re.compile(re.escape(name) + r"\(") for name in SUM_NAMES}
#: An Iverson bracket as the text form prints a mask: [Z₁ > 0], [A ≤ B].
_BRACKET = re.compile(r"\[[^\[\]]* (?:>|<|≥|≤) [^\[\]]*\]")
BRACKET_TEXT = "A bracket such as [Z > 0] is 1 where the condition holds and 0 where it does not (the Iverson bracket)."
BRACKET_LATEX = (r"A bracket such as $\left[Z > 0\right]$ is 1 where the condition holds and 0 where it does not "
                 "(the Iverson bracket).")


def _texts(section: Section) -> list[str]:
    """Every formula the section prints, as text."""
    return [f.text for b in section.blocks for line in b.lines for f in (line.lhs, line.rhs) if f is not None]


def _sums(texts: Iterable[str]) -> list[str]:
    joined = "\n".join(texts)
    return [name for name, pattern in _SUM_CALLS.items() if pattern.search(joined)]


def _uses_bracket(section: Section) -> bool:
    return any(_BRACKET.search(t) for t in _texts(section))


def _defines_bracket(section: Section) -> bool:
    """The legend states the bracket itself when a rule's formula has one."""
    return bool(section.legend) and section.intro is not None and "Iverson" in section.intro.text


def _first(sections: Sequence[Section], test: Callable[[Section], bool]) -> int | None:
    return next((k for k, s in enumerate(sections) if test(s)), None)


def _meaning(name: str, examples: tuple[str, str] | None) -> tuple[str, str]:
    """What a sum name means; Σₜ said as the sum over the m examples where they are columns."""
    if name == "Σₜ" and examples is not None:
        m_text, m_latex = examples
        return (f"Σₜ adds each row over its {m_text} columns t: over the examples",
                rf"$\sum_{{t}}$ adds each row over its ${m_latex}$ columns $t$: over the examples")
    return SUM_NAMES[name]


def definitions(sections: Sequence[Section], examples: tuple[str, str] | None = None) -> dict[int, list[tuple[str, str]]]:
    """Sentences (text, LaTeX text mode) to add to the introduction of the section at each index:
    every sum name the notes print, defined in the first section that prints one; the Iverson
    bracket, in the first section that prints one, unless the legend defined it before.
    ``examples``: the count of examples (text, LaTeX) when they are a matrix's columns."""
    out: dict[int, list[tuple[str, str]]] = {}
    names = _sums(t for s in sections for t in _texts(s))
    where = _first(sections, lambda s: bool(_sums(_texts(s))))
    if names and where is not None:
        said = [_meaning(n, examples) for n in names]
        text = "; ".join(t for t, _ in said)
        out.setdefault(where, []).append((text[0].upper() + text[1:] + ".", "; ".join(x for _, x in said) + "."))
    bracket = _first(sections, lambda s: _uses_bracket(s) or _defines_bracket(s))
    if bracket is not None and not _defines_bracket(sections[bracket]):
        out.setdefault(bracket, []).append((BRACKET_TEXT, BRACKET_LATEX))
    return out
