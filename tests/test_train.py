"""``backprop train`` and ``backprop gradflow``: training halves the loss, outputs are well formed, bad data exits 2.

Runs are small (256 examples, 10 epochs, batches of 16) and seeded, so they are
quick and every number is reproducible.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import backprop
from backprop.cli import main
from backprop.codegen.emit import derivation_of, generate
from backprop.codegen.loader import load_source
from backprop.engine.optim import OPTIMIZERS
from backprop.train.data import default_dims, load_npz, save_npz, synthetic, targets_of
from backprop.train.gradflow import hidden_activations, with_activation
from backprop.train.loop import split, train

EXAMPLES = backprop.example_names()
QUICK = ["--epochs", "10", "--batch-size", "16", "--seed", "0", "--quiet"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def quick_dims(name: str) -> list[str]:
    return ["--dims", "m=256"] if "m" in backprop.load(name).dims else []


def read_history(path: Path) -> tuple[list[str], list[list[float]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], [[float(x) for x in r] for r in rows[1:]]


def assert_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    img = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert float(img[..., :3].std()) > 0.01, f"{path} is blank"
    return img


@pytest.fixture(scope="module")
def modules() -> dict[tuple[str, str], object]:
    return {}


def module_for(cache: dict, name: str, optimizer: str):
    key = (name, optimizer)
    if key not in cache:
        cache[key] = load_source(generate(derivation_of(name), optimizer=optimizer), name)
    return cache[key]


# ---------------------------------------------------------------------------
# The loss halves on every bundled example
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_train_synthetic_halves_the_loss_and_writes_everything(name: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", name, "--synthetic", *quick_dims(name), *QUICK, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"training {name}" in stdout and "lower) after 10 epochs" in stdout
    header, rows = read_history(out / "history.csv")
    assert header[-1] == "loss" and len(rows) == 11
    first, last = rows[0][-1], rows[-1][-1]
    assert last <= first / 2, f"{name}: loss {first} -> {last}"
    for png in ("loss.png", "gradflow.png"):
        assert_png(out / png)
    params = np.load(out / "params.npz")
    mod = load_source(generate(derivation_of(name)), name)
    assert sorted(params.files) == sorted(mod.PARAMS)


def test_train_synthetic_fits_the_gaussian_by_maximum_likelihood(tmp_path: Path) -> None:
    """gaussian_full_cov on standard normal data: the loss falls to the NLL of the maximum-likelihood
    fit (the sample mean and covariance), (d + log det Ŝ + d log 2π)/2 -- A Aᵀ + εI reaches Ŝ."""
    out = tmp_path / "run"
    assert main(["train", "gaussian_full_cov", "--synthetic", "--dims", "d=4,m=400", "--epochs", "60", "--quiet",
                 "--out", str(out)]) == 0
    _, rows = read_history(out / "history.csv")
    d = derivation_of("gaussian_full_cov")
    mod = load_source(generate(d), "gaussian_full_cov")
    x = synthetic(d.model, d, mod, {"d": 4, "m": 400}, seed=0).inputs["X"]
    s_hat = np.cov(x, bias=True)
    best = (4 + np.linalg.slogdet(s_hat)[1] + 4 * np.log(2 * np.pi)) / 2
    first, last = rows[0][-1], rows[-1][-1]
    assert last < first and abs(last - best) < 1e-2 * abs(best), (first, last, best)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_optimizer_halves_the_loss_with_its_default_rate(optimizer: str, modules: dict) -> None:
    for name in EXAMPLES:
        d = derivation_of(name)
        mod = module_for(modules, name, optimizer)
        dims = default_dims(mod, {"m": 256})
        data = synthetic(d.model, d, mod, dims, seed=0)
        # 15 epochs: the slowest learner, embedding with plain SGD (its mean over T tokens damps the
        # signal), was measured halving by epoch 12; the others halve within 10.
        h, _ = train(mod, data.inputs, dims, optimizer=optimizer, epochs=15, batch_size=16, progress=False)
        assert h.last <= h.first / 2, f"{name} with {optimizer}: loss {h.first} -> {h.last}"


# ---------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls") / "run"
    assert main(["train", "two_layer_sigmoid", "--synthetic", "--dims", "m=200,n=3,k=5", "--epochs", "4",
                 "--batch-size", "64", "--optimizer", "momentum", "--quiet", "--out", str(out)]) == 0
    return out


def test_history_csv_format(run_dir: Path) -> None:
    text = (run_dir / "history.csv").read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    header, rows = read_history(run_dir / "history.csv")
    assert header == ["epoch", "steps", "train_loss", "grad_norm_W1", "grad_norm_b1", "grad_norm_w2",
                      "grad_norm_b2", "loss"]
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
    assert [r[1] for r in rows] == [0, 4, 8, 12, 16]  # ceil(200 / 64) = 4 steps per epoch
    assert rows[0][2] == rows[0][-1]  # before training, the "mean mini-batch loss" is the loss
    assert all(len(r) == len(header) and all(math.isfinite(x) and x >= 0 for x in r) for r in rows)


def test_params_npz_holds_the_final_params(run_dir: Path) -> None:
    """The saved params reproduce the last loss in history.csv on the same (regenerated) data."""
    d = derivation_of("two_layer_sigmoid")
    mod = load_source(generate(d), "two_layer_sigmoid")
    dims = {"n": 3, "m": 200, "k": 5}
    data = synthetic(d.model, d, mod, dims, seed=0).inputs
    saved = np.load(run_dir / "params.npz")
    assert {k: saved[k].shape for k in saved.files} == {"W1": (5, 3), "b1": (5, 1), "w2": (1, 5), "b2": ()}
    params = {k: (float(saved[k]) if saved[k].shape == () else saved[k]) for k in saved.files}
    loss, _ = mod.loss_and_grads(params, data)
    _, rows = read_history(run_dir / "history.csv")
    assert loss == pytest.approx(rows[-1][-1], rel=1e-12)
    fresh = mod.init_params(dims, seed=0)
    assert not np.allclose(fresh["W1"], params["W1"])


def test_pngs_are_valid_images(run_dir: Path) -> None:
    for png in ("loss.png", "gradflow.png"):
        assert_png(run_dir / png)


def test_same_seed_same_bytes(run_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert main(["train", "two_layer_sigmoid", "--synthetic", "--dims", "m=200,n=3,k=5", "--epochs", "4",
                 "--batch-size", "64", "--optimizer", "momentum", "--quiet", "--out", str(again)]) == 0
    for f in ("history.csv", "params.npz", "loss.png", "gradflow.png"):
        assert (again / f).read_bytes() == (run_dir / f).read_bytes(), f


def test_progress_bar_shows_the_loss(tmp_path: Path, capsys) -> None:
    assert main(["train", "univariate_regression", "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "univariate_regression · adam" in err and "step" in err and "batch loss " in err and "100%" in err


def test_loss_plot_says_which_loss_is_which(tmp_path: Path) -> None:
    """The light curve is the progress bar's (mini-batch) loss; the dark one is on all the examples, as printed."""
    from backprop.train.plots import loss_curve

    h, _ = train(module_for({}, "logistic_regression", "adam"), *_logistic_data(), epochs=2, progress=False)
    legend = [t.get_text() for t in loss_curve(h, "x").axes[0].get_legend().get_texts()]
    assert legend == ["loss on each mini-batch (the progress bar's loss)",
                      "loss on all 100 examples, end of each epoch (the loss printed at the end)"]
    h, _ = train(module_for({}, "logistic_regression", "adam"), *_logistic_data(), epochs=2, progress=False,
                 val_fraction=0.25)
    legend = [t.get_text() for t in loss_curve(h, "x").axes[0].get_legend().get_texts()]
    assert legend[1] == "loss on all 75 training examples, end of each epoch (the loss printed at the end)"
    assert legend[2] == "loss on the 25 held-out examples (validation)"


