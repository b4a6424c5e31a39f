"""What the lecture notes say, independent of the format: sections of aligned equation lines.

A :class:`~backprop.engine.derivation.Derivation` is laid out once (:func:`layout`: sections of
aligned equation lines, each line's formulas in LaTeX and in Unicode, the rules each backward step
cites) and then written by one small module per format (:mod:`backprop.present.text`,
:mod:`~backprop.present.latex`, :mod:`~backprop.present.markdown`, :mod:`~backprop.present.jsondoc`).
Every formula comes from :mod:`backprop.present.formula` (and :mod:`backprop.present.index`);
rule text comes from the operation registry, converted to LaTeX by :mod:`backprop.support.notation`.

Layout of the notes, as a course prints them: the variables and their shapes,
the forward pass, then the backward pass one step at a time from the loss
back (the chain rule with symbolic partials, one term per use of the
variable; the local derivatives applied; the result; the rules cited), each
parameter's gradient, optionally fully expanded and entry by entry (index
notation), and the gradient-descent update of every parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.derivation import Derivation, Step
from backprop.engine.optim import get_optimizer
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.ir import OpNode
from backprop.expr.printing import GradSymbol, latex
from backprop.language.domains import domain
from backprop.language.domains import parse as parse_domain
from backprop.present.conventions import definitions
from backprop.present.formula import (
    Formula,
    formula,
    grad_formula,
    join_formulas,
    name_formula,
    partial_formula,
    shape_formula,
    unordered,
)
from backprop.present.index import Entry, gradient_index, value_index, windowed
from backprop.present.legend import T_RULES, LegendEntry, legend, legend_intro, rule_name
from backprop.present.working import Why, via_groups, worked, working
from backprop.support.escape import tex_text
from backprop.support.notation import latex_name, text_name

#: Section titles, in order.
T_VARIABLES = "Variables"
T_FORWARD = "Forward pass"
T_BACKWARD = "Backward pass (chain rule, from the loss back)"
T_GRADIENTS = "Gradients"
T_EXPANDED = "Gradients, fully expanded"
T_INDEX = "Gradients, one entry at a time (index notation)"
T_UPDATE = "Update (gradient descent, learning rate α)"


@dataclass(frozen=True)
class Prose:
    """A sentence that may hold mathematics: plain text, and its LaTeX (text mode)."""

    text: str
    latex: str


@dataclass(frozen=True)
class Line:
    """``lhs rel rhs`` with the value's shape; ``lhs`` None continues the line above. ``why``: the
    rule or fact that gave the line, printed beside it; ``depth`` 1: a line of a step's working (the
    gradient arriving at a part of an equation), set in from the step's own lines."""

    lhs: Formula | None
    rhs: Formula
    rel: str = "="
    shape: Formula | None = None
    why: Why | None = None
    depth: int = 0


@dataclass(frozen=True)
class RuleGroup:
    """The registry rules one use of a variable went through; ``via`` labels it."""

    via: Formula | None
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    """Lines aligned together, then the rules they cite; ``step``: a backward step, kept on one page."""

    lines: tuple[Line, ...]
    rules: tuple[RuleGroup, ...] = ()
    step: bool = False

    @property
    def cited(self) -> tuple[str, ...]:
        """The rule names the block cites, in its list or beside its lines."""
        listed = [r for g in self.rules for r in g.rules]
        beside = [ln.why.cites for ln in self.lines if ln.why is not None and ln.why.cites is not None]
        return tuple(dict.fromkeys(listed + beside))


@dataclass(frozen=True)
class Row:
    """A variable in the table of variables."""

    name: Formula
    shape: Formula
    role: str


@dataclass(frozen=True)
class Section:
    title: str
    intro: Prose | None = None
    blocks: tuple[Block, ...] = ()
    table: tuple[Row, ...] = ()
    legend: tuple[LegendEntry, ...] = ()


@dataclass
class Notes:
    title: str
    name: str
    summary: str | None
    sections: list[Section] = field(default_factory=list)


def spec_summary(d: Derivation) -> str | None:
    """The first sentence of the spec's leading comment: what the network is. A sentence that
    runs on over several comment lines is joined, not cut mid-way."""
    words: list[str] = []
    for line in d.model.about():
        if not line:
            break
        words.append(line)
        if line.endswith((".", "!", "?", ":")):
            break
    return " ".join(words) or None


