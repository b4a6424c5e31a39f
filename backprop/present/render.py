"""A :class:`~backprop.engine.derivation.Derivation` as lecture notes: LaTeX, Markdown, text, JSON.

The notes are laid out once (:func:`layout`: sections of aligned equation
lines, each line's formulas in LaTeX and in Unicode, the rules each backward
step cites) and then written by one small backend per format. Every formula
comes from the printers (:mod:`backprop.expr.printing`, :mod:`backprop.present.index`); rule
text comes from the operation registry, converted to LaTeX by
:mod:`backprop.support.notation`.

Layout of the notes, as a course prints them: the variables and their shapes,
the forward pass, then the backward pass one step at a time from the loss
back (the chain rule with symbolic partials, one term per use of the
variable; the local derivatives applied; the result; the rules cited), each
parameter's gradient, optionally fully expanded and entry by entry (index
notation), and the gradient-descent update of every parameter.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import jinja2
import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.derivation import Derivation, Path, Step
from backprop.engine.optim import get_optimizer
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape
from backprop.expr.ops_row import ADD
from backprop.expr.printing import GradSymbol, LatexPrinter, TextPrinter
from backprop.language.model import Decl
from backprop.present.index import gradient_index
from backprop.support.bundled import templates_dir
from backprop.support.deepstack import deep_stack
from backprop.support.escape import json_text, markdown_code, markdown_text, tex_text, visible
from backprop.support.notation import display_width, latex_name, rule_latex, text_name

FORMATS = ("text", "latex", "markdown", "json")

#: Section titles, in order.
T_VARIABLES = "Variables"
T_FORWARD = "Forward pass"
T_BACKWARD = "Backward pass (chain rule, from the loss back)"
T_GRADIENTS = "Gradients"
T_EXPANDED = "Gradients, fully expanded"
T_INDEX = "Gradients, one entry at a time (index notation)"
T_UPDATE = "Update (gradient descent, learning rate α)"

_ROLES = {
    None: "input", "onehot": "input, one-hot columns", "binary": "input, entries 0 or 1",
    "positive": "input, positive entries", "prob": "input, probabilities",
}


# ---------------------------------------------------------------------------
# Layout: what the notes say, independent of the format
# ---------------------------------------------------------------------------


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
        return [_join(r, " ", " ") for r in rows]


@dataclass(frozen=True)
class Prose:
    """A sentence that may hold mathematics: plain text, and its LaTeX (text mode)."""

    text: str
    latex: str


@dataclass(frozen=True)
class Line:
    """``lhs rel rhs`` with the value's shape; ``lhs`` None continues the line above."""

    lhs: Formula | None
    rhs: Formula
    rel: str = "="
    shape: Formula | None = None


@dataclass(frozen=True)
class RuleGroup:
    """The registry rules one use of a variable went through; ``via`` labels it."""

    via: Formula | None
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    """Lines aligned together, then the rules they cite."""

    lines: tuple[Line, ...]
    rules: tuple[RuleGroup, ...] = ()


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


@dataclass
class Notes:
    title: str
    name: str
    summary: str | None
    sections: list[Section] = field(default_factory=list)


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
    r, c = (_LATEX.doprint(d) for d in shape)
    return Formula(rf"{r} \times {c}", ir.fmt_shape(shape))


def name_formula(name: str) -> Formula:
    return Formula(latex_name(name), text_name(name))


def grad_formula(name: str) -> Formula:
    return Formula(r"\frac{\partial \mathcal{L}}{\partial " + latex_name(name) + "}", "∂L/∂" + text_name(name))


def _partial(of: str, wrt: str) -> Formula:
    """The symbolic local derivative ∂of/∂wrt."""
    return Formula(
        r"\frac{\partial " + latex_name(of) + r"}{\partial " + latex_name(wrt) + "}",
        f"∂{text_name(of)}/∂{text_name(wrt)}",
    )


