"""The notes in plain Unicode text, aligned for a terminal (``backprop derive``'s default format)."""

from __future__ import annotations

import textwrap

from backprop.present.layout import Block, Line, Section
from backprop.present.notes import AnyDerivation, notes_of
from backprop.support.deepstack import deep_stack
from backprop.support.escape import visible
from backprop.support.notation import display_width

_REL_TEXT = {"=": "=", "<-": "←"}
_TEXT_SHAPE_COLUMN = 60
_TEXT_WIDTH = 78


def _pad(s: str, width: int) -> str:
    return s + " " * max(width - display_width(s), 0)


def _text_block(b: Block, shape_col: int) -> list[str]:
    lhs_w = max((display_width(ln.lhs.text) for ln in b.lines if ln.lhs is not None and not ln.depth), default=0)
    out: list[str] = []
    indent = " " * (2 + lhs_w + 3)
    lines = list(b.lines)
    k = 0
    while k < len(lines):
        ln = lines[k]
        if ln.depth:  # a run of the working: set in, aligned on its own, each rule beside its line
            run = []
            while k < len(lines) and lines[k].depth:
                run.append(lines[k])
                k += 1
            out += _working_run(run)
            continue
        k += 1
        lhs = ln.lhs.text if ln.lhs is not None else ""
        rows = ln.rhs.rows(max(_TEXT_WIDTH - len(indent), 24))
        body = f"  {_pad(lhs, lhs_w)} {_REL_TEXT[ln.rel]} {rows[0].text}"
        if ln.shape is not None:
            body = _pad(body, shape_col) + "    " + ln.shape.text
        elif ln.why is not None:
            body = _beside(body, ln.why.text)
        out.append(body.rstrip())
        out += [f"{indent}  {r.text}" for r in rows[1:]]
    for g in b.rules:
        lead = indent + "by "
        if g.via is not None:
            out.append(f"{indent}through {g.via.text}:")
            lead = indent + "  by "
        for j, r in enumerate(g.rules):
            out.append((lead if j == 0 else " " * len(lead)) + r)
    return out


_WORK_INDENT = "      "


def _working_run(run: list[Line]) -> list[str]:
    """Lines of a step's working, each ``∂L/∂(part) = gradient`` with its rule in one column beside
    them; a long gradient breaks at its top-level sums, its rule then beside its last row."""
    lhs_w = max(display_width(ln.lhs.text) for ln in run if ln.lhs is not None)
    lead = f"{_WORK_INDENT}{' ' * lhs_w} = "
    rows = [ln.rhs.rows(max(_TEXT_WIDTH - display_width(lead), 24)) for ln in run]
    bodies = [[f"{_WORK_INDENT}{_pad(ln.lhs.text if ln.lhs else '', lhs_w)} = {r[0].text}"]
              + [" " * (display_width(lead) + 2) + x.text for x in r[1:]] for ln, r in zip(run, rows)]
    whys = [ln.why.text if ln.why is not None else "" for ln in run]
    # the rules in one column, after the widest row that leaves room for its rule; a wider row's rule
    # goes under it, in the same column
    room = [display_width(b[-1]) + 3 for b, w in zip(bodies, whys) if display_width(b[-1]) + 3 + display_width(w)
            <= _TEXT_WIDTH + _WHY_SLACK]
    col = max(room, default=_TEXT_WIDTH // 2)
    out: list[str] = []
    for body, why in zip(bodies, whys):
        out += body[:-1]
        if display_width(body[-1]) + 3 <= col or not why:
            out.append((_pad(body[-1], col) + why).rstrip())
        else:
            out += [body[-1], " " * col + why]
    return out


#: How far past the text width a rule's name beside a line may reach before it moves to a line of its own.
_WHY_SLACK = 22


def _beside(body: str, why: str) -> str:
    """``why`` three spaces after ``body``, or on the next line, right-aligned, when that is too wide."""
    if not why:
        return body
    if display_width(body) + 3 + display_width(why) <= _TEXT_WIDTH + _WHY_SLACK:
        return f"{body}   {why}"
    return body.rstrip() + "\n" + " " * max(_TEXT_WIDTH - display_width(why), 8) + why


def _text_shape_col(sec: Section) -> int:
    widths = []
    for b in sec.blocks:
        lhs_w = max(display_width(ln.lhs.text) for ln in b.lines if ln.lhs is not None and not ln.depth)
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
    for e in sec.legend:
        out += textwrap.wrap(f"{e.name}" + (": " + ";  ".join(e.formulas) if e.formulas else ""), _TEXT_WIDTH,
                             initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
    col = _text_shape_col(sec)
    for k, b in enumerate(sec.blocks):
        if k:
            out.append("")
        out += _text_block(b, col)
    return out


@deep_stack
def to_text(d: AnyDerivation, *, param: str | None = None, expanded: bool = False, index: bool = False,
            per_param_updates: bool = False, brief: bool = False, unroll: int = 0) -> str:
    """The notes in plain Unicode, aligned for a terminal."""
    notes = notes_of(d, param=param, expanded=expanded, index=index, per_param_updates=per_param_updates,
                   brief=brief, unroll=unroll)
    out = [visible(notes.title)]
    if notes.summary:
        out.append(visible(notes.summary))
    for sec in notes.sections:
        out += ["", *_text_section(sec)]
    return "\n".join(out) + "\n"
