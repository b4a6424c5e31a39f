"""Backpropagation through time: a loop's step differentiated once, for a general t.

A loop ``for t in 1..T:`` is one step applied T times. The chain rule is applied to the step once,
with the existing pullback (:class:`~backprop.engine.chain._Pullback`), from the gradient each
sequence receives from outside the step:

- ``∂L/∂H[t]`` arrives from after the loop (step t of ∂L/∂H, the stacked gradient: zero except at T
  for a loss on ``H[T]``) and, for a state, from the next step, which read ``H[t]`` as its ``H[t-1]``;
- the step's own values then get their δ in reverse order, each a sum over its uses in the step;
- what the step sends to ``H[t-1]`` is the *carry*: the next-step term of δ one step earlier. The
  recursion δ_t = (own)_t + carry_{t+1} stops at t = T, where nothing comes from a next step;
- a value read from outside the loop (a shared weight) gets Σ_t of what each step sends it, a value
  read at step t (``X[:, t]``) gets it at step t, and a state's first value gets the carry at t = 1.

This is JAX's transpose of ``scan``, done symbolically: the result is one set of expressions for a
general t. :func:`derive_through_time` wraps the loops' results into the chain rule of the
equations before and after them; :mod:`backprop.verification.through_time` runs it on numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.chain import ACTIVATIONS, Lifter, _fit, _Pullback, forward_equations
from backprop.engine.derivation import Equation, Path, Shown, Step
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.ir import OpNode, Shape, shape_of
from backprop.expr.printing import LoopGrad, grad_symbol, loop_grad, step_grad
from backprop.language.model import Domains, Model, Recurrence, Sequence


class StepNames(set[str]):
    """The names in use where a loop's steps are named: a name is taken too when it differs from one
    in use only by trailing digits, since a step's value at t = 1 prints as a number does (Z[1] and
    Z1 are both Z₁): the loss's Z1 and the step's Z, or the step's Z and a Z1 outside, never meet."""

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or super().__contains__(name):
            return super().__contains__(name)
        base = name.rstrip("0123456789")
        return (base != name and super().__contains__(base)) or any(
            n != name and n.rstrip("0123456789") == name for n in self)


def first_state(s: Sequence) -> MatrixSymbol:
    """``H[0]``: a state's first value, an equation of the chain rule outside the loop."""
    assert s.init is not None and s.prev is not None
    return ir.symbol(f"{s.name}[0]", shape_of(s.init))


def own_symbol(s: Sequence, var: str) -> MatrixSymbol:
    """Step t of ∂L/∂H from after the loop (the stacked gradient at t), as the step reads it."""
    return step_grad(s.name, var, shape_of(s.step))


def next_symbol(s: Sequence, var: str) -> MatrixSymbol:
    """What step t+1 sends back to ``H[t]`` (its carry), as step t reads it."""
    return ir.symbol(f"d{s.name}[{var}] from {var}+1", shape_of(s.step))


def _at(name: str, var: str, k: int, to: int | None) -> str | None:
    """A step name moved ``k`` steps on (``H[t-1]`` -> ``H[t]``), or to the steps from ``to``
    (``Z[t]`` -> ``Z[1]``); None for a name of no step."""
    m = re.match(rf"^(?P<head>.*\[(?:[^\]]*,\s*)?){re.escape(var)}(?:(?P<sign>[-+])(?P<n>\d+))?\]$", name)
    if m is None:
        return None
    off = (int(m.group("n")) * (1 if m.group("sign") == "+" else -1) if m.group("n") else 0) + k
    if to is not None:
        return f"{m.group('head')}{to + off}]"
    return f"{m.group('head')}{var}{'' if off == 0 else f'{off:+d}'}]"