def _join(parts: Sequence[Formula], latex_sep: str, text_sep: str) -> Formula:
    """Parts side by side; a ``+`` join can break between the parts."""
    latex = latex_sep.join(p.latex for p in parts)
    text = text_sep.join(p.text for p in parts)
    if latex_sep.strip() != "+" or len(parts) < 2:
        return Formula(latex, text)
    pieces = [parts[0]] + [Formula("+ " + p.latex, "+ " + p.text) for p in parts[1:]]
    return Formula(latex, text, tuple(pieces))


def _summary(d: Derivation) -> str | None:
    """The spec's first comment line: what the network is."""
    for line in d.model.source.splitlines():
        s = line.strip()
        if s.startswith("#"):
            return s.lstrip("#").strip() or None
        if s:
            return None
    return None


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
    for decl in d.model.decls.values():
        role = "parameter" if decl.kind == "param" else _ROLES.get(decl.domain, f"input, {decl.domain}")
        rows.append(Row(name_formula(decl.name), shape_formula(decl.shape), role))
    intro = None
    data = next((x for x in d.model.inputs if x.shape[1] != 1), None)
    if data is not None:  # the CS230 convention, stated on the model's own data
        name, shape = name_formula(data.name), shape_formula(data.shape)
        cols = _LATEX.doprint(data.shape[1])
        intro = Prose(
            f"Examples are columns: {name.text} is {shape.text}, one column per example ({data.shape[1]} examples).",
            f"Examples are columns: ${name.latex}$ is ${shape.latex}$, one column per example (${cols}$ examples).",
        )
    return Section(T_VARIABLES, intro, table=tuple(rows))


def _loss_lhs(d: Derivation) -> Formula:
    loss = name_formula(d.loss.name)
    if loss.text == "L":
        return loss
    return Formula(r"\mathcal{L} = " + loss.latex, "L = " + loss.text)


def _forward(d: Derivation) -> Section:
    lines = []
    for eq in d.equations:
        lhs = _loss_lhs(d) if eq is d.loss else name_formula(eq.name)
        lines.append(Line(lhs, formula(eq.expr), shape=shape_formula(eq.shape)))
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


def _via_groups(paths: Sequence[Path]) -> list[tuple[str, list[Path]]]:
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(p.via, []).append(p)
    return list(groups.items())


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


def _chain_term(d: Derivation, via: str, target: str) -> Formula:
    """∂L/∂via ∂via/∂target; for the loss itself, ∂/∂target of the terms that mention it."""
    if via == d.loss.name:
        body = formula(_terms_with(d.loss.expr, target))
        t = text_name(target)
        return Formula(
            r"\frac{\partial}{\partial " + latex_name(target) + r"} \left[" + body.latex + r"\right]",
            f"∂/∂{t} [{body.text}]",
        )
    return _join([grad_formula(via), _partial(via, target)], " ", " ")


def _step_block(d: Derivation, s: Step, domains: dict[str, str | None]) -> Block:
    groups = _via_groups(s.paths)
    chain = _join([_chain_term(d, via, s.target) for via, _ in groups], " + ", " + ")
    lines = [Line(grad_formula(s.target), chain, shape=shape_formula(s.shape))]
    shown = {chain.text}

    def more(e: Basic) -> None:
        f = formula(e)
        if f.text not in shown:
            lines.append(Line(None, f))
            shown.add(f.text)

    if len(s.paths) > 1:  # one term per path, each simplified on its own
        total: Basic | None = None
        for p in s.paths:
            c = simplify(p.expr, domains)
            total = c if total is None else ir.add(total, c)
        assert total is not None
        more(total)
    more(s.recursive)
    more(s.result)
    if len(groups) == 1:
        rules = (RuleGroup(None, s.rules),)
    else:
        rules = tuple(
            RuleGroup(name_formula(via), tuple(dict.fromkeys(r for p in ps for r in p.rules)))
            for via, ps in groups
        )
    return Block(tuple(lines), rules)


def _backward(d: Derivation, steps: Sequence[Step]) -> Section:
    domains = {x.name: x.domain for x in d.model.decls.values()}
    intro = Prose(
        "Each gradient sums one term per use of the variable; "
        "a gradient computed once is reused below, as backpropagation does.",
        "Each gradient sums one term per use of the variable; "
        "a gradient computed once is reused below, as backpropagation does.",
    )
    return Section(T_BACKWARD, intro, blocks=tuple(_step_block(d, s, domains) for s in steps))


