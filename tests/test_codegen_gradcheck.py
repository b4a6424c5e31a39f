"""Generated gradients vs central finite differences (float64), for every example and every
committed module; and the checker itself must be able to fail."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backprop import codegen
from backprop.codegen.gradcheck import (
    TOLERANCE,
    TOLERANCES,
    NotFiniteError,
    draw,
    gradcheck,
    relative_error,
    resolve_dims,
)
from backprop.codegen.regenerate import GENERATED
from backprop.support.bundled import example_names

SEEDS = (0, 1, 2)  # three random points, each at its own random sizes


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", example_names())
def test_every_example_matches_finite_differences(name, seed):
    report = gradcheck(name, seed=seed)
    assert set(report.errors) == set(codegen.load_module(name).PARAMS)
    assert report.ok and not report.noisy, report.format()
    assert report.worst <= TOLERANCE == 1e-7
    assert report.loss_error is not None and report.loss_error <= 1e-10  # stable forms = textbook forms


def test_sizes_differ_between_seeds():
    sizes = {tuple(gradcheck("deep_relu", seed=s).dims.values()) for s in SEEDS}
    assert len(sizes) == len(SEEDS)


@pytest.mark.parametrize("path", sorted(GENERATED.glob("*.py")), ids=lambda p: p.stem)
def test_every_committed_module_matches_finite_differences(path):
    report = gradcheck(path, seed=7, reference=path.stem)
    assert report.ok, report.format()
    assert report.loss_error is not None


def test_a_wrong_gradient_fails():
    source = codegen.generate("logistic_regression")
    wrong = source.replace("dz = (p - y) / m", "dz = (p - y) / m * 1.001")
    assert wrong != source
    report = gradcheck(codegen.load_module(wrong), seed=0)
    assert not report.ok and report.failed == ["w", "b"]
    assert 5e-4 < report.errors["w"] < 2e-3
    assert report.params["w"].discrepancy > 1e4 * report.params["w"].noise  # far above the fd noise
    assert "WRONG: w, b: |grad − fd| above both the tolerance 1e-07" in report.format()


def test_a_wrong_loss_fails_against_the_reference_evaluator():
    """The module's loss is compared with the textbook-form evaluator of the spec."""
    source = codegen.generate("mlp_softmax")
    line = "loss = -(Y * t1).sum() / m"
    wrong = source.replace(line, line + " + 1")
    assert wrong != source
    report = gradcheck(codegen.load_module(wrong), seed=0, reference="mlp_softmax")
    assert report.failed == ["loss"] and report.loss_error > 0.01
    assert gradcheck(codegen.load_module(source), seed=0, reference="mlp_softmax").ok


def test_report_format():
    text = gradcheck("two_layer_sigmoid", dims={"n": 3, "m": 5, "k": 4}, seed=1).format()
    assert text.splitlines()[0] == (
        "gradcheck two_layer_sigmoid: dims n=3, m=5, k=4; seed 1; float64 gradients vs central differences "
        "in float64 at h and 2h, h = 6.1e-06·max(1, |θ|)")
    assert text.splitlines()[1].split() == ["param", "shape", "scale", "max", "|grad", "−", "fd|", "fd", "noise",
                                            "rel.", "error", "verdict"]
    assert re.search(r"^  W1 +4×3 +\S+ +\S+ +\S+ +\S+  ok$", text, re.M)
    assert "  b2             scalar" in text
    assert text.endswith("ok: every gradient within 1e-07")


def test_inputs_come_from_their_domains():
    rng = np.random.default_rng(0)
    onehot = draw((4, 50), "onehot", rng)
    assert (onehot.sum(axis=0) == 1).all() and set(np.unique(onehot)) == {0.0, 1.0}
    assert set(np.unique(draw((3, 50), "binary", rng))) == {0.0, 1.0}
    assert (draw((3, 50), "positive", rng) > 0).all()
    prob = draw((3, 50), "prob", rng)
    assert ((prob > 0) & (prob < 1)).all()
    assert type(draw((), None, rng)) is float