def shifted(e: Basic, var: str, k: int = 1, to: int | None = None) -> Basic:
    """``e`` (an expression of step ``var``) at step ``var + k``, or at the number ``to + k``: each
    step value, δ and slice renamed, of the same kind and shape. The carry step t+1 sends back is
    ``shifted(carry, t)``; ∂L/∂H₀ is the carry at step 1, ``shifted(carry, t, 0, to=1)``."""
    subs = {}
    for x in e.atoms(MatrixSymbol):
        name = _at(x.name, var, k, to)
        if name is not None:
            subs[x] = type(x)(name, *x.shape)
    return e.xreplace(subs)


def seed_shown(tt: ThroughTime, d: StepDelta) -> Basic:
    """A δ with the next step's share written out: the carry of step t+1, which is 0 at t = T."""
    subs = {tt.after[s]: shifted(tt.carries[s], tt.loop.var) if s in tt.carries else sympy.Integer(0)
            for s in tt.after}
    return d.result.xreplace(subs)


@dataclass(frozen=True)
class StepDelta:
    """∂L/∂v[t] for a value the step makes: the sum of its uses in the step, plus (for a sequence)
    the gradient it receives from outside the step, ``seed``."""

    target: str
    shape: Shape
    paths: tuple[Path, ...]
    seed: Basic
    result: Basic

    @property
    def grad(self) -> MatrixSymbol:
        return grad_symbol(self.target, self.shape)


@dataclass(frozen=True)
class ThroughTime:
    """A loop's backward pass at a general t: the step's δs, the carries, and each outside value's
    term at t."""

    loop: Recurrence
    index: int
    equations: tuple[Equation, ...]  # the step's, its own values named at t (Z[t])
    deltas: tuple[StepDelta, ...]  # the order they are computed in: the step's last value first
    carries: dict[str, Basic]  # state -> ∂L/∂H[t-1] through step t
    terms: dict[str, Basic]  # a value from outside the loop -> its gradient's term at step t
    slice_terms: dict[str, Basic]  # a value read at each step (X of X[:, t]) -> ∂L/∂X[:, t]
    own: dict[str, MatrixSymbol]  # sequence -> step t of its gradient from after the loop
    after: dict[str, MatrixSymbol]  # sequence -> what step t+1 sends to it (states only)


def step_equations(r: Recurrence, lifter: Lifter) -> list[Equation]:
    """The step's equations, its own values renamed ``Z[t]`` (they differ from step to step), and each
    compound argument of an activation named as the equations outside the loop name theirs (an LSTM's
    gate σ(X Wᵢ + H Uᵢ) reads σ(Zₜ), so the recursion shows ∂L/∂Zₜ₊₁, not the gate's derivative inline)."""
    rename = {a.symbol: ir.symbol(f"{a.name}[{r.var}]", a.shape) for a in r.body if a.symbol.name == a.name}
    eqs: list[Equation] = []
    for a in r.body:
        target = rename.get(a.symbol, a.symbol)
        expr, lifted = lifter.lift(a.name, a.expr.xreplace(rename), a.line)
        eqs.extend(lifted)
        eqs.append(Equation(target.name, expr, target, line=a.line))
    return eqs


def _gated(r: Recurrence) -> bool:
    """Whether several of the step's values are activations of compound arguments (gates): each
    pre-activation is then named after its value, Z_I, Z_F, not Z, Z_F."""
    return sum(isinstance(a.expr, OpNode) and a.expr.op.name in ACTIVATIONS and isinstance(a.expr.children[0], OpNode)
               for a in r.body) > 1


def loop_needs(r: Recurrence, eqs: list[Equation], outer: set[str]) -> set[str]:
    """The step values and sequences a gradient flows through, given the outside values that need one
    (params, and values computed from them): iterated, since a state that needs one makes its
    H[t-1] need one at the next step."""
    seq_of = r.sequence_of
    needs = set(outer)
    while True:
        before = len(needs)
        for s in r.states:  # H[t-1] needs a gradient when H does, or H's first value does
            assert s.prev is not None
            if s.name in needs or f"{s.name}[0]" in needs:
                needs.add(s.prev.name)
        for sl in r.slices:
            if sl.source.name in needs:
                needs.add(sl.step.name)
        for eq in eqs:
            if any(x.name in needs for x in ir.differentiable_reads(eq.expr)):
                needs.add(eq.name)
                if eq.name in seq_of:
                    needs.add(seq_of[eq.name])
        if len(needs) == before:
            return needs