def _per_param(title: str, params: Iterable[str], line: Callable[[str], Line], intro: Prose | None = None) -> Section:
    return Section(title, intro, blocks=(Block(tuple(line(p) for p in params)),))


def layout(
    d: Derivation, *, param: str | None = None, expanded: bool = False, index: bool = False
) -> Notes:
    """What the notes say, section by section (see the module docstring)."""
    steps = needed_steps(d, param)
    params = [param] if param else d.params
    notes = Notes(f"Backpropagation through {d.model.name}", d.model.name, _summary(d))
    notes.sections += [_variables(d), _forward(d), _backward(d, steps)]

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

    notes.sections.append(_updates(d, params))
    return notes


def _updates(d: Derivation, params: Sequence[str]) -> Section:
    """The optimizer's update equations of every param (one block each when there are several)."""
    opt = get_optimizer(d.optimizer)
    per_param = [tuple(Line(formula(u.target), formula(u.expr), rel="<-") for u in d.updates(p)) for p in params]
    if all(len(lines) == 1 for lines in per_param):
        blocks = (Block(tuple(ln for lines in per_param for ln in lines)),)
    else:
        blocks = tuple(Block(lines) for lines in per_param)
    doc = opt.doc[:1].upper() + opt.doc[1:] + "."
    hypers_text = "; ".join(f"{h.text}: {h.doc}" for h in opt.hypers[1:])
    hypers_latex = "; ".join(f"${latex_name(h.symbol.name)}$: {tex_text(h.doc)}" for h in opt.hypers[1:])
    steps = " t counts the steps from 1." if opt.counts_steps else ""
    steps_latex = " $t$ counts the steps from 1." if opt.counts_steps else ""
    intro = Prose(
        doc + (f" {hypers_text}." if hypers_text else "") + steps,
        tex_text(doc.replace("α", "@")).replace("@", r"$\alpha$")
        + (f" {hypers_latex}." if hypers_latex else "") + steps_latex,
    )
    return Section(f"Update ({opt.title}, learning rate α)", intro, blocks=blocks)


def _index_line(d: Derivation, p: str) -> Line:
    eq = gradient_index(d, p)
    (ll, lr), (tl, tr) = eq.latex(), eq.text()
    return Line(Formula(ll, tl), Formula(lr, tr))


def _index_intro() -> Prose:
    return Prose(
        "Each entry of each gradient, summing over the repeated index.",
        "Each entry of each gradient, summing over the repeated index.",
    )


# ---------------------------------------------------------------------------
# Plain Unicode text for the terminal
# ---------------------------------------------------------------------------

_REL_TEXT = {"=": "=", "<-": "←"}
_REL_LATEX = {"=": "=", "<-": r"\leftarrow"}
_TEXT_SHAPE_COLUMN = 60
_TEXT_WIDTH = 78
#: Text columns of a formula per row, as a proxy for its printed width: a page
#: (LaTeX) and a notebook or GitHub page (Markdown, Jupyter).
_LATEX_WIDTH = 56
_WIDE_WIDTH = 72


def _pad(s: str, width: int) -> str:
    return s + " " * max(width - display_width(s), 0)


def _text_block(b: Block, shape_col: int) -> list[str]:
    lhs_w = max(display_width(ln.lhs.text) for ln in b.lines if ln.lhs is not None)
    out: list[str] = []
    indent = " " * (2 + lhs_w + 3)
    for ln in b.lines:
        lhs = ln.lhs.text if ln.lhs is not None else ""
        rows = ln.rhs.rows(max(_TEXT_WIDTH - len(indent), 24))
        body = f"  {_pad(lhs, lhs_w)} {_REL_TEXT[ln.rel]} {rows[0].text}"
        if ln.shape is not None:
            body = _pad(body, shape_col) + "    " + ln.shape.text
        out.append(body.rstrip())
        out += [f"{indent}  {r.text}" for r in rows[1:]]
    for g in b.rules:
        lead = indent + "by "
        if g.via is not None:
            out.append(f"{indent}through {g.via.text}:")
            lead = indent + "  by "
        for k, r in enumerate(g.rules):
            out.append((lead if k == 0 else " " * len(lead)) + r)
    return out