def _logistic_data() -> tuple[dict, dict]:
    d = derivation_of("logistic_regression")
    mod = load_source(generate(d), "logistic_regression")
    dims = default_dims(mod, {"m": 100, "n": 4})
    return synthetic(d.model, d, mod, dims, 0).inputs, dims


def test_data_file_trains_like_synthetic_data(tmp_path: Path, capsys) -> None:
    """--data with the very arrays --synthetic makes gives the very same run."""
    d = derivation_of("logistic_regression")
    mod = load_source(generate(d), "logistic_regression")
    dims = default_dims(mod, {"m": 100, "n": 4})
    data = synthetic(d.model, d, mod, dims, seed=3).inputs
    (tmp_path / "data.npz").write_bytes(save_npz(data))
    common = ["--epochs", "3", "--seed", "3", "--quiet"]
    assert main(["train", "logistic_regression", "--data", str(tmp_path / "data.npz"), *common,
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "logistic_regression", "--synthetic", "--dims", "m=100,n=4", *common,
                 "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "history.csv").read_text() == (tmp_path / "b" / "history.csv").read_text()
    assert "from " + str(tmp_path / "data.npz") in capsys.readouterr().out


def test_data_file_of_images_in_the_declared_layout(tmp_path: Path, capsys) -> None:
    """LeNet's images as the spec declares them, X[1, 28, 28, m] and integer labels: the same run as
    --synthetic; the examples-first layout PyTorch uses is refused, with the transpose that fits."""
    d = derivation_of("lenet")
    mod = load_source(generate(d), "lenet")
    data = synthetic(d.model, d, mod, default_dims(mod, {"m": 40, "c": 4}), seed=2).inputs
    (tmp_path / "data.npz").write_bytes(save_npz(data))
    common = ["--epochs", "1", "--seed", "2", "--dims", "c=4", "--quiet"]
    assert main(["train", "lenet", "--data", str(tmp_path / "data.npz"), *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "lenet", "--synthetic", "--dims", "m=40,c=4", *common[:-3], "--quiet",
                 "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "history.csv").read_text() == (tmp_path / "b" / "history.csv").read_text()
    capsys.readouterr()
    torch_layout = dict(data, X=np.transpose(data["X"], (3, 0, 1, 2)))
    (tmp_path / "nchw.npz").write_bytes(save_npz(torch_layout))
    assert main(["train", "lenet", "--data", str(tmp_path / "nchw.npz"), *common, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"backprop: error: {tmp_path / 'nchw.npz'}: array 'X' has shape (40, 1, 28, 28), but the "
                          "spec declares X[1, 28, 28, m]"), err
    assert "save np.transpose(X, (1, 2, 3, 0))" in err and not (tmp_path / "c").exists()
    (tmp_path / "flat.npz").write_bytes(save_npz(dict(data, X=data["X"][0])))
    assert main(["train", "lenet", "--data", str(tmp_path / "flat.npz"), *common, "--out", str(tmp_path / "d")]) == 2
    assert "(a 4-D array; examples along axis 3)" in capsys.readouterr().err


def test_float32_training(tmp_path: Path) -> None:
    out = tmp_path / "f32"
    assert main(["train", "mlp_softmax", "--dims", "m=64,h=8", "--epochs", "2", "--dtype", "float32",
                 "--quiet", "--out", str(out)]) == 0
    assert np.load(out / "params.npz")["W1"].dtype == np.float32


def test_divergence_is_reported_and_plotted(tmp_path: Path, capsys) -> None:
    out = tmp_path / "div"
    code = main(["train", "multivariate_regression", "--optimizer", "sgd", "--lr", "100", "--epochs", "8",
                 "--quiet", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "diverged" in captured.out and "try a smaller --lr" in captured.err
    assert "Traceback" not in captured.err and "RuntimeWarning" not in captured.err
    assert_png(out / "loss.png")


def test_lenet_learns_and_dead_relus_are_reported(tmp_path: Path, capsys) -> None:
    """LeNet below chance (ln c) in 10 epochs at Adam 0.003; at Adam's default 0.01 the loss 'halves' only
    because it starts overconfident, every ReLU of the conv stack dies in the first epoch, and train says so."""
    small = ["lenet", "--synthetic", "--dims", "m=128,c=8", "--quiet"]
    assert main(["train", *small, "--epochs", "10", "--lr", "0.003", "--out", str(tmp_path / "a")]) == 0
    assert "warning" not in capsys.readouterr().err
    _, rows = read_history(tmp_path / "a" / "history.csv")
    assert rows[-1][-1] < math.log(8) / 2, rows[-1][-1]
    assert main(["train", *small, "--epochs", "5", "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("backprop: warning: ∂L/∂W1, ∂L/∂b1, ∂L/∂W2, ∂L/∂b2, ∂L/∂W3 were 0 at every step of the "
                          "last epoch"), err
    assert "try a smaller --lr than 0.01" in err


# ---------------------------------------------------------------------------
# Bad input: exit 2, a clear message, nothing written
# ---------------------------------------------------------------------------


def _mlp_arrays(m: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.zeros((10, m))
    y[rng.integers(0, 10, m), np.arange(m)] = 1
    return {"X": rng.normal(size=(784, m)), "Y": y}


def _bad(tmp_path: Path, content: bytes | dict, name: str = "bad.npz") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else save_npz(content))
    return path


BAD_FILES = {
    "not an npz": (b"X,Y\n1,2\n", "not a NumPy .npz archive"),
    "missing array": ({"X": _mlp_arrays()["X"]}, "missing array 'Y' (the spec's inputs: X, Y; the file has X)"),
    "wrong rows": ({"X": np.zeros((10, 20)), "Y": _mlp_arrays()["Y"]},
                   "array 'X' has shape (10, 20), but the spec declares X[784, m] (784 rows)"),
    "1-D": ({"X": np.zeros(784), "Y": _mlp_arrays()["Y"]}, "array 'X' has shape (784,), but the spec declares X[784, m]"),
    "examples disagree": ({"X": _mlp_arrays(20)["X"], "Y": _mlp_arrays(21)["Y"]},
                          "array 'Y' has shape (10, 21), but Y[10, m] needs m=20 (from array 'X')"),
    "NaN": ({**_mlp_arrays(), "X": np.where(np.eye(784, 20) > 0, np.nan, 0.0)},
            "array 'X' has 20 NaN or infinite entries (the first, NaN, at [0, 0])"),
    "strings": ({"X": np.array([["a"] * 20] * 784), "Y": _mlp_arrays()["Y"]}, "array 'X' holds <U1 values; expected numbers"),
    "not one-hot": ({**_mlp_arrays(), "Y": np.full((10, 20), 0.1)}, "array 'Y' is declared onehot, but column 0 is not one-hot"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_data_file_exits_2(case: str, tmp_path: Path, capsys) -> None:
    content, message = BAD_FILES[case]
    path = _bad(tmp_path, content)
    out = tmp_path / "out"
    assert main(["train", "mlp_softmax", "--data", str(path), "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"backprop: error: {path}: "), err
    assert message in err, err
    assert "Traceback" not in err
    assert not out.exists()


#: A Mahalanobis fit against a given covariance S: an spd input serves every example (it is not batched).
SPD_SPEC = ("input S[n, n] spd\ninput X[n, m]\nparam w[n, 1]\n"
            "loss = sum((X - w) * solve(S, X - w)) / m + 0.1 * sum(w**2)\n")


def _spd_arrays(s: np.ndarray) -> dict[str, np.ndarray]:
    return {"S": s, "X": np.random.default_rng(0).normal(size=(3, 40))}


@pytest.mark.parametrize(("s", "message"), [
    (np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]), "array 'S' is declared spd, but is not symmetric"),
    (-np.eye(3), "array 'S' is declared spd, but is not positive definite (its Cholesky factorization fails)"),
])
def test_train_data_checks_an_spd_input(s: np.ndarray, message: str, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "maha.spec"
    spec.write_text(SPD_SPEC)
    path = _bad(tmp_path, _spd_arrays(s))
    assert main(["train", str(spec), "--data", str(path), "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"backprop: error: {path}: ") and message in err and "Traceback" not in err, err


def test_an_spd_input_is_shared_by_every_batch(tmp_path: Path, capsys) -> None:
    """S[n, n] is one covariance, not n examples: the examples are X's columns, and S goes whole to
    every mini-batch, from a file or made up (B Bᵀ/n + I)."""
    spec = tmp_path / "maha.spec"
    spec.write_text(SPD_SPEC)
    model = backprop.language.parse.parse_spec(SPD_SPEC)
    assert model.examples_dim == "m" and model.examples_axis("S") is None
    good = _bad(tmp_path, _spd_arrays(np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]])), "good.npz")
    for source in (["--data", str(good)], ["--synthetic", "--dims", "n=3,m=40"]):
        out = tmp_path / source[0].strip("-")
        assert main(["train", str(spec), *source, "--epochs", "30", "--quiet", "--out", str(out)]) == 0
        _, rows = read_history(out / "history.csv")
        assert rows[-1][-1] < rows[0][-1]
    assert "S        3×3: random, spd" in capsys.readouterr().out


def test_missing_data_file_and_bad_options(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    cases = [
        (["--data", str(tmp_path / "nope.npz")], "nope.npz: no such file"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--dims", "q=3"], "--dims: unknown dimension 'q'"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--val", "1"], "--val must be a fraction in [0, 1), got 1"),
        (["--val", "-0.1"], "--val must be a fraction in [0, 1)"),
        (["--val", "0.0001"], "--val 0.0001: holding out 0.0001 of 512 examples leaves 0 for validation"),
        (["--val", "0.9999"], "leaves 512 for validation and 0 for training"),
    ]
    for extra, message in cases:
        assert main(["train", "two_layer_sigmoid", *extra, "--quiet", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()
    assert main(["train", "no_such_spec", "--out", str(out)]) == 2
    assert "no such file or bundled example" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Validation split
# ---------------------------------------------------------------------------


def test_split_holds_out_a_seeded_disjoint_share_of_the_columns() -> None:
    x = np.arange(3 * 10, dtype=float).reshape(3, 10)
    inputs = {"X": x, "y": x[:1] * 2, "lam": 0.5}
    train_part, val = split(inputs, {"X": 1, "y": 1}, 10, 0.3, seed=4)
    assert val is not None and val["lam"] == 0.5 and train_part["lam"] == 0.5
    assert val["X"].shape == (3, 3) and train_part["X"].shape == (3, 7)
    cols = sorted([*val["X"][0], *train_part["X"][0]])
    assert cols == list(x[0])  # every example on exactly one side
    np.testing.assert_array_equal(val["y"], val["X"][:1] * 2)  # columns stay paired across inputs
    again, val_again = split(inputs, {"X": 1, "y": 1}, 10, 0.3, seed=4)
    np.testing.assert_array_equal(val_again["X"], val["X"])
    assert not np.array_equal(split(inputs, {"X": 1, "y": 1}, 10, 0.3, seed=5)[1]["X"], val["X"])
    assert split(inputs, {"X": 1, "y": 1}, 10, 0.0, seed=4)[1] is None
    with pytest.raises(ValueError, match="no input carries examples"):
        split({"lam": 0.5}, {}, 1, 0.5, seed=0)


def test_train_with_validation_records_the_held_out_loss(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["train", "two_layer_sigmoid", "--synthetic", "--dims", "m=200,n=3,k=5", "--epochs", "4",
            "--batch-size", "64", "--val", "0.25", "--quiet", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "validation loss (50 held-out examples)" in printed
    header, rows = read_history(out / "history.csv")
    assert header[-2:] == ["val_loss", "loss"]
    assert [r[1] for r in rows] == [0, 3, 6, 9, 12]  # ceil(150 / 64) = 3 steps per epoch
    assert rows[-1][-2] < rows[0][-2]  # the held-out loss falls too
    # the recorded numbers are the module's loss on each side of the same seeded split, with the saved params
    d = derivation_of("two_layer_sigmoid")
    mod = load_source(generate(d), "two_layer_sigmoid")
    data = synthetic(d.model, d, mod, {"n": 3, "m": 200, "k": 5}, seed=0).inputs
    train_part, val = split(data, {"X": 1, "y": 1}, 200, 0.25, seed=0)
    saved = np.load(out / "params.npz")
    params = {k: (float(saved[k]) if saved[k].shape == () else saved[k]) for k in saved.files}
    assert mod.loss_and_grads(params, val)[0] == pytest.approx(rows[-1][-2], rel=1e-12)
    assert mod.loss_and_grads(params, train_part)[0] == pytest.approx(rows[-1][-1], rel=1e-12)
    assert_png(out / "loss.png")


def test_validation_shows_overfitting_on_a_tiny_training_set() -> None:
    """10 training examples, 577 params: the network fits them exactly (noise included) while the
    held-out loss stays at the noise it cannot predict. That gap is what --val is for."""
    d = derivation_of("two_layer_sigmoid")
    mod = load_source(generate(d, optimizer="adam"), "two_layer_sigmoid")
    dims = {"n": 8, "m": 20, "k": 64}
    data = synthetic(d.model, d, mod, dims, seed=0).inputs
    h, _ = train(mod, data, dims, optimizer="adam", lr=0.01, epochs=1000, batch_size=20, seed=0,
                 progress=False, val_fraction=0.5)
    assert h.val_examples == 10
    assert h.last < 1e-12 < 1e-4 < h.val_last < h.val_first


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------


#: Bundled examples that model the data itself (a likelihood of X), with no target to learn.
DENSITY_MODELS = {"gaussian_full_cov"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_synthetic_targets_suit_the_spec(name: str, modules: dict) -> None:
    d = derivation_of(name)
    mod = module_for(modules, name, "sgd")
    dims = default_dims(mod, {"m": 300})
    made = synthetic(d.model, d, mod, dims, seed=1)
    targets = targets_of(d.model, d)
    if name in DENSITY_MODELS:  # the data is all there is: no target, no teacher
        assert targets == [] and all("no teacher" in how for how in made.how.values())
        return
    (target,) = targets
    y = made.inputs[target]
    domain = mod.DOMAINS[target]
    assert "teacher" in made.how[target]
    if domain == "onehot":
        axis = d.model.domains().class_axes[target]
        assert set(np.unique(y)) == {0.0, 1.0} and (y.sum(axis=axis) == 1).all()
        per_class = y.sum(axis=tuple(ax for ax in range(y.ndim) if ax != axis))
        assert per_class.min() >= 300 / y.shape[axis] / 2  # every class well represented
    elif domain == "binary":
        assert 0.4 < y.mean() < 0.6
    else:  # a real target: the teacher's output plus 10% noise, so a student can fit it closely
        teacher = mod.init_params(dims, seed=2)
        loss_teacher, _ = mod.loss_and_grads(teacher, made.inputs)
        student = mod.init_params(dims, seed=0)
        loss_student, _ = mod.loss_and_grads(student, made.inputs)
        assert loss_teacher < loss_student


TARGET_CASES = {
    # label smoothing: the one-hot labels reach the loss through a param-free line
    "smoothed": (
        "input X[n, m]\ninput C[c, m] onehot\nparam W[c, n]\nS = 0.9 * C + 0.1 / c\n"
        "loss = -sum(S * log_softmax(W @ X, axis=0)) / m",
        ["C"],
    ),
    # a binary dropout mask multiplies a hidden layer: the network goes on from it, so it is a feature
    "mask": (
        "input X[n, m]\ninput M[h, m] binary\ninput y[1, m]\nparam W1[h, n]\nparam w2[1, h]\n"
        "A = relu(W1 @ X) * M\nloss = sum((w2 @ A - y) ** 2) / m",
        ["y"],
    ),
    # one-hot tokens into an embedding are features; the one-hot labels compared with the output are targets
    "tokens": (
        "input X[V, m] onehot\ninput Y[c, m] onehot\nparam E[d, V]\nparam W[c, d]\nH = E @ X\n"
        "P = softmax(W @ H, axis=0)\nD = P - Y\nloss = sum(D ** 2) / m",
        ["Y"],
    ),
    # named like a target, but multiplied into the features the network goes on from: a feature
    "named": (
        "input X[n, m]\ninput T[n, m]\ninput Y[c, m] onehot\nparam W[c, n]\nH = X * T\n"
        "loss = -sum(Y * log_softmax(W @ H, axis=0)) / m",
        ["Y"],
    ),
    # a binary label compared line by line, with weight decay on the loss line
    "binary": (
        "input X[n, m]\ninput t[1, m] binary\nparam w[1, n]\np = sigmoid(w @ X)\n"
        "E = -(t * log(p) + (1 - t) * log(1 - p))\nloss = sum(E) / m + 0.01 * sum(w ** 2)",
        ["t"],
    ),
}


@pytest.mark.parametrize("case", sorted(TARGET_CASES))
def test_targets_follow_param_free_lines(case: str) -> None:
    text, expected = TARGET_CASES[case]
    d = derivation_of(backprop.language.parse.parse_spec(text))
    assert targets_of(d.model, d) == expected


# ---------------------------------------------------------------------------
# backprop gradflow
# ---------------------------------------------------------------------------


def test_gradflow_shows_vanishing_sigmoid_gradients(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import backprop.train.plots

    figures = []
    bars = backprop.train.plots.gradflow_bars
    monkeypatch.setattr(backprop.train.plots, "gradflow_bars", lambda *a, **k: figures.append(bars(*a, **k)) or figures[-1])
    out = tmp_path / "gf.png"
    assert main(["gradflow", "deep_relu", "--compare-activation", "sigmoid", "--dims", "m=128",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    # The chart carries the first-to-last ratios the terminal printed, and says which one vanishes.
    printed = [ln.rsplit("= ", 1)[1].split()[0] for ln in text.splitlines() if "‖ / ‖∂L/∂W4‖ = " in ln]
    assert len(printed) == 2
    (fig,) = figures
    title = fig.axes[0].get_title()
    assert "first layer / last" in title and r"\partial W_{1}" in title and r"\partial W_{4}" in title
    assert f"relu (as written) {printed[0]};" in title and f"sigmoid {printed[1]} (vanishing gradients)" in title
    lines = {ln.split()[0]: ln.split() for ln in text.splitlines() if ln.startswith("  W") or ln.startswith("  b")}
    assert list(lines) == ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"]
    relu = [float(lines[p][2]) for p in ("W1", "W4")]
    sigmoid = [float(lines[p][3]) for p in ("W1", "W4")]
    assert sigmoid[0] / sigmoid[1] < 0.05 < relu[0] / relu[1]
    assert "vanishing gradients" in text
    assert_png(out)


def test_gradflow_single_network_and_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "one.png"
    assert main(["gradflow", "two_layer_sigmoid", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "‖∂L/∂θ‖ sigmoid (as written)" in text
    assert "‖∂L/∂W1‖ / ‖∂L/∂w2‖ = " in text
    assert_png(out)
    assert main(["gradflow", "logistic_regression", "--compare-activation", "relu", "--out", str(tmp_path / "x.png")]) == 2
    assert "has no hidden layer" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_with_activation_replaces_hidden_layers_only() -> None:
    m = backprop.load("deep_relu")
    assert hidden_activations(m) == [("A1", "relu"), ("A2", "relu"), ("A3", "relu")]
    s = with_activation(m, "sigmoid")
    assert hidden_activations(s) == [("A1", "sigmoid"), ("A2", "sigmoid"), ("A3", "sigmoid")]
    assert s.loss.expr == m.loss.expr
    assert hidden_activations(backprop.load("logistic_regression")) == []


def test_load_npz_binds_dims_from_the_arrays(tmp_path: Path) -> None:
    mod = load_source(generate(derivation_of("mlp_softmax")), "mlp_softmax")
    path = _bad(tmp_path, _mlp_arrays(30), "ok.npz")
    data, dims = load_npz(path, mod, {"h": 7})
    assert dims == {"m": 30, "h": 7} and data["X"].shape == (784, 30)


def test_synthetic_with_two_targets_gives_each_its_teacher() -> None:
    """Both targets are params of the teacher module: each one's gradient needs the other's value
    (it was a KeyError, 'params is missing t')."""
    from backprop.language.parse import parse_spec

    d = derivation_of(parse_spec("input X[n, m]\ninput y[1, m]\ninput t[1, m]\nparam w[1, n]\nyhat = w @ X\n"
                                 "loss = sum((yhat - y) ** 2) / m + sum((yhat - t) ** 2) / m"))
    mod = load_source(generate(d), "two_targets")
    made = synthetic(d.model, d, mod, default_dims(mod, {"m": 64}), seed=1)
    assert targets_of(d.model, d) == ["y", "t"]
    assert all("teacher" in made.how[n] for n in ("y", "t"))
