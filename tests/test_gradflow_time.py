"""Vanishing gradients through time in pictures (issue 16 point 6): ``backprop gradflow`` on a spec with
a loop prints and plots ‖∂L/∂Hₜ‖ against t, for the spec's activation and each ``--compare-activation``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backprop import parse_spec
from backprop.cli import main
from backprop.engine.through_time import derive_through_time
from backprop.train.through_time import (
    default_sizes,
    norms_over_time,
    point_at_init,
    state_activations,
    with_state_activation,
)
from backprop.verification.through_time import TimeRun
from tests.test_through_time import LSTM, fd, point

RNN = """# a tanh RNN classifier on its last state
input X[d, T, m]
input y[1, m] labels(c)
param Wx[h, d]
param Wh[h, h]
param b[h, 1]
param h0[h, 1]
param U[c, h]
H[0] = h0
for t in 1..T:
    H[t] = tanh(Wx @ X[:, t] + Wh @ H[t-1] + b)
loss = -sum(onehot(y, c) * log_softmax(U @ H[T], axis=0)) / m
"""


def test_sigmoid_fades_far_faster_than_tanh_through_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "rnn.spec"
    spec.write_text(RNN, encoding="utf-8")
    out = tmp_path / "flow.png"
    assert main(["gradflow", str(spec), "--compare-activation", "sigmoid", "--dims", "T=20,c=4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "‖∂L/∂Hₜ‖ tanh (as written)" in text and "‖∂L/∂Hₜ‖ sigmoid" in text
    ratios = {line.split(":")[0]: float(line.rsplit("=", 1)[1]) for line in text.splitlines() if "/ ‖∂L/∂H_T‖" in line}
    assert ratios["sigmoid"] < 1e-6 * ratios["tanh (as written)"]  # σ′ ≤ 1/4 at every step: the gradient vanishes
    assert out.read_bytes().startswith(b"\x89PNG")


def test_the_norms_are_the_recursions_own() -> None:
    model = parse_spec(RNN, path="rnn.spec")
    sizes = default_sizes(model, {"T": 6, "m": 5, "h": 4, "d": 3, "c": 3})
    env = point_at_init(model, sizes, seed=1)
    norms = norms_over_time(model, env)["H"]
    run = TimeRun(derive_through_time(model), env)
    run.gradients()
    assert len(norms) == 6
    assert norms == [float(np.linalg.norm(d["H[t]"])) for d in run.deltas[0]]


def test_a_swapped_activation_is_still_derived_right() -> None:
    model = with_state_activation(parse_spec(RNN, path="rnn.spec"), "relu")
    assert state_activations(model) == [("H", "relu")]
    env = point(model, {"d": 3, "T": 4, "m": 2, "h": 3, "c": 2}, seed=3)
    grads = TimeRun(derive_through_time(model), env).gradients()
    assert np.allclose(grads["Wh"], fd(model, env, "Wh"), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("spec", "argv", "message"), [
    (RNN, ["--data", "x.npz"], "synthetic data for now"),
    (LSTM, ["--compare-activation", "relu"], "no state of lstm's loop is H[t] = activation(...)"),
    (RNN, ["--dims", "T=100000,m=1000,h=1000"], "choose fewer steps"),
])
def test_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, argv: list[str],
                               message: str) -> None:
    path = tmp_path / ("lstm.spec" if spec is LSTM else "rnn.spec")
    path.write_text(spec, encoding="utf-8")
    (tmp_path / "x.npz").write_bytes(b"")
    assert main(["gradflow", str(path), "--out", str(tmp_path / "f.png"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "f.png").exists()