def through_time(r: Recurrence, index: int, eqs: list[Equation], outer_needs: set[str],
                 domains: Domains) -> ThroughTime:
    """The chain rule applied to loop ``r``'s step (its equations ``eqs``) once: every δ, carry and
    term at a general t."""
    seq_of, slice_of = r.sequence_of, r.source_of
    needs = loop_needs(r, eqs, outer_needs)
    own = {s.name: own_symbol(s, r.var) for s in r.sequences}
    after = {s.name: next_symbol(s, r.var) for s in r.states}
    step_of = {s.step.name: s for s in r.sequences}
    paths: dict[str, list[Path]] = {eq.name: [] for eq in eqs}
    outside: dict[str, list[Basic]] = {}
    deltas: list[StepDelta] = []
    for eq in reversed(eqs):
        if eq.name not in needs:
            continue
        seed: Basic = sympy.Integer(0)
        s = step_of.get(eq.name)
        if s is not None:
            seed = ir.add(own[s.name], after[s.name]) if s.name in after else own[s.name]
        total = seed
        for p in paths[eq.name]:
            total = ir.add(total, p.expr)
        result = simplify(_fit(total, eq.shape), domains)
        delta = StepDelta(eq.name, eq.shape, tuple(paths[eq.name]), seed, result)
        deltas.append(delta)
        for target, contrib, trail in _Pullback(eq, needs).run(delta.grad):
            path = Path(eq.name, contrib, tuple(k.rule for k in trail), trail)
            if target in paths:
                paths[target].append(path)
            else:
                outside.setdefault(target, []).append(contrib)
    carries, terms, slice_terms = {}, {}, {}
    for target, contribs in outside.items():
        total = sympy.Integer(0)
        for c in contribs:
            total = ir.add(total, c)
        if target in seq_of:  # H[t-1]: what this step sends to the previous one
            carries[seq_of[target]] = simplify(total, domains)
        elif target in slice_of:
            slice_terms[slice_of[target]] = simplify(total, domains)
        else:
            terms[target] = simplify(total, domains)
    return ThroughTime(r, index, tuple(eqs), tuple(deltas), carries, terms, slice_terms, own, after)


@dataclass
class TimeDerivation(Shown):
    """The chain rule through a model with loops: the equations outside the loops (a state's first
    value ``H[0]`` among them), each loop's backward pass at a general t, and the outside steps, in
    the order they are computed (the loss's first). ``at``: each loop's place in ``equations``."""

    model: Model
    equations: list[Equation]
    loops: list[ThroughTime]
    at: list[int]
    steps: list[Step]  # the outside gradients; LoopGrad leaves stand for what a loop sends back
    #: the optimizer whose update equations end the notes (as :attr:`Derivation.optimizer`)
    optimizer: str = "sgd"

    @property
    def every_equation(self) -> list[Equation]:
        """The equations outside the loops, then each loop's step equations."""
        return list(self.equations) + [eq for tt in self.loops for eq in tt.equations]


