"""A student's own NumPy backward pass (``backprop check SPEC --student FILE.py``), run in a separate
process with a time limit and judged against the spec's true gradient."""

from __future__ import annotations

from pathlib import Path

import pytest

from backprop.cli import main
from backprop.codegen.student import check_student

GOOD = '''import numpy as np

def loss_and_grads(params, inputs):
    W1, b1, w2, b2 = params["W1"], params["b1"], params["w2"], params["b2"]
    X, y = inputs["X"], inputs["y"]
    m = X.shape[1]
    A = 1 / (1 + np.exp(-(W1 @ X + b1)))
    yhat = w2 @ A + b2
    dyhat = 2 * (yhat - y) / m
    dZ = (w2.T @ dyhat) * A * (1 - A)
    grads = {"W1": dZ @ X.T, "b1": np.sum(dZ, axis=1, keepdims=True), "w2": dyhat @ A.T, "b2": np.sum(dyhat)}
    return float(np.sum((yhat - y) ** 2) / m), grads
'''


def write(tmp_path: Path, text: str, name: str = "answer.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_correct_backward_pass_is_correct(tmp_path: Path) -> None:
    report = check_student("two_layer_sigmoid", write(tmp_path, GOOD))
    assert report.ok and [v.name for v in report.verdicts] == ["W1", "b1", "w2", "b2"]


@pytest.mark.parametrize(("old", "new", "param", "why"), [
    ("dyhat = 2 * (yhat - y) / m", "dyhat = 2 * (yhat - y)", "w2", "m times too large: a missing 1/m?"),
    ('"W1": dZ @ X.T', '"W1": (dZ @ X.T).T', "W1", "it is the transpose of the correct"),
    ("np.sum(dZ, axis=1, keepdims=True)", "np.sum(dZ, axis=1)", "b1", "(keepdims=True?)"),
    ("* A * (1 - A)", "* A", "W1", "relative error"),
    ('"w2": dyhat @ A.T, ', "", "w2", "grads has no 'w2'"),
])
def test_a_wrong_gradient_is_named(tmp_path: Path, old: str, new: str, param: str, why: str) -> None:
    assert old in GOOD
    report = check_student("two_layer_sigmoid", write(tmp_path, GOOD.replace(old, new)))
    verdict = next(v for v in report.verdicts if v.name == param)
    assert not report.ok and not verdict.ok and why in verdict.why, verdict.why


@pytest.mark.parametrize(("code", "problem"), [
    ("def loss_and_grads(p, x):\n    while True:\n        pass\n", "ran longer than 2 s"),
    ("def loss_and_grads(p, x):\n    return 0.0, {'W1': x['nope']}\n", "answer.py:2: KeyError: 'nope'"),
    ("import sys\nsys.exit(0)\n", "answer.py:2: SystemExit: 0"),
    ("def loss_and_grads(p, x)\n", "SyntaxError"),
    ("x = 1\n", "AttributeError"),
])
def test_code_that_cannot_be_run_is_reported_not_raised(tmp_path: Path, code: str, problem: str) -> None:
    report = check_student("two_layer_sigmoid", write(tmp_path, code), timeout=2)
    assert not report.ok and problem in report.problem, report.problem


def test_the_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, GOOD)
    bad = write(tmp_path, GOOD.replace("/ m\n", "\n"), "bad.py")
    assert main(["check", "two_layer_sigmoid", "--student", str(good)]) == 0
    assert main(["check", "two_layer_sigmoid", "--student", str(bad)]) == 1
    assert main(["check", "two_layer_sigmoid", "--student", str(tmp_path / "none.py")]) == 2
    out = capsys.readouterr().out
    assert "4 of 4 gradients correct" in out and "m times too large" in out and "no such file" in out
    assert main(["check", "two_layer_sigmoid", "--timeout", "3"]) == 2  # --timeout without --student
