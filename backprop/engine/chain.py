"""Reverse-mode chain rule over a model.

Variables are visited from the loss backwards. ∂L/∂v is the sum, over every
use of v, of that use's vector-Jacobian product (taken from the operation
registry); each δ is computed once and referred to by name downstream, so the
derived expressions grow linearly with the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.derivation import Cut, Derivation, Equation, Link, Path, Step
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.printing import GradSymbol, grad_symbol
from backprop.language.model import Model
from backprop.support import naming
from backprop.support.deepstack import deep_stack
from backprop.support.errors import SpecError
from backprop.support.gcpause import without_cyclic_gc

#: Operations whose argument gets its own name (Z = W X + b) when compound.
ACTIVATIONS = frozenset({"sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax", "log_softmax"})
_INLINE_MAX = 40
#: A result reading more gradients than this keeps its recursive form. Each try simplifies
#: the whole result again, so a weight tied across n layers (n gradients in one sum) would
#: cost n simplifications of an n-term sum: minutes at 1,000 layers, for a substitution
#: that never shortens such a sum.
_INLINE_MAX_GRADS = 8


def at_loop(model: Model, message: str) -> SpecError:
    r = model.loops[0]
    lines = model.source.splitlines()
    src = lines[r.line - 1] if 0 < r.line <= len(lines) else None
    col = len(src) - len(src.lstrip()) + 1 if src else 1
    return SpecError(message, r.line, col, model.path, src)


# ---------------------------------------------------------------------------
# Forward equations: name each compound pre-activation, as course notes do
# ---------------------------------------------------------------------------


def forward_equations(model: Model, taken: set[str] | None = None) -> list[Equation]:
    """The model's equations, each compound argument of an activation named (``taken``: the names in
    use, the model's own by default)."""
    if model.loops:  # a caller's slip (backprop.get_derivation on a loop), said where the loop is
        raise at_loop(model, "a loop is derived through time, not by the flat chain rule: "
                             "backprop.get_notes_derivation (as 'backprop derive') gives its derivation")
    lifter = Lifter(model, set(model.names()) | set(model.dims) if taken is None else taken)
    eqs: list[Equation] = []
    for a in model.assigns:
        expr, lifted = lifter.lift(a.name, a.expr, a.line)
        eqs.extend(lifted)
        eqs.append(Equation(a.name, expr, a.symbol, line=a.line))
    return eqs


class Lifter:
    """Names each compound argument of an activation, as course notes do (A = σ(Z), Z = W X + b):
    after the assignment's own name (A1 -> Z1), or inside a loss as its weights are numbered.
    ``taken``: the names in use, which it adds to; ``rename`` turns a new name into its symbol's
    (a loop's step names its values at t: Z -> Z[t]); ``by_owner``: Z_I after I first, where several
    values of one step each have an activation (an LSTM's gates)."""

    def __init__(self, model: Model, taken: set[str], rename: Callable[[str], str] = lambda n: n,
                 by_owner: bool = False) -> None:
        self.model, self.taken, self.rename, self.by_owner = model, taken, rename, by_owner
        self.layer = max((naming.layer_number(a.name) for a in model.assigns), default=0)

    def lift(self, owner: str, expr: Basic, line: int) -> tuple[Basic, list[Equation]]:
        """``expr`` with its activations' compound arguments named, and their equations, in order."""
        lifted: list[Equation] = []
        return self._lift(expr, owner, True, line, lifted), lifted

    def _lift(self, e: Basic, owner: str, root: bool, line: int, lifted: list[Equation]) -> Basic:
        if not isinstance(e, OpNode):
            return e
        e = e.func(*(self._lift(c, owner, False, line, lifted) for c in e.children), *e.attrs)
        x = e.children[0] if e.children else None
        if e.op.name in ACTIVATIONS and isinstance(x, OpNode):
            # A₂ = ReLU(…) + A₁ still names its pre-activation Z₂; an activation
            # inside an unnumbered loss takes the next layer's number.
            by_owner = root or bool(naming.layer_number(owner))
            if not by_owner:  # numbered as its weights are: Z₂ = W₂ A + b₂, even after an unnumbered A
                self.layer = _weight_layer(self.model, x) or self.layer + 1
            name = naming.pre_activation(owner if by_owner else None, self.layer, self.taken, self.by_owner)
            self.taken.add(name)
            sym = ir.symbol(self.rename(name), shape_of(x))
            lifted.append(Equation(sym.name, x, sym, lifted=True, line=line))
            e = e.func(sym, *e.children[1:], *e.attrs)
        return e