def needed_steps(d: Derivation, param: str | None) -> list[Step]:
    """The steps ∂L/∂param needs (all of them without ``param``), in backward order."""
    if param is None:
        return list(d.steps)
    if param not in d.params:
        raise ValueError(f"unknown parameter {param!r} (parameters: {', '.join(d.params)})")
    need = {param}
    for s in reversed(d.steps):  # users come first in d.steps, so walk back from the param
        if s.target in need:
            for e in (s.recursive, s.result, *(p.expr for p in s.paths)):
                need.update(g.of for g in e.atoms(GradSymbol))
    return [s for s in d.steps if s.target in need]


# --- sections -----------------------------------------------------------------


def _variables(d: Derivation) -> Section:
    rows = []
    classes = d.model.domains().class_axes
    for decl in d.model.decls.values():
        role = "parameter" if decl.kind == "param" else domain(decl.domain).role
        if decl.domain == "onehot" and (len(decl.shape), classes[decl.name]) != (2, 0):  # columns: the role above
            role = "input, one-hot rows" if len(decl.shape) == 2 else f"input, one-hot along axis {classes[decl.name]}"
        if decl.domain and (arg := parse_domain(decl.domain)[1]) is not None:  # labels(c): their range
            role = f"{role} 0..{arg}-1"
        rows.append(Row(name_formula(decl.name), shape_formula(decl.shape), role))
    return Section(T_VARIABLES, examples_intro(d), table=tuple(rows))


def examples_intro(d: Derivation) -> Prose | None:
    """How the examples lie, stated on the model's own data: the CS230 convention (examples are
    columns), CS231n's and PyTorch's (rows), or the axis a tensor keeps them on."""
    model = d.model
    data = next((x for x in model.inputs if not x.scalar and model.examples_axis(x.name) is not None), None)
    if data is None:
        return None
    axis = model.examples_axis(data.name)
    assert axis is not None
    count = data.shape[axis]
    name, shape = name_formula(data.name), shape_formula(data.shape)
    if len(data.shape) == 2:
        what, each = ("columns", "one column") if axis == 1 else ("rows", "one row")
        lead_text, lead_latex = f"Examples are {what}", f"Examples are {what}"
        per_text = per_latex = f"{each} per example"
    else:
        rest = shape_formula(tuple(x for k, x in enumerate(data.shape) if k != axis))
        lead_text = lead_latex = f"Examples run along axis {axis}"
        per_text, per_latex = f"one {rest.text} slice per example", f"one ${rest.latex}$ slice per example"
    return Prose(
        f"{lead_text}: {name.text} is {shape.text}, {per_text} ({count} examples).",
        f"{lead_latex}: ${name.latex}$ is ${shape.latex}$, {per_latex} (${latex(count)}$ examples).",
    )


def _example_columns(d: Derivation) -> tuple[str, str] | None:
    """The count of examples (text, LaTeX) when they are the columns of a matrix, else None."""
    model = d.model
    data = next((x for x in model.inputs if not x.scalar and model.examples_axis(x.name) is not None), None)
    if data is None or len(data.shape) != 2 or model.examples_axis(data.name) != 1:
        return None
    count = shape_formula((data.shape[1],))
    return count.text, count.latex


def loss_lhs(d: Derivation) -> Formula:
    loss = name_formula(d.loss.name)
    if loss.text == "L":
        return loss
    return Formula(r"\mathcal{L} = " + loss.latex, "L = " + loss.text)


def _forward(d: Derivation) -> Section:
    lines = []
    for eq in d.equations:
        lhs = loss_lhs(d) if eq is d.loss else name_formula(eq.name)
        lines.append(Line(lhs, formula(eq.expr), shape=shape_formula(eq.shape)))
        if eq is not d.loss and _tensor_valued(eq.expr):  # and entry by entry, as for the gradients
            ix = value_index(d, eq.name)
            # P[i,j] = softmax(Z)[i,j] says nothing; nor does a convolution's entry taken whole
            if not (isinstance(ix.rhs, Entry) and isinstance(ix.rhs.base, OpNode)) and not windowed(ix.rhs):
                (ll, _), (tl, _) = ix.latex(), ix.text()
                lines.append(Line(Formula(ll, tl), ix.rhs_formula()))
    lifted = [e.name for e in d.equations if e.lifted]
    intro = None
    if lifted:
        names = [name_formula(n) for n in lifted]
        what = "names the pre-activation" if len(lifted) == 1 else "name the pre-activations"
        intro = Prose(
            f"{', '.join(n.text for n in names)} {what} the spec writes inline.",
            f"{', '.join('$' + n.latex + '$' for n in names)} {what} the spec writes inline.",
        )
    return Section(T_FORWARD, intro, blocks=(Block(tuple(lines)),))


