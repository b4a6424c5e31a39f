"""Diagnosing a wrong claim: what kind of mistake it is, and the earliest step where it goes wrong.

A wrong shape (the transpose? a missing sum over the examples? the wrong axis?), a constant or
size-dependent factor, a sign, missing paths, or the earliest backward step at which the claim
stops matching -- found by replacing parts of the claim with true gradients until it holds, then
describing what the offending part should have been. Separate from the verdict
(:mod:`backprop.verification.verify`): only a wrong claim comes here, and all of this is wording.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sympy
from sympy import Basic, MatrixSymbol

from backprop.engine.derivation import Derivation, Step
from backprop.engine.simplify import simplify
from backprop.expr import ir
from backprop.expr.ir import OpNode, fmt_dim, fmt_shape, shape_of
from backprop.expr.printing import text
from backprop.verification.claims import Claim
from backprop.verification.factors import Factor, factor_phrase, fit_factor
from backprop.verification.numeric import TOL, Points, rel
from backprop.verification.repairs import _MAX_PARTS, INVERSE_NOTE, Repairs, _and, _grad_text, _subexpressions, holds_inverse
from backprop.verification.windows import CONVS, window_slip

#: Relative errors up to this (above TOL) are a near miss, not a factor "1.000001" or a wrong step.
NEAR = 1e-4

_HINT_MAX = 40
_MAX_PERMUTED_RANK = 4  # axis orders tried for a permuted claim: at most 4! = 24
_UNARY_ACTIVATIONS = frozenset({"sigmoid", "tanh", "relu", "softplus", "exp", "log", "sqrt", "abs"})
def _derivative_label(eq_expr: Basic) -> str:
    """σ(Z) -> σ′(Z), ReLU(Z₁) -> ReLU′(Z₁)."""
    s = text(eq_expr)
    i = s.find("(")
    return s[:i] + "′" + s[i:] if i > 0 else s + "′"


def _factors(e: Basic) -> list[Basic]:
    """The factors of an elementwise product (a leading −1 for a negation)."""
    if isinstance(e, OpNode) and e.op.name == "mul":
        return _factors(e.children[0]) + _factors(e.children[1])
    if isinstance(e, OpNode) and e.op.name == "neg":
        return [sympy.Integer(-1)] + _factors(e.children[0])
    return [e]


def _product(fs: Sequence[Basic]) -> Basic:
    out: Basic = sympy.Integer(1)
    for f in fs:
        out = ir.mul(out, f)
    return out


def _reorders(have: Sequence[Basic], want: Sequence[Basic]) -> Iterator[tuple[int, ...]]:
    """Axis orders other than the identity that turn shape ``have`` into ``want`` (ranks up to
    :data:`_MAX_PERMUTED_RANK`: at most 4! orders to try)."""
    if len(have) > _MAX_PERMUTED_RANK:
        return
    for perm in itertools.permutations(range(len(have))):
        if perm != tuple(range(len(have))) and tuple(have[p] for p in perm) == tuple(want):
            yield perm


def _own_sum(rhs: str) -> tuple[str, tuple[int, ...]] | None:
    """``sum(E, axis=k)`` or ``sum(E, axis=(j, k))`` as written: E's text and the axes; else None."""
    try:
        tree = ast.parse(rhs.strip(), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "sum"
            and len(tree.args) == 1 and [k.arg for k in tree.keywords] == ["axis"]):
        return None
    try:
        axis = ast.literal_eval(tree.keywords[0].value)
    except ValueError:
        return None
    axes = (axis,) if isinstance(axis, int) else axis
    inner = ast.get_source_segment(rhs.strip(), tree.args[0])
    if inner is None or not (isinstance(axes, tuple) and all(type(a) is int and a >= 0 for a in axes)):
        return None
    return inner, axes