def test_dims_are_checked():
    mod = codegen.load_module("mlp_softmax")
    rng = np.random.default_rng(0)
    assert resolve_dims(mod, {"h": 3}, rng)["h"] == 3
    with pytest.raises(ValueError, match="unknown dim n"):
        resolve_dims(mod, {"n": 3}, rng)
    with pytest.raises(ValueError, match="dim h must be a positive integer"):
        resolve_dims(mod, {"h": 0}, rng)


def test_relative_error_is_relative_to_the_gradient_scale():
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 1e-9])) == pytest.approx(1e-9)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(2.0, 1.0) == 0.5


# ---------------------------------------------------------------------------
# Verdicts: ok, wrong, too noisy -- no false alarms, no missed errors
# ---------------------------------------------------------------------------


def _spec(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.spec"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


#: dL/dW is zero everywhere, but W moves the loss of 10⁷ by its rounding: fd noise, not zero.
CANCELLING = """
    input X[n, m]
    param W[k, n]
    param V[k, n]
    param c
    loss = 1000000 * sum(exp(c * X)) + sum((W + V) @ X) - sum(W @ X)
"""
#: A loss of 10⁷ whose W-gradient is of order 1: its fd carry rounding of ~1e-3.
LARGE_LOSS = """
    input X[n, m]
    param W[k, n]
    param c
    loss = 1000000 * sum(exp(c * X)) + sum(W @ X)
"""
#: exp∘tanh nested twice, a loss of e¹⁰ at the saturated seed 3.
EXP_TANH = """
    input X[n, m]
    param w[1, n]
    param b
    loss = exp(10 * tanh(sum(exp(2 * tanh(w @ X + b)))))
"""
EXP_TANH_2 = """
    input X[n, m]
    param W[k, n]
    param v[1, k]
    loss = sum(exp(5 * tanh(v @ exp(tanh(W @ X)))))
"""


def _scaled(source: str, param: str, factor: str) -> str:
    """The module with one gradient multiplied, in backward's return dict."""
    wrong, count = re.subn(rf'("{param}": )(\w+)([,}}])', rf"\g<1>\g<2> * {factor}\g<3>", source)
    assert count == 1
    return wrong


def test_an_identically_zero_gradient_passes(tmp_path):
    spec = _spec(tmp_path, "dead", "input X[n, m]\nparam W[k, n]\nloss = sum(relu(-exp(W @ X)))\n")
    for seed in SEEDS:
        report = gradcheck(spec, seed=seed)
        assert report.ok and not report.noisy and report.params["W"].verdict == "ok", report.format()


def test_a_zero_gradient_with_fd_noise_is_ok_not_a_false_alarm(tmp_path):
    spec = _spec(tmp_path, "cancelling", CANCELLING)
    for seed in SEEDS:
        report = gradcheck(spec, seed=seed)
        w = report.params["W"]
        assert w.verdict == "ok" and w.zero and report.ok, report.format()
        assert w.discrepancy > 1e-5  # the fd are noise of that size: relative to the gradient, an error of 1
        assert report.errors["W"] == 1.0 > TOLERANCE  # what the old relative criterion failed on
        assert "ok (zero within the noise)" in report.format()


def test_a_large_loss_is_too_noisy_not_wrong(tmp_path):
    spec = _spec(tmp_path, "large", LARGE_LOSS)
    report = gradcheck(spec, seed=1)
    w = report.params["W"]
    assert w.verdict == "noisy" and report.ok and report.noisy == ["W"], report.format()
    assert w.error > 100 * TOLERANCE  # the old check cried wolf here
    assert 1e-4 < w.noise < 1e-1 and w.discrepancy < w.noise  # measured: 5e-5 within a noise of 2e-3
    text = report.format()
    assert "too noisy (15 of 15 entries)" in text and text.splitlines()[-1].startswith("too noisy: W:")


def test_a_wrong_gradient_is_found_under_fd_noise(tmp_path):
    """The noise excuses what the fd cannot see, not a 1% error in a noisy param."""
    source = codegen.generate(_spec(tmp_path, "cancelling", CANCELLING))
    report = gradcheck(codegen.load_module(_scaled(source, "V", "1.01")), seed=0)
    assert report.failed == ["V"] and report.params["V"].verdict == "wrong", report.format()
    assert report.params["W"].verdict == "ok"


def test_nested_exp_tanh_is_not_a_false_alarm(tmp_path):
    spec = _spec(tmp_path, "exp_tanh", EXP_TANH)
    for seed in range(4):  # standard-normal params: the hard points (the initializer's spread is gentler)
        report = gradcheck(spec, seed=seed, scale="unit")
        assert report.ok, report.format()
    saturated = gradcheck(spec, seed=3, scale="unit")  # L ≈ e¹⁰, gradients ~1e-2: rounding of 1e-6 in the fd
    assert saturated.noisy == ["w", "b"] and saturated.worst > 100 * TOLERANCE, saturated.format()
    spec2 = _spec(tmp_path, "exp_tanh_2", EXP_TANH_2)
    for seed in range(4):
        report = gradcheck(spec2, seed=seed, scale="unit")
        assert report.ok and not report.noisy, report.format()


@pytest.mark.parametrize("factor", ["1.01", "1.0001"])
def test_a_wrong_nested_gradient_is_wrong(tmp_path, factor):
    source = codegen.generate(_spec(tmp_path, "exp_tanh_2", EXP_TANH_2))
    for seed in range(4):
        report = gradcheck(codegen.load_module(_scaled(source, "W", factor)), seed=seed)
        assert report.failed == ["W"], report.format()


def test_a_dropped_term_is_wrong(tmp_path):
    source = codegen.generate(_spec(tmp_path, "exp_tanh_2", EXP_TANH_2))
    wrong = source.replace("    dZ1 *= 1.0 - t1 ** 2\n", "")  # tanh′ forgotten in ∂L/∂Z₁
    assert wrong != source
    report = gradcheck(codegen.load_module(wrong), seed=0)
    assert report.failed == ["W"] and report.params["W"].verdict == "wrong"


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", example_names())
def test_float32_gradients_of_every_example(name):
    report = gradcheck(name, seed=1, dtype=np.float32)
    assert report.dtype == "float32" and report.tol == TOLERANCES["float32"] == 1e-4
    assert report.ok and not report.noisy, report.format()
    assert report.worst > 1e-9  # float32 rounding is there to see: the gradients were float32
    assert "(float32)" in report.format()


def test_a_wrong_float32_gradient_is_wrong():
    source = codegen.generate("two_layer_sigmoid")
    for factor, wrong in (("1.001", True), ("1.000001", False)):  # 1e-3 above the 1e-4 tolerance; 1e-6 below it
        report = gradcheck(codegen.load_module(_scaled(source, "W1", factor)), seed=0, dtype="float32")
        assert (report.failed == ["W1"]) is wrong, report.format()


def test_only_float64_and_float32():
    with pytest.raises(ValueError, match="dtype must be one of float64, float32"):
        gradcheck("two_layer_sigmoid", dtype=np.float16)


def test_float32_rounding_is_not_a_false_alarm(tmp_path):
    """exp(10·tanh(...)) in float32 is off by ~2e-4 relative (float32 exp of a large argument),
    and a zero-within-noise gradient comes out exactly 0: rounding, not a wrong gradient."""
    spec = _spec(tmp_path, "exp_tanh", EXP_TANH)
    for seed in range(4):
        report = gradcheck(spec, seed=seed, dtype="float32", scale="unit")
        assert report.ok, report.format()
    assert gradcheck(spec, seed=1, dtype="float32", scale="unit").worst > TOLERANCES["float32"]


# ---------------------------------------------------------------------------
# Rounding the fd cannot see in themselves, and points where there is nothing to check
# ---------------------------------------------------------------------------


def test_a_tiny_cross_entropy_is_not_a_false_alarm():
    """L ≈ 1e-8 is log(1 + 1e-8): quantized in steps of ε·1, not ε·L. The loss moves by a whole number of
    quanta per step, so D(h) and D(2h) agree to 1e-19 while both are 1% off: before the noise counted the
    magnitudes on the way to the loss, a correct module was called WRONG here."""
    report = gradcheck("mlp_softmax", dims={"h": 1, "m": 1}, seed=0, scale="unit")
    assert report.ok and not report.failed, report.format()
    assert report.loss < 1e-7 and report.noisy  # honest: the fd cannot check these gradients to 1e-7


def test_a_wrong_gradient_is_still_found_where_the_noise_floor_is_high():
    source = codegen.generate("mlp_softmax")
    report = gradcheck(codegen.load_module(_scaled(source, "W2", "1.01")), dims={"h": 3, "m": 4}, seed=0)
    assert report.failed == ["W2"], report.format()


def test_a_loss_that_is_not_finite_at_the_point_is_said_so(tmp_path, capsys):
    spec = _spec(tmp_path, "logneg", "input x[n, m]\nparam w[1, n]\nloss = sum(log(w @ x)) / m\n")
    with pytest.raises(NotFiniteError, match=r"^the loss is nan at the point drawn with seed 0"):
        gradcheck(spec, seed=0)
    from backprop.cli import main

    assert main(["check", str(spec)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("backprop: error: the loss is nan") and err.count("\n") == 1, err


def test_a_negative_zero_loss_is_shown_as_zero(tmp_path):
    spec = _spec(tmp_path, "negzero", "input x[n, m]\nparam w[1, n]\nloss = -sum(w @ x - w @ x) / m\n")
    report = gradcheck(spec, seed=0)
    assert report.ok and "\nloss 0; reference evaluator 0 (" in report.format()


# ---------------------------------------------------------------------------
# Where the point is drawn, and which entries are differenced
# ---------------------------------------------------------------------------


def test_params_are_drawn_at_the_initializers_spread():
    from backprop.codegen.gradcheck import param_spreads

    mod = codegen.load_module("lenet")
    dims = {"m": 2, "c": 3}
    init = param_spreads(mod, dims)
    assert init["W3"] == pytest.approx(np.sqrt(2 / 256), rel=0.05)  # He before a ReLU, fan-in 256
    assert init["b3"] == 1.0  # a bias the initializer zeroes: standard normal
    assert set(param_spreads(mod, dims, "unit").values()) == {1.0}
    with pytest.raises(ValueError, match="scale must be one of init, unit"):
        param_spreads(mod, dims, "huge")


def test_a_large_param_is_checked_on_a_sample_and_a_wrong_one_is_still_found():
    report = gradcheck("lenet", dims={"m": 2, "c": 3}, seed=0)
    w3 = report.params["W3"]
    assert (w3.entries, w3.checked) == (120 * 256, 1000) and report.params["b3"].checked is None
    assert "1000 of 30720 entries, sampled" in report.format()
    everything = gradcheck("mlp_softmax", seed=0, entries=0)
    assert all(c.checked is None for c in everything.params.values())
    source = codegen.generate("lenet")
    wrong = gradcheck(codegen.load_module(_scaled(source, "W3", "1.001")), dims={"m": 2, "c": 3}, seed=0)
    assert wrong.failed == ["W3"] and wrong.params["W3"].wrong_entries > 300, wrong.format()  # the rest: dead ReLUs, 0 both ways


def test_the_sample_is_drawn_from_the_seed():
    from backprop.codegen.gradcheck import sample_entries

    a = sample_entries((40, 50), 100, np.random.default_rng([3, 1]))
    b = sample_entries((40, 50), 100, np.random.default_rng([3, 1]))
    assert a is not None and a.sum() == 100 and np.array_equal(a, b)
    assert sample_entries((10, 10), 100, np.random.default_rng(0)) is None
    assert sample_entries((40, 50), 0, np.random.default_rng(0)) is None


def test_check_takes_entries_and_scale(capsys):
    from backprop.cli import main

    assert main(["check", "mlp_softmax", "--entries", "0", "--scale", "unit"]) == 0
    assert main(["check", "mlp_softmax", "--entries", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "backprop: error: --entries must be 0 (every entry) or a positive number, got -1\n", err
