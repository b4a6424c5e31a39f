"""Differential fuzzing of loops (issue 16): random recurrent specs from a small grammar -- one or two
states, gates from the registry's activations, a first state that is zeros, a param or an input, the
examples first or last, a loss on the last step or on every step -- each generated as a module and run
against the reference evaluator (with and without truncation) and against PyTorch autograd on the loop
unrolled in torch (the registry's torch forms, tests/torch_reference.py): an independent reference.
A few corners of the grammar are also generated for JAX (lax.scan) and run against the NumPy module."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_reference import torch_eval

from backprop import parse_spec
from backprop.codegen.emit import generate, load_module
from backprop.engine.through_time import derive_through_time
from backprop.language.model import Model
from backprop.verification.numeric import concrete
from backprop.verification.through_time import TimeRun
from tests.test_through_time import point

ACTIVATIONS = ("tanh", "sigmoid", "softplus")


STARTS = ("zeros", "param", "input")
LOSSES = ("last", "every", "softmax")


def loop_spec(first: bool, two: bool, start: str, loss: str, acts: tuple[str, str, str], gated: bool) -> str:
    """A recurrent spec: examples last (X[d, T, m], W @ X) or first (X[m, T, d], X @ W); one state H or
    two (a cell C gated by A); H[t] optionally gated and leaking H[t-1]."""

    def mm(w: str, x: str) -> str:
        return f"{x} @ {w}" if first else f"{w} @ {x}"

    step_shape, col = ("m, h", "1, h") if first else ("h, m", "h, 1")
    lines = ["examples m"] if first else []
    lines += [f"input X[{'m, T, d' if first else 'd, T, m'}]",
              f"input Y[{'m, T, h' if first else 'h, T, m'}]" if loss == "every" else
              (f"input Y[{'m, c' if first else 'c, m'}] onehot" if loss == "softmax" else f"input Y[{step_shape}]")]
    lines += [f"param W[{'d, h' if first else 'h, d'}]", "param U[h, h]", f"param b[{col}]"]
    if two:
        lines += ["param V[h, h]", f"param g[{col}]"]
    if loss == "softmax":
        lines.append(f"param P[{'h, c' if first else 'c, h'}]")
    if start == "param":
        lines.append(f"param h0[{col}]")
        lines.append("H[0] = h0")
    elif start == "input":
        lines.append(f"input H0[{step_shape}]")
        lines.append("H[0] = H0")
    else:
        lines.append(f"H[0] = zeros({step_shape})")
    if two:
        lines.append(f"C[0] = zeros({step_shape})")
    lines.append("for t in 1..T:")
    pre = f"{mm('W', 'X[:, t]')} + {mm('U', 'H[t-1]')} + b"
    if two:
        lines.append(f"    A = {acts[1]}({mm('V', 'H[t-1]')} + g)")
        lines.append(f"    C[t] = A * C[t-1] + (1 - A) * {acts[0]}({pre})")
        new = f"{acts[2]}(C[t])"
    else:
        new = f"{acts[0]}({pre})"
    lines.append(f"    H[t] = {new} * {acts[1]}(H[t-1]) + H[t-1] * 0.5" if gated else f"    H[t] = {new}")
    if loss == "last":
        lines.append("loss = sum((H[T] - Y)**2) / m")
    elif loss == "every":
        lines.append("loss = sum((H - Y)**2) / (2 * m)")
    else:
        logits = "H[T] @ P" if first else "P @ H[T]"
        lines.append(f"loss = -sum(Y * log_softmax({logits}, axis={1 if first else 0})) / m")
    return "\n".join(lines) + "\n"


def torch_unrolled(model: Model, env: dict[Any, Any]) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and every param's gradient by torch autograd on the loop unrolled: each step's equations
    evaluated with the registry's torch forms, T times."""
    dims = {sym: env[sym] for sym in model.dims.values()}
    tenv: dict[str, torch.Tensor] = {}
    for d in model.decls.values():
        tenv[d.name] = torch.tensor(np.asarray(env[d.name], dtype=np.float64)).requires_grad_(d.kind == "param")
    loops = {r.position: r for r in model.loops}
    for i, a in enumerate([*model.assigns, None]):
        r = loops.get(i)
        if r is not None:
            state = {}
            for s in r.states:
                first = torch_eval(s.init, tenv, dims)
                tenv[f"{s.name}[0]"] = first
                state[s.name] = first.expand(*concrete(s.step.shape, env))
            kept: dict[str, list[torch.Tensor]] = {s.name: [] for s in r.sequences}
            for t in range(int(env[r.length])):
                step = dict(tenv)
                for s in r.states:
                    step[s.prev.name] = state[s.name]  # type: ignore[union-attr]
                for sl in r.slices:
                    step[sl.step.name] = tenv[sl.source.name].select(sl.axis, t)
                for b in r.body:
                    step[b.symbol.name] = torch_eval(b.expr, step, dims).expand(*concrete(b.symbol.shape, env))
                for s in r.sequences:
                    kept[s.name].append(step[s.step.name])
                for s in r.states:
                    state[s.name] = step[s.step.name]
            for s in r.sequences:
                tenv[s.name] = torch.stack(kept[s.name], dim=s.time_axis)
        if a is not None:
            tenv[a.name] = torch_eval(a.expr, tenv, dims)
    loss = tenv[model.loss.name].sum()
    params = [p.name for p in model.params]
    grads = torch.autograd.grad(loss, [tenv[p] for p in params], allow_unused=True)
    return float(loss.detach()), {p: (np.zeros(tuple(tenv[p].shape)) if g is None else g.numpy())
                                  for p, g in zip(params, grads)}


