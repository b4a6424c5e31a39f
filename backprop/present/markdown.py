"""The notes in Markdown with ``$$`` math, for GitHub and Jupyter (only macros KaTeX and MathJax render)."""

from __future__ import annotations

from backprop.present.latex import WIDE_WIDTH, align_rows
from backprop.present.layout import Prose
from backprop.present.notes import AnyDerivation, notes_of
from backprop.support.deepstack import deep_stack
from backprop.support.escape import markdown_code, markdown_text
from backprop.support.notation import inline_math, rule_latex


@deep_stack
def to_markdown(d: AnyDerivation, *, param: str | None = None, expanded: bool = False, index: bool = False,
                per_param_updates: bool = False, brief: bool = False, unroll: int = 0) -> str:
    """The notes in Markdown: headings, a table of variables, ``$$`` aligned blocks."""
    notes = notes_of(d, param=param, expanded=expanded, index=index, per_param_updates=per_param_updates,
                   brief=brief, unroll=unroll)
    out = [f"# {markdown_text(notes.title.removesuffix(notes.name))}{markdown_code(notes.name)}"]
    if notes.summary:
        out += ["", markdown_text(notes.summary)]
    for sec in notes.sections:
        out += ["", f"## {sec.title}"]
        if sec.intro is not None:
            out += ["", _md_prose(sec.intro)]
        if sec.table:
            out += ["", "| variable | shape | role |", "|---|---|---|"]
            out += [f"| ${r.name.latex}$ | ${r.shape.latex}$ | {r.role} |" for r in sec.table]
        if sec.legend:
            out.append("")
        for e in sec.legend:
            out.append(f"- *{markdown_text(e.name)}*" + (": " + "; ".join(inline_math(f) for f in e.formulas_latex)
                                                          if e.formulas else ""))
        for b in sec.blocks:
            rows = align_rows(b, fit=False, width=WIDE_WIDTH)
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
                    out.append(f"{indent}- *{name}*" + (f": {inline_math(f)}" if f is not None else ""))
    return "\n".join(out) + "\n"


def _md_prose(p: Prose) -> str:
    return p.latex if "$" in p.latex else markdown_text(p.text)

