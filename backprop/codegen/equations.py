"""The first pass: a derivation's equations as statements, in the order the module runs them.

The forward equations (lifted pre-activations included) come first, rewritten
into stable and efficient forms (:mod:`backprop.codegen.rewrite`); then the
backward steps' final results, keeping only the steps some parameter gradient
needs, rewritten the same way and made to reuse forward values (ReLU′ from the
activation, softmax from the forward log-softmax); last, over the whole program, products by an
inverse become solves unless the inverse is needed anyway. Every later pass starts from
this list (:func:`backprop.codegen.lower.lower` calls them in order).
"""

from __future__ import annotations

from dataclasses import replace

from backprop.codegen.rewrite import Rule, available, inverses, resolver, reuse, stabilize
from backprop.codegen.stmt import Stmt
from backprop.engine.derivation import Derivation, Step
from backprop.expr.printing import GradSymbol, grad_symbol, text


def _forward_stmts(d: Derivation) -> tuple[list[Stmt], list[Rule]]:
    see = resolver({eq.name: eq.expr for eq in d.equations})
    out: list[Stmt] = []
    rules: list[Rule] = []
    for eq in d.equations:
        expr, fired = stabilize(eq.expr, see)
        comment = [f"{text(eq.symbol)} = {text(eq.expr)}"]
        stable = [r for r in fired if r.why == "stable"]
        if stable:
            comment.append("stable form: " + "; ".join(r.name for r in stable))
            rules.extend(r for r in stable if r not in rules)
        out.append(Stmt(eq.symbol, expr, "forward", "forward", tuple(comment)))
    return out, rules


def needed_steps(d: Derivation) -> list[Step]:
    """Steps some param gradient depends on; e.g. ∂L/∂p is dead once ∂L/∂z = (p − y)/m."""
    needed = set(d.params)
    for s in reversed(d.steps):  # a step reads only the δ of steps listed before it
        if s.target in needed:
            needed |= {g.of for g in s.result.atoms(GradSymbol)}
    return [s for s in d.steps if s.target in needed]


def _backward_stmts(d: Derivation, forward: list[Stmt]) -> list[Stmt]:
    see = resolver({eq.name: eq.expr for eq in d.equations})
    have = available([(s.symbol, s.expr) for s in forward])
    out: list[Stmt] = []
    for s in needed_steps(d):
        expr, _ = stabilize(s.result, see)
        expr, reused = reuse(expr, have)
        comment = [f"{text(s.grad)} = {text(s.recursive)}" + (f" = {text(s.result)}" if s.inlined else "")]
        if reused:
            comment.append("reusing forward values: " + "; ".join(r.name for r in reused))
        out.append(Stmt(grad_symbol(s.target, s.shape), expr, "backward", "backward", tuple(comment)))
    return out


def statements(d: Derivation) -> tuple[list[Stmt], list[Rule]]:
    """The forward then backward statements for ``d``, and the stable-form rules that fired; products
    by an inverse as solves where the inverse itself is not needed (:func:`~backprop.codegen.rewrite.inverses`)."""
    forward, rules = _forward_stmts(d)
    stmts = forward + _backward_stmts(d, forward)
    exprs, notes = inverses([s.expr for s in stmts])
    return [replace(s, expr=e, comment=s.comment + (note,) if note else s.comment)
            for s, e, note in zip(stmts, exprs, notes)], rules