def module_name(module: Any, name: str) -> str:
    """A spec name as the module's forward takes it (a name that shadows a builtin has a trailing _)."""
    import inspect

    taken = list(inspect.signature(module.forward).parameters)
    return name if name in taken else name + "_"


def close(a: Any, b: Any, tol: float) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return a.shape == b.shape and float(np.max(np.abs(a - b), initial=0.0)) <= tol * scale


def check(text: str, steps: int, seed: int) -> None:
    model = parse_spec(text, path="fuzz.spec")
    module = load_module(generate(model))
    td = derive_through_time(model)
    env = point(model, {"d": 3, "h": 4, "T": steps, "m": 2, "c": 3}, seed)
    params = {p.name: env[p.name] for p in model.params}
    inputs = {d.name: env[d.name] for d in model.inputs}
    for truncate in (None, 2):
        run = TimeRun(td, env)
        want = run.gradients(truncate=truncate)
        loss, grads = module.loss_and_grads(params, inputs, truncate=truncate)
        assert close(loss, run.loss, 1e-12), text
        for p in params:
            assert close(grads[p], want[p], 1e-10), (p, truncate, text)
    loss_t, grads_t = torch_unrolled(model, env)
    before = {k: np.copy(v) for k, v in {**params, **inputs}.items()}
    _, grads = module.loss_and_grads(params, inputs)
    assert close(loss, loss_t, 1e-10), text
    for p in params:
        assert close(grads[p], grads_t[p], 1e-9), (p, text)
    # the contract: the caller's arrays untouched, no two gradients (nor a gradient and an input) sharing
    # memory, and the cache never written: backward runs twice to the same gradients
    assert all(np.array_equal(before[k], v) for k, v in {**params, **inputs}.items()), text
    for a in grads:
        assert not any(np.shares_memory(grads[a], grads[b]) for b in grads if b != a), (a, text)
        assert not any(np.shares_memory(grads[a], v) for v in {**params, **inputs}.values()), (a, text)
    _, cache = module.forward(**{module_name(module, k): v for k, v in {**params, **inputs}.items()})
    once, twice = module.backward(**cache), module.backward(**cache)
    assert all(np.array_equal(once[p], twice[p]) for p in once), text


specs = st.builds(loop_spec, st.booleans(), st.booleans(), st.sampled_from(STARTS), st.sampled_from(LOSSES),
                  st.tuples(*[st.sampled_from(ACTIVATIONS)] * 3), st.booleans())


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(specs, st.sampled_from([1, 2, 5]), st.integers(0, 1000))
def test_random_loops_equal_the_reference_and_pytorch(text: str, steps: int, seed: int) -> None:
    check(text, steps, seed)


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_corner_of_the_grammar(start: str, loss: str) -> None:
    """Each first state and loss, with two states and a gated update, examples first and last."""
    for first in (False, True):
        check(loop_spec(first, True, start, loss, ("tanh", "sigmoid", "softplus"), True), 4, 7)


#: Corners of the grammar the JAX module is checked on (each compiles a scan: a few, not the fuzzer's 40).
JAX_CORNERS = [
    (False, True, "param", "every", ("tanh", "sigmoid", "softplus"), True),
    (True, True, "input", "softmax", ("sigmoid", "tanh", "tanh"), True),
    (True, False, "zeros", "last", ("softplus", "tanh", "sigmoid"), False),
    (False, False, "input", "softmax", ("tanh", "softplus", "sigmoid"), True),
]


@pytest.mark.parametrize("corner", JAX_CORNERS)
def test_the_jax_module_equals_the_numpy_module(corner: tuple, request: pytest.FixtureRequest) -> None:
    """The module ``--backend jax`` generates (a lax.scan each way) gives the NumPy module's loss and
    gradients, in float64 to 1e-10, with and without truncation."""
    if not os.environ.get("CI"):  # CI installs the test extra, which has jax: a missing jax is a failure there
        pytest.importorskip("jax", reason="jax is not installed (pip install '.[jax]'; CI fails instead of skipping)")
    request.getfixturevalue("x64")
    text = loop_spec(*corner)
    model = parse_spec(text, path="fuzz.spec")
    numpy_module, jax_module = load_module(generate(model)), load_module(generate(model, backend="jax"))
    env = point(model, {"d": 3, "h": 4, "T": 3, "m": 2, "c": 3}, 5)
    params = {p.name: env[p.name] for p in model.params}
    inputs = {d.name: env[d.name] for d in model.inputs}
    for truncate in (None, 2):
        loss, grads = numpy_module.loss_and_grads(params, inputs, truncate=truncate)
        jloss, jgrads = jax_module.loss_and_grads(params, inputs, truncate=truncate)
        assert close(jloss, loss, 1e-10), text
        for p in params:
            assert close(jgrads[p], grads[p], 1e-10), (p, truncate, text)
