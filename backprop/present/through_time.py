"""Backpropagation through time as a textbook prints it: the loop's step once, the backward recursion
once for a general t with its boundary at t = T, and each shared weight's gradient as a sum over t.

The same sections, lines and formulas as every other derivation (:mod:`backprop.present.layout`), so
every format writes them unchanged. ``unroll``: the recursion written out for T = 1, 2, …, ``unroll``
as well, for students who want to see the copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
from sympy import Basic

from backprop.engine.derivation import Step
from backprop.engine.simplify import simplify
from backprop.engine.through_time import ThroughTime, TimeDerivation, seed_shown, shifted
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.ops_reduce import rowsum_by_word
from backprop.expr.printing import LoopGrad, step_superscript
from backprop.present.formula import Formula, formula, grad_formula, name_formula, shape_formula
from backprop.present.layout import (
    T_GRADIENTS,
    T_RULES,
    T_VARIABLES,
    Block,
    Line,
    Notes,
    Prose,
    Row,
    RuleGroup,
    Section,
    examples_intro,
    loss_lhs,
    spec_summary,
    updates_section,
)
from backprop.present.legend import legend, legend_intro, rule_name
from backprop.support.notation import latex_name, text_name, text_subscript


def _share_formula(name: str, var: str) -> Formula:
    """∂L/∂W⁽ᵗ⁾: the share of a shared value's gradient step t sends (the gradient of the copy of W
    that step t alone uses, as Goodfellow, Bengio and Courville write it)."""
    return Formula(r"\frac{\partial \mathcal{L}}{\partial " + latex_name(name) + f"^{{({var})}}}}",
                   f"∂L/∂{text_name(name)}{step_superscript(var)}")


def _line(lhs: Formula, e: Basic, shape: Sequence[Basic] | None = None) -> Line:
    return Line(lhs, formula(e), shape=shape_formula(tuple(shape)) if shape is not None else None)


def shown(td: TimeDerivation, e: Basic) -> Basic:
    """``e`` as the notes write it: the last (and first) step of a sequence read after its loop as
    H_T (H_1), not as a slice of the stacked H; what a loop sends a first state as the carry at t = 1."""
    subs: dict[Basic, Basic] = {}
    for x in e.atoms(LoopGrad):
        if x.kind == "first":
            tt = td.loops[x.loop]
            subs[x] = shifted(tt.carries[x.of.rsplit("[", 1)[0]], tt.loop.var, 0, to=1)
    return td.model.steps_named(e.xreplace(subs) if subs else e)


def _variables(td: TimeDerivation) -> Section:
    m = td.model
    rows = [Row(name_formula(d.name), shape_formula(d.shape), "parameter" if d.kind == "param" else "input")
            for d in m.decls.values()]
    for r in m.loops:
        for s in r.sequences:
            kind = "state" if s.is_state else "sequence"
            rows.append(Row(name_formula(s.name), shape_formula(shape_of(s.stacked)),
                            f"{kind}: every step {text_name(s.step.name)}, stacked along axis {s.time_axis}"))
    return Section(T_VARIABLES, examples_intro(td), table=tuple(rows))  # type: ignore[arg-type]


def _forward(td: TimeDerivation) -> list[Section]:
    out: list[Section] = []
    loss = td.equations[-1]
    starts = [0, *td.at, len(td.equations)]
    for k in range(len(starts) - 1):
        eqs = td.equations[starts[k]:starts[k + 1]]
        lines = [_line(loss_lhs(td) if eq is loss else name_formula(eq.name), shown(td, eq.expr),  # type: ignore[arg-type]
                       eq.shape) for eq in eqs if name_formula(eq.name).text != formula(eq.expr).text]  # not H₀ = H₀
        if lines:
            title = "Forward pass" if k == 0 else "Forward pass, after the loop"
            out.append(Section(title, blocks=(Block(tuple(lines)),)))
        if k < len(td.loops):
            out.append(_forward_loop(td.loops[k]))
    return out


def _forward_loop(tt: ThroughTime) -> Section:
    r = tt.loop
    var, length = r.var, latex_name(str(r.length))
    states = ", ".join(text_name(f"{s.name}[0]") for s in r.states)
    states_tex = ", ".join(latex_name(f"{s.name}[0]") for s in r.states)
    verb = "starts the state" if len(r.states) == 1 else "start the states"
    start = (f" {states} (above) {verb}; {text_name(f'{r.states[0].name}[{var}-1]')} is what the step "
             "before left." if r.states else "")
    start_tex = (f" ${states_tex}$ (above) {verb}; ${latex_name(f'{r.states[0].name}[{var}-1]')}$ is what "
                 "the step before left." if r.states else "")
    intro = Prose(f"One step, the same equations for every {var} = 1, …, {r.length}.{start}",
                  f"One step, the same equations for every ${var} = 1, \\dots, {length}$.{start_tex}")
    lines = [_line(name_formula(eq.name), eq.expr, eq.shape) for eq in tt.equations]
    return Section(f"Forward pass through time: for {var} = 1, …, {r.length}", intro, blocks=(Block(tuple(lines)),))


def _last_step_only(td: TimeDerivation, s: Step) -> list[Line] | None:
    """∂L/∂H of a sequence the loss reads only at its last step, as a course writes it: ∂L/∂H_T, and 0
    at every other step (not the whole stacked gradient, zeros placed around one slice)."""
    seq, e = td.model.sequences.get(s.target), s.result
    if seq is None or not (isinstance(e, OpNode) and e.op.name == "embed"):
        return None
    length = seq.stacked.shape[seq.time_axis]
    index = tuple(e.args[-1])
    if index[seq.time_axis] != sympy.Tuple(length - 1) or any(
            i != seq.time_axis and tuple(x) != (0, d) for i, (x, d) in enumerate(zip(index, seq.stacked.shape))):
        return None
    var = next(r.var for r in td.model.loops if seq in r.sequences)
    zero = Formula(r"0 \quad (" + f"{var} < {latex_name(str(length))})",
                   f"0  ({var} < {text_name(str(length))})")
    return [_line(Formula(r"\left(\frac{\partial \mathcal{L}}{\partial " + latex_name(seq.name) + r"}\right)_{"
                          + latex_name(str(length)) + "}", f"(∂L/∂{text_name(seq.name)})_{length}"),
                  shown(td, e.children[0]), shape_of(seq.step)),
            Line(Formula(r"\left(\frac{\partial \mathcal{L}}{\partial " + latex_name(seq.name) + r"}\right)_{"
                         + var + "}", f"(∂L/∂{text_name(seq.name)})" + text_subscript(var)), zero)]


def _unread(td: TimeDerivation) -> set[str]:
    """The sequences nothing after their loop reads (∂L/∂H is zero): the notes leave out their
    (∂L/∂H)ₜ, a term that is 0 at every step."""
    out = {s.target for s in td.steps if s.target in td.model.sequences and _is_zero(s.result)}
    return out | {n for n in td.model.sequences if n not in {s.target for s in td.steps}}


def _is_zero(e: Basic) -> bool:
    """0, or 0 broadcast to a shape."""
    while isinstance(e, OpNode) and e.op.name == "broadcast":
        e = e.children[0]
    return e == 0


def _outer_block(td: TimeDerivation, steps: Sequence[Step]) -> Block:
    lines: list[Line] = []
    unread = _unread(td)
    for s in steps:
        if s.target in unread:
            continue
        lines += _last_step_only(td, s) or [_line(grad_formula(s.target), shown(td, s.result), s.shape)]
    rules = tuple(dict.fromkeys(rule_name(x) for s in steps for x in s.rules))
    return Block(tuple(lines), (RuleGroup(None, rules),) if rules else (), step=False)


def _backward_loop(td: TimeDerivation, tt: ThroughTime) -> list[Section]:
    r = tt.loop
    unread = _unread(td)
    zero = {tt.own[s.name]: sympy.Integer(0) for s in r.sequences if s.name in unread}
    if not tt.deltas:  # no param's gradient flows back through this loop
        return [Section(f"Backward pass through time: for {r.var} = {r.length}, …, 1", Prose(
            "No parameter's gradient flows back through this loop: nothing to compute in it.",
            "No parameter's gradient flows back through this loop: nothing to compute in it."))]
    var, n = r.var, str(r.length)
    lines, rules = [], []
    for d in tt.deltas:
        shown_ = seed_shown(tt, d)
        lines.append(_line(grad_formula(d.target), simplify(shown_.xreplace(zero), td.model.domains()) if zero
                           else shown_, d.shape))
        rules.extend(rule_name(x) for p in d.paths for x in p.rules)
    v, sub, sup = var, text_subscript(var), step_superscript(var)
    read = [s for s in r.sequences if s.name not in unread]
    seqs = ", ".join(f"(∂L/∂{text_name(s.name)}){sub}" for s in read) or "Nothing after the loop reads its steps"
    seqs_tex = ", ".join(rf"$\left(\frac{{\partial \mathcal{{L}}}}{{\partial {latex_name(s.name)}}}\right)_{{{v}}}$"
                         for s in read) or "Nothing after the loop reads its steps"
    nxt = bool(tt.carries)
    intro = Prose(
        f"The chain rule through one step, for every {v} from {n} down to 1. {seqs}: step {v} of the gradient "
        f"that the equations after the loop send back (0 at a step they do not read); a state also gets what "
        f"step {v}+1 sends back through it." + (
            f" At {v} = {n} no step follows: every term of step {v}+1 is 0 there." if nxt else ""),
        f"The chain rule through one step, for every ${v}$ from ${latex_name(n)}$ down to 1. {seqs_tex}: step "
        f"${v}$ of the gradient that the equations after the loop send back (0 at a step they do not read); a "
        f"state also gets what step ${v}+1$ sends back through it." + (
            f" At ${v} = {latex_name(n)}$ no step follows: every term of step ${v}+1$ is 0 there." if nxt else ""))
    out = [Section(f"Backward pass through time: for {v} = {n}, …, 1", intro, blocks=(Block(
        tuple(lines), (RuleGroup(None, tuple(dict.fromkeys(rules))),) if rules else (), step=True),))]
    shares = [_line(_share_formula(name, v), e, shape_of(e)) for name, e in tt.terms.items()]
    shares += [_line(_share_formula(f"{name}[{v}]", v), e, shape_of(e)) for name, e in tt.slice_terms.items()]
    if shares:
        out.append(Section(
            "Shared values: one share per step", Prose(
                f"A value the step reads from outside the loop gets the sum over {v} = 1, …, {n} of what each "
                f"step sends it: ∂L/∂θ{sup} is step {v}'s share, the gradient of the copy of θ that step {v} alone "
                f"uses. A value read at step {v} gets step {v}'s share in its place.",
                f"A value the step reads from outside the loop gets the sum over ${v} = 1, \\dots, {latex_name(n)}$ "
                rf"of what each step sends it: $\frac{{\partial \mathcal{{L}}}}{{\partial \theta^{{({v})}}}}$ is "
                f"step ${v}$'s share, the gradient of the copy of $\\theta$ that step ${v}$ alone uses. A value "
                f"read at step ${v}$ gets step ${v}$'s share in its place."),
            blocks=(Block(tuple(shares)),)))
    return out


def _gradient_line(td: TimeDerivation, s: Step) -> Line:
    """∂L/∂W; a weight only the loop reads as the textbook writes it, the sum over t of its share
    written out: ∂L/∂Wh = Σ_{t=1}^{T} ∂L/∂Z_t H_{t−1}ᵀ."""
    r = s.result
    if not (isinstance(r, LoopGrad) and r.kind == "sum"):
        return _line(grad_formula(s.target), shown(td, r), s.shape)
    tt = td.loops[r.loop]
    share = formula(shown(td, tt.terms[r.of]))
    latex, text = share.latex, share.text
    if share.pieces:  # a sum of terms: the Σ takes them all
        latex, text = rf"\left({latex}\right)", f"({text})"
    n = str(tt.loop.length)
    return Line(grad_formula(s.target), Formula(rf"\sum_{{{tt.loop.var}=1}}^{{{latex_name(n)}}} {latex}",
                                                 f"Σ{text_subscript(tt.loop.var)} {text}"), shape=shape_formula(s.shape))


def _segment(td: TimeDerivation, s: Step) -> int:
    """How many loops come before the value of step ``s``: where its δ is computed."""
    m = td.model
    if s.target in m.sequences:
        return next(i for i, r in enumerate(m.loops) if s.target in {q.name for q in r.sequences}) + 1
    index = next((i for i, e in enumerate(td.equations) if e.name == s.target), None)
    return sum(1 for a in td.at if index is not None and index >= a)


def time_layout(td: TimeDerivation, *, param: str | None = None, expanded: bool = False, index: bool = False,
                per_param_updates: bool = False, brief: bool = False, unroll: int = 0) -> Notes:
    """The notes for a derivation with loops (see the module docstring). ``expanded``, ``index`` and
    ``brief`` are the plain notes' options: a recursion is shown one line per δ (already brief), with
    no expanded or entry-by-entry form (``backprop derive`` refuses those two rather than ignore them)."""
    del expanded, index, brief
    with rowsum_by_word():
        return _time_layout(td, param=param, per_param_updates=per_param_updates, unroll=unroll)


def _time_layout(td: TimeDerivation, *, param: str | None, per_param_updates: bool, unroll: int) -> Notes:
    m = td.model
    params = [param] if param else [p.name for p in m.params]
    notes = Notes(f"Backpropagation through time: {m.name}", m.name, spec_summary(td))  # type: ignore[arg-type]
    notes.sections += [_variables(td), *_forward(td)]
    rules = [x for s in td.steps for x in s.rules] + [x for tt in td.loops for d in tt.deltas for p in d.paths
                                                       for x in p.rules]
    entries = legend(rules)
    notes.sections.append(Section(T_RULES, Prose(*legend_intro(entries)), legend=entries))
    outer = [s for s in td.steps if s.kind != "param"]
    for k in range(len(td.loops), -1, -1):
        mine = [s for s in outer if _segment(td, s) == k]
        if mine:
            title = ("Backward pass (chain rule, from the loss back)" if k == len(td.loops)
                     else "Backward pass, before the loop")
            notes.sections.append(Section(title, blocks=(_outer_block(td, mine),)))
        if k > 0:
            notes.sections += _backward_loop(td, td.loops[k - 1])
    grads = {s.target: s for s in td.steps if s.kind == "param"}
    notes.sections.append(Section(T_GRADIENTS, blocks=(Block(tuple(_gradient_line(td, grads[p]) for p in params)),)))
    if unroll:
        notes.sections += _unrolled(td, unroll)
    notes.sections.append(updates_section(td, params, per_param_updates))  # type: ignore[arg-type]
    return notes


def _unrolled(td: TimeDerivation, steps: int) -> list[Section]:
    """The recursion written out for T = ``steps``: each step's values and δs with t a number."""
    out = []
    for tt in td.loops:
        var = tt.loop.var
        fwd = [_line(name_formula(shifted(eq.symbol, var, 0, to=t).name), shifted(eq.expr, var, 0, to=t), eq.shape)
               for t in range(1, steps + 1) for eq in tt.equations]
        back = []
        for t in range(steps, 0, -1):
            for d in tt.deltas:
                e = seed_shown(tt, d) if t < steps else simplify(
                    d.result.xreplace({a: sympy.Integer(0) for a in tt.after.values()}), td.model.domains())
                back.append(_line(grad_formula(shifted(d.grad, var, 0, to=t).name[1:]), shifted(e, var, 0, to=t), d.shape))
        n = tt.loop.length
        out.append(Section(f"Unrolled for {n} = {steps}", Prose(
            f"The same recursion with {var} written out, forward for {var} = 1, …, {steps}, then backward from "
            f"{var} = {steps}.",
            f"The same recursion with ${var}$ written out, forward for ${var} = 1, \\dots, {steps}$, then backward "
            f"from ${var} = {steps}$."), blocks=(Block(tuple(fwd)), Block(tuple(back)))))
    return out


__all__ = ["shown", "time_layout"]
