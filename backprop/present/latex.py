"""The notes in LaTeX: amsmath ``align*`` blocks, a standalone document, or Jupyter's ``$$`` body.

The aligned rows (:func:`align_rows`) are shared with Markdown, whose math is LaTeX too.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import jinja2

from backprop.present.layout import Block, Notes, Row, Section
from backprop.present.notes import AnyDerivation, notes_of
from backprop.support.bundled import templates_dir
from backprop.support.deepstack import deep_stack
from backprop.support.escape import tex_text
from backprop.support.notation import inline_math, rule_latex

_REL_LATEX = {"=": "=", "<-": r"\leftarrow"}
#: Text columns of a formula per row, as a proxy for its printed width: a page
#: (LaTeX) and a notebook or GitHub page (Markdown, Jupyter).
_LATEX_WIDTH = 56
WIDE_WIDTH = 72


def _rule_tex(rule: str, math: str = "$") -> str:
    """``\\emph{name}: $formula$`` (text mode), or inside math with ``math=''``."""
    name, f = rule_latex(rule)
    if math:
        return rf"\emph{{{name}}}" + (f": {inline_math(f)}" if f is not None else "")
    return r"\text{" + name + (": }" + f if f is not None else "}")


def align_rows(b: Block, fit: bool, width: int, tags: bool = False) -> list[str]:
    """``lhs &= rhs && (shape)`` rows; a long sum continues on ``&\\quad + ...`` rows. ``tags``: the shape
    as ``\\tag*``, at the right margin, so the shapes of every block of a page line up in one column
    (an ``&&`` column lines up within its own block only)."""
    rows = []
    for ln in b.lines:
        lhs = ln.lhs.latex if ln.lhs is not None else ""
        for k, part in enumerate(ln.rhs.latex_rows(width)):
            rhs = rf"\fitmath{{{part}}}" if fit else part
            if k:
                rows.append(rf"&\quad {{}}{rhs}")  # {} keeps a leading + binary
                continue
            if ln.depth:  # the working: set in under the step's equation, its own = inside the column
                work = f"{lhs} {_REL_LATEX[ln.rel]} {part}"
                row = rf"&\qquad \fitwork{{{work}}}" if fit else rf"&\qquad {work}"
            else:
                row = f"{lhs} &{_REL_LATEX[ln.rel]} {rhs}"
            if ln.shape is not None:
                row += rf" \tag*{{$({ln.shape.latex})$}}" if tags else rf" && ({ln.shape.latex})"
            elif ln.why is not None:  # the rule or fact, at the right margin as the shapes are
                row += rf" \tag*{{\small\itshape {ln.why.latex}}}" if tags else rf" && \text{{{ln.why.latex}}}"
            rows.append(row)
    return rows


def _latex_rules(b: Block, standalone: bool) -> list[str]:
    """The rule names under a step; in a standalone document a ``steprules`` list, which the template
    keeps on the page of the equation above it."""
    if not b.rules:
        return []
    if standalone:
        out = [r"\begin{steprules}"]
        for g in b.rules:
            if g.via is not None:
                out.append(rf"\item[] through ${g.via.latex}$:")
            out += [rf"\item {_rule_tex(r)}" for r in g.rules]
        return out + [r"\end{steprules}"]
    out = [r"\begin{itemize}\setlength{\itemsep}{0pt}\small\raggedright"]  # ragged: a rule breaks where it can
    for g in b.rules:
        if g.via is not None:
            out.append(rf"\item[] through ${g.via.latex}$:")
        out += [rf"\item {_rule_tex(r)}" for r in g.rules]
    out.append(r"\end{itemize}")
    return out


def _latex_legend(sec: Section) -> list[str]:
    if not sec.legend:
        return []
    out = [r"\begin{itemize}\setlength{\itemsep}{0pt}\raggedright"]
    out += [rf"\item \emph{{{tex_text(e.name)}}}" + (": " + "; ".join(inline_math(f) for f in e.formulas_latex)
                                                    if e.formulas else "") for e in sec.legend]
    return out + [r"\end{itemize}"]


def _latex_table(rows: Sequence[Row], standalone: bool) -> list[str]:
    """The variables; a standalone document's table may run over pages (longtable)."""
    env = "longtable" if standalone else "tabular"
    out = [] if standalone else [r"\begin{center}"]
    out += [rf"\begin{{{env}}}{{lll}}", r"variable & shape & role \\ \hline"]
    out += [rf"${r.name.latex}$ & ${r.shape.latex}$ & {tex_text(r.role)} \\" for r in rows]
    return out + [rf"\end{{{env}}}"] + ([] if standalone else [r"\end{center}"])


