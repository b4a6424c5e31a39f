"""Differential fuzzing: every spec the parser accepts generates a module that neither crashes nor is wrong.

Each seed draws a random valid spec (``fuzz_specs.fuzz_spec``: every function and
operator of the language, broadcasting, scalar and 1×1 params, constants and
functions of dims, hostile names), generates its module with ``codegen.generate``,
imports it and compares ``loss_and_grads`` with PyTorch autograd on the forward
equations (``torch_reference``), in float64, to 1e-9 relative to each gradient's
scale. The same call also checks the module's promises to its caller: inputs passed
read-only (and as ints, Python numbers, 0-d or 1×1 arrays) are never written into,
params stay unchanged, no two gradients share memory and no gradient shares memory
with a param or input.

CI runs ``FUZZ_SEEDS`` seeds (about a minute on one core). Before a release, run
more, e.g.::

    BACKPROP_FUZZ_SEEDS=10000 python -m pytest tests/test_fuzz_codegen.py -q -x

``BACKPROP_FUZZ_START`` shifts the seed range, so long runs can be split across
processes. A failing seed prints its spec; reproduce it with
``check_network(fuzz_spec(SEED), SEED)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import sympy
from fuzz_specs import fuzz_spec
from torch_reference import torch_loss_and_grads

import backprop
from backprop import codegen
from backprop.codegen import windows
from backprop.codegen.rewrite import resolver, stabilize
from backprop.codegen.stmt import Stmt
from backprop.expr.ir import OpNode
from backprop.expr.ops import REGISTRY
from backprop.language.domains import domain, sample

#: Seeds CI runs; BACKPROP_FUZZ_SEEDS overrides (measured: 1000 seeds take 48 s of CPU, 57 s wall, on one core).
FUZZ_SEEDS = int(os.environ.get("BACKPROP_FUZZ_SEEDS", "1000"))
FUZZ_START = int(os.environ.get("BACKPROP_FUZZ_START", "0"))
RTOL = 1e-9
ATOL = 1e-13


# ---------------------------------------------------------------------------
# Values: the many forms a caller may pass
# ---------------------------------------------------------------------------


def _sizes(model: backprop.Model, rng: np.random.Generator) -> dict[sympy.Symbol, int]:
    return {s: int(rng.choice([1, 2, 2, 3, 3, 4])) for s in model.dims.values()}


def _value(decl: Any, shape: tuple[int, ...], rng: np.random.Generator, form: str | None = None,
           sizes: Mapping[str, int] | None = None) -> Any:
    """A random value of ``decl``: float64 or int arrays, read-only, Python numbers, 0-d or 1×1 arrays.

    ``form`` forces one: "int" (every input an int array or a Python int), or a scalar's
    "python", "0d" or "1x1"."""
    as_int = decl.kind == "input" and decl.domain != "prob" and (form == "int" or (form is None and rng.random() < 0.3))
    if decl.domain is not None and domain(decl.domain).argument:  # class labels: int64 indices, whatever the form
        v = sample(decl.domain, shape, rng, 0, sizes)
        v.setflags(write=False)
        return v
    if decl.domain == "onehot":
        r, c = shape
        v = np.eye(r)[rng.integers(0, r, size=c)].T
    elif decl.domain == "binary":
        v = rng.integers(0, 2, size=shape).astype(float)
    elif decl.domain == "positive":
        v = rng.integers(1, 4, size=shape).astype(float) if as_int else rng.uniform(0.5, 2.0, size=shape)
    elif decl.domain == "prob":
        v = rng.uniform(0.1, 0.9, size=shape)
    elif as_int:
        v = rng.integers(-3, 4, size=shape).astype(float)
    else:
        v = rng.normal(scale=0.8, size=shape)
    if as_int:
        v = v.astype(np.int64)
    if decl.scalar:
        form = form if form in ("python", "0d", "1x1") else rng.choice(["python", "0d", "1x1"])
        if form == "python":
            return int(v[0, 0]) if as_int else float(v[0, 0])
        v = v.reshape(()) if form == "0d" else v
    if decl.kind == "input":
        v.setflags(write=False)
    return v


def draw(
    model: backprop.Model, rng: np.random.Generator, form: str | None = None
) -> tuple[dict[str, Any], dict[sympy.Symbol, int]]:
    dims = _sizes(model, rng)
    values = {}
    for d in model.decls.values():
        shape = tuple(int(sympy.sympify(x).subs(dims)) for x in d.shape)
        values[d.name] = _value(d, shape, rng, form, {s.name: v for s, v in dims.items()})  # type: ignore[arg-type]
    return values, dims


# ---------------------------------------------------------------------------
# One network
# ---------------------------------------------------------------------------


def _arrays(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: v for k, v in values.items() if isinstance(v, np.ndarray)}


def check_network(spec: str, seed: int, form: str | None = None) -> None:
    """Generate ``spec``'s module and check one call of ``loss_and_grads`` against torch
    (``form``: how values are passed, see :func:`_value`)."""
    model = backprop.parse_spec(spec, path=f"<fuzz {seed}>", name=f"fuzz{seed}")
    mod = codegen.load_module(codegen.generate(model))
    rng = np.random.default_rng(seed)
    values, dims = draw(model, rng, form)
    params = {p.name: values[p.name] for p in model.params}
    inputs = {d.name: values[d.name] for d in model.inputs}
    before = {k: np.copy(v) for k, v in values.items()}

    loss, grads = mod.loss_and_grads(params, inputs)
    ref_loss, ref_grads = torch_loss_and_grads(model, values, dims)

    for k, v in values.items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"the caller's {k} changed")
    assert np.isfinite(ref_loss), "the generator drew a point with a non-finite loss"
    assert abs(loss - ref_loss) <= RTOL * max(1.0, abs(ref_loss)), f"loss {loss!r} != torch {ref_loss!r}"
    assert set(grads) == set(params)
    scale = max([1e-300] + [float(np.max(np.abs(g))) for g in ref_grads.values()])
    for p in model.params:
        ours, ref = grads[p.name], ref_grads[p.name]
        if np.ndim(params[p.name]) == 0:
            assert isinstance(ours, float), f"∂L/∂{p.name}: a scalar param's gradient is a float, got {type(ours)}"
        else:
            assert isinstance(ours, np.ndarray) and ours.shape == np.shape(params[p.name]), f"∂L/∂{p.name} shape"
            assert ours.dtype == np.float64, f"∂L/∂{p.name} dtype {ours.dtype}"
        ours = np.reshape(np.asarray(ours, dtype=float), ref.shape)
        own = float(np.max(np.abs(ref)))
        tol = RTOL * max(own, 1e-6 * scale) + ATOL * max(1.0, abs(ref_loss))  # an exact 0 vs rounding noise
        err = float(np.max(np.abs(ours - ref)))
        assert err <= tol, f"∂L/∂{p.name}: max error {err:.3g} > {tol:.3g}\nours:\n{ours}\ntorch:\n{ref}"

    given = _arrays(values)
    returned = _arrays(grads)
    names = sorted(returned)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.shares_memory(returned[a], returned[b]), f"∂L/∂{a} and ∂L/∂{b} share memory"
        for k, v in given.items():
            assert not np.shares_memory(returned[a], v), f"∂L/∂{a} shares memory with the caller's {k}"

    # step by step: backward leaves the cache as forward made it, and agrees with loss_and_grads
    loss2, cache = mod.forward(*(values[d] for d in model.decls))
    kept = {k: np.copy(v) for k, v in cache.items()}
    raw = mod.backward(**cache)
    for k, v in kept.items():
        np.testing.assert_array_equal(cache[k], v, err_msg=f"backward wrote into the cached {k}")
    assert float(loss2) == loss
    for p in model.params:
        np.testing.assert_array_equal(np.reshape(raw[p.name], np.shape(grads[p.name])), grads[p.name])

    # init_params binds dims named like its own locals (rng, dtype, seed, dims) correctly
    sizes = {str(k): v for k, v in dims.items()}
    fresh = mod.init_params({d: sizes[d] for d in mod.DIMS}, seed=seed)
    for p in model.params:
        assert np.shape(fresh[p.name]) == (() if p.scalar else np.shape(values[p.name])), f"init_params: {p.name}"

    # float32 in, float32 out, and no crash on the way
    low = {k: v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v for k, v in values.items()}
    for i in inputs:
        if isinstance(low[i], np.ndarray):
            low[i].setflags(write=False)
    _, grads32 = mod.loss_and_grads({p: low[p] for p in params}, {i: low[i] for i in inputs})
    for p, g in grads32.items():
        if isinstance(low[p], np.ndarray) and low[p].dtype == np.float32 and low[p].ndim:
            assert g.dtype == np.float32, f"∂L/∂{p} is {g.dtype} for a float32 param"


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def _ops(e: Any, out: set[str]) -> None:
    if isinstance(e, OpNode):
        out.add(e.op.name)
        for c in e.children:
            _ops(c, out)


def test_fuzz_generator_reaches_every_registry_operation() -> None:
    """Every registry row appears, in the forward equations, the derived backward steps, or the
    forms the code generator rewrites them to."""
    seen: set[str] = set()
    for seed in range(400):  # every row by seed 295 (measured when flip joined the generator)
        d = backprop.get_derivation(backprop.parse_spec(fuzz_spec(seed), path="<fuzz>", name="fuzz"))
        see = resolver({eq.name: eq.expr for eq in d.equations})
        exprs = [eq.expr for eq in d.equations] + [s.result for s in d.steps]
        for e in exprs:
            _ops(e, seen)
            _ops(stabilize(e, see)[0], seen)  # the forms only the code generator writes (pick, add_at)
        for s in windows.share([Stmt(sympy.Symbol(f"s{i}"), e, "forward", "forward") for i, e in enumerate(exprs)]):
            _ops(s.expr, seen)  # and those it writes for a convolution with its filter gradient (im2col)
    assert seen == set(REGISTRY), f"never generated: {sorted(set(REGISTRY) - seen)}"


def test_fuzz_generator_is_deterministic_and_hostile() -> None:
    assert fuzz_spec(7) == fuzz_spec(7)
    text = "".join(fuzz_spec(s) for s in range(100))
    for needle in ("_ACCEPTED", "_CACHE", "np", "sqrt(", "axis=0", "axis=1", "leaky_relu(", "@", ".T", " ** -"):
        assert needle in text, f"no fuzzed network uses {needle!r}"


#: Every class of bug the fuzzer found (issue 11), as a permanent case: (what, spec, how values are passed).
REGRESSIONS = [
    ("in place into a flip of a param: np.flip is a view, and softmax wrote into the caller's P",
     "input X[n, m]\nparam P[n, m]\nloss = sum(softmax(flip(P, [0]), axis=1) * X) + sum(P ** 2)", None),
    ("precedence: X * (1.0 - mask) lost its parentheses once 1 became 1.0",
     "input X[n, m]\nparam s\nloss = sum(leaky_relu(X, s))", "python"),
    ("in place into an array already returned as ∂L/∂P (dP = dH, then dZ = dH; dZ *= mask)",
     "input X[n, m]\nparam W[k, n]\nparam P[k, m]\nH = relu(W @ X) + P\nloss = sum(H * H)", None),
    ("two params with one gradient: one array", "input X[n, m]\nparam P[n, m]\nparam Q[n, m]\n"
     "loss = sum(tanh(P + Q))", None),
    ("a gradient equal to the caller's input (and to another gradient)",
     "input X[n, m]\nparam P[n, m]\nparam Q[n, m]\nloss = sum((P + Q) * X)", None),
    ("a gradient equal to a 1×1 input", "input y[1, 1]\nparam b[1, 1]\nloss = sum(b * y)", "1x1"),
    ("−mask: NumPy refuses the negative of a boolean", "input X[n, m]\nparam W[k, n]\nloss = -sum(relu(W @ X))", None),
    ("a gradient that is a mask, then multiplied in place", "input X[n, m]\nparam W[k, n]\n"
     "loss = sum(relu(tanh(W @ X)))", None),
    ("mask + mask is a logical or", "input X[n, m]\nparam W[k, n]\nA = W @ X\n"
     "loss = sum(relu(A)) + sum(relu(A + 1))", None),
    ("mask − mask", "input X[n, m]\nparam W[k, n]\nA = W @ X\nloss = sum(relu(A)) + sum(relu(-A))", None),
    ("in place into an int array (∂L/∂T = X ⊙ X for int X)", "input X[n, m]\nparam W[n, m]\n"
     "T = tanh(W)\nloss = sum(T * X * X)", "int"),
    ("an int input to a negative integer power", "input X[n, m] positive\nparam W[n, m]\n"
     "loss = sum(W * X ** -1) + sum(W * X ** -2)", "int"),
    ("tanh(Z, out=Z) on a NumPy scalar", "input X[n, m]\nparam W[k, n]\nloss = exp(tanh(abs(sum(W @ X))))", None),
    ("softmax and log_softmax of a scalar param", "input X[n, m]\nparam s\n"
     "loss = sum(softmax(s, axis=0) * X) + sum(log_softmax(s, axis=1) * X) + s * sum(X)", "python"),
    ("leaky_relu of a scalar param, and with it as the slope", "input X[n, m]\nparam s\n"
     "loss = leaky_relu(s, 0.1) * sum(X) + sum(leaky_relu(X, s))", "python"),
    ("sum and mean along an axis of a scalar", "input X[n, m]\nparam s\n"
     "loss = mean(s, axis=0) * sum(X) + sum(mean(s * X, axis=1))", "python"),
    ("spec names the module uses itself", "input _ACCEPTED[n, m]\ninput _CACHE[k, m]\nparam W[k, n]\n"
     "param np\ngrads = sum((W @ _ACCEPTED * np - _CACHE)**2)", None),
    ("a function of a dim in the backward pass (attention scaled by 1/√d)", "input X[d, m]\nparam Q[d, d]\n"
     "param K[d, d]\nS = (Q @ X).T @ (K @ X) / sqrt(d)\nloss = sum(softmax(S, axis=0) * exp(1 / d)) / sigmoid(m)",
     None),
    ("a sum in place into a broadcast (read-only) view", "param W[n, m]\nT = W\n"
     "L = mean(sigmoid(sum(T, axis=1))) + sum(W ** 2)", None),
    ("two gradients sharing an array through intermediate names: the later alias is the copy",
     "input X[n, n]\nparam A[n, n]\nparam B[n, n]\nC = A\nL = mean(X @ (C + B))", None),
    ("an undefined function taken as complex: sign(exp(σ(√V))) became re(σ(...)), which cannot be rebuilt",
     "input V[h, 3] prob\nparam s\nL = sum(abs(exp(sigmoid(sqrt(V))))) * s", None),
    ("softmax of an int constant times an int input, then an activation in place", "input X[h, m]\nparam s\n"
     "L = sum(sigmoid(log_softmax(h, axis=1) * X) + relu(h) * X + tanh(s))", "int"),
    ("Σ(0 · x) simplified forever", "param W[m, n]\nparam b\nL = sum((W - sum(W, axis=0)) ** 0) + b", None),
    ("U⁰ at U ≡ 0: 0 · 0⁻¹ made every gradient nan (PyTorch: a zero exponent passes no gradient)",
     "param s[1, 1]\ninput x[n, 1]\nL = mean(softplus((s - s) ** 0)) + log(n + 1) * sum(s ** 2)", None),
]


@pytest.mark.parametrize(("what", "spec", "form"), REGRESSIONS, ids=[r[0][:40] for r in REGRESSIONS])
def test_regression(what: str, spec: str, form: str | None) -> None:
    for seed in range(3):
        check_network(spec + "\n", seed, form)


@pytest.mark.parametrize("seed", range(FUZZ_START, FUZZ_START + FUZZ_SEEDS))
def test_generated_module_matches_torch(seed: int) -> None:
    spec = fuzz_spec(seed)
    try:
        check_network(spec, seed)
    except Exception as e:
        raise AssertionError(f"seed {seed}:\n{spec}\n{type(e).__name__}: {e}") from e
