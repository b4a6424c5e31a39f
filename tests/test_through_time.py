"""Backpropagation through time (issue 16, step 2): the chain rule applied to a loop's step once, for
a general t, run by the reference evaluator, against central finite differences and against
PyTorch's ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM`` with their weights copied in (float64)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from backprop import parse_spec
from backprop.engine.through_time import derive_through_time, shifted
from backprop.expr.printing import text
from backprop.language.model import Model
from backprop.support.bundled import examples_dir
from backprop.verification.numeric import concrete
from backprop.verification.through_time import TimeRun

RNN = (examples_dir() / "rnn_tanh.spec").read_text(encoding="utf-8")

GRU = (examples_dir() / "gru.spec").read_text(encoding="utf-8")

LSTM = (examples_dir() / "lstm.spec").read_text(encoding="utf-8")

SEQ2SEQ = """# a trained projection read at every step, an output at every step, a loss on the last state too
input X[d, T, m]
input Y[c, T, m]
param P[d, d]
param Wh[h, h]
param Wx[h, d]
param h0[h, 1]
param U[c, h]
param v[1, h]
Xp = tanh(einsum("ed,dtm->etm", P, X))
H[0] = h0
for t in 1..T:
    H[t] = tanh(Wx @ Xp[:, t] + Wh @ H[t-1])
    O[t] = U @ H[t] + 0.5 * sum(H[t-1], axis=0)
loss = sum((O - Y)**2) / m + sum(v @ H[T]) + sum(Xp * Xp)
"""

STACKED = """# two recurrent layers, the second loop reading the first's steps
input X[d, T, m]
param W1[h, d]
param U1[h, h]
param W2[h, h]
param U2[h, h]
param g0[h, 1]
param v[1, h]
H[0] = zeros(h, m)
for t in 1..T:
    H[t] = tanh(W1 @ X[:, t] + U1 @ H[t-1])
G[0] = g0
for t in 1..T:
    G[t] = tanh(W2 @ H[t] + U2 @ G[t-1])