def _weight_layer(model: Model, x: Basic) -> int:
    """The layer number the parameters in a pre-activation share (2 for W₂ A + b₂), or 0: an
    activation inside the loss names its pre-activation as its weights are numbered, Z₂ = W₂ A + b₂,
    not by counting the layers before it (which gives Z₁ after an unnumbered A = σ(Z))."""
    params = {d.name for d in model.decls.values() if d.kind == "param"}
    numbers = {naming.layer_number(s.name) for s in x.atoms(MatrixSymbol) if s.name in params}
    return numbers.pop() if len(numbers) == 1 else 0


# ---------------------------------------------------------------------------
# Vector-Jacobian products through one equation
# ---------------------------------------------------------------------------


def _fit(g: Basic, shape: ir.Shape) -> Basic:
    gs = shape_of(g)
    if gs == shape:
        return g
    if ir.is_scalar_shape(gs) or (len(gs) == len(shape) and all(a == b or a == 1 for a, b in zip(gs, shape))):
        return ir.broadcast_to(g, shape)
    return ir.unbroadcast(g, shape)


class _Pullback:
    """Walk one equation's expression top-down, pulling ``g`` back to leaves."""

    def __init__(self, eq: Equation, needs: set[str]) -> None:
        self.eq, self.needs = eq, needs
        self.found: list[tuple[str, Basic, tuple[Link, ...]]] = []
        self._depends: dict[Basic, bool] = {}

    def depends(self, e: Basic) -> bool:
        """Whether ``e`` reads a variable that needs a gradient. Memoized over the
        equation's subtrees: asked at every node of a 1,000-term sum, a fresh walk
        each time would be quadratic."""
        known = self._depends
        if e in known:
            return known[e]
        todo: list[tuple[Basic, bool]] = [(e, False)]
        while todo:  # post-order, iterative: the equation may be 1,000 levels deep
            x, ready = todo.pop()
            if x in known:
                continue
            if isinstance(x, MatrixSymbol):
                known[x] = x.name in self.needs
            elif not isinstance(x, OpNode):
                known[x] = False
            elif ready:
                known[x] = any(known[c] for c in x.children)
            else:
                todo.append((x, True))
                todo.extend((c, False) for c in x.children if c not in known)
        return known[e]

    def run(self, g: Basic) -> list[tuple[str, Basic, tuple[Link, ...]]]:
        self.walk(self.eq.expr, g, (), root=True)
        return self.found

    def walk(self, e: Basic, g: Basic, trail: tuple[Link, ...], root: bool = False) -> None:
        if isinstance(e, MatrixSymbol):
            if e.name in self.needs:
                fitted = _fit(g, shape_of(e))
                if trail and fitted != g:  # the last rule's gradient, as the target receives it
                    trail = trail[:-1] + (Link(trail[-1].rule, e, fitted),)
                self.found.append((e.name, fitted, trail))
            return
        if not isinstance(e, OpNode):
            return
        if not e.op.elementwise and shape_of(g) != e.shape:
            g = ir.broadcast_to(g, e.shape)
        out = self.eq.symbol if root else e
        for i, child in enumerate(e.children):
            vjp = e.op.operand_vjp(i)
            if vjp is None or not self.depends(child):
                continue
            gc = vjp(g, out, e)
            cs = shape_of(child)
            if e.op.elementwise and ir.stretched(cs, e.shape):
                # The child was broadcast to e's shape, so it receives the sum over its copies.
                # A cotangent smaller than e stands for its broadcast (a scalar 1/m is 1/m
                # everywhere), so make that explicit before summing: Σ over m copies of c is m c.
                gc = ir.unbroadcast(ir.broadcast_to(gc, e.shape), cs)
            if shape_of(gc) != cs and not (isinstance(child, OpNode) and child.op.elementwise):
                gc = _fit(gc, cs)
            elif shape_of(gc) != cs and ir.stretched(cs, shape_of(gc)):
                gc = ir.unbroadcast(gc, cs)
            self.walk(child, gc, trail + (Link(e.op.rule(i), child, gc),))


# ---------------------------------------------------------------------------
# The whole backward pass
# ---------------------------------------------------------------------------


def _needs_grad(model: Model, eqs: list[Equation]) -> set[str]:
    """The params and the values a gradient reaches them through: a value read by a param only
    across a cut (``stop_gradient``, a comparison) has no gradient to compute."""
    needs = {p.name for p in model.params}
    for eq in eqs:
        if any(s.name in needs for s in ir.differentiable_reads(eq.expr)):
            needs.add(eq.name)
    return needs