#: Top-level terms of the loss are pruned through these (dispatch on the op's name).
_ADDITIVE = {"add": ir.add, "sub": ir.sub}


def _terms_with(e: Basic, name: str) -> Basic:
    """The top-level terms of a sum that mention ``name`` (the others have ∂/∂name = 0)."""
    first, rest = _top_terms(e)
    out = first[0] if name in first[1] else sympy.Integer(0)
    for op, term, names in rest:
        out = _ADDITIVE[op](out, term if name in names else sympy.Integer(0))
    return out


_Term = tuple[Basic, frozenset[str]]


@lru_cache(maxsize=4)
def _top_terms(e: Basic) -> tuple[_Term, tuple[tuple[str, Basic, frozenset[str]], ...]]:
    """A sum's left spine, once per loss, not once per gradient: its first term, then each
    further term with its operator, each with the names it reads."""
    spine = []
    x = e
    while isinstance(x, OpNode) and x.op.name in _ADDITIVE:
        spine.append(x)
        x = x.children[0]

    def names(t: Basic) -> frozenset[str]:
        return frozenset(s.name for s in t.atoms(MatrixSymbol))

    rest = tuple((n.op.name, n.children[1], names(n.children[1])) for n in reversed(spine))
    return (x, names(x)), rest


def chain_term(d: Derivation, via: str, target: str) -> Formula:
    """∂L/∂via ∂via/∂target; for the loss itself, ∂/∂target of the terms that mention it."""
    if via == d.loss.name:
        body = formula(_terms_with(d.loss.expr, target))
        t = text_name(target)
        return Formula(
            r"\frac{\partial}{\partial " + latex_name(target) + r"} \left[" + body.latex + r"\right]",
            f"∂/∂{t} [{body.text}]",
        )
    return join_formulas([grad_formula(via), partial_formula(via, target)], " ", " ")


def chain_formula(d: Derivation, s: Step) -> Formula:
    """The chain rule for ∂L/∂target: one term per variable whose equation uses the target."""
    return join_formulas([chain_term(d, via, s.target) for via, _ in via_groups(s.paths)], " + ", " + ")


def _step_block(d: Derivation, s: Step, domains: dict[str, str | None], brief: bool) -> Block:
    groups = via_groups(s.paths)
    chain = chain_formula(d, s)
    lines = [Line(grad_formula(s.target), chain, shape=shape_formula(s.shape))]
    if not brief and worked(d, s):
        lines += _worked(d, s, chain)
        if _tensor_valued(s.result) and not windowed(gradient_index(d, s.target).rhs):
            lines.append(_index_line(d, s.target))
        return Block(tuple(lines), step=True)
    shown: set[object] = {chain.text}

    def more(e: Basic) -> None:
        f = formula(e)
        if f.text not in shown and (key := unordered(e)) not in shown:  # a line that only reorders says nothing
            lines.append(Line(None, f))
            shown.update((f.text, key))

    if len(s.paths) > 1:  # one term per path, each simplified on its own
        total: Basic | None = None
        for p in s.paths:
            c = simplify(p.expr, domains)
            total = c if total is None else ir.add(total, c)
        assert total is not None
        more(total)
    more(s.recursive)
    more(s.result)
    if _tensor_valued(s.result) and not windowed(gradient_index(d, s.target).rhs):  # beyond matrices the
        lines.append(_index_line(d, s.target))  # vectorized form alone is hard to check by hand
    if len(groups) == 1:  # each rule by name: the legend states it once
        rules = (RuleGroup(None, tuple(dict.fromkeys(rule_name(r) for r in s.rules))),)
    else:
        rules = tuple(
            RuleGroup(name_formula(via), tuple(dict.fromkeys(rule_name(r) for p in ps for r in p.rules)))
            for via, ps in groups
        )
    return Block(tuple(lines), rules, step=True)


