"""Generated code for loops (issue 16, step 4): the module's forward loop over t and backward loop from
T down to 1 equal the reference evaluator (every spec of tests/test_through_time.py, T = 1, 2, 7, with
and without truncation), PyTorch's recurrent layers (T = 1, 2, 7, 50, to 1e-9) and PyTorch's windows
with the state detached (``truncate=k``); T is read from the arrays, so one module runs every length."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backprop import parse_spec
from backprop.codegen.emit import generate, load_module
from backprop.codegen.gradcheck import gradcheck
from backprop.codegen.loader import import_file
from backprop.engine.through_time import derive_through_time
from backprop.language.model import Model
from backprop.language.parse import load
from backprop.verification.through_time import TimeRun
from tests.test_through_time import (
    FIRST_READ,
    LSTM,
    SPECS,
    point,
    torch_gru,
    torch_lstm,
    torch_lstm_windows,
    torch_rnn,
    torch_rnn_seq2seq,
)

ALL = {**SPECS, "first_read": FIRST_READ}
GENERATED = Path(__file__).parent.parent / "generated"
_MODULES: dict[str, Any] = {}


def module(name: str) -> tuple[Model, Any]:
    model = parse_spec(ALL[name], path=f"{name}.spec")
    if name not in _MODULES:
        _MODULES[name] = load_module(generate(model))
    return model, _MODULES[name]


def split(model: Model, env: dict[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {p.name: env[p.name] for p in model.params}, {d.name: env[d.name] for d in model.inputs}


@pytest.mark.parametrize("truncate", [None, 1, 3])
@pytest.mark.parametrize("steps", [1, 2, 7])
@pytest.mark.parametrize("name", list(ALL))
def test_the_module_equals_the_reference_evaluator(name: str, steps: int, truncate: int | None) -> None:
    model, mod = module(name)
    env = point(model, {"d": 3, "T": steps, "m": 2, "h": 3, "c": 2}, seed=steps)
    run = TimeRun(derive_through_time(model), env)
    want = run.gradients(truncate=truncate)
    loss, grads = mod.loss_and_grads(*split(model, env), truncate=truncate)
    assert abs(loss - run.loss) <= 1e-12 * max(1.0, abs(run.loss))
    for p in model.params:
        assert grads[p.name].shape == np.shape(env[p.name])
        assert np.allclose(grads[p.name], want[p.name], rtol=1e-12, atol=1e-14), (name, p.name)


@pytest.mark.parametrize("steps", [1, 2, 7, 50])
@pytest.mark.parametrize(("name", "reference"), [("rnn_tanh", torch_rnn), ("gru", torch_gru), ("lstm", torch_lstm),
                                               ("rnn_seq2seq", torch_rnn_seq2seq)])
def test_the_bundled_module_equals_pytorch_recurrent_layers(name: str, reference: Any, steps: int) -> None:
    """The committed module (generated/NAME.py) of each bundled recurrent example against PyTorch."""
    model = load(name)
    mod = import_file(GENERATED / f"{name}.py")
    env = point(model, {"d": 4, "T": steps, "m": 3, "h": 5, "c": 3}, seed=20 + steps)
    loss, grads = mod.loss_and_grads(*split(model, env))
    _, want_loss, want = reference(env)
    assert abs(loss - want_loss.item()) <= 1e-9 * max(1.0, abs(want_loss.item()))
    for p, g in want.items():
        assert np.allclose(grads[p], g.detach().numpy(), rtol=1e-9, atol=1e-11), (name, p, steps)


def test_truncate_equals_pytorch_windows_with_the_state_detached() -> None:
    model, mod = module("lstm")
    env = point(model, {"d": 3, "T": 7, "m": 2, "h": 4}, seed=5)
    _, grads = mod.loss_and_grads(*split(model, env), truncate=3)
    for g, want in torch_lstm_windows(env, 3).items():
        assert np.allclose(grads[g], want, rtol=1e-9, atol=1e-11), g
    _, full = mod.loss_and_grads(*split(model, env))
    assert not np.allclose(grads["Ui"], full["Ui"])  # the cut changed something


def test_nothing_is_unrolled_and_t_is_read_from_the_arrays() -> None:
    source = generate(parse_spec(LSTM, path="lstm.spec"))
    assert len(re.findall(r"^\s+for t in range\(", source, flags=re.M)) == 2  # one forward, one backward loop
    assert "for t in range(T):" in source and "for t in range(T - 1, -1, -1):" in source
    assert "truncate=None" in source
    model, mod = module("lstm")
    for steps in (1, 4):  # one module, any length
        env = point(model, {"d": 3, "T": steps, "m": 2, "h": 4}, seed=steps)
        loss, _ = mod.loss_and_grads(*split(model, env))
        assert loss == pytest.approx(TimeRun(derive_through_time(model), env).loss, rel=1e-12)


def test_float32_in_float32_out() -> None:
    model, mod = module("gru")
    env = point(model, {"d": 3, "T": 3, "m": 2, "h": 3}, seed=1)
    params, inputs = split(model, env)
    loss, grads = mod.loss_and_grads({k: v.astype(np.float32) for k, v in params.items()},
                                     {k: v.astype(np.float32) for k, v in inputs.items()})
    assert all(g.dtype == np.float32 for g in grads.values())
    _, want = mod.loss_and_grads(params, inputs)
    assert all(np.allclose(grads[p], want[p], rtol=1e-3, atol=1e-4) for p in want)


@pytest.mark.parametrize("name", ["rnn", "seq2seq", "stacked"])
def test_gradcheck_passes(name: str) -> None:
    report = gradcheck(parse_spec(ALL[name], path=f"{name}.spec"), seed=1)
    assert report.ok, report.format()


def test_truncate_is_checked() -> None:
    model, mod = module("rnn")
    env = point(model, {"d": 2, "T": 3, "m": 2, "h": 2, "c": 2}, seed=0)
    for bad in (0, -2, 1.5, "3"):
        with pytest.raises(ValueError, match="truncate"):
            mod.loss_and_grads(*split(model, env), truncate=bad)


def test_gates_pre_activations_are_one_add_over_the_stacked_blocks() -> None:
    """An LSTM's four gates read Xₜ W_k + Hₜ₋₁ U_k + b_k: one add over the stacked product and the
    step's projections, one over the biases stacked once, each gate a slice; a GRU's candidate, whose
    pre-activation has another form, keeps its own line and the two gates before it are fused."""
    lstm = generate(parse_spec(LSTM, path="lstm.spec"))
    assert lstm.count("np.add(H_prev_U, X_W_steps[:, t], dtype=step_dtype)") == 1
    assert "Z_all_t += b_stack" in lstm and "b_stack = np.concatenate((bi, bf, bg, bo), axis=1)" in lstm
    assert re.search(r"Z_O_t = Z_all_t\[:, 3 \* h:\]", lstm) and "X_Wi_t" not in lstm
    gru = (GENERATED / "gru.py").read_text()
    assert "np.add(H_prev_U[:, :2 * h], X_W_steps[:, t, :2 * h], dtype=step_dtype)" in gru
    assert "X_Wn_t = X_W_steps[:, t, 2 * h:3 * h]" in gru


def test_mixed_dtypes_promote_as_the_unfused_sums_do() -> None:
    """float32 weights with float64 inputs: the fused sums are computed in the step's dtype (float64),
    as Xₜ W_k + Hₜ₋₁ U_k + b_k gate by gate would be: the gradients (float32, as their params) are the
    float64 computation's on the same values, rounded once at the end."""
    model, mod = module("lstm")
    env = point(model, {"d": 3, "T": 4, "m": 2, "h": 3}, seed=2)
    params, inputs = split(model, env)
    low = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
    _, want = mod.loss_and_grads(low, inputs)
    _, got = mod.loss_and_grads({k: v.astype(np.float32) for k, v in params.items()}, inputs)
    for p in want:
        assert got[p].dtype == np.float32, p
        np.testing.assert_array_equal(got[p], want[p].astype(np.float32), err_msg=p)


