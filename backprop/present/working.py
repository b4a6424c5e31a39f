"""A backward step's working, one line per rule: what a student writes between the chain rule and the result.

The chain rule walks each equation from its result down to the variable, one registry rule per
operation (:class:`~backprop.engine.derivation.Link`). The notes print that walk as it happened:
the gradient arriving at each part of the equation, with the rule that produced it named beside
the line (rules passing the same gradient on, down a sum of many terms, are one line); then
every simplification that used a fact about the inputs (a one-hot column sums to 1, Sᵀ = S for a
symmetric S), with the fact named; then any gradient from above substituted in.
``backprop derive --brief`` prints the compact form instead (the result and the rules' names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.derivation import Derivation, Link, Path, Step
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.printing import GradSymbol
from backprop.language.domains import domain
from backprop.language.model import Domains
from backprop.present.formula import Formula, formula, join_formulas
from backprop.present.legend import rule_name
from backprop.support.escape import tex_text
from backprop.support.notation import latex_name, text_name


@dataclass(frozen=True)
class Why:
    """What made a line, printed beside it: a rule by name (``cites``), or a sentence (``text``, ``latex``:
    a fact the simplification used, a gradient substituted from above)."""

    text: str
    latex: str
    cites: str | None = None


@dataclass(frozen=True)
class WorkLine:
    """``∂L/∂(part) = gradient`` (``lhs`` None: the step's own equation continues) and why it holds."""

    lhs: Formula | None
    rhs: Formula
    why: Why | None


def by_rule(rule: str) -> Why:
    name = rule_name(rule)
    return Why(f"by {name}", f"by {tex_text(name)}", cites=name)


def via_groups(paths: Sequence[Path]) -> list[tuple[str, list[Path]]]:
    """The paths of a step grouped by the variable whose equation they start from, in order."""
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(p.via, []).append(p)
    return list(groups.items())


# --- ∂L/∂(a part of an equation) ------------------------------------------------

_OPEN, _CLOSE = "([{", ")]}"


def _whole(text: str) -> bool:
    """Whether a printed operand needs no parentheses after ∂L/∂: a name, one function applied
    (σ(Z), Σₜ(A)), a block [U, V]; not a product, a sum or a negation (nothing outside brackets
    but the operand's own letters)."""
    depth = 0
    for ch in text:
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth == 0 and (ch.isspace() or ch in "+−-⊙/·*⁰¹²³⁴⁵⁶⁷⁸⁹⁻"):  # W² and S⁻¹ as (W²), (S⁻¹)
            return False
    return True


def operand_grad(e: Basic) -> Formula:
    """∂L/∂e for a part ``e`` of an equation: ∂L/∂(W₂ A₁), ∂L/∂logsoftmax(Z₂), ∂L/∂A₁."""
    if isinstance(e, MatrixSymbol):
        return Formula(r"\frac{\partial \mathcal{L}}{\partial " + latex_name(e.name) + "}", "∂L/∂" + text_name(e.name))
    f = formula(e)
    whole = _whole(f.text)
    text = f.text if whole else f"({f.text})"
    tex = f.latex if whole else rf"\left({f.latex}\right)"
    return Formula(r"\frac{\partial \mathcal{L}}{\partial " + tex + "}", "∂L/∂" + text)


# --- the facts a simplification used --------------------------------------------


@dataclass(frozen=True)
class _Words:
    """How a fact prints a name, its transpose and a formula within the sentence, in one notation."""

    name: str
    top: str
    math: Callable[[str], str]


def facts_used(total: Basic, full: Basic, domains: Domains) -> list[Why]:
    """The facts about the inputs that turn ``total`` into ``full`` (simplified with them): each
    input whose domain, when simplification may not use it, leaves a different result."""
    out: list[Why] = []
    names = sorted({s.name for s in total.atoms(MatrixSymbol)
                    if not isinstance(s, GradSymbol) and domain(domains.get(s.name)).fact is not None})
    for n in names:
        if simplify(total, domains, unused=frozenset({n})) == full:
            continue
        fact = domain(domains.get(n)).fact
        assert fact is not None
        axis, rank = domains.class_axes.get(n, 0), len(ir.shape_of(next(
            s for s in total.atoms(MatrixSymbol) if s.name == n)))
        t = fact(_Words(text_name(n), text_name(n) + "ᵀ", lambda s: s), axis, rank)
        tex = fact(_Words(latex_name(n), latex_name(n) + r"^{\top}", lambda s: f"${s}$"), axis, rank)
        out.append(Why(f"since {t}", f"since {tex}"))
    return out


def _joined(whys: Sequence[Why]) -> Why | None:
    if not whys:
        return None
    return Why("since " + "; ".join(w.text.removeprefix("since ") for w in whys),
               "since " + "; ".join(w.latex.removeprefix("since ") for w in whys))


# --- the working of one step ----------------------------------------------------


#: A step whose working would take more lines than this is printed in the compact form (its result
#: and the rules' names): a chain nested a hundred deep in one equation is no page of notes.
MAX_WORKING = 40


def shown_links(d: Derivation, p: Path) -> list[Link]:
    """The links of a path the notes print: a run of rules that each pass the gradient on unchanged
    (down the terms of a sum) is one line, for the last operand it reaches, named by the last rule:
    a loss of 1,000 terms gives each term one line, not 1,000."""
    trail = p.trail
    arriving = sympy.Integer(1) if p.via == d.loss.name else d.step(p.via).grad  # a dict lookup, not a scan
    before = [arriving, *(k.grad for k in trail[:-1])]
    passing = [k.grad == b for k, b in zip(trail, before)]
    return [k for i, k in enumerate(trail) if not (passing[i] and i + 1 < len(trail) and passing[i + 1])]


def worked(d: Derivation, s: Step) -> bool:
    """Whether the notes show the step's working (see :data:`MAX_WORKING`)."""
    return sum(len(shown_links(d, p)) for p in s.paths) <= MAX_WORKING


def working(d: Derivation, s: Step, chain_term: Callable[[str, str], Formula]) -> list[WorkLine]:
    """The lines between a step's chain rule and its result (see the module docstring)."""
    domains = d.model.domains()
    out: list[WorkLine] = []
    multi = len(s.paths) > 1
    for via, ps in via_groups(s.paths):
        for use, p in enumerate(ps, 1):
            trail = shown_links(d, p)
            for k, link in enumerate(trail):
                last = k == len(trail) - 1
                lhs = operand_grad(link.operand)
                if last and multi:  # one term of the chain rule's sum: named as the chain rule names it
                    lhs = chain_term(via, s.target)
                    if len(ps) > 1:  # the variable is used more than once in the same equation
                        lhs = Formula(lhs.latex + rf"\quad \text{{(use {use})}}", f"{lhs.text} (use {use})")
                out.append(WorkLine(lhs, formula(simplify(link.grad, domains, facts=False)), by_rule(link.rule)))
    total: Basic | None = None
    for p in s.paths:
        c = simplify(p.expr, domains, facts=False)
        if total is None:
            total = c
        elif formula(c).text.startswith("−"):  # a − b, not a + −b
            total = ir.sub(total, simplify(ir.neg(c), domains, facts=False))
        else:
            total = ir.add(total, c)
    if total is None:
        return out
    if multi:  # the terms side by side, then added up
        out.append(WorkLine(None, formula(total), None))
    plain = simplify(total, domains, facts=False)
    out.append(WorkLine(None, formula(plain), None))
    if s.recursive != plain:
        out.append(WorkLine(None, formula(s.recursive), _joined(facts_used(total, s.recursive, domains))))
    if s.inlined:
        used = sorted(s.recursive.atoms(GradSymbol) - s.result.atoms(GradSymbol), key=lambda g: g.name)
        names = join_formulas([formula(g) for g in used], ", ", ", ")
        out.append(WorkLine(None, formula(s.result), Why(f"with {names.text} from above",
                                                         f"with ${names.latex}$ from above")))
    return out
