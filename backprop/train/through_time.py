"""Gradient flow through time: ‖∂L/∂Hₜ‖ against t at initialization, for a spec with a loop.

``backprop gradflow rnn.spec --compare-activation relu`` shows what the course ends on: δ_t flows
back multiplied at each step by Whᵀ and the activation's derivative, so with tanh (tanh′ ≤ 1) and
small weights it fades as t moves away from the loss, which is why plain RNNs forget. The norms come
from the derivation's own recursion, run by the reference evaluator
(:class:`~backprop.verification.through_time.TimeRun`), at a random point: params drawn as the
generated modules draw them (Glorot-uniform weights; zero biases and first states), inputs from their
declared domains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from backprop.engine.through_time import derive_through_time
from backprop.expr import ir
from backprop.expr.ir import OpNode
from backprop.language.domains import parse as parse_domain
from backprop.language.domains import sample
from backprop.language.model import Model, Recurrence
from backprop.train.gradflow import HIDDEN
from backprop.verification.numeric import concrete
from backprop.verification.through_time import TimeRun

#: Sizes when ``--dims`` leaves one out: the steps, the examples, the data's other dims, the rest (hidden).
DEFAULT_STEPS, DEFAULT_EXAMPLES, DEFAULT_DATA, DEFAULT_HIDDEN = 30, 64, 8, 32


def state_activations(model: Model) -> list[tuple[str, str]]:
    """(state, activation) for each state of a loop whose step is ``H[t] = act(…)``: the activation
    the recursion multiplies the gradient by at every step, which ``--compare-activation`` swaps."""
    out = []
    for r in model.loops:
        for a in r.body:
            if any(s.step == a.symbol for s in r.states) and isinstance(a.expr, OpNode) and a.expr.op.name in HIDDEN:
                out.append((a.name, a.expr.op.name))
    return out


def with_state_activation(model: Model, act: str) -> Model:
    """The model with each state's activation (:func:`state_activations`) replaced by ``act``."""
    swapped = {n for n, _ in state_activations(model)}

    def loop(r: Recurrence) -> Recurrence:
        body = tuple(dataclasses.replace(a, expr=ir.node(act, a.expr.children[0]))  # type: ignore[attr-defined]
                     if a.name in swapped and any(s.step == a.symbol for s in r.states) else a for a in r.body)
        return dataclasses.replace(r, body=body)

    return dataclasses.replace(model, loops=[loop(r) for r in model.loops], name=f"{model.name}_{act}")


def default_sizes(model: Model, given: Mapping[str, int]) -> dict[str, int]:
    """Every dim's size: ``given``, else the steps, examples, data and hidden defaults."""
    steps = {str(r.length) for r in model.loops}
    data = {str(d) for x in model.inputs for d in x.shape if isinstance(d, sympy.Symbol)}
    data |= {arg for x in model.inputs if x.domain and (arg := parse_domain(x.domain)[1])}  # labels(c): the classes
    out = {}
    for name in model.dims:
        out[name] = given.get(name) or (DEFAULT_STEPS if name in steps else DEFAULT_EXAMPLES
                                        if name == model.examples_dim else DEFAULT_DATA if name in data else DEFAULT_HIDDEN)
    return out


def point_at_init(model: Model, sizes: Mapping[str, int], seed: int) -> dict[Any, Any]:
    """Inputs drawn from their domains, params as the generated modules' ``init_params`` draws a
    weight (Glorot-uniform over its two largest axes) or a bias or first state (zeros: an axis of 1)."""
    rng = np.random.default_rng(seed)
    env: dict[Any, Any] = {model.dims[k]: v for k, v in sizes.items()}
    classes = model.domains().class_axes
    for d in model.decls.values():
        shape = concrete(d.shape, env)
        if d.kind == "input":
            env[d.name] = sample(d.domain, shape, rng, classes.get(d.name, 0), sizes)
        elif 1 in shape or len(shape) < 2:
            env[d.name] = np.zeros(shape)
        else:
            fan = sorted(shape)[-2:]
            limit = np.sqrt(6.0 / (fan[0] + fan[1]))
            env[d.name] = rng.uniform(-limit, limit, size=shape)
    return env


@dataclass(frozen=True)
class Flow:
    """One network variant's ‖∂L/∂Hₜ‖ for each state, t = 1 … T."""

    label: str
    norms: dict[str, list[float]]


def norms_over_time(model: Model, env: Mapping[Any, Any]) -> dict[str, list[float]]:
    """‖∂L/∂Hₜ‖ (Frobenius, over the examples) for every state H of every loop, t = 1 … T."""
    td = derive_through_time(model)
    run = TimeRun(td, env)
    run.gradients()
    out: dict[str, list[float]] = {}
    for tt in td.loops:
        for s in tt.loop.states:
            steps = run.deltas.get(tt.index, [])
            out[s.name] = [float(np.linalg.norm(d[s.step.name])) if s.step.name in d else 0.0 for d in steps]
    return out


def time_table(flows: list[Flow], every: int) -> str:
    """The norms at t = T, T − every, …, 1, one column per variant and state."""
    titles = [f"‖∂L/∂{s}ₜ‖ {f.label}" for f in flows for s in f.norms]
    widths = [max(len(x), 10) for x in titles]
    steps = len(next(iter(flows[0].norms.values()), []))
    rows = sorted({steps, 1, *range(steps, 0, -every)}, reverse=True)
    lines = ["  ".join(["t".rjust(4)] + [x.rjust(w) for x, w in zip(titles, widths)])]
    for t in rows:
        values = [flow.norms[s][t - 1] for flow in flows for s in flow.norms]
        lines.append("  ".join([str(t).rjust(4)] + [f"{v:.3e}".rjust(w) for v, w in zip(values, widths)]))
    return "\n".join(lines)


def fade(norms: list[float]) -> float:
    """‖∂L/∂H₁‖ / ‖∂L/∂H_T‖: how much of the gradient at the loss reaches the first step."""
    return norms[0] / norms[-1] if norms and norms[-1] else float("nan")


__all__ = ["Flow", "default_sizes", "fade", "norms_over_time", "point_at_init", "state_activations", "time_table",
           "with_state_activation"]