ODD_GATES = """\
examples m
input X[m, T, d]
input Y[m, T, h]
param Wi[d, h]
param Wf[d, h]
param Wg[d, h]
param Ui[h, h]
param Uf[h, h]
param Ug[h, h]
param c[1, 1]
param bg[m, h]
H[0] = zeros(m, h)
for t in 1..T:
    I = sigmoid(X[:, t] @ Wi + H[t-1] @ Ui + c)
    F = sigmoid(X[:, t] @ Wf + H[t-1] @ Uf + I)
    G = tanh(X[:, t] @ Wg + H[t-1] @ Ug + bg)
    H[t] = F * tanh(H[t-1]) + I * G
loss = sum((H - Y)**2) / m
"""


def test_gates_with_other_addends_are_summed_as_written() -> None:
    """A third addend that is no bias row of the gate's width (a 1×1 param, a value of the step, a full
    m×h param) is not stacked: the run fused is only what fits (here none: the one full-size bias stands
    alone), and the module equals the reference evaluator."""
    model = parse_spec(ODD_GATES, path="odd.spec")
    source = generate(model)
    assert "b_stack" not in source and "np.add(H_prev_U" not in source
    mod = load_module(source)
    for steps in (1, 3):
        env = point(model, {"d": 2, "T": steps, "m": 3, "h": 2}, seed=steps)
        run = TimeRun(derive_through_time(model), env)
        want = run.gradients()
        loss, grads = mod.loss_and_grads(*split(model, env))
        assert loss == pytest.approx(run.loss, rel=1e-12)
        for p in model.params:
            np.testing.assert_allclose(grads[p.name], want[p.name], rtol=1e-10, atol=1e-12, err_msg=p.name)