def derive_through_time(model: Model) -> TimeDerivation:
    """Backpropagate through ``model`` and its loops."""
    taken = StepNames(set(model.names()) | set(model.dims) | set(model.sequences)
                      | {a.name for r in model.loops for a in r.body})
    # the steps' names first: the textbook's Zₜ in the loop, and a loss's Z outside named around it
    steps = [step_equations(r, Lifter(model, taken, lambda n, r=r: f"{n}[{r.var}]", by_owner=_gated(r)))
             for r in model.loops]
    bare = forward_equations(replace(model, loops=[]), taken)
    end_of = {e.name: i + 1 for i, e in enumerate(bare)}
    cut = [0] + [end_of[a.name] for a in model.assigns]  # the equations of the first k assignments
    eqs: list[Equation] = []
    at: list[int] = []
    done_to = 0
    for r in model.loops:
        eqs.extend(bare[done_to:cut[r.position]])
        done_to = cut[r.position]
        eqs.extend(Equation(f"{s.name}[0]", s.init, first_state(s), line=s.init_line)
                   for s in r.states if s.init is not None)
        at.append(len(eqs))
    eqs.extend(bare[done_to:])
    domains = model.domains()
    params = [p.name for p in model.params]

    # which values need a gradient: forward, through each loop where it stands
    needs = set(params)
    loops_at: dict[int, list[int]] = {}
    for i, a in enumerate(at):
        loops_at.setdefault(a, []).append(i)
    for pos in range(len(eqs) + 1):
        for i in loops_at.get(pos, ()):
            needs |= {n for n in loop_needs(model.loops[i], steps[i], needs) if n in model.sequences}
        if pos < len(eqs) and any(s.name in needs for s in ir.differentiable_reads(eqs[pos].expr)):
            needs.add(eqs[pos].name)
    loops = [through_time(r, i, steps[i], needs, domains) for i, r in enumerate(model.loops)]

    # the outside chain rule, from the loss back; a loop is a node whose outputs are its sequences
    users: dict[str, list[Path]] = {}
    steps: list[Step] = []
    done: set[str] = set()

    def emit(name: str, shape: Shape, kind: str) -> None:
        ps = tuple(users.get(name, ()))
        total: Basic = sympy.Integer(0)
        for p in ps:
            total = ir.add(total, p.expr)
        result = simplify(_fit(total, shape), domains)
        steps.append(Step(name, shape, kind, ps, result, result))
        done.add(name)

    shapes = {e.name: e.shape for e in eqs} | {n: shape_of(s.stacked) for n, s in model.sequences.items()}
    shapes |= {d.name: d.shape for d in model.decls.values()}
    for pos in range(len(eqs), -1, -1):
        for tt in reversed([loops[i] for i in loops_at.get(pos, ())]):  # a loop: its sequences' δ, then what it sends back
            for s in tt.loop.sequences:
                if s.name in needs and s.name not in done:
                    emit(s.name, shapes[s.name], "intermediate")
            for kind, names in (("sum", tt.terms), ("steps", tt.slice_terms)):
                for name in names:
                    users.setdefault(name, []).append(Path(f"loop{tt.index}", loop_grad(
                        tt.index, kind, tt.loop.var, name, shapes[name]), ()))
            for s in tt.loop.states:
                if s.init is not None and s.name in tt.carries:
                    first = f"{s.name}[0]"
                    users.setdefault(first, []).append(Path(f"loop{tt.index}", _fit(loop_grad(
                        tt.index, "first", tt.loop.var, first, shape_of(s.step)), shapes[first]), ()))
        if pos == 0:
            break
        eq = eqs[pos - 1]
        if eq.name not in needs:
            continue
        g = sympy.Integer(1) if pos == len(eqs) else grad_symbol(eq.name, eq.shape)
        if pos != len(eqs):
            emit(eq.name, eq.shape, "intermediate")
        for target, contrib, trail in _Pullback(eq, needs).run(g):
            users.setdefault(target, []).append(Path(eq.name, contrib, tuple(k.rule for k in trail), trail))
    for p in params:
        emit(p, shapes[p], "param")
    return TimeDerivation(model, eqs, loops, at, steps)


__all__ = ["LoopGrad", "StepDelta", "ThroughTime", "TimeDerivation", "derive_through_time", "loop_needs",
           "through_time"]
