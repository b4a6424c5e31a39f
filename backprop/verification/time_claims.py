"""Claims about a loop, written in the general form a textbook prints, judged and diagnosed.

A claim about a loop's step reads ``dH[t] = …`` (∂L/∂Hₜ at a general t) and may read the step's values
at t (``H[t]``, ``Z`` or ``Z[t]``, ``X[:, t]``), a state's previous step (``H[t-1]``), the next step's δ
(``dZ[t+1]``, 0 past the last step), what the equations after the loop send to step t (``dH[:, t]``,
the stacked gradient at t), and any value or gradient outside the loop. A claim about a shared weight
sums its steps' shares: ``dWh = sum_t(dZ[t] @ H[t-1].T)``. After the loop ``H[T]`` is the last step.

Each claim is evaluated at every step of random points (several sets of sizes, T among them) against
the reference evaluator (:class:`~backprop.verification.through_time.TimeRun`), every ``dOTHER`` bound
to the true gradient. A wrong one gets the diagnosis of the classic mistakes of backpropagation through
time: a shared weight's gradient from one step only, the recursion without the step's own term (or
without what the next step sends back), a weight where its transpose belongs. How a claim is read
(its target, its step references) is :mod:`~backprop.verification.time_syntax`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from sympy import Basic, MatrixSymbol

from backprop.engine.through_time import ThroughTime, TimeDerivation, derive_through_time
from backprop.expr import ir
from backprop.expr.evaluate import evaluate
from backprop.expr.ir import OpNode, shape_of
from backprop.expr.printing import GradSymbol, grad_symbol
from backprop.language.domains import sample
from backprop.language.model import Model
from backprop.support.errors import ShapeError, SpecError
from backprop.support.naming import grad_name
from backprop.support.notation import text_subscript
from backprop.verification.claims import ClaimSource
from backprop.verification.forms import rename
from backprop.verification.numeric import TOL, concrete, rel, size_sets
from backprop.verification.report import ClaimResult, VerifyReport
from backprop.verification.through_time import TimeRun
from backprop.verification.time_syntax import SUM, StepRef, TimeClaim, parse_time_claim, step_shape

#: The mistakes that leave out some of a value's paths: a shared weight's share from the last step
#: only, the recursion without the step's own term, or without what the next step sends back.
LOOP_PATHS = frozenset({"last", "own", "carry"})


class TimeClaims:
    """Parses and judges claims about one model with loops."""

    def __init__(self, td: TimeDerivation, seed: int = 0, tol: float = TOL) -> None:
        self.td, self.seed, self.tol = td, seed, tol
        model = td.model
        self.names: dict[str, Basic] = {n: d.symbol for n, d in model.decls.items()}
        self.names.update({eq.name: eq.symbol for eq in td.equations})
        self.names.update({n: s.stacked for n, s in model.sequences.items()})
        self.names.update({grad_name(s.target): grad_symbol(s.target, s.shape) for s in td.steps})
        self.outside = {s.target: s for s in td.steps}
        sets = size_sets(model, seed)[:3]
        rng = np.random.default_rng(seed)
        self.runs = [self._run(sizes, rng) for sizes in sets for _ in range(2)]
        self.sizes = sets

    def _run(self, sizes: dict[str, int], rng: np.random.Generator) -> tuple[TimeRun, dict[str, np.ndarray]]:
        model = self.td.model
        env: dict[Any, Any] = {model.dims[k]: v for k, v in sizes.items()}
        classes = model.domains().class_axes
        for d in model.decls.values():
            shape = concrete(d.shape, env)
            value = sample(d.domain, shape, rng, classes.get(d.name, 0), sizes) if d.kind == "input" else \
                rng.normal(size=shape) * 0.5
            env[d.name] = value if shape else float(np.asarray(value).reshape(()))
        run = TimeRun(self.td, env)
        return run, run.gradients()

    def parse(self, src: ClaimSource) -> TimeClaim:
        return parse_time_claim(self.td, self.names, src)

    # --- values -------------------------------------------------------------------------------
    def _env(self, run: TimeRun, grads: dict[str, np.ndarray], claim: TimeClaim, t: int) -> dict[Any, Any]:
        env = dict(run.vals)
        for key, ref in claim.refs.items():
            steps, deltas = run.steps[ref.loop], run.deltas[ref.loop]
            length = len(steps)
            at = (length + ref.at if ref.at < 0 else ref.at) if ref.at is not None else t + ref.offset
            tt = self.td.loops[ref.loop]
            if ref.kind == "own":
                s = next(q for q in tt.loop.sequences if q.name == ref.name)
                g = grads.get(s.name)
                env[key] = np.zeros(concrete(shape_of(s.step), run.vals)) if g is None else np.take(g, at, axis=s.time_axis)
            elif ref.kind == "grad":
                env[key] = deltas[at][ref.name] if at < length else np.zeros_like(deltas[0][ref.name])
            elif at >= length:  # past the last step: only ever read beside a δ there, which is 0
                env[key] = np.zeros_like(steps[0][ref.name])
            elif at < 0:  # a state's previous step at t = 1: its first value
                s = next(q for q in tt.loop.states if q.step.name == ref.name)
                env[key] = np.broadcast_to(run.vals[f"{s.name}[0]"], concrete(shape_of(s.step), run.vals))
            else:
                env[key] = steps[at][ref.name]
        return env

    def _value(self, e: Basic, env: Mapping[Any, Any], shape: tuple) -> np.ndarray:
        return np.broadcast_to(evaluate(e, env), concrete(shape, env))

    def _claimed(self, claim: TimeClaim, expr: Basic, run: TimeRun, grads: dict[str, np.ndarray],
                 steps: Iterable[int]) -> list[np.ndarray]:
        shape = shape_of(expr)
        return [np.asarray(self._value(expr, self._env(run, grads, claim, t), shape)) for t in steps]

    def _true(self, claim: TimeClaim, run: TimeRun, grads: dict[str, np.ndarray]) -> list[np.ndarray]:
        if claim.loop is not None:
            return [d[claim.target] for d in run.deltas[claim.loop]]
        return [grads[claim.target]]

    def _agrees(self, claim: TimeClaim, expr: Basic) -> float:
        """The largest relative error of ``expr`` (in ``claim``'s form) over every point and step."""
        worst = 0.0
        for run, grads in self.runs:
            truth = self._true(claim, run, grads)
            length = len(run.steps[claim.loop if claim.loop is not None else 0]) if self.td.loops else 1
            if claim.loop is not None:
                got = self._claimed(claim, expr, run, grads, range(length))
            elif claim.summed:
                got = [sum(self._claimed(claim, expr, run, grads, range(length)))]
            else:
                got = self._claimed(claim, expr, run, grads, [length - 1])  # a free t: the last step
            for a, b in zip(got, truth):
                if np.shape(a) != np.shape(b) and np.size(a) != np.size(b):
                    return math.inf
                worst = max(worst, rel(np.reshape(a, np.shape(b)), b))
        return worst

    # --- judging --------------------------------------------------------------------------------
    def check(self, claim: TimeClaim) -> ClaimResult:
        want = self._target_shape(claim)
        got = tuple(shape_of(claim.expr))
        base = {"name": claim.target, "claim_text": claim.text, "exact_checked": False,
                "file": claim.src.file, "line": claim.src.line}
        if got != want and not (ir.is_scalar_shape(got) and ir.is_scalar_shape(want)):
            return ClaimResult(verdict=False, error=math.inf, mistake="shape", diagnosis=(
                f"wrong shape: the claim is {_fmt(got)}, ∂L/∂{claim.target} is {_fmt(want)}"), **base)
        err = self._agrees(claim, claim.expr)
        if err <= self.tol:
            return ClaimResult(verdict=True, diagnosis=None, error=err, **base)
        mistake, why = self._diagnose(claim)
        return ClaimResult(verdict=False, error=err, mistake=mistake, diagnosis=why, **base)

    def _target_shape(self, claim: TimeClaim) -> tuple:
        if claim.loop is not None:
            return tuple(step_shape(self.td.loops[claim.loop], claim.target))
        return tuple(self.outside[claim.target].shape)

    def _diagnose(self, claim: TimeClaim) -> tuple[str, str]:
        if claim.loop is not None:
            found = self._missing_term(claim)
            if found:
                return found
        else:
            found = self._one_step(claim)
            if found:
                return found
        if len(shape_of(claim.expr)) == 2 and self._agrees(claim, ir.node("transpose", claim.expr)) <= self.tol:
            return "transpose", f"the transpose of ∂L/∂{claim.target}: transpose it"
        for sym, fixed in _transposes(claim.expr):
            if self._agrees(claim, fixed) <= self.tol:
                return "transpose", f"{sym} where {sym}ᵀ belongs: with {sym}.T the claim is right"
        for wrote, meant, moved in self._shifts(claim):
            if self._agrees(moved, moved.expr) <= self.tol:
                return "step", f"{wrote} where {meant} belongs: with {meant} the claim is right"
        return "value", self._where_wrong(claim)

    def _shifts(self, claim: TimeClaim) -> list[tuple[str, str, TimeClaim]]:
        """The claim with one state read at the other step (H[t] for H[t-1], or back), each variant with
        what it changed."""
        out = []
        for key, ref in claim.refs.items():
            tt = self.td.loops[ref.loop]
            state = next((s for s in tt.loop.states if s.step.name == ref.name), None)
            if ref.kind != "value" or ref.at is not None or state is None or ref.offset not in (0, -1):
                continue
            var = tt.loop.var
            other = StepRef(ref.loop, ref.kind, ref.name, -1 - ref.offset)
            new_key = key + "'"
            expr = claim.expr.xreplace({ir.symbol(key, shape_of(state.step)): ir.symbol(new_key, shape_of(state.step))})
            steps = (f"{state.name}[{var}]", f"{state.name}[{var}-1]")
            wrote, meant = steps if ref.offset == 0 else steps[::-1]
            out.append((wrote, meant, replace(claim, expr=expr, refs={**claim.refs, new_key: other})))
        return out

    def _missing_term(self, claim: TimeClaim) -> tuple[str, str] | None:
        """A state's recursion without its own term, or without what the next step sends back."""
        tt = self.td.loops[claim.loop]  # type: ignore[index]
        state = next((s for s in tt.loop.states if s.step.name == claim.target), None)
        if state is None or state.name not in tt.carries:
            return None
        t = tt.loop.var
        for part, (kind, why) in (("carry", ("own", f"the recursion is missing the step's own term: ∂L/∂{state.name}"
                                                     f"{text_subscript(t)} gets what the equations that read {state.name}[{t}] "
                                                     f"send back, besides the next step's share")),
                                  ("own", ("carry", f"the recursion is missing what step {t}+1 sends back to "
                                                    f"{state.name}[{t}] (0 only at {t} = {tt.loop.length})"))):
            if self._is_part(claim, tt, state.name, part):
                return kind, why
        return None

    def _is_part(self, claim: TimeClaim, tt: ThroughTime, state: str, part: str) -> bool:
        """Whether the claim equals one part of the true δ at every step: the next step's share (carry)
        or everything else (own), and that part is not the whole."""
        worst, other = 0.0, 0.0
        for run, grads in self.runs:
            deltas = run.deltas[tt.index]
            length = len(deltas)
            got = self._claimed(claim, claim.expr, run, grads, range(length))
            for t in range(length):
                nxt = _carry(tt, state, run, t + 1) if t + 1 < length else 0.0
                truth = deltas[t][claim.target]
                piece = nxt if part == "carry" else truth - nxt
                worst = max(worst, rel(np.broadcast_to(got[t], np.shape(truth)), np.broadcast_to(piece, np.shape(truth))))
                other = max(other, float(np.linalg.norm(truth - piece)))
        return worst <= self.tol and other > 0.0

    def _one_step(self, claim: TimeClaim) -> tuple[str, str] | None:
        """A shared weight's gradient from one step (the last) rather than the sum over the steps."""
        terms = [(tt, tt.terms[claim.target]) for tt in self.td.loops if claim.target in tt.terms]
        if len(terms) != 1 or claim.summed:
            return None
        tt, term = terms[0]
        worst = 0.0
        for run, grads in self.runs:
            length = len(run.steps[tt.index])
            got = self._claimed(claim, claim.expr, run, grads, [length - 1])[0]
            share = _share(tt, term, run, length - 1)
            worst = max(worst, rel(np.broadcast_to(got, np.shape(share)), share))
        if worst > self.tol:
            return None
        t, length = tt.loop.var, tt.loop.length
        return "last", (f"the gradient of a shared weight from the last step only: {claim.target} is used at every "
                        f"step, so ∂L/∂{claim.target} sums every step's share, {SUM}(…) over {t} = 1..{length}")

    def _where_wrong(self, claim: TimeClaim) -> str:
        if claim.loop is None:
            return f"not ∂L/∂{claim.target} (relative error {self._agrees(claim, claim.expr):.2g})"
        run, grads = self.runs[0]
        truth = self._true(claim, run, grads)
        got = self._claimed(claim, claim.expr, run, grads, range(len(truth)))
        bad = [t for t in range(len(truth)) if rel(np.broadcast_to(got[t], np.shape(truth[t])), truth[t]) > self.tol]
        var = self.td.loops[claim.loop].loop.var
        steps = len(truth)
        if not bad:
            return f"not ∂L/∂{claim.target} (relative error {self._agrees(claim, claim.expr):.2g})"
        return (f"not ∂L/∂{claim.target}: wrong first at {var} = {bad[-1] + 1} (T = {steps}), coming down from "
                f"{var} = T as the backward pass does")


def _step_env(tt: ThroughTime, run: TimeRun, t: int) -> dict[Any, Any]:
    """Everything step t (0-based) of loop ``tt`` reads: the run's values, the step's values, its δs."""
    env = dict(run.vals)
    env.update(run.steps[tt.index][t])
    env.update({"d" + k: v for k, v in run.deltas[tt.index][t].items()})
    return env


def _carry(tt: ThroughTime, state: str, run: TimeRun, t: int) -> np.ndarray:
    """What step t (0-based) sends back to step t - 1 (the next step's share of δ at t - 1)."""
    s = next(q for q in tt.loop.states if q.name == state)
    return np.asarray(np.broadcast_to(evaluate(tt.carries[state], _step_env(tt, run, t)), concrete(shape_of(s.step), run.vals)))


def _share(tt: ThroughTime, term: Basic, run: TimeRun, t: int) -> np.ndarray:
    """A shared value's share at step t (0-based)."""
    return np.asarray(evaluate(term, _step_env(tt, run, t)))


def _transposes(e: Basic) -> list[tuple[str, Basic]]:
    """The claim with one square weight (a param or input read as itself) transposed, or a transpose
    undone: each variant, named by the weight."""
    out = []
    for x in sorted(e.atoms(MatrixSymbol), key=lambda s: s.name):
        if isinstance(x, GradSymbol) or x.name.startswith("@") or len(shape_of(x)) != 2:
            continue
        r, c = shape_of(x)
        if r != c or r == 1:
            continue
        flipped = ir.node("transpose", x)
        table = {flipped: x}
        fixed = _replace(e, x, flipped, table)
        if fixed != e:
            out.append((x.name, fixed))
    return out


def _replace(e: Basic, x: Basic, flipped: Basic, table: dict[Basic, Basic]) -> Basic:
    """``e`` with ``x`` read as its transpose and ``xᵀ`` as ``x``."""
    if e == flipped:
        return x
    if e == x:
        return flipped
    if isinstance(e, OpNode):
        kids = [_replace(k, x, flipped, table) for k in e.children]
        return e.func(*kids, *e.attrs)
    return e


def _fmt(shape: tuple) -> str:
    return "×".join(str(d) for d in shape) if shape else "a scalar"


def check_time_claims(model: Model, sources: Iterable[ClaimSource], seed: int = 0, tol: float | str = TOL,
                      judge: TimeClaims | None = None,
                      aliases: Mapping[str, str] | None = None) -> tuple[VerifyReport, list[SpecError]]:
    """Judge claims about a model with loops (see the module docstring). ``judge``: one already built
    for ``model`` (its points drawn once), for a caller judging many batches. ``aliases`` maps course
    names to the spec's (``S`` → ``H``, and so ``dS[t]`` → ``dH[t]``); a renamed claim's result shows
    its reading."""
    if judge is None:
        judge = TimeClaims(derive_through_time(model), seed, TOL if tol == "exact" else float(tol))
    results: list[ClaimResult] = []
    errors: list[SpecError] = []
    for written in sources:
        renamed = rename(written.text, aliases or {})
        src = written if renamed == written.text else ClaimSource(renamed, written.file, written.line, written.text)
        read = {"reading": renamed.strip()} if src is not written else {}
        try:
            result = judge.check(judge.parse(src))
            results.append(replace(result, claim_text=written.text.strip(), **read) if read else result)
        except (SpecError, ShapeError) as err:
            e = err if isinstance(err, SpecError) else SpecError(f"shape mismatch: {err}", src.line, 1, src.file, src.text)
            lhs = re.sub(r"\s+", "", src.text.split("=", 1)[0])
            kind = {"verdict": False, "diagnosis": e.message, "error": math.inf, "exact_checked": False,
                    "file": src.file, "line": src.line, "name": lhs[1:] if lhs.startswith("d") else "",
                    "claim_text": written.text.strip(), **read}
            if e.shapes or isinstance(err, ShapeError):
                results.append(ClaimResult(mistake="shape", **kind))
            else:
                errors.append(e)
                results.append(ClaimResult(mistake="unusable", unusable=True, **kind))
    return VerifyReport(model.name, results, judge.sizes, None, errors), errors


__all__ = ["LOOP_PATHS", "SUM", "TimeClaims", "check_time_claims"]