def _worked(d: Derivation, s: Step, chain: Formula) -> list[Line]:
    """The step's working (:func:`~backprop.present.working.working`) as lines: each part's gradient
    set in, the step's own equation continued; a line that only repeats the one above is left out."""
    out: list[Line] = []
    shown: set[object] = {chain.text}
    for w in working(d, s, lambda via, target: chain_term(d, via, target)):
        if w.lhs is not None:
            out.append(Line(w.lhs, w.rhs, why=w.why, depth=1))
            if len(s.paths) == 1:
                shown = {chain.text, w.rhs.text, unordered(w.rhs.expr) if w.rhs.expr is not None else None}
            continue
        key = unordered(w.rhs.expr) if w.rhs.expr is not None else w.rhs.text
        if w.rhs.text in shown or key in shown:
            continue
        out.append(Line(None, w.rhs, why=w.why))
        shown.update((w.rhs.text, key))
    return out


def _cut_prose(d: Derivation) -> tuple[str, str]:
    """One sentence per place the forward pass cuts a path: no gradient flows through it."""
    texts, latexes = [], []
    for c in d.cuts:
        f, via = formula(c.expr), name_formula(c.via)
        texts.append(f" No gradient flows through {f.text} (in {via.text}).")
        latexes.append(f" No gradient flows through ${f.latex}$ (in ${via.latex}$).")
    return "".join(texts), "".join(latexes)


def _backward(d: Derivation, steps: Sequence[Step], brief: bool = False) -> Section:
    domains = d.model.domains()
    cut_text, cut_latex = _cut_prose(d)
    intro = Prose(
        "Each gradient sums one term per use of the variable; "
        "a gradient computed once is reused below, as backpropagation does." + cut_text,
        "Each gradient sums one term per use of the variable; "
        "a gradient computed once is reused below, as backpropagation does." + cut_latex,
    )
    if any(rule_name(r) == _RIGHT_FACTOR for s in steps for r in s.rules):
        order = _ORDER if brief else tuple(o.replace("the next line takes", "the lines under it take") for o in _ORDER)
        intro = Prose(intro.text + " " + order[0], intro.latex + " " + order[1])
    if not brief:
        intro = Prose(intro.text + " " + _WORKING[0], intro.latex + " " + _WORKING[1])
    return Section(T_BACKWARD, intro, blocks=tuple(_step_block(d, s, domains, brief) for s in steps))


#: How a step's working reads (the notes without --brief).
_WORKING = (
    "Under each chain rule, one line per rule: the gradient arriving at each part of the equation, from its "
    "result down to the variable, with the rule that gave it named beside it; then the simplification, "
    "naming any fact about the inputs it uses.",
    "Under each chain rule, one line per rule: the gradient arriving at each part of the equation, from its "
    "result down to the variable, with the rule that gave it named beside it; then the simplification, "
    "naming any fact about the inputs it uses.",
)


_RIGHT_FACTOR = "matrix product, right factor"
#: Why a step's second line may read in the other order than its chain-rule line.
_ORDER = (
    "A step's first line is the chain rule in the order it runs, from the loss back; the next line takes "
    "the matrix product, whose order the shapes fix: a right factor's gradient is 𝒰ᵀ ∂L/∂(𝒰 𝒱), so "
    "there the order turns around.",
    r"A step's first line is the chain rule in the order it runs, from the loss back; the next line takes "
    r"the matrix product, whose order the shapes fix: a right factor's gradient is "
    r"$\mathcal{U}^{\top}\,\partial \mathcal{L}/\partial (\mathcal{U}\,\mathcal{V})$, so there the order "
    "turns around.",
)


def _rules(steps: Sequence[Step]) -> Section:
    """Every rule the steps cite, defined once, before the first step cites it."""
    entries = legend(r for s in steps for r in s.rules)
    return Section(T_RULES, Prose(*legend_intro(entries)), legend=entries)


def _per_param(title: str, params: Iterable[str], line: Callable[[str], Line], intro: Prose | None = None) -> Section:
    return Section(title, intro, blocks=(Block(tuple(line(p) for p in params)),))


