"""Optimizers: every row's NumPy step against hand-computed numbers and against its own equations.

``HAND`` holds one hand-computed case per registered optimizer; an optimizer
added to ``backprop.engine.optim.OPTIMIZERS`` without one fails
``test_every_optimizer_has_a_hand_case``. The step must also agree with the
row's update equations evaluated by the reference evaluator, keep dtypes,
update arrays in place and allocate nothing beyond its state.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
import sympy

import backprop
from backprop.codegen.step import load_step, step_source
from backprop.engine.optim import ALPHA, BETA, BETA1, BETA2, EPSILON, OPTIMIZERS, T, get_optimizer
from backprop.expr.evaluate import evaluate

NAMES = tuple(OPTIMIZERS)

# ---------------------------------------------------------------------------
# Hand-computed cases: a 1×2 param, the gradients of successive steps, the
# hyperparameters, and the param after the last step, worked out on paper.
# ---------------------------------------------------------------------------

HAND: dict[str, dict[str, Any]] = {
    # W ← W − α ∂L/∂W = [1 − 0.1·0.5, −2 − 0.1·0.25]
    "sgd": dict(p=[[1.0, -2.0]], grads=[[[0.5, 0.25]]], hyper=dict(lr=0.1), want=[[0.95, -2.025]]),
    # step 1: v = 0.1·[0.5, −1] = [0.05, −0.1];            W = [1 − 0.005, 2 + 0.01] = [0.995, 2.01]
    # step 2: v = 0.9·[0.05, −0.1] + 0.1·[1, 0] = [0.145, −0.09]; W = [0.995 − 0.0145, 2.01 + 0.009]
    "momentum": dict(p=[[1.0, 2.0]], grads=[[[0.5, -1.0]], [[1.0, 0.0]]], hyper=dict(lr=0.1, beta=0.9),
                     want=[[0.9805, 2.019]]),
    # s = 0.1·g² = [0.4, 0.025], so g/√s = ±1/√0.1 = ±√10 = ±3.16227766;  W = 1 ∓ 0.01·√10
    "rmsprop": dict(p=[[1.0, 1.0]], grads=[[[2.0, -0.5]]], hyper=dict(lr=0.01, beta=0.9, eps=0.0),
                    want=[[1 - 0.0316227766, 1 + 0.0316227766]]),
    # step 1: v̂ = g and ŝ = g², so every entry moves by α against its gradient's sign: [0.99, −0.99].
    # step 2 (second entry, g = −0.2 then 0.2): v = 0.9·(−0.02) + 0.1·0.2 = 0.002, v̂ = 0.002/0.19;
    #   s = 0.999·0.04·0.001 + 0.001·0.04 = 0.00007996, ŝ = 0.00007996/0.001999 = 0.04, √ŝ = 0.2;
    #   W = −0.99 − 0.01·(0.002/0.19)/0.2 = −0.99 − 0.01·0.0526315789 = −0.990526315789.
    # (first entry, g = 3 then 1): v = 0.27 + 0.1 = 0.37, v̂ = 0.37/0.19 = 1.94736842105;
    #   s = 0.999·0.009 + 0.001 = 0.009991, ŝ = 0.009991/0.001999 = 4.9979989995, √ŝ = 2.2356204954;
    #   W = 0.99 − 0.01·1.9473684211/2.2356204954 = 0.99 − 0.0087106395 = 0.9812893605.
    "adam": dict(p=[[1.0, -1.0]], grads=[[[3.0, -0.2]], [[1.0, 0.2]]],
                 hyper=dict(lr=0.01, beta1=0.9, beta2=0.999, eps=0.0), want=[[0.9812893605, -0.9905263158]]),
}


@pytest.fixture(scope="module")
def steppers() -> dict[str, Any]:
    return {name: load_step(name) for name in NAMES}


def run_steps(mod: Any, p: np.ndarray, grads: list[np.ndarray], **hyper: float) -> tuple[dict, dict]:
    params = {"W": p}
    state = mod.init_state(params)
    for g in grads:
        mod.step(params, {"W": g}, state, **hyper)
    return params, state


def test_every_optimizer_has_a_hand_case() -> None:
    assert set(HAND) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", NAMES)
def test_step_matches_hand_computed_case(name: str, steppers: dict[str, Any]) -> None:
    case = HAND[name]
    grads = [np.array(g) for g in case["grads"]]
    params, _ = run_steps(steppers[name], np.array(case["p"]), grads, **case["hyper"])
    np.testing.assert_allclose(params["W"], case["want"], rtol=0, atol=1e-10)


def _equation_env(opt: Any, hyper: dict[str, float], t: int) -> dict[Any, Any]:
    env: dict[Any, Any] = {h.symbol: hyper.get(h.arg, h.default) for h in opt.hypers}
    env[T] = t
    return env


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 4), (1, 1), (5, 1)])
def test_step_matches_its_equations(name: str, shape: tuple[int, int], steppers: dict[str, Any]) -> None:
    """Several steps of the NumPy code against the row's equations evaluated in order."""
    opt = get_optimizer(name)
    rng = np.random.default_rng(len(name) * 31 + shape[0])
    hyper = {h.arg: h.default for h in opt.hypers}
    hyper["lr"] = 0.05
    updates = opt.updates("W", (sympy.Integer(shape[0]), sympy.Integer(shape[1])))
    p = rng.normal(size=shape)
    params = {"W": p.copy()}
    state = steppers[name].init_state(params)
    env: dict[Any, Any] = {"W": p.copy(), **{u.target.name: np.zeros(shape) for u in updates[:-1]}}
    for t in range(1, 5):
        g = rng.normal(size=shape)
        steppers[name].step(params, {"W": g}, state, **hyper)
        env.update(_equation_env(opt, hyper, t))
        env["dW"] = g
        for u in updates:  # in order: each equation sees the values assigned above it
            env[u.target.name] = evaluate(u.expr, env)
        np.testing.assert_allclose(params["W"], env["W"], rtol=1e-12, atol=1e-14)
        for letter in opt.state:
            np.testing.assert_allclose(state[letter]["W"], env[f"{letter}_dW"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_place_and_no_new_arrays(name: str, steppers: dict[str, Any]) -> None:
    mod = steppers[name]
    rng = np.random.default_rng(1)
    params = {"W": rng.normal(size=(4, 3)).astype(np.float32), "b": np.zeros((4, 1), np.float32)}
    ids = {k: id(v) for k, v in params.items()}
    before = {k: v.copy() for k, v in params.items()}
    state = mod.init_state(params)
    state_ids = {k: {n: id(a) for n, a in v.items()} for k, v in state.items() if isinstance(v, dict)}
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        mod.step(params, grads, state)
    assert {k: id(v) for k, v in params.items()} == ids
    assert {k: {n: id(a) for n, a in v.items()} for k, v in state.items() if isinstance(v, dict)} == state_ids
    for k, v in params.items():
        assert v.dtype == np.float32, k
        assert not np.array_equal(v, before[k]), f"{k} was not updated"
    for letter in (*get_optimizer(name).state, "buf"):
        assert all(a.dtype == np.float32 for a in state[letter].values())
    assert state["t"] == 3


@pytest.mark.parametrize("name", NAMES)
def test_step_allocates_nothing_beyond_state(name: str, steppers: dict[str, Any]) -> None:
    """NumPy reports its buffers to tracemalloc: a step over 4 MB params must stay far below one array."""
    mod = steppers[name]
    rng = np.random.default_rng(2)
    params = {"W": rng.normal(size=(1000, 1000)).astype(np.float32), "b": np.zeros((1000, 1), np.float32)}
    grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
    state = mod.init_state(params)
    mod.step(params, grads, state)  # warm up
    tracemalloc.start()
    try:
        mod.step(params, grads, state)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64_000, f"a {name} step allocated {peak} bytes (one param is {params['W'].nbytes})"


@pytest.mark.parametrize("name", NAMES)
def test_scalar_param_is_a_float_and_follows_the_equations(name: str, steppers: dict[str, Any]) -> None:
    mod = steppers[name]
    params = {"b": 0.5}
    state = mod.init_state(params)
    arr = {"b": np.array([[0.5]])}
    state_arr = mod.init_state(arr)
    for g in (0.3, -0.7, 1.1):
        mod.step(params, {"b": g}, state)
        mod.step(arr, {"b": np.array([[g]])}, state_arr)
    assert type(params["b"]) is float
    assert params["b"] == pytest.approx(float(arr["b"][0, 0]), abs=1e-15)


def test_hyperparameter_defaults_are_the_step_defaults(steppers: dict[str, Any]) -> None:
    import inspect

    for name, mod in steppers.items():
        sig = inspect.signature(mod.step)
        assert {k: v.default for k, v in sig.parameters.items() if k not in ("params", "grads", "state")} == \
            get_optimizer(name).defaults()


def test_unknown_optimizer_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="sgd, momentum, rmsprop, adam"):
        get_optimizer("adagrad")
    with pytest.raises(KeyError, match="unknown optimizer"):
        backprop.get_derivation("two_layer_sigmoid", optimizer="nesterov")


# ---------------------------------------------------------------------------
# The equations as the derivation prints them
# ---------------------------------------------------------------------------

TEXT = {
    "sgd": ["W₁ ← W₁ − α · ∂L/∂W₁"],
    "momentum": ["v_dW₁ ← β · v_dW₁ + (1 − β) · ∂L/∂W₁", "W₁ ← W₁ − α · v_dW₁"],
    "rmsprop": ["s_dW₁ ← β · s_dW₁ + (1 − β) · (∂L/∂W₁)²", "W₁ ← W₁ − α · ∂L/∂W₁/(√(s_dW₁) + ε)"],
    "adam": [
        "v_dW₁ ← β₁ · v_dW₁ + (1 − β₁) · ∂L/∂W₁",
        "s_dW₁ ← β₂ · s_dW₁ + (1 − β₂) · (∂L/∂W₁)²",
        "v̂_dW₁ ← v_dW₁/(1 − β₁^t)",
        "ŝ_dW₁ ← s_dW₁/(1 − β₂^t)",
        "W₁ ← W₁ − α · v̂_dW₁/(√(ŝ_dW₁) + ε)",
    ],
}


@pytest.mark.parametrize("name", NAMES)
def test_update_equations_in_text(name: str) -> None:
    d = backprop.get_derivation("two_layer_sigmoid", optimizer=name)
    assert [u.text() for u in d.updates("W1")] == TEXT[name]


def test_update_equations_in_latex() -> None:
    d = backprop.get_derivation("two_layer_sigmoid", optimizer="adam")
    got = [u.latex() for u in d.updates("W1")]
    dw = r"\frac{\partial \mathcal{L}}{\partial W_{1}}"
    assert got[0] == rf"v_{{dW_{{1}}}} \leftarrow \beta_{{1}} v_{{dW_{{1}}}} + \left(1 - \beta_{{1}}\right) {dw}"
    assert got[1].endswith(rf"\left(1 - \beta_{{2}}\right) \left({dw}\right)^{{2}}")
    assert got[2] == r"\hat{v}_{dW_{1}} \leftarrow \frac{v_{dW_{1}}}{1 - \beta_{1}^{t}}"
    assert got[4] == (
        r"W_{1} \leftarrow W_{1} - \frac{\alpha \hat{v}_{dW_{1}}}{\sqrt{\hat{s}_{dW_{1}}} + \epsilon}"
    )


def test_sgd_update_is_the_derivations_gradient_descent_step() -> None:
    d = backprop.get_derivation("mlp_softmax")
    for p in d.params:
        (u,) = d.updates(p)
        assert u.expr == d.update(p)
        assert u.target == d.model.symbol(p)


def test_hyperparameters_are_the_derivations_symbols() -> None:
    assert ALPHA == backprop.get_derivation("univariate_regression").rate
    assert {h.symbol for o in OPTIMIZERS.values() for h in o.hypers} == {ALPHA, BETA, BETA1, BETA2, EPSILON}


def test_constant_factors_print_with_parentheses() -> None:
    """A constant sum as a factor is parenthesized (it printed as 1 - m · (w X))."""
    m = backprop.parse_spec("input X[n, m]\nparam w[1, n]\nZ = (1 - m) * (w @ X)\nloss = sum(Z / m**2)\n")
    assert m.describe().splitlines()[-2].endswith("= (1 − m) · (w X)")
    assert m.describe().splitlines()[-1].endswith("= Σₜ(Z/m^2)")  # Z is 1×m: a sum over the examples


@pytest.mark.parametrize("name", NAMES)
def test_step_source_is_deterministic_and_commented(name: str) -> None:
    src = step_source.__wrapped__(name)
    assert src == step_source.__wrapped__(name)
    assert "def init_state(params):" in src and "def step(params, grads, state, lr=" in src
    for u in get_optimizer(name).updates("W", (sympy.Symbol("r"), sympy.Symbol("c"))):
        assert u.text() in src  # the docstring lists the equations
    assert "eval(" not in src and "exec(" not in src


# ---------------------------------------------------------------------------
# Generated modules with --optimizer
# ---------------------------------------------------------------------------


def test_generated_module_includes_the_chosen_step() -> None:
    from backprop.codegen import generate, load_module

    src = generate("two_layer_sigmoid", optimizer="momentum")
    assert src == generate("two_layer_sigmoid", optimizer="momentum")
    assert src.splitlines()[1].lstrip("# ") == "backprop codegen two_layer_sigmoid --optimizer momentum -o two_layer_sigmoid.py"
    assert step_source("momentum") in src
    assert "def step(" not in generate("two_layer_sigmoid")
    mod = load_module(src)
    params = mod.init_params({"n": 3, "k": 4}, seed=0)
    rng = np.random.default_rng(0)
    inputs = {"X": rng.normal(size=(3, 20)), "y": rng.normal(size=(1, 20))}
    state = mod.init_state(params)
    first, grads = mod.loss_and_grads(params, inputs)
    for _ in range(30):
        loss, grads = mod.loss_and_grads(params, inputs)
        mod.step(params, grads, state, lr=0.05)
    assert loss < first
    assert type(params["b2"]) is float


def test_codegen_cli_optimizer(capsys: pytest.CaptureFixture[str]) -> None:
    from backprop.cli import main

    assert main(["codegen", "logistic_regression", "--optimizer", "rmsprop"]) == 0
    out = capsys.readouterr().out
    assert "def step(params, grads, state, lr=0.01, beta=0.9, eps=1e-08):" in out
    assert main(["codegen", "logistic_regression", "--latex", "--optimizer", "adam"]) == 2
    assert "--optimizer applies to the generated module" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["codegen", "logistic_regression", "--optimizer", "adagrad"])
    assert e.value.code == 2
