"""The reference evaluator of backpropagation through time: a :class:`TimeDerivation` run on numbers.

The forward pass runs each loop's step T times, keeping every step's values; the backward pass runs
the step's δs from t = T down to 1, the carry of step t+1 feeding step t, and sums each shared
weight's terms. It evaluates the derivation's own expressions (through the registry's NumPy forms,
as :mod:`backprop.expr.evaluate` does for every other derivation), so it checks the symbolic
recursion itself against finite differences and PyTorch; the generated code is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sympy import Basic

from backprop.engine.through_time import ThroughTime, TimeDerivation
from backprop.expr.evaluate import evaluate
from backprop.expr.ir import shape_of
from backprop.expr.printing import LoopGrad, loop_grad
from backprop.verification.numeric import concrete


def _sized(e: Basic, shape: tuple[Basic, ...], env: Mapping[Any, Any]) -> np.ndarray:
    return np.broadcast_to(evaluate(e, env), concrete(shape, env))


class TimeRun:
    """One point: every value forward (each loop's steps kept), then every gradient."""

    def __init__(self, td: TimeDerivation, env: Mapping[Any, Any]) -> None:
        self.td = td
        self.vals: dict[Any, Any] = dict(env)
        self.steps: dict[int, list[dict[str, np.ndarray]]] = {}
        #: each loop's δs at every step (1 to T), as the backward pass computed them
        self.deltas: dict[int, list[dict[str, np.ndarray]]] = {}
        self._forward()

    @property
    def loss(self) -> float:
        return float(np.asarray(self.vals[self.td.equations[-1].name]).reshape(-1)[0])

    def _forward(self) -> None:
        eqs, vals = self.td.equations, self.vals
        for pos in range(len(eqs) + 1):
            for tt in self.td.loops:
                if self.td.at[tt.index] == pos:
                    self._run_loop(tt)
            if pos < len(eqs):
                vals[eqs[pos].name] = evaluate(eqs[pos].expr, vals)

    def _run_loop(self, tt: ThroughTime) -> None:
        r, vals = tt.loop, self.vals
        length = int(vals[r.length])
        state = {s.name: np.broadcast_to(np.asarray(vals[f"{s.name}[0]"], dtype=float), concrete(shape_of(s.step), vals))
                 for s in r.states}  # a first state [h, 1] broadcasts to the step's [h, m]
        kept: list[dict[str, np.ndarray]] = []
        for t in range(length):
            env = dict(vals)
            now: dict[str, np.ndarray] = {}
            for s in r.states:
                assert s.prev is not None
                now[s.prev.name] = state[s.name]
            for sl in r.slices:
                now[sl.step.name] = np.take(np.asarray(vals[sl.source.name], dtype=float), t, axis=sl.axis)
            env.update(now)
            for eq in tt.equations:
                now[eq.name] = env[eq.name] = _sized(eq.expr, eq.shape, env)
            for s in r.states:
                state[s.name] = now[s.step.name]
            kept.append(now)
        self.steps[tt.index] = kept
        for s in r.sequences:
            vals[s.name] = np.stack([k[s.step.name] for k in kept], axis=s.time_axis)

    def gradients(self, truncate: int | None = None) -> dict[str, np.ndarray]:
        """Every outside gradient by name (params first among them), the loops run backward as needed.
        ``truncate=k``: truncated backpropagation through time as PyTorch users run it, the sequence
        in windows of k steps with the state detached between them (its value carried on, its gradient
        not): nothing flows back from step t+1 into step t when t is a multiple of k."""
        if truncate is not None and truncate < 1:
            raise ValueError(f"truncate is a number of steps, at least 1; got {truncate}")

        vals, out = self.vals, {}
        ran: set[int] = set()
        for s in self.td.steps:
            for g in s.result.atoms(LoopGrad):
                if g.loop not in ran:
                    self._back_loop(self.td.loops[g.loop], truncate)
                    ran.add(g.loop)
            vals["d" + s.target] = out[s.target] = np.array(_sized(s.result, s.shape, vals))
        return out

    def _back_loop(self, tt: ThroughTime, truncate: int | None) -> None:
        r, vals = tt.loop, self.vals
        kept = self.steps[tt.index]
        shape = {s.name: concrete(shape_of(s.step), vals) for s in r.sequences}
        carry = {s.name: np.zeros(shape[s.name]) for s in r.states}
        sums = {n: 0.0 for n in tt.terms}
        sliced = {n: np.zeros(np.shape(vals[n])) for n in tt.slice_terms}
        axis = {sl.source.name: sl.axis for sl in r.slices}
        outer = {e.name: e.symbol for e in self.td.equations}  # a value computed outside the loops
        found: list[dict[str, np.ndarray]] = [{} for _ in kept]
        self.deltas[tt.index] = found
        for t in reversed(range(len(kept))):
            env = dict(vals)
            env.update(kept[t])
            for s in r.sequences:
                g = vals.get("d" + s.name)
                env[tt.own[s.name].name] = (np.zeros(shape[s.name]) if g is None
                                            else np.take(np.asarray(g, dtype=float), t, axis=s.time_axis))
            cut = truncate is not None and (t + 1) % truncate == 0  # step t+1 starts a new window
            for s in r.states:
                env[tt.after[s.name].name] = np.zeros(shape[s.name]) if cut else carry[s.name]
            for d in tt.deltas:
                env["d" + d.target] = found[t][d.target] = _sized(d.result, d.shape, env)
            for s in r.states:
                carry[s.name] = (_sized(tt.carries[s.name], shape_of(s.step), env) if s.name in tt.carries
                                 else np.zeros(shape[s.name]))
            for n, term in tt.terms.items():
                sums[n] = sums[n] + _sized(term, shape_of(self.td.model.symbol(n) if n not in outer else outer[n]), env)
            for n, term in tt.slice_terms.items():
                idx = [slice(None)] * sliced[n].ndim
                idx[axis[n]] = t  # type: ignore[call-overload]
                sliced[n][tuple(idx)] += _sized(term, shape_of(term), env)
        for kind, found in (("sum", sums), ("steps", sliced)):
            for n, v in found.items():
                vals[loop_grad(tt.index, kind, r.var, n, ()).name] = v
        for s in r.states:
            vals[loop_grad(tt.index, "first", r.var, f"{s.name}[0]", ()).name] = carry[s.name]


__all__ = ["TimeRun"]