def _text_shape_col(sec: Section) -> int:
    widths = []
    for b in sec.blocks:
        lhs_w = max(display_width(ln.lhs.text) for ln in b.lines if ln.lhs is not None)
        widths += [2 + lhs_w + 3 + display_width(ln.rhs.text) for ln in b.lines if ln.shape is not None]
    return min(max(widths, default=0), _TEXT_SHAPE_COLUMN)


def _text_section(sec: Section) -> list[str]:
    out = [sec.title, "─" * display_width(sec.title)]
    if sec.intro is not None:
        out += textwrap.wrap(sec.intro.text, _TEXT_WIDTH)
    if sec.table:
        name_w = max(display_width(r.name.text) for r in sec.table)
        shape_w = max(display_width(r.shape.text) for r in sec.table)
        out += [f"  {_pad(r.name.text, name_w)}  {_pad(r.shape.text, shape_w)}  {r.role}" for r in sec.table]
    col = _text_shape_col(sec)
    for k, b in enumerate(sec.blocks):
        if k:
            out.append("")
        out += _text_block(b, col)
    return out


@deep_stack
def to_text(d: Derivation, *, param: str | None = None, expanded: bool = False, index: bool = False) -> str:
    """The notes in plain Unicode, aligned for a terminal."""
    notes = layout(d, param=param, expanded=expanded, index=index)
    out = [visible(notes.title)]
    if notes.summary:
        out.append(visible(notes.summary))
    for sec in notes.sections:
        out += ["", *_text_section(sec)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# LaTeX: amsmath align* blocks; a standalone document; the Jupyter body
# ---------------------------------------------------------------------------


def _rule_tex(rule: str, math: str = "$") -> str:
    """``\\emph{name}: $formula$`` (text mode), or inside math with ``math=''``."""
    name, f = rule_latex(rule)
    if math:
        return rf"\emph{{{name}}}" + (f": ${f}$" if f is not None else "")
    return r"\text{" + name + (": }" + f if f is not None else "}")


def _align_rows(b: Block, fit: bool, width: int) -> list[str]:
    """``lhs &= rhs && (shape)`` rows; a long sum continues on ``&\\quad + ...`` rows."""
    rows = []
    for ln in b.lines:
        lhs = ln.lhs.latex if ln.lhs is not None else ""
        for k, part in enumerate(ln.rhs.rows(width)):
            rhs = rf"\fitmath{{{part.latex}}}" if fit else part.latex
            if k:
                rows.append(rf"&\quad {{}}{rhs}")  # {} keeps a leading + binary
                continue
            row = f"{lhs} &{_REL_LATEX[ln.rel]} {rhs}"
            if ln.shape is not None:
                row += rf" && ({ln.shape.latex})"
            rows.append(row)
    return rows


def _latex_rules(b: Block) -> list[str]:
    if not b.rules:
        return []
    out = [r"\begin{itemize}\setlength{\itemsep}{0pt}\small"]
    for g in b.rules:
        if g.via is not None:
            out.append(rf"\item[] through ${g.via.latex}$:")
        out += [rf"\item {_rule_tex(r)}" for r in g.rules]
    out.append(r"\end{itemize}")
    return out


def _latex_table(rows: Sequence[Row], standalone: bool) -> list[str]:
    """The variables; a standalone document's table may run over pages (longtable)."""
    env = "longtable" if standalone else "tabular"
    out = [] if standalone else [r"\begin{center}"]
    out += [rf"\begin{{{env}}}{{lll}}", r"variable & shape & role \\ \hline"]
    out += [rf"${r.name.latex}$ & ${r.shape.latex}$ & {tex_text(r.role)} \\" for r in rows]
    return out + [rf"\end{{{env}}}"] + ([] if standalone else [r"\end{center}"])


def _latex_sections(notes: Notes, fit: bool) -> list[str]:
    out: list[str] = []
    for sec in notes.sections:
        out += ["", rf"\section*{{{_latex_title(sec.title)}}}"]
        if sec.intro is not None:
            out.append(sec.intro.latex)
        if sec.table:
            out += _latex_table(sec.table, standalone=fit)
        for b in sec.blocks:
            out += [r"\begin{align*}", " \\\\\n".join(_align_rows(b, fit, _LATEX_WIDTH)), r"\end{align*}"]
            out += _latex_rules(b)
    return out


def _latex_title(title: str) -> str:
    return tex_text(title.replace("α", "@ALPHA@")).replace("@ALPHA@", r"$\alpha$")


def _aligned_body(notes: Notes) -> str:
    """All sections in one ``aligned`` environment: math-mode content for ``$$ ... $$``."""
    rows: list[str] = []
    for sec in notes.sections:
        rows.append(r"&\textbf{" + tex_text(sec.title.replace("α", "@")).replace("@", r"}\alpha\textbf{") + "}")
        for r in sec.table:
            rows.append(rf"{r.name.latex} &: {r.shape.latex} && \text{{{tex_text(r.role)}}}")
        for b in sec.blocks:
            rows += _align_rows(b, fit=False, width=_WIDE_WIDTH)
            for g in b.rules:
                if g.via is not None:
                    rows.append(rf"&\qquad \text{{through }} {g.via.latex}:")
                rows += [rf"&\qquad {_rule_tex(r, math='')}" for r in g.rules]
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        block_start_string="<%", block_end_string="%>", variable_start_string="<<",
        variable_end_string=">>", comment_start_string="<#", comment_end_string="#>",
        keep_trailing_newline=True, autoescape=False, undefined=jinja2.StrictUndefined,
    )
    return env.get_template("derivation.tex.j2")