def layout(
    d: Derivation, *, param: str | None = None, expanded: bool = False, index: bool = False,
    per_param_updates: bool = False, brief: bool = False,
) -> Notes:
    """What the notes say, section by section (see the module docstring). ``brief``: each backward
    step as its result and the rules' names, without the working."""
    steps = needed_steps(d, param)
    params = [param] if param else d.params
    notes = Notes(f"Backpropagation through {d.model.name}", d.model.name, spec_summary(d))
    notes.sections += [_variables(d), _forward(d), _rules(steps), _backward(d, steps, brief)]

    def grad_line(p: str) -> Line:
        s = d.step(p)
        return Line(grad_formula(p), formula(s.result), shape=shape_formula(s.shape))

    notes.sections.append(_per_param(T_GRADIENTS, params, grad_line))
    if expanded:
        intro = Prose("Every gradient above substituted: forward quantities only.",
                      "Every gradient above substituted: forward quantities only.")
        notes.sections.append(_per_param(
            T_EXPANDED, params, lambda p: Line(grad_formula(p), formula(d.expanded(p))), intro))
    if index:
        notes.sections.append(_per_param(T_INDEX, params, lambda p: _index_line(d, p), _index_intro()))

    notes.sections.append(updates_section(d, params, per_param_updates))
    for k, sentences in definitions(notes.sections, _example_columns(d)).items():  # defined where first used
        intro = [notes.sections[k].intro] if notes.sections[k].intro else []
        notes.sections[k] = replace(notes.sections[k], intro=Prose(
            " ".join([p.text for p in intro] + [t for t, _ in sentences]),
            " ".join([p.latex for p in intro] + [tex for _, tex in sentences])))
    return notes


#: The generic parameter an optimizer's equations are shown for once (unless a spec names one so).
GENERIC = "theta"


def updates_section(d: Derivation, params: Sequence[str], per_param_updates: bool = False) -> Section:
    """The optimizer's update equations: one line per param when each has one (W ← W − α ∂L/∂W);
    an optimizer with running averages once, for a generic θ that stands for every param (the same
    five equations per param would fill pages), or each param's block with ``per_param_updates``."""
    opt = get_optimizer(d.optimizer)

    def lines(p: str, shape: ir.Shape) -> tuple[Line, ...]:
        return tuple(Line(formula(u.target), formula(u.expr), rel="<-") for u in opt.updates(p, shape))

    per_param = [lines(p, d.model.shape(p)) for p in params]
    generic = (not per_param_updates and len(params) > 1 and any(len(ls) > 1 for ls in per_param)
               and GENERIC not in d.model.decls and GENERIC not in d.model.dims
               and all(a.name != GENERIC for a in d.model.assigns))
    every_text = every_latex = ""
    if generic:
        blocks = (Block(lines(GENERIC, d.model.shape(params[0]))),)
        every_text = f" For every parameter θ ({', '.join(text_name(p) for p in params)}), each with its own averages:"
        every_latex = (rf" For every parameter $\theta$ (${', '.join(latex_name(p) for p in params)}$), "
                       "each with its own averages:")
    elif all(len(ls) == 1 for ls in per_param):
        blocks = (Block(tuple(ln for ls in per_param for ln in ls)),)
    else:
        blocks = tuple(Block(ls) for ls in per_param)
    doc = opt.doc[:1].upper() + opt.doc[1:] + "."
    hypers_text = "; ".join(f"{h.text}: {h.doc}" for h in opt.hypers[1:])
    hypers_latex = "; ".join(f"${latex_name(h.symbol.name)}$: {tex_text(h.doc)}" for h in opt.hypers[1:])
    steps = " t counts the steps from 1." if opt.counts_steps else ""
    steps_latex = " $t$ counts the steps from 1." if opt.counts_steps else ""
    intro = Prose(
        doc + (f" {hypers_text}." if hypers_text else "") + steps + every_text,
        tex_text(doc.replace("α", "@")).replace("@", r"$\alpha$")
        + (f" {hypers_latex}." if hypers_latex else "") + steps_latex + every_latex,
    )
    return Section(f"Update ({opt.title}, learning rate α)", intro, blocks=blocks)


def _tensor_valued(e: Basic) -> bool:
    """An expression over values of rank other than 2, or with an einsum: shown entry by entry as well."""
    values = [e, *e.atoms(MatrixSymbol), *(x for x in sympy.preorder_traversal(e) if isinstance(x, OpNode))]
    return any(len(ir.shape_of(v)) != 2 or (isinstance(v, OpNode) and v.op.name == "einsum") for v in values)



def _index_line(d: Derivation, p: str) -> Line:
    eq = gradient_index(d, p)
    (ll, _), (tl, _) = eq.latex(), eq.text()
    return Line(Formula(ll, tl), eq.rhs_formula())


def _index_intro() -> Prose:
    return Prose(
        "Each entry of each gradient, summing over the repeated index.",
        "Each entry of each gradient, summing over the repeated index.",
    )
