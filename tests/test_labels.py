"""Integer class labels end to end: the ``labels(c)`` domain, ``onehot`` and ``take`` in specs, the
generated code (no one-hot matrix for cross-entropy, the scatter-add helper), ``train`` with labels
from a file or a teacher, and the compiler-style errors. The ops' adjoints are in tests/test_ops.py,
the bundled examples against PyTorch in tests/test_examples_torch.py."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import backprop
from backprop.cli import main
from backprop.codegen.emit import load_module
from backprop.codegen.regenerate import GENERATED
from backprop.expr.ops_labels import _ADD_AT_HELPER, _SCATTER_HELPER, scatter_add
from backprop.train.data import save_npz

# ---------------------------------------------------------------------------
# The generated helpers against np.add.at / the definition
# ---------------------------------------------------------------------------


def _helper(source: str, name: str):
    scope: dict = {"np": np}
    exec(compile(source, f"<{name}>", "exec"), scope)  # the registry's own helper text
    return scope[name]


@pytest.mark.parametrize(("g_shape", "idx_shape", "n", "axis"), [
    ((3, 4, 5), (4, 5), 6, 1),     # an embedding: E[d, V] looked up at x[T, m]
    ((4, 5, 3), (4, 5), 6, 0),     # rows of a table
    ((2, 3, 1, 4), (1, 4), 3, 2),  # the last axis of a rank-3 table
    ((2, 7), (7,), 3, 1),          # rank-1 indices, many repeats
])
def test_scatter_add_helper_matches_np_add_at(g_shape, idx_shape, n, axis) -> None:
    rng = np.random.default_rng(0)
    g, idx = rng.normal(size=g_shape), rng.integers(0, n, size=idx_shape)
    want_shape = g_shape[:axis] + (n,) + g_shape[axis + len(idx_shape):]
    want = np.zeros(want_shape)
    np.add.at(want, (slice(None),) * axis + (idx,), g)
    got = _helper(_SCATTER_HELPER, "_scatter_add")(g, idx, n, axis)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(scatter_add(g, idx, n, axis), want, rtol=1e-13, atol=1e-13)
    assert _helper(_SCATTER_HELPER, "_scatter_add")(g.astype(np.float32), idx, n, axis).dtype == np.float32


def test_add_at_helper_takes_one_off_at_the_labels_and_leaves_its_argument() -> None:
    a = np.arange(12.0).reshape(3, 4)
    y = np.array([[2, 0, 1, 2]])
    got = _helper(_ADD_AT_HELPER, "_add_at")(a, y, -1, 0)
    want = a - (y == np.arange(3)[:, None])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a, np.arange(12.0).reshape(3, 4))


# ---------------------------------------------------------------------------
# The generated code
# ---------------------------------------------------------------------------


def test_cross_entropy_on_labels_builds_no_one_hot_matrix() -> None:
    """embedding_bag's loss and ∂L/∂Z read the labels directly: take_along_axis forward, _add_at
    backward; nothing compares them with np.arange(c)."""
    src = (GENERATED / "embedding_bag.py").read_text(encoding="utf-8")
    assert "np.take_along_axis(" in src and "_add_at(np.exp(" in src and "_scatter_add(" in src
    assert "np.arange(c)" not in src


def test_the_hinge_picks_the_correct_score_and_builds_the_one_hot_once() -> None:
    src = (GENERATED / "svm_hinge.py").read_text(encoding="utf-8")
    assert "correct = np.take_along_axis(S, y, axis=0)" in src
    assert src.count("np.arange(c)") == 1


def test_a_module_refuses_float_labels_with_a_message() -> None:
    mod = load_module(GENERATED / "svm_hinge.py")
    params = mod.init_params({"n": 3, "c": 4}, seed=0)
    x = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r"^y: expected integer class labels \(an integer array\), got dtype float64"):
        mod.loss_and_grads(params, {"X": x, "y": np.zeros((1, 5))})
    with pytest.raises(ValueError, match=r"^y: labels must lie in 0\.\.3, got \[-1, 4\]"):  # -1 would wrap silently
        mod.loss_and_grads(params, {"X": x, "y": np.array([[0, -1, 2, 4, 0]])})
    loss, _ = mod.loss_and_grads(params, {"X": x, "y": np.array([[0, 1, 2, 3, 0]])})
    assert loss == pytest.approx(3.0)  # every score 0: each example's c − 1 margins are 1


# ---------------------------------------------------------------------------
# Errors, as a compiler gives them
# ---------------------------------------------------------------------------

HEAD = "input X[n, m]\ninput y[1, m] labels(c)\nparam W[c, n]\n"


@pytest.mark.parametrize(("spec", "where", "message"), [
    (HEAD + "loss = sum(onehot(X, c) * (W @ X))\n", "4:19", "onehot needs integer labels, an input declared labels(c)"),
    (HEAD + "loss = sum(onehot(y, n) * (W @ X))\n", "4:22", "'y' is declared labels(c): onehot(y, c), not n classes"),
    ("input X[n, m]\ninput y[1, m] labels\nparam W[c, n]\nloss = sum(W @ X)\n", "2:15",
     "labels needs the number of classes: labels(c)"),
    ("input X[n, m]\ninput y[1, m] labels(c) x\nparam W[c, n]\nloss = sum(W @ X)\n", "2:25", "unexpected 'x'"),
    ("input X[n, m]\ninput y[1, m] onehot(c)\nparam W[c, n]\nloss = sum(W @ X)\n", "2:21", "onehot takes no argument"),
    ("input X[n, m]\ninput y[1, m] labels(1)\nparam W[c, n]\nloss = sum(W @ X)\n", "2:22", "at least 2 classes"),
    ("input X[n, m]\ninput y[1, m] labels(k)\nparam W[c, n]\nloss = sum(W @ X)\n", "2:22",
     "'y' is declared labels(k), but no input or param has an axis of length k"),
    ("input x[T, m] labels(V)\nparam E[d, W]\nloss = sum(take(E, x, axis=1))\n", "3:12",
     "'x' holds labels in 0..V−1 (declared labels(V)) but axis 1 of the table has W entries"),
    ("input x[T, m] labels(V)\nparam E[d, V]\nloss = sum(take(E, x))\n", "3:12", "take needs the axis"),
    ("input x[T, m] labels(V)\nparam E[d, V]\nloss = sum(take(E, E, axis=1))\n", "3:20", "take needs integer labels"),
])
def test_label_errors_read_like_a_compilers(spec: str, where: str, message: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.spec"
    path.write_text(spec, encoding="utf-8")
    out = tmp_path / "out.md"
    assert main(["derive", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:{where}: error: ") and message in err and "Traceback" not in err, err
    assert not out.exists()


# ---------------------------------------------------------------------------
# Training: labels from a file (checked) and from a teacher
# ---------------------------------------------------------------------------


def _svm_data(y: np.ndarray) -> dict[str, np.ndarray]:
    return {"X": np.random.default_rng(0).normal(size=(3, y.shape[1])), "y": y}


@pytest.mark.parametrize(("y", "message"), [
    (np.array([[0, 1, 4, 2]]), "array 'y' is declared labels(c), but holds labels outside 0..3: [4]"),
    (np.array([[0, -1, 2, 2]]), "holds labels outside 0..3: [-1]"),
    (np.array([[0.0, 1.5, 2.0, 2.0]]), "holds values that are not whole numbers"),
])
def test_train_data_checks_the_labels(y: np.ndarray, message: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(save_npz(_svm_data(y)))
    code = main(["train", "svm_hinge", "--data", str(path), "--dims", "c=4", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_train_takes_whole_float_labels_from_a_file(tmp_path: Path) -> None:
    """Labels stored as floats (0.0, 1.0, ...) are checked whole and passed on as indices."""
    y = np.random.default_rng(1).integers(0, 4, size=(1, 64)).astype(float)
    path = tmp_path / "data.npz"
    path.write_bytes(save_npz(_svm_data(y)))
    out = tmp_path / "out"
    assert main(["train", "svm_hinge", "--data", str(path), "--dims", "c=4", "--epochs", "5", "--quiet",
                 "--out", str(out)]) == 0
    assert (out / "history.csv").is_file()


@pytest.mark.parametrize("name", ["svm_hinge", "embedding_bag"])
def test_synthetic_labels_come_from_a_teacher_and_are_learned(name: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["train", name, "--synthetic", "--epochs", "20", "--out", str(out)]) == 0
    assert "y        1×512: labels: the teacher network's most likely class" in capsys.readouterr().out
    with open(out / "history.csv", newline="", encoding="utf-8") as f:
        rows = [[float(x) for x in r] for r in list(csv.reader(f))[1:]]
    assert rows[-1][-1] < 0.5 * rows[0][-1]


def test_the_labels_domain_is_listed_where_domains_are() -> None:
    d = backprop.get_derivation("embedding_bag")
    assert d.model.decls["y"].domain == "labels(c)" and d.model.decls["x"].domain == "labels(V)"
    mod = load_module(GENERATED / "embedding_bag.py")
    assert mod.DOMAINS == {"x": "labels(V)", "y": "labels(c)"}