@deep_stack
def to_latex(
    d: Derivation,
    *,
    standalone: bool = False,
    body_only: bool = False,
    param: str | None = None,
    expanded: bool = False,
    index: bool = False,
) -> str:
    """The notes in LaTeX (amsmath ``align*`` blocks; ASCII only).

    ``standalone``: a whole article that compiles with pdflatex; long formulas
    shrink to the line width. ``body_only``: one ``aligned`` environment, the
    content of a ``$$ ... $$`` display (what Jupyter shows). Otherwise a
    fragment to ``\\input`` into a document that loads amsmath.
    """
    if standalone and body_only:
        raise ValueError("standalone and body_only exclude each other")
    notes = layout(d, param=param, expanded=expanded, index=index)
    if body_only:
        return _aligned_body(notes)
    body = "\n".join(_latex_sections(notes, fit=standalone)).lstrip("\n") + "\n"
    if not standalone:
        return f"% {tex_text(notes.title)} (backprop derive)\n" + body
    return _template().render(
        title=tex_text(notes.title.removesuffix(notes.name)) + r"\texttt{" + tex_text(notes.name) + "}",
        title_plain=tex_text(notes.title),
        summary=tex_text(notes.summary) if notes.summary else "",
        body=body,
    )


# ---------------------------------------------------------------------------
# Markdown with $$ math (GitHub, Jupyter: KaTeX/MathJax macros only)
# ---------------------------------------------------------------------------


@deep_stack
def to_markdown(d: Derivation, *, param: str | None = None, expanded: bool = False, index: bool = False) -> str:
    """The notes in Markdown: headings, a table of variables, ``$$`` aligned blocks."""
    notes = layout(d, param=param, expanded=expanded, index=index)
    out = [f"# Backpropagation through {markdown_code(notes.name)}"]
    if notes.summary:
        out += ["", markdown_text(notes.summary)]
    for sec in notes.sections:
        out += ["", f"## {sec.title}"]
        if sec.intro is not None:
            out += ["", _md_prose(sec.intro)]
        if sec.table:
            out += ["", "| variable | shape | role |", "|---|---|---|"]
            out += [f"| ${r.name.latex}$ | ${r.shape.latex}$ | {r.role} |" for r in sec.table]
        for b in sec.blocks:
            rows = _align_rows(b, fit=False, width=_WIDE_WIDTH)
            out += ["", "$$", r"\begin{aligned}", " \\\\\n".join(rows), r"\end{aligned}", "$$"]
            if b.rules:
                out.append("")
            for g in b.rules:
                indent = ""
                if g.via is not None:
                    out.append(f"- through ${g.via.latex}$:")
                    indent = "  "
                for r in g.rules:
                    name, f = rule_latex(r)
                    out.append(f"{indent}- *{name}*" + (f": ${f}$" if f is not None else ""))
    return "\n".join(out) + "\n"