class Diagnosis(Repairs):
    """Says how a claim about one derivation goes wrong, from its values at the verifier's points."""

    def __init__(self, deriv: Derivation, points: Points, grads: Sequence[str], tol: float = TOL) -> None:
        self.deriv = deriv
        self.tol = tol
        self.model = deriv.model
        self.at = points  # the verifier's points: self.at.vals(e) is e at every one of them
        #: the variables a claim may name (``dNAME``), in the parser's order
        self.grads = list(grads)
        self.examples = {self.model.examples_dim} - {None}
        #: V -> the equation U = f(V) of an elementwise activation applied to V
        self.activation_of: dict[str, Any] = {}
        for eq in deriv.equations:
            e = eq.expr
            if (isinstance(e, OpNode) and (e.op.name in _UNARY_ACTIVATIONS or e.op.name == "leaky_relu")
                    and isinstance(e.children[0], MatrixSymbol) and e.children[0].name in self.grads):
                self.activation_of.setdefault(e.children[0].name, eq)
        #: the forward convolutions' strides above 1: the dilations a claim's δ may be missing
        self.strides = sorted({int(x.attrs[0]) for eq in deriv.equations for x in sympy.preorder_traversal(eq.expr)
                               if isinstance(x, OpNode) and x.op.name in CONVS and int(x.attrs[0]) > 1})
        self.forward_vars: dict[str, MatrixSymbol] = {n: d.symbol for n, d in self.model.decls.items()}
        self.forward_vars.update({eq.name: eq.symbol for eq in deriv.equations})

    # --- wrong shapes ------------------------------------------------------------
    def _over(self, dim: Basic, axis: int, rank: int) -> str:
        if str(dim) in self.examples:
            return "the examples"
        if rank == 2:
            return f"the {dim} {'columns' if axis == 1 else 'rows'}"
        return f"the {dim} entries of axis {axis}"

    def _keep(self, dims: Sequence[Basic], axes: Sequence[int]) -> str:
        """What a claim summed over the examples should keep instead."""
        ax = next((a for a in axes if str(dims[a]) in self.examples), None)
        if ax is None:
            return "do not sum over them"
        if len(dims) == 2:
            return f"keep one {'column' if ax == 1 else 'row'} per example"
        return f"keep axis {ax}, one entry per example"

    @staticmethod
    def _sum_code(rhs: str, axes: Sequence[int], rank: int, scalar: bool) -> str:
        """The claim summed over ``axes`` as spec text: a claim that is itself a sum over some axes
        (keeping them) gets the missing ones added to its own, ``sum(E, axis=(1, 2, 3))`` rather than
        ``sum(sum(E, axis=(1, 2)), axis=3)``: a conv bias's gradient summed over positions, not examples."""
        inner = _own_sum(rhs)
        if inner is not None:
            rhs, axes = inner[0], sorted(set(axes) | set(inner[1]))
        body = rhs if len(rhs) <= _HINT_MAX else "..."
        if len(axes) == rank or scalar:
            return f"sum({body})"
        return f"sum({body}, axis={axes[0] if len(axes) == 1 else tuple(axes)})"

    def _permuted(self, cs: tuple, ts: tuple, c: list[np.ndarray], g: list[np.ndarray], head: str) -> str | None:
        """The claim is the gradient with its axes in another order: a transpose (or permutation)."""
        for perm in _reorders(cs, ts):
            moved = [np.transpose(x, perm) for x in c]
            fix = f"transpose(..., {list(perm)}) of it"
            if self.at.close(moved, g):
                what = "it is the transpose of the correct gradient" if len(cs) == 2 else f"{fix} is the correct gradient"
                return f"{head}; {what}"
            f = self.at.factor(moved, g)
            if f is not None:
                how = "it is transposed" if len(cs) == 2 else f"its axes are permuted ({fix})"
                return f"{head}; {how}, and {factor_phrase(f)}"
        return None

    def _window_slip(self, claim: Claim, step: Step) -> tuple[str, str] | None:
        """A convolution in the claim with unflipped filters, the wrong padding or δ not dilated by the
        stride (rows of :mod:`backprop.verification.windows`)."""
        return window_slip(claim.expr, step.shape, self.at.grad(step.target), step.target not in self.deriv.params,
                           self.at.vals, self.at.close, self.strides)

    def wrong_shape(self, claim: Claim, step: Step, c: list[np.ndarray], g: list[np.ndarray]) -> tuple[str, str]:
        cs, ts = shape_of(claim.expr), step.shape
        head = f"wrong shape {fmt_shape(cs)}: {_grad_text(step.target)} is {fmt_shape(ts)}"
        slip = self._window_slip(claim, step)
        if slip is not None:
            return slip[0], f"{head}; {slip[1]}"
        if len(cs) != len(ts):
            kind, more = self._extra_axes(cs, ts, c, g, claim.rhs)
            return kind, head + more
        rank, axes = len(ts), range(len(ts))
        found = self._permuted(cs, ts, c, g, head)
        if found is not None:
            return "transpose", found
        axis = self._wrong_axis(claim.expr, ts, g)
        if axis is not None:
            return "sum", f"{head}; it sums over the wrong axis: {axis}"
        wide = [ax for ax in axes if ts[ax] == 1 and cs[ax] != 1]
        if wide and all(cs[ax] == ts[ax] for ax in axes if ax not in wide):
            red = [np.sum(x, axis=tuple(wide), keepdims=True) for x in c]
            over = _and([self._over(cs[ax], ax, rank) for ax in wide])
            code = self._sum_code(claim.rhs, wide, rank, ir.is_scalar_shape(ts))
            if self.at.close(red, g):
                return "sum", f"{head}; sum over {over}: {code}"
            f = self.at.factor(red, g)
            if f is not None:
                return "sum", f"{head}; sum over {over} ({code}), and then it is {factor_phrase(f)}"
        narrow = [ax for ax in axes if cs[ax] == 1 and ts[ax] != 1]
        if narrow and all(cs[ax] == ts[ax] for ax in axes if ax not in narrow):
            red = [np.sum(x, axis=tuple(narrow), keepdims=True) for x in g]
            if self.at.close(c, red):
                over = _and([self._over(ts[ax], ax, rank) for ax in narrow])
                return "shape", f"{head}; it is the correct gradient summed over {over}: {self._keep(ts, narrow)}"
            if self.at.close([np.broadcast_to(x, y.shape) for x, y in zip(c, g)], g):
                along = _and([f"{fmt_dim(ts[ax])} along axis {ax}" for ax in narrow])
                return "shape", f"{head}; its entries are right, but the gradient repeats them ({along}): give it the full shape"
        return "shape", head

    def _extra_axes(self, cs: tuple, ts: tuple, c: list[np.ndarray], g: list[np.ndarray], rhs: str) -> tuple[str, str]:
        """A claim of higher rank whose extra axes are the gradient summed away or kept with size 1."""
        extra = len(cs) - len(ts)
        shape = f"[{', '.join(fmt_dim(d) for d in ts)}]"
        if ir.is_scalar_shape(ts) and len(cs) > 2:  # a scalar's gradient: every entry summed
            red = [np.sum(x).reshape(y.shape) for x, y in zip(c, g)]
            code = self._sum_code(rhs, range(len(cs)), len(cs), True)
            if self.at.close(red, g):
                return "sum", f"; sum over all its entries: {code}"
            f = self.at.factor(red, g)
            if f is not None:
                return "sum", f"; sum over all its entries ({code}), and then it is {factor_phrase(f)}"
            return "shape", ""
        if extra < 0 and [d for d in cs if d != 1] == [d for d in ts if d != 1]:
            if self.at.close([np.reshape(x, y.shape) for x, y in zip(c, g)], g):
                return "shape", f"; the entries are right, the axes are not: reshape(..., {shape})"
        if extra <= 0 or len(cs) > _MAX_PERMUTED_RANK + 1:
            return "shape", ""
        for drop in itertools.combinations(range(len(cs)), extra):
            if tuple(d for ax, d in enumerate(cs) if ax not in drop) != ts:
                continue
            red = [np.sum(x, axis=drop) for x in c]
            if not self.at.close(red, g):
                continue
            axes = drop[0] if len(drop) == 1 else drop
            them = "it" if len(drop) == 1 else "them"
            if all(cs[ax] == 1 for ax in drop):
                size1 = f"axis {drop[0]} has" if len(drop) == 1 else f"axes {_and([str(a) for a in drop])} have"
                return "shape", f"; its {size1} size 1 where the gradient has none: drop {them} with reshape(..., {shape})"
            over = _and([self._over(cs[ax], ax, len(cs)) for ax in drop])
            drop_them = "the axis" if len(drop) == 1 else "the axes"
            return "sum", f"; sum over {over} and drop {drop_them}: reshape(sum(..., axis={axes}), {shape})"
        return "shape", ""

    def _wrong_axis(self, e: Basic, ts: tuple[Basic, ...], g: list[np.ndarray]) -> str | None:
        """sum(E, axis=0) where sum(E, axis=1) is meant (or any other single axis)."""
        if not (isinstance(e, OpNode) and e.op.name in ("sum", "mean") and len(e.attrs[0]) == 1):
            return None
        x = e.children[0]
        xs = shape_of(x)
        for other in range(len(xs)):
            if other == int(e.attrs[0][0]) or xs[other] == 1:
                continue
            fixed = ir.node(e.op.name, x, ir.axes_attr(other))
            if shape_of(fixed) != ts or not self.at.close(self.at.vals(fixed), g):
                continue
            if str(xs[other]) in self.examples:
                along = "the examples"
            elif len(xs) == 2:
                along = "each row" if other == 1 else "each column"
            else:
                along = f"the {fmt_dim(xs[other])} entries of axis {other}"
            return f"axis={other} sums over {along}: {e.op.name}(..., axis={other})"
        return None

    # --- wrong values --------------------------------------------------------------
    def wrong_value(self, claim: Claim, step: Step, c: list[np.ndarray], g: list[np.ndarray], err: float) -> tuple[str, str]:
        if not all(np.all(np.isfinite(x)) for x in c):
            return "value", "it is not finite at some points (a division by zero, or the log of a negative number?)"
        if all(float(np.linalg.norm(x)) == 0.0 for x in c):
            return "zero", "it is zero, but the correct gradient is not"
        if err <= max(NEAR, 100 * self.tol):  # no factor or step to name: the claim is right but for a small perturbation
            return "near", (f"agrees to {err:.1g}, not within the tolerance {self.tol:.0e}: a stabilizing epsilon, "
                            "or a constant rounded?")
        slip = self._window_slip(claim, step)
        if slip is not None:
            return slip
        f = self.at.factor(c, g)
        if f is not None:
            kind = "sign" if (f.c == -1 and not f.exps) else "factor"
            return kind, factor_phrase(f, claim=claim.expr)
        ts = step.shape
        for perm in () if ir.is_scalar_shape(ts) else _reorders(ts, ts):
            if self.at.close([np.transpose(x, perm) for x in c], g):
                what = ("a transpose is missing: it is the transpose of" if len(ts) == 2
                        else f"transpose(..., {list(perm)}) of it is")
                note = INVERSE_NOTE if len(ts) == 2 and holds_inverse(claim.expr) else ""
                return "transpose", (f"{what} the correct gradient ({_grad_text(step.target)} is "
                                     f"{fmt_shape(ts)}, so the shapes cannot tell){note}")
        return self._locate(claim.expr, step.target, top=True, err=err)

    def _locate(self, s: Basic, target: str, top: bool, err: float) -> tuple[str, str]:
        """Descend to the part of ``s`` that stops matching: replace parts by true gradients until it holds."""
        hole = self._hole(s, target)
        if hole is not None:
            part, var = hole
            return self._locate(part, var, top=False, err=err)
        return self._local(s, target, top, err)

    def _hole(self, s: Basic, target: str) -> tuple[Basic, str] | None:
        want = self.at.grad(target)
        best: tuple[Basic, str] | None = None
        for part in _subexpressions(s)[1:_MAX_PARTS]:
            shape = shape_of(part)
            if ir.is_scalar_shape(shape):
                continue
            for var in self.grads:
                if self.deriv.step(var).shape != shape:
                    continue
                if self.at.close(self.at.vals(s, {part: self.at.grad(var)}), want) and not self._holds(part, var):
                    if best is None or ir.count_nodes(part) > ir.count_nodes(best[0]):
                        best = (part, var)
                    break
        return best

    def _holds(self, part: Basic, var: str) -> bool:
        """Whether ``part`` already contains ∂L/∂var: then the mistake is around it, not inside."""
        want, shape = self.at.grad(var), self.deriv.step(var).shape
        return any(shape_of(x) == shape and self.at.close(self.at.vals(x), want) for x in _subexpressions(part)[1:])

    def _local(self, s: Basic, target: str, top: bool, err: float) -> tuple[str, str]:
        """Describe how ``s`` fails to be ∂L/∂target when no smaller part is to blame."""
        step = self.deriv.step(target)
        got, want = self.at.vals(s), self.at.grad(target)
        where = "" if top else f"in {_grad_text(target)}: "
        for check in (self._paths, self._extra_term, self._other_gradient, self._activation, self._slip,
                      self._axis_in_claim):
            found = check(s, step, got)
            if found is not None:
                return found[0], where + found[1] if check is self._paths else found[1]
        if not top:
            f = self.at.factor(got, want)
            if f is not None:
                part = f"its part {text(s)}, which should be {_grad_text(target)}, is "
                return "factor", part + factor_phrase(f, of=f"the correct {_grad_text(target)}", claim=s)
        for check in (self._transposed_part, self._swapped_leaf):
            found = check(s, step)
            if found is not None:
                return found
        rec = text(step.recursive)
        if top:
            return "value", f"does not match {_grad_text(target)} = {rec} (relative error {err:.2g})"
        return "step", f"its part {text(s)} should be {_grad_text(target)} = {rec}"

    def _paths(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """A variable used several times: which uses the claim covers (fit over the paths' contributions)."""
        paths = step.paths
        if len(paths) < 2:
            return None
        contrib = [self.at.vals(p.expr) for p in paths]
        coefs: list[list[float]] = [[] for _ in paths]
        sizes = []
        for i, y in enumerate(got):
            a = np.column_stack([np.broadcast_to(c[i], y.shape).ravel() for c in contrib])
            sol, _, rank, _ = np.linalg.lstsq(a, y.ravel(), rcond=None)
            if rank < len(paths):
                continue  # the uses cannot be told apart at this point (e.g. too few examples)
            if rel(a @ sol, y.ravel()) > TOL * 10:
                return None
            sizes.append(self.at.sizes[i])
            for j, v in enumerate(sol):
                coefs[j].append(float(v))
        if len(sizes) < 2:
            return None
        domains = self.model.domains()
        terms = [text(simplify(p.expr, domains)) for p in paths]
        vias = [p.via for p in paths]
        labels = [f"{p.via} (contributing {t})" if vias.count(p.via) > 1 else p.via for p, t in zip(paths, terms)]
        matched, missing, other = [], [], []
        for j, cs in enumerate(coefs):
            scale = max(abs(x) for x in cs)
            if scale < 1e-9:
                missing.append(j)
                continue
            f = fit_factor(cs, sizes)
            if f is None:
                return None
            (matched if f.is_one else other).append((j, f))
        parts = []
        if missing:
            lost = [f"{paths[j].via} (contributing {terms[j]})" for j in missing]
            s_ = "s" if len(missing) > 1 else ""
            if matched:
                ok = _and([labels[j] for j, _ in matched])
                parts.append(f"matches the path{'s' if len(matched) > 1 else ''} through {ok} "
                             f"but misses the path{s_} through {_and(lost)}")
            else:
                parts.append(f"misses the path{s_} through {_and(lost)}")
            held = sorted({paths[j].via for j in missing} & set(self.grads) - {step.target})
            if held:  # batch norm's μ and σ²: computed from the target, then treated as given
                it = "them" if len(held) > 1 else "it"
                parts[-1] += (f": it treats {_and(held)} as constant{'s' if len(held) > 1 else ''}, "
                              f"but {step.target} reaches the loss through {it} too")
        for j, f in other:
            label = f"{paths[j].via} (contributing {terms[j]})"
            if f.c == -1 and not f.exps:
                parts.append(f"the path through {label} has the wrong sign")
            else:
                parts.append(f"the path through {label} is {factor_phrase(f, of='its correct contribution')}")
        if not parts:
            return None
        return "paths", "; ".join(parts)

    def _other_gradient(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """The part is the gradient of another variable: a skipped step (often the activation's derivative)."""
        for var in self.grads:
            if var == step.target or self.deriv.step(var).shape != step.shape:
                continue
            if not self.at.close(got, self.at.grad(var)):
                continue
            act = self.activation_of.get(step.target)
            if act is not None and act.name == var:
                local = act.expr.op.vjps[0](sympy.Integer(1), act.symbol, act.expr)
                label = _derivative_label(act.expr)
                return "step", (f"the factor {label} = {text(local)} is missing: "
                                f"{_grad_text(step.target)} = {_grad_text(var)} ⊙ {label}, not {_grad_text(var)}")
            return "step", f"uses {_grad_text(var)} where {_grad_text(step.target)} belongs"
        return None

    def _activation(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """δ_Z = δ_A ⊙ f′(Z): find the δ_A factor (or a multiple of it), then compare the rest with f′."""
        act = self.activation_of.get(step.target)
        if act is None:
            return None
        found = self._outer_factor(_factors(s), self.at.grad(act.name))
        if found is None:
            return None
        pick, rest, f = found
        claimed = _product(rest)
        local = act.expr.op.vjps[0](sympy.Integer(1), act.symbol, act.expr)
        label = _derivative_label(act.expr)
        right = shape_of(claimed) == step.shape and self.at.close(self.at.vals(claimed), self.at.vals(local))
        wrong = f"this would hold if {label} were {text(claimed)}; it is {text(local)}"
        v = self.forward_vars[step.target]
        if shape_of(claimed) == step.shape:
            with_forward_value = self.at.vals(claimed, {v: self.at.var(act.name)})
            if self.at.close(with_forward_value, self.at.vals(local)):
                wrong += f": use {text(act.symbol)} = {text(act.expr)}, not {text(v)}"
        if f is None:
            return "step", wrong
        off = f"{text(_product(pick))} is {factor_phrase(f, of=_grad_text(act.name))}"
        if right:
            return "factor", f"in {_grad_text(step.target)}: {off}"
        return "step", f"two mistakes in {_grad_text(step.target)}: {off}; and {wrong}"

    def _outer_factor(self, fs: list[Basic], outer: list[np.ndarray]) -> tuple[list[Basic], list[Basic], Factor | None] | None:
        """Factors whose product is ``outer`` (factor None) or a multiple of it; the rest."""
        loose = None
        for size in (1, 2):
            for pick in itertools.combinations(range(len(fs)), size):
                if len(fs) - size < 1:
                    continue
                got = self.at.vals(_product([fs[i] for i in pick]))
                split = ([fs[i] for i in pick], [x for i, x in enumerate(fs) if i not in pick])
                if self.at.close(got, outer):
                    return (*split, None)
                f = self.at.factor(got, outer) if loose is None else None
                if f is not None:
                    loose = (*split, f)
        return loose

    def _extra_term(self, s: Basic, step: Step, got: list[np.ndarray]) -> tuple[str, str] | None:
        """A sum that holds without one of its terms."""
        terms = ir.signed_terms(s)
        if len(terms) < 2:
            return None
        want = self.at.grad(step.target)
        vals = [[sign * np.broadcast_to(v, w.shape) for v, w in zip(self.at.vals(t), want)] for sign, t in terms]
        for i, (sign, t) in enumerate(terms):
            rest = [sum(vals[j][k] for j in range(len(terms)) if j != i) for k in range(len(want))]
            if self.at.close(rest, want):
                return "value", f"the term {'−' if sign < 0 else '+'} {text(t)} does not belong: without it the claim holds"
        return None