loss = sum(v @ G[T]) + sum(H * H) / m
"""

RNN_SEQ2SEQ = (examples_dir() / "rnn_seq2seq.spec").read_text(encoding="utf-8")

SPECS = {"rnn": RNN, "gru": GRU, "lstm": LSTM, "seq2seq": SEQ2SEQ, "stacked": STACKED, "rnn_seq2seq": RNN_SEQ2SEQ}


def point(model: Model, sizes: dict[str, int], seed: int) -> dict[Any, Any]:
    rng = np.random.default_rng(seed)
    env: dict[Any, Any] = {model.dims[k]: v for k, v in sizes.items() if k in model.dims}
    for d in model.decls.values():
        shape = concrete(d.shape, env)
        if d.domain == "onehot":
            axis = model.domains().class_axes[d.name]
            labels = rng.integers(0, shape[axis], size=shape[:axis] + shape[axis + 1:])
            env[d.name] = np.moveaxis(np.eye(shape[axis])[labels], -1, axis)
        else:
            env[d.name] = rng.normal(size=shape) * 0.6
    return env


def fd(model: Model, env: dict[Any, Any], name: str, h: float = 1e-6) -> np.ndarray:
    td = derive_through_time(model)
    x = env[name]
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        losses = []
        for step in (h, -h):
            moved = x.copy()
            moved[idx] += step
            losses.append(TimeRun(td, {**env, name: moved}).loss)
        out[idx] = (losses[0] - losses[1]) / (2 * h)
    return out


@pytest.mark.parametrize("steps", [1, 2, 7])
@pytest.mark.parametrize("name", list(SPECS))
def test_every_gradient_equals_finite_differences(name: str, steps: int) -> None:
    model = parse_spec(SPECS[name], path=f"{name}.spec")
    env = point(model, {"d": 3, "T": steps, "m": 2, "h": 3, "c": 2}, seed=steps)
    grads = TimeRun(derive_through_time(model), env).gradients()
    for p in model.params:
        want = fd(model, env, p.name)
        assert grads[p.name].shape == want.shape
        assert np.allclose(grads[p.name], want, rtol=1e-6, atol=1e-8), (name, p.name)


def test_the_recursion_reads_as_the_textbook_prints_it() -> None:
    """δ_t = (∂L/∂H)_t + carry_{t+1}, carry = Whᵀ δZ_t, δZ_t = δH_t ⊙ (1 − H_t²), ∂L/∂Wh = Σ_t δZ_t H_{t−1}ᵀ."""
    (tt,) = derive_through_time(parse_spec(RNN)).loops
    deltas = {d.target: text(d.result) for d in tt.deltas}
    assert [d.target for d in tt.deltas] == ["H[t]", "Z[t]"]
    assert deltas["H[t]"] == "(∂L/∂H)ₜ + dH[t] from t+1"  # the notes write the carry of step t+1 in its place
    assert deltas["Z[t]"] == "∂L/∂Hₜ ⊙ (1 − Hₜ²)"
    assert text(tt.carries["H"]) == "Whᵀ ∂L/∂Zₜ"
    assert text(shifted(tt.carries["H"], "t")) == "Whᵀ ∂L/∂Zₜ₊₁"
    assert text(shifted(tt.carries["H"], "t", 0, to=1)) == "Whᵀ ∂L/∂Z₁"
    assert text(tt.terms["Wh"]) == "∂L/∂Zₜ Hₜ₋₁ᵀ"
    assert text(tt.terms["Wx"]) == "∂L/∂Zₜ Xₜᵀ"
    assert set(tt.terms) == {"Wx", "Wh", "bx", "bh"}  # U is read after the loop, h0 through H[0]


def test_a_value_read_at_every_step_gets_its_gradient_at_every_step() -> None:
    (tt,) = derive_through_time(parse_spec(SEQ2SEQ)).loops
    assert set(tt.slice_terms) == {"Xp"} and "Xp" not in tt.terms
    assert set(tt.carries) == {"H"}
    # the state is read twice by the next step (Wh H[t-1] and the sum), so its carry has two terms
    assert text(tt.carries["H"]).count("+") == 1


# ---------------------------------------------------------------------------
# PyTorch's recurrent layers, weights copied in
# ---------------------------------------------------------------------------


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.array(x), dtype=torch.float64)


def torch_rnn(env: dict[Any, Any]) -> tuple[torch.nn.Module, torch.Tensor, dict[str, torch.Tensor]]:
    d, h = env["Wx"].shape[1], env["Wx"].shape[0]
    net = torch.nn.RNN(d, h, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih_l0.copy_(_t(env["Wx"]))
        net.weight_hh_l0.copy_(_t(env["Wh"]))
        net.bias_ih_l0.copy_(_t(env["bx"][:, 0]))
        net.bias_hh_l0.copy_(_t(env["bh"][:, 0]))
    x = _t(env["X"]).permute(1, 2, 0)  # [d, T, m] -> [T, m, d]
    h0 = _t(env["h0"]).T.expand(x.shape[1], h).unsqueeze(0).clone().requires_grad_(True)
    u, bu = _t(env["U"]).requires_grad_(True), _t(env["bu"]).requires_grad_(True)
    out, _ = net(x, h0)
    logits = out[-1] @ u.T + bu.T
    loss = torch.nn.functional.cross_entropy(logits, _t(env["Y"]).argmax(dim=0))
    loss.backward()
    return net, loss, {"U": u.grad, "bu": bu.grad, "h0": h0.grad[0].sum(dim=0, keepdim=True).T,
                       "Wx": net.weight_ih_l0.grad, "Wh": net.weight_hh_l0.grad,
                       "bx": net.bias_ih_l0.grad[:, None], "bh": net.bias_hh_l0.grad[:, None]}


def torch_rnn_seq2seq(env: dict[Any, Any]) -> tuple[torch.nn.Module, torch.Tensor, dict[str, torch.Tensor]]:
    """nn.RNN from a zero state, a class predicted at every step, cross-entropy summed over the steps."""
    d, h = env["Wx"].shape[1], env["Wx"].shape[0]
    net = torch.nn.RNN(d, h, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih_l0.copy_(_t(env["Wx"]))
        net.weight_hh_l0.copy_(_t(env["Wh"]))
        net.bias_ih_l0.copy_(_t(env["b"][:, 0]))
        net.bias_hh_l0.zero_()
    x = _t(env["X"]).permute(1, 2, 0)  # [d, T, m] -> [T, m, d]
    v, bv = _t(env["V"]).requires_grad_(True), _t(env["bv"]).requires_grad_(True)
    out, _ = net(x)
    logits = out @ v.T + bv[:, 0]  # [T, m, c]
    labels = _t(env["Y"]).argmax(dim=0)  # [c, T, m] -> [T, m]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             reduction="sum") / x.shape[1]
    loss.backward()
    return net, loss, {"V": v.grad, "bv": bv.grad, "Wx": net.weight_ih_l0.grad, "Wh": net.weight_hh_l0.grad,
                       "b": net.bias_ih_l0.grad[:, None]}


def torch_gru(env: dict[Any, Any]) -> tuple[torch.nn.Module, torch.Tensor, dict[str, torch.Tensor]]:
    d, h = env["Wr"].shape
    net = torch.nn.GRU(d, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # PyTorch stacks the gates r, z, n, each as [h, d]: our X @ W is W's transpose
        net.weight_ih_l0.copy_(_t(np.concatenate([env["Wr"].T, env["Wz"].T, env["Wn"].T])))
        net.weight_hh_l0.copy_(_t(np.concatenate([env["Ur"].T, env["Uz"].T, env["Un"].T])))
        net.bias_ih_l0.copy_(_t(np.concatenate([env["br"][0], env["bz"][0], env["bxn"][0]])))
        net.bias_hh_l0.copy_(_t(np.concatenate([np.zeros(h), np.zeros(h), env["bhn"][0]])))
    out, _ = net(_t(env["X"]), _t(env["H0"]).unsqueeze(0))
    loss = ((out[:, -1] - _t(env["Y"])) ** 2).sum() / out.shape[0]
    loss.backward()
    wi, wh, bi, bh = (net.weight_ih_l0.grad, net.weight_hh_l0.grad, net.bias_ih_l0.grad, net.bias_hh_l0.grad)
    return net, loss, {"Wr": wi[:h].T, "Wz": wi[h:2 * h].T, "Wn": wi[2 * h:].T, "Ur": wh[:h].T,
                       "Uz": wh[h:2 * h].T, "Un": wh[2 * h:].T, "br": bi[None, :h], "bz": bi[None, h:2 * h],
                       "bxn": bi[None, 2 * h:], "bhn": bh[None, 2 * h:]}


def torch_lstm(env: dict[Any, Any]) -> tuple[torch.nn.Module, torch.Tensor, dict[str, torch.Tensor]]:
    d, h = env["Wi"].shape
    net = torch.nn.LSTM(d, h, batch_first=True, dtype=torch.float64)
    gates = "ifgo"  # PyTorch's order
    with torch.no_grad():
        net.weight_ih_l0.copy_(_t(np.concatenate([env[f"W{g}"].T for g in gates])))
        net.weight_hh_l0.copy_(_t(np.concatenate([env[f"U{g}"].T for g in gates])))
        net.bias_ih_l0.copy_(_t(np.concatenate([env[f"b{g}"][0] for g in gates])))
        net.bias_hh_l0.zero_()
    out, _ = net(_t(env["X"]))
    loss = ((out - _t(env["Y"])) ** 2).sum() / (2 * out.shape[0])
    loss.backward()
    wi, wh, bi = net.weight_ih_l0.grad, net.weight_hh_l0.grad, net.bias_ih_l0.grad
    grads = {}
    for k, g in enumerate(gates):
        grads[f"W{g}"] = wi[k * h:(k + 1) * h].T
        grads[f"U{g}"] = wh[k * h:(k + 1) * h].T
        grads[f"b{g}"] = bi[None, k * h:(k + 1) * h]
    return net, loss, grads


@pytest.mark.parametrize("steps", [1, 2, 7, 50])
@pytest.mark.parametrize(("name", "reference"), [("rnn", torch_rnn), ("gru", torch_gru), ("lstm", torch_lstm),
                                               ("rnn_seq2seq", torch_rnn_seq2seq)])
def test_equals_pytorch_recurrent_layers(name: str, reference: Any, steps: int) -> None:
    model = parse_spec(SPECS[name], path=f"{name}.spec")
    env = point(model, {"d": 4, "T": steps, "m": 3, "h": 5, "c": 3}, seed=10 + steps)
    run = TimeRun(derive_through_time(model), env)
    grads = run.gradients()
    _, loss, want = reference(env)
    assert abs(run.loss - loss.item()) <= 1e-9 * max(1.0, abs(loss.item()))
    assert set(want) <= set(grads)
    for p, g in want.items():
        assert np.allclose(grads[p], g.detach().numpy(), rtol=1e-9, atol=1e-11), (name, p, steps)


def torch_lstm_windows(env: dict[Any, Any], window: int) -> dict[str, np.ndarray]:
    """The recurrent weights' gradients of nn.LSTM run as PyTorch users truncate BPTT: the sequence in
    windows of ``window`` steps, (h, c) carried on detached between them, one backward over the summed loss."""
    net, _, _ = torch_lstm(env)
    net.zero_grad()
    x, y = _t(env["X"]), _t(env["Y"])
    state, loss = None, torch.zeros((), dtype=torch.float64)
    for start in range(0, x.shape[1], window):
        out, state = net(x[:, start:start + window], state)
        loss = loss + ((out - y[:, start:start + window]) ** 2).sum() / (2 * x.shape[0])
        state = (state[0].detach(), state[1].detach())
    loss.backward()
    h = env["Wi"].shape[1]
    return {f"U{g}": net.weight_hh_l0.grad[k * h:(k + 1) * h].T.numpy() for k, g in enumerate("ifgo")}


@pytest.mark.parametrize(("steps", "window"), [(7, 3), (6, 2), (5, 1), (4, 9)])
def test_truncated_bptt_equals_pytorch_windows_with_the_state_detached(steps: int, window: int) -> None:
    """truncate=k as PyTorch users run it: the sequence in windows of k steps, (h, c) carried on
    detached between them, one backward over the summed loss."""
    model = parse_spec(LSTM, path="lstm.spec")
    env = point(model, {"d": 3, "T": steps, "m": 2, "h": 4}, seed=steps + window)
    run = TimeRun(derive_through_time(model), env)
    grads = run.gradients(truncate=window)
    for g, want in torch_lstm_windows(env, window).items():
        assert np.allclose(grads[g], want, rtol=1e-9, atol=1e-11), (g, steps, window)
    full = run.gradients()
    assert window >= steps or not np.allclose(grads["Ui"], full["Ui"])  # a cut that changes nothing tests nothing


def test_truncate_is_a_positive_number_of_steps() -> None:
    run = TimeRun(derive_through_time(parse_spec(RNN)), point(parse_spec(RNN), {"d": 2, "T": 3, "m": 2, "h": 2, "c": 2}, 0))
    with pytest.raises(ValueError, match="at least 1"):
        run.gradients(truncate=0)


def test_a_loop_reading_an_earlier_loops_whole_sequence() -> None:
    """The second loop reads all of H (not a step of it): a shared value, summed over its steps."""
    step = "    G[t] = tanh(W2 @ H[t] + U2 @ G[t-1])"
    spec = STACKED.replace(step, step[:-1] + " + sum(H * H) * G[t-1])")
    model = parse_spec(spec, path="whole.spec")
    env = point(model, {"d": 2, "T": 3, "m": 2, "h": 2}, seed=5)
    grads = TimeRun(derive_through_time(model), env).gradients()
    for p in ("W1", "U1", "U2"):
        assert np.allclose(grads[p], fd(model, env, p), rtol=1e-6, atol=1e-8), p


FIRST_READ = """# a computed first state, read after the loop as well
input X[d, T, m]
param W0[h, h]
param h0[h, 1]
param Wx[h, d]
param Wh[h, h]
param v[1, h]
H[0] = tanh(W0 @ h0)
for t in 1..T:
    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1])
loss = sum(v @ H[T]) + sum(v @ H[0])
"""


def test_the_first_state_read_after_the_loop_is_the_same_value() -> None:
    """H[0] after the loop is the first state's own value: its gradient gathers both uses."""
    model = parse_spec(FIRST_READ, path="first.spec")
    td = derive_through_time(model)
    step = next(s for s in td.steps if s.target == "H[0]")
    assert len(step.paths) == 2  # the loss's read and what step 1 sends back
    env = point(model, {"d": 2, "T": 3, "m": 2, "h": 3}, seed=4)
    grads = TimeRun(td, env).gradients()
    for p in ("W0", "h0", "Wh", "v"):
        assert np.allclose(grads[p], fd(model, env, p), rtol=1e-6, atol=1e-8), p
