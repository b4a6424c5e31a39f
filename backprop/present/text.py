"""The notes in plain Unicode text, aligned for a terminal (``backprop derive``'s default format)."""

from __future__ import annotations

import textwrap

from backprop.engine.derivation import Derivation
from backprop.present.layout import Block, Section, layout
from backprop.support.deepstack import deep_stack
from backprop.support.escape import visible
from backprop.support.notation import display_width

_REL_TEXT = {"=": "=", "<-": "←"}
_TEXT_SHAPE_COLUMN = 60
_TEXT_WIDTH = 78


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
def to_text(d: Derivation, *, param: str | None = None, expanded: bool = False, index: bool = False,
            per_param_updates: bool = False) -> str:
    """The notes in plain Unicode, aligned for a terminal."""
    notes = layout(d, param=param, expanded=expanded, index=index, per_param_updates=per_param_updates)
    out = [visible(notes.title)]
    if notes.summary:
        out.append(visible(notes.summary))
    for sec in notes.sections:
        out += ["", *_text_section(sec)]
    return "\n".join(out) + "\n"