#: Rows of a step kept on one page (a longer one, a sum over many paths, may break).
_STEP_ROWS = 12
#: Height the last two sections may have together and still be kept on one page as one box, in
#: rows of plain text (about 15pt; an A4 page holds about 48): a row with a fraction or a sum counts
#: two, one with several fractions three, a heading with its sentence four.
_CLOSING_HEIGHT = 40


def _height(sec: Section) -> int:
    """A section's height estimated in plain rows (see :data:`_CLOSING_HEIGHT`)."""
    rows = [r for b in sec.blocks for ln in b.lines for r in ln.rhs.latex_rows(_LATEX_WIDTH)]
    tall = [1 + (r"\frac" in r or r"\sum" in r) + (r.count(r"\frac") > 2) for r in rows]
    return 4 + sum(tall) + len(sec.legend)


def _latex_sections(notes: Notes, fit: bool) -> list[str]:
    out: list[str] = []
    # the closing section (the update) never alone on a page, nor split: in a standalone document it
    # shares one unbreakable box with the section before it, when the two are short enough for a page
    keep = fit and len(notes.sections) >= 2 and sum(_height(s) for s in notes.sections[-2:]) <= _CLOSING_HEIGHT
    for k, sec in enumerate(notes.sections):
        if keep and k == len(notes.sections) - 2:
            out += ["", r"\par\noindent\begin{minipage}{\linewidth}\setlength{\parskip}{0.5ex}"]
        out += ["", rf"\section*{{{_latex_title(sec.title)}}}"]
        if sec.intro is not None:
            out.append(sec.intro.latex)
        if sec.table:
            out += _latex_table(sec.table, standalone=fit)
        out += _latex_legend(sec)
        for b in sec.blocks:
            rows = align_rows(b, fit, _LATEX_WIDTH, tags=True)
            # a step's few rows stay on one page, with its rules (\\* allows no break after a row)
            sep = " \\\\*\n" if fit and b.step and len(rows) <= _STEP_ROWS else " \\\\\n"
            out += [r"\begin{align*}", sep.join(rows), r"\end{align*}"]
            out += _latex_rules(b, standalone=fit)
    if keep:
        out.append(r"\end{minipage}")
    return out


def _latex_title(title: str) -> str:
    return tex_text(title.replace("α", "@ALPHA@")).replace("@ALPHA@", r"$\alpha$")


def _aligned_body(notes: Notes) -> str:
    """All sections in one ``aligned`` environment: math-mode content for ``$$ ... $$``."""
    rows: list[str] = []
    for sec in notes.sections:
        rows.append(r"&\textbf{" + tex_text(sec.title.replace("α", "@")).replace("@", r"}\alpha\textbf{") + "}")
        for e in sec.legend:
            rows.append(r"&\qquad \text{" + tex_text(e.name) + (": }" + r";\ ".join(e.formulas_latex)
                                                               if e.formulas else "}"))
        for r in sec.table:
            rows.append(rf"{r.name.latex} &: {r.shape.latex} && \text{{{tex_text(r.role)}}}")
        for b in sec.blocks:
            rows += align_rows(b, fit=False, width=WIDE_WIDTH)
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
    d: AnyDerivation,
    *,
    standalone: bool = False,
    body_only: bool = False,
    param: str | None = None,
    expanded: bool = False,
    index: bool = False,
    per_param_updates: bool = False,
    brief: bool = False,
    unroll: int = 0,
) -> str:
    """The notes in LaTeX (amsmath ``align*`` blocks; ASCII only).

    ``standalone``: a whole article that compiles with pdflatex; long formulas
    break over rows (see :meth:`Formula.latex_rows`), and shrink to the line width only where
    one factor alone is wider. ``per_param_updates``: the optimizer's equations for every param,
    not once for a generic θ. ``body_only``: one ``aligned`` environment, the
    content of a ``$$ ... $$`` display (what Jupyter shows). Otherwise a
    fragment to ``\\input`` into a document that loads amsmath.
    """
    if standalone and body_only:
        raise ValueError("standalone and body_only exclude each other")
    notes = notes_of(d, param=param, expanded=expanded, index=index, per_param_updates=per_param_updates,
                   brief=brief, unroll=unroll)
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