def _users(eqs: list[Equation], needs: set[str]) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {n: [] for n in needs}
    for eq in eqs:
        if eq.name not in needs:
            continue
        for s in sorted(ir.differentiable_reads(eq.expr), key=lambda s: s.name):
            if s.name in needs and eq.name not in users[s.name]:
                users[s.name].append(eq.name)
    return users


def _inline(result: Basic, done: Mapping[str, Step], domains: Mapping[str, str | None]) -> Basic:
    """Substitute a user's δ when that gives a smaller expression: (p − y)/m."""
    best = result
    grads = result.atoms(GradSymbol)
    if len(grads) > _INLINE_MAX_GRADS:
        return result
    for g in sorted(grads, key=lambda s: s.name):
        user = done.get(g.of)
        if user is None or ir.count_nodes(user.result) > _INLINE_MAX:
            continue
        candidate = simplify(best.xreplace({g: user.result}), domains)
        if ir.count_nodes(candidate) < ir.count_nodes(best):
            best = candidate
    return best


def _cuts(model: Model, eqs: list[Equation]) -> list[Cut]:
    """Where the forward pass reads a param-dependent value through an operand that passes no
    gradient: ``stop_gradient(H)``, a comparison ``[Z > 0]``, ``where``'s condition. The notes say
    so, since such a path contributes nothing to the gradients it seems to lead to."""
    tainted = {p.name for p in model.params}
    for eq in eqs:
        if any(s.name in tainted for s in eq.expr.atoms(MatrixSymbol)):
            tainted.add(eq.name)
    out: list[Cut] = []
    seen: set[Basic] = set()
    for eq in eqs:
        todo = [eq.expr]
        while todo:
            e = todo.pop()
            if not isinstance(e, OpNode) or e in seen:
                continue
            seen.add(e)
            for i, c in enumerate(e.children):
                if e.op.operand_vjp(i) is not None:
                    todo.append(c)
                elif any(s.name in tainted for s in c.atoms(MatrixSymbol)) and (
                        not isinstance(c, MatrixSymbol) or e.op.arity == 1):  # a named mask was cut where computed
                    # a node that passes nothing (stop_gradient, a comparison) is named whole; a
                    # condition of a node that passes the rest (where) is named alone
                    whole = all(e.op.operand_vjp(k) is None for k in range(len(e.children)))
                    cut = Cut(eq.name, e if whole else c, e.op.rule(i))
                    if cut not in out:
                        out.append(cut)
    return out


@deep_stack
@without_cyclic_gc
def derive(model: Model) -> Derivation:
    """Backpropagate through ``model``: one :class:`Step` per needed gradient."""
    eqs = forward_equations(model)
    needs = _needs_grad(model, eqs)
    users = _users(eqs, needs)
    domains = model.domains()
    params = [p.name for p in model.params]
    paths: dict[str, list[Path]] = {n: [] for n in needs}
    pending = {n: len(u) for n, u in users.items()}
    steps: list[Step] = []
    done: dict[str, Step] = {}

    shapes = {e.name: e.shape for e in eqs}  # not a scan per step: 1,000 layers would make it quadratic

    def emit(name: str, kind: str) -> None:
        ps = tuple(paths[name])
        total: Basic = sympy.Integer(0)
        for p in ps:
            total = ir.add(total, p.expr)
        shape = model.shape(name) if name in model.decls else shapes[name]
        recursive = simplify(_fit(total, shape), domains)
        result = _inline(recursive, done, domains)
        step = Step(name, shape, kind, ps, recursive, result)
        steps.append(step)
        done[name] = step

    loss = eqs[-1]
    for eq in reversed(eqs):
        if eq.name not in needs:
            continue
        if eq is not loss:
            emit(eq.name, "intermediate")
        g = sympy.Integer(1) if eq is loss else grad_symbol(eq.name, eq.shape)
        found = _Pullback(eq, needs).run(g)
        for target, contrib, trail in found:
            paths[target].append(Path(eq.name, contrib, tuple(k.rule for k in trail), trail))
        touched = {t for t, _, _ in found}
        for t in sorted(touched, key=lambda n: params.index(n) if n in params else -1):
            pending[t] -= 1
            if pending[t] == 0 and t in params:
                emit(t, "param")
    return Derivation(model, eqs, steps, cuts=tuple(_cuts(model, eqs)))
