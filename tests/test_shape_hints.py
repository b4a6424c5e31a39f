"""A generated module's shape error says when an array is laid out the other way (examples as rows
for a spec whose examples are columns, a rank-3 array's axes in another order), and the --data
loader says it in the same words; the accepted-shape fast path never builds the hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import backprop
from backprop.cli import main

RNG = np.random.default_rng(0)


def _error(mod, params: dict, inputs: dict) -> str:
    with pytest.raises(ValueError) as e:
        mod.loss_and_grads(params, inputs)
    return str(e.value)


@pytest.fixture(scope="module")
def mlp():
    mod = backprop.load_module("mlp_softmax")
    x, y = RNG.standard_normal((784, 100)), np.eye(10)[:, np.arange(100) % 10]
    return mod, mod.init_params({"h": 16}, seed=0), x, y


def test_examples_as_rows_is_named_transposed(mlp) -> None:
    mod, params, x, y = mlp
    assert _error(mod, params, {"X": x.T, "Y": y}) == (
        "X: expected shape (784, m) = (784, 784) (m=784 from X), got (100, 784). "
        "X looks transposed: examples are columns here; pass X.T")
    assert _error(mod, params, {"X": x, "Y": y.T}).endswith(". Y looks transposed: examples are columns here; pass Y.T")
    assert _error(mod, params, {"X": x.T, "Y": y.T}).endswith("; pass X.T")  # the first of the two, then the other


def test_a_transposed_param_and_no_hint_for_a_wrong_size(mlp) -> None:
    mod, params, x, y = mlp
    assert _error(mod, {**params, "W1": params["W1"].T}, {"X": x, "Y": y}).endswith(". W1 looks transposed; pass W1.T")
    wrong = _error(mod, params, {"X": x[:783], "Y": y})
    assert wrong == "X: expected shape (784, m) = (784, 100) (m=100 from X), got (783, 100)"


def test_the_array_that_bound_the_dim_is_blamed() -> None:
    """mlp_rows' X[m, n] passed as columns binds m=8 from X; the error comes at Y, the hint names X."""
    mod = backprop.load_module("mlp_rows")
    params = mod.init_params({"n": 8, "c": 3, "h": 4}, seed=0)
    msg = _error(mod, params, {"X": np.zeros((8, 50)), "Y": np.zeros((50, 3))})
    assert msg.startswith("Y: expected shape (m, c)") and msg.endswith(". X looks transposed: examples are rows here; pass X.T")


@pytest.mark.parametrize("perm", [(2, 0, 1), (1, 2, 0), (0, 2, 1)])
def test_rank_3_names_the_permutation_that_fixes_it(perm: tuple[int, ...]) -> None:
    mod = backprop.load_module("self_attention")
    params = mod.init_params({"d": 4}, seed=0)
    x = RNG.standard_normal((4, 5, 3))
    bad = np.transpose(x, perm)
    msg = _error(mod, params, {"X": bad, "Y": x})
    fix = tuple(int(i) for i in msg.split("np.transpose(X, (", 1)[1].split(")", 1)[0].split(","))
    assert "X has the spec's axes in another order (examples are axis 2 here): pass np.transpose(X, " in msg
    assert np.transpose(bad, fix).shape == x.shape
    mod.loss_and_grads(params, {"X": np.transpose(bad, fix), "Y": x})  # the hint, applied, is accepted


def test_accepted_shapes_never_build_the_hint(mlp, monkeypatch: pytest.MonkeyPatch) -> None:
    mod, params, x, y = mlp
    mod.loss_and_grads(params, {"X": x, "Y": y})

    def boom(*_: object) -> str:
        raise AssertionError("hint built on the fast path")

    monkeypatch.setattr(mod, "_layout_hint", boom)
    monkeypatch.setattr(mod, "_blame", boom)
    mod.loss_and_grads(params, {"X": x, "Y": y})  # looked up in _ACCEPTED: no check, no hint
    mod.loss_and_grads(params, {"X": x[:, :7], "Y": y[:, :7]})  # checked afresh, accepted: no hint either


def test_data_loader_says_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str], mlp) -> None:
    _, _, x, y = mlp
    np.savez(tmp_path / "d.npz", X=x.T, Y=y)
    out = tmp_path / "run"
    assert main(["train", "mlp_softmax", "--data", str(tmp_path / "d.npz"), "-q", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith("array 'X' has shape (100, 784), but the spec declares X[784, m] (784 rows). "
                                 "X looks transposed: examples are columns here; save X.T")
    assert not out.exists()