def _md_prose(p: Prose) -> str:
    return p.latex if "$" in p.latex else markdown_text(p.text)


# ---------------------------------------------------------------------------
# JSON: the derivation as data, for other tools
# ---------------------------------------------------------------------------


def _fj(f: Formula) -> dict[str, str]:
    return {"latex": f.latex, "text": f.text}


def _shape_json(shape: Shape) -> list[str]:
    return [str(x) for x in shape]


@deep_stack
def to_json(d: Derivation, *, param: str | None = None, expanded: bool = False, index: bool = False) -> str:
    """The derivation as JSON (keys in a fixed, documented order; see README)."""
    steps = needed_steps(d, param)
    params = [param] if param else d.params
    domains = {x.name: x.domain for x in d.model.decls.values()}
    m = d.model
    opt = get_optimizer(d.optimizer)

    def decl(x: Decl) -> dict[str, object]:
        return {"name": x.name, "shape": _shape_json(x.shape), "domain": x.domain, **_fj(name_formula(x.name))}

    def step(s: Step) -> dict[str, object]:
        groups = _via_groups(s.paths)
        chain = _join([_chain_term(d, via, s.target) for via, _ in groups], " + ", " + ")
        return {
            "target": s.target, "kind": s.kind, "shape": _shape_json(s.shape), "chain": _fj(chain),
            "paths": [{"via": p.via, "rules": list(p.rules), **_fj(formula(simplify(p.expr, domains)))} for p in s.paths],
            "recursive": _fj(formula(s.recursive)), "result": _fj(formula(s.result)), "inlined": s.inlined,
        }

    def gradient(p: str) -> dict[str, object]:
        s = d.step(p)
        out: dict[str, object] = {"param": p, "shape": _shape_json(s.shape), **_fj(formula(s.result))}
        out["expanded"] = _fj(formula(d.expanded(p))) if expanded else None
        if index:
            eq = gradient_index(d, p)
            (ll, lr), (tl, tr) = eq.latex(), eq.text()
            out["index"] = {"lhs": {"latex": ll, "text": tl}, "rhs": {"latex": lr, "text": tr}}
        else:
            out["index"] = None
        return out

    doc = {
        "spec": m.name,
        "summary": _summary(d),
        "dims": list(m.dims),
        "inputs": [decl(x) for x in m.inputs],
        "params": [decl(x) for x in m.params],
        "forward": [
            {"name": e.name, "shape": _shape_json(e.shape), **_fj(formula(e.expr)), "lifted": e.lifted}
            for e in d.equations
        ],
        "loss": d.loss.name,
        "steps": [step(s) for s in steps],
        "gradients": [gradient(p) for p in params],
        "optimizer": {
            "name": opt.name, "title": opt.title,
            "hyperparameters": [
                {"name": h.arg, **_fj(formula(h.symbol)), "default": h.default, "doc": h.doc} for h in opt.hypers
            ],
        },
        "updates": [
            {"param": p, "equations": [
                {"target": _fj(formula(u.target)), **_fj(formula(u.expr))} for u in d.updates(p)
            ]}
            for p in params
        ],
    }
    return json_text(doc) + "\n"


@deep_stack
def render(d: Derivation, fmt: str, *, standalone: bool = False, **options: object) -> str:
    """Dispatch on the format name (the CLI's ``--format``)."""
    if fmt == "latex":
        return to_latex(d, standalone=standalone, **options)  # type: ignore[arg-type]
    writers = {"text": to_text, "markdown": to_markdown, "json": to_json}
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    return writers[fmt](d, **options)  # type: ignore[arg-type]
