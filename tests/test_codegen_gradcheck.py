"""Generated gradients vs central finite differences (float64), for every example and every
committed module; and the checker itself must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest

import codegen
from codegen.gradcheck import TOLERANCE, draw, gradcheck, relative_error, resolve_dims
from codegen.regenerate import GENERATED
from derive.parse import example_names

SEEDS = (0, 1, 2)  # three random points, each at its own random sizes


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", example_names())
def test_every_example_matches_finite_differences(name, seed):
    report = gradcheck(name, seed=seed)
    assert set(report.errors) == set(codegen.load_module(name).PARAMS)
    assert report.ok, report.format()
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
    assert "FAIL: w, b above tolerance 1e-07" in report.format()


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
        "gradcheck two_layer_sigmoid: dims n=3, m=5, k=4; seed 1; central differences (eps 1e-06) in float64")
    assert "  W1                4×3" in text and "  b2             scalar" in text
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
