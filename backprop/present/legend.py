"""The rules a derivation cites, each defined once: the legend the backward steps refer to by name.

A backward step cites a registry rule by its name ("matrix product, left factor"); the rule's
formula, written in placeholders that no name of a spec renders as (𝒰, 𝒱, ... from
:data:`~backprop.support.notation.PLACEHOLDERS`), is stated once, here, however many layers
apply it. Rules sharing a name (addition, for its two operands) form one entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from backprop.support.notation import PLACEHOLDERS, math_to_latex, rule_parts

#: The legend's section title.
T_RULES = "Rules (each cited by name in the backward pass)"


@dataclass(frozen=True)
class LegendEntry:
    """One rule name and its formulas (none for a rule that is only a sentence), text and LaTeX."""

    name: str
    formulas: tuple[str, ...]

    @property
    def formulas_latex(self) -> tuple[str, ...]:
        return tuple(math_to_latex(f) for f in self.formulas)


def rule_name(rule: str) -> str:
    """The name a step cites a rule by: the text before its formula."""
    return rule_parts(rule)[0]


def legend(rules: Iterable[str]) -> tuple[LegendEntry, ...]:
    """One entry per rule name, in the order the rules are first cited."""
    by_name: dict[str, list[str]] = {}
    for r in rules:
        name, f = rule_parts(r)
        forms = by_name.setdefault(name, [])
        if f is not None and f not in forms:
            forms.append(f)
    return tuple(LegendEntry(name, tuple(fs)) for name, fs in by_name.items())


def legend_intro(entries: Iterable[LegendEntry]) -> tuple[str, str]:
    """What the legend's notation means (text, LaTeX text mode): the placeholders; the derivative
    form of an elementwise function; the Iverson bracket, where a rule or step uses it."""
    formulas = [f for e in entries for f in e.formulas]
    order = ["𝒰", "𝒱", *PLACEHOLDERS.values()]
    used = sorted({ch for f in formulas for ch in f if ch in PLACEHOLDERS.values()}, key=order.index)
    text = latex = "Each backward step below cites these rules by name."
    if used:
        what = "is a placeholder" if len(used) == 1 else "are placeholders"
        text += (f" {', '.join(used)} {what} for any operand or result (script letters: never a name in this "
                 "network).")
        latex += (" " + ", ".join("$" + math_to_latex(u) + "$" for u in used) + f" {what} for any operand or "
                  "result (script letters: never a name in this network).")
        if "𝒱" in used:
            text += " ∂L/∂(𝒰 + 𝒱) is the gradient arriving at the result 𝒰 + 𝒱."
            latex += (r" $\partial \mathcal{L}/\partial (\mathcal{U} + \mathcal{V})$ is the gradient arriving at "
                      r"the result $\mathcal{U} + \mathcal{V}$.")
    if any("′(" in f for f in formulas):
        text += " An elementwise function f passes back ∂L/∂𝒰 = ∂L/∂f(𝒰) ⊙ f′(𝒰), entry by entry."
        latex += (r" An elementwise function $f$ passes back $\partial \mathcal{L}/\partial \mathcal{U} = "
                  r"\partial \mathcal{L}/\partial f(\mathcal{U}) \odot f'(\mathcal{U})$, entry by entry.")
    if any("[𝒰 >" in f or "[𝒰 ≤" in f or "[𝒰 ≥" in f or "[𝒰 <" in f for f in formulas):
        text += " A bracket [𝒰 > 0] is 1 where the condition holds and 0 where it does not (the Iverson bracket)."
        latex += (r" A bracket $\left[\mathcal{U} > 0\right]$ is 1 where the condition holds and 0 where it "
                  "does not (the Iverson bracket).")
    return text, latex
