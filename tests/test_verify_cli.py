"""``backprop verify``: exit status 0/1/2, one line per claim, compiler-style errors pointing into the claim."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import main

CS230 = [  # the published gradients for CS230 example 4, L = (1/m)‖ŷ − y‖²
    "dW1 = ((w2.T @ (2/m * (yhat - y))) * A * (1 - A)) @ X.T",
    "db1 = sum((w2.T @ (2/m * (yhat - y))) * A * (1 - A), axis=1)",
    "dw2 = 2/m * (yhat - y) @ A.T",
    "db2 = 2/m * sum(yhat - y)",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_all_correct_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "two_layer_sigmoid", *CS230)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[:4] == [f"✓ {c}  correct" for c in CS230]
    assert lines[4].startswith("4 of 4 claims correct (numerically at 5 sets of sizes; exactly at k=2, m=3, n=2")


def test_a_wrong_claim_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "two_layer_sigmoid", "dw2 = 2/m * (yhat - y) @ A.T", "dw2 = 2 * (yhat - y) @ A.T")
    assert code == 1 and err == ""
    assert out.splitlines()[1] == "✗ dw2 = 2 * (yhat - y) @ A.T  wrong: m times too large: a missing 1/m?"


def test_claim_error_exits_2_and_points_into_the_claim(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "two_layer_sigmoid", "dw2 = dyhat @ A.T", "dW1 = X.T @ dZ", "dQ = 1")
    assert code == 2  # the unusable claim is an error; the others are judged all the same
    assert out.splitlines()[:3] == [
        "✓ dw2 = dyhat @ A.T  correct",
        "✗ dW1 = X.T @ dZ  wrong: shape mismatch: matrix product m×n @ k×m: inner dimensions n and k differ "
        "(did you mean dZ @ X.T?)",
        "? dQ = 1  unusable: 'dQ' is not the gradient of a variable of two_layer_sigmoid; "
        "claims are about params (W1, b1, w2, b2) and intermediates (Z, A, yhat)",
    ]
    assert err.splitlines() == [
        "<claim 3>:1:1: error: 'dQ' is not the gradient of a variable of two_layer_sigmoid; "
        "claims are about params (W1, b1, w2, b2) and intermediates (Z, A, yhat)",
        "    dQ = 1",
        "    ^",
    ]


def test_claims_file_with_comments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "answers.txt"
    f.write_text("# homework 3, question 2\n\n" + "\n".join(f"{c}   # mine" for c in CS230) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "two_layer_sigmoid", "--claims", str(f))
    assert code == 0 and out.count("✓") == 4


def test_claims_file_errors_use_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "answers.txt"
    f.write_text("# answers\ndW1 = dZ @ X.T\n\ndb1 = sum(dZ, axis=2)\n", encoding="utf-8")
    code, out, err = run(capsys, "two_layer_sigmoid", "--claims", str(f))
    assert code == 2 and out.startswith("✓ dW1 = dZ @ X.T  correct\n? db1 = sum(dZ, axis=2)  unusable: axis must be 0")
    assert err.startswith(f"{f}:4:20: error: axis must be 0")


def test_command_line_and_file_claims_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "more.txt"
    f.write_text("db1 = dZ\n", encoding="utf-8")
    code, out, _ = run(capsys, "two_layer_sigmoid", "dW1 = dZ @ X.T", "--claims", str(f))
    assert code == 1
    assert out.splitlines()[1] == ("✗ db1 = dZ  wrong: wrong shape k×m: ∂L/∂b₁ is k×1; "
                                   "sum over the examples: sum(dZ, axis=1)")


def test_claims_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("dz = (p - y)/m\nfoo\n"))
    code, _, err = run(capsys, "logistic_regression", "--claims", "-")
    assert code == 2 and err.startswith("<stdin>:2:1: error: a claim reads dNAME = EXPR")


@pytest.mark.parametrize(("argv", "fragment"), [
    (["two_layer_sigmoid"], "backprop: error: no claims"),
    (["two_layer_sigmoid", "--claims", "/nonexistent/answers.txt"], "/nonexistent/answers.txt: error: no such claims file"),
    (["no_such_network", "dW1 = 1"], "no_such_network: error: no such file or bundled example"),
])
def test_unusable_input_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and fragment in err


def test_spec_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.spec"
    spec.write_text("input X[n, m]\nparam w[1, n]\nloss = sum(w @ X.T)\n", encoding="utf-8")
    code, out, err = run(capsys, str(spec), "dw = 1")
    assert code == 2 and out == "" and err.startswith(f"{spec}:3:14: error: shape mismatch")


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "logistic_regression", "--format", "json", "dz = (p - y)/m", "dp = -y/p/m")
    assert code == 1
    data = json.loads(out)
    assert data["model"] == "logistic_regression" and data["all_correct"] is False
    first, second = data["claims"]
    assert first["correct"] and first["exact_checked"] and first["source"] == "<claim 1>:1"
    assert second["mistake"] == "paths" and "misses the path through loss" in second["diagnosis"]


def test_installed_command_is_deterministic() -> None:
    """The console script, under two hash seeds: byte-identical output."""
    argv = ["backprop", "verify", "deep_relu", "dZ3 = dA3 * A3", "dW2 = A1 @ dZ2.T", "dA2 = W3.T @ dZ3"]
    outs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        p = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        assert p.returncode == 1, p.stderr
        outs.append(p.stdout)
    assert outs[0] == outs[1]
    assert "ReLU′(Z₃) were A₃; it is [Z₃ > 0]" in outs[0]


def test_verify_imports_only_what_it_uses() -> None:
    """One claim from the shell imports the verification stages and no other: not code generation,
    the presenters, training or grading, nor jinja2, latexify, matplotlib or torch (start-up time,
    docs/grading.md). The modules are read from sys.modules as ``python -m backprop`` leaves it."""
    script = (
        "import json, runpy, sys\n"
        "sys.argv = ['backprop', 'verify', 'two_layer_sigmoid', 'dW1 = dZ @ X.T']\n"
        "try:\n    runpy.run_module('backprop', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    code, modules = json.loads(p.stderr.splitlines()[-1])
    assert code == 0 and "correct" in p.stdout, p.stderr
    imported = set(modules)
    assert {"backprop.cli.verify", "backprop.verification.verify", "sympy", "numpy"} <= imported
    unwanted = {"torch", "jinja2", "latexify", "matplotlib", "shtab", "tqdm", "importlib.metadata",
                "backprop.codegen", "backprop.present", "backprop.train", "backprop.grading"}
    other_commands = {m for m in imported if m.startswith("backprop.cli.")} - {"backprop.cli.verify", "backprop.cli.options"}
    assert not (imported & unwanted) and not other_commands, sorted((imported & unwanted) | other_commands)


@pytest.mark.parametrize("argv", [
    ["--format", "json", "sigmoid_neuron", "db = sum(dz)"],
    ["sigmoid_neuron", "--format", "json", "db = sum(dz)"],
    ["sigmoid_neuron", "db = sum(dz)", "--format", "json"],
])
def test_options_anywhere(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["claims"][0]["claim"] == "db = sum(dz)"


def test_a_batch_with_a_bad_line_still_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Line 601 of a class's answers being unreadable does not cost the other 1,199 their verdicts."""
    import json

    f = tmp_path / "answers.txt"
    f.write_text("dW1 = dZ @ X.T\ndW1 = dZ @@ X.T\ndW1 = X.T @ dZ\n", encoding="utf-8")
    code, out, err = run(capsys, "two_layer_sigmoid", "--claims", str(f), "--format", "json")
    doc = json.loads(out)
    assert code == 2 and err.startswith(f"{f}:2:")
    assert [(c["verdict"], c["mistake"], c["source"]) for c in doc["claims"]] == [
        ("correct", None, f"{f}:1"), ("unusable", "unusable", f"{f}:2"), ("wrong", "shape", f"{f}:3")]
    assert doc["unusable"] == 1 and not doc["all_correct"]


def test_chain_own_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "two_layer_sigmoid", "--chain", "own", "dZ = dA * A * (1 - A)",
                       "dA = w2.T @ (2/m * (yhat - y))", "dW1 = dZ @ X.T")
    assert code == 1
    assert out.splitlines()[0] == "✗ dZ = dA * A * (1 - A)  wrong: uses dA, but no answer for it comes before this one"
    assert out.splitlines()[2] == "✗ dW1 = dZ @ X.T  wrong: uses dZ, whose answer above is itself a broken chain"


def test_tol_is_stated_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    claim = "dW1 = dZ @ X.T * 1.0000005"
    assert main(["verify", "two_layer_sigmoid", claim]) == 1
    assert main(["verify", "two_layer_sigmoid", "--tol", "1e-5", claim]) == 0
    assert main(["verify", "two_layer_sigmoid", "--tol", "exact", "dW1 = dZ @ X.T + 1e-12 * W1"]) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["verify", "two_layer_sigmoid", "--tol", "2", claim])
    assert e.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
