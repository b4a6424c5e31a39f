"""Every option value a user can type ends in a clear one-line refusal or works: never a traceback.

Found by a red-team pass over the command line: seeds NumPy cannot take, path components longer than
the file system allows, empty paths, empty --dims items, spec names that start with a dash, a claims
file that is a device, a param with an axis of examples under mini-batch training, and control
characters echoed raw to the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import main

CLI = (sys.executable, "-m", "backprop")
LONG = "a" * 300  # one path component past NAME_MAX (255 bytes) on every common file system
LINEAR = "input x[n, m]\ninput y[1, m]\nparam w[1, n]\nloss = sum((w @ x - y)**2) / m\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse refuses a bad value before run() starts
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def last_line_is_the_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    line = err.rstrip("\n").split("\n")[-1]
    assert "error:" in line, err
    for n in needles:
        assert n in line, err


@pytest.mark.parametrize("command", [
    ["check", "mlp_softmax"],
    ["train", "two_layer_sigmoid", "--synthetic", "--epochs", "1", "-q"],
    ["gradflow", "deep_relu"],
])
@pytest.mark.parametrize("seed", ["-1", "4294967296", "1e3", "seven", "99999999999999999999999"])
def test_a_seed_numpy_cannot_take_is_refused_by_the_parser(capsys, tmp_path: Path, monkeypatch,
                                                         command: list[str], seed: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *command, "--seed", seed)
    last_line_is_the_error(code, err, "argument --seed:")
    assert list(tmp_path.iterdir()) == []


def test_the_largest_seed_works(capsys) -> None:
    code, _, err = run(capsys, "check", "univariate_regression", "--seed", "4294967295")
    assert code == 0, err


PATH_OPTIONS = {
    "codegen -o": ["codegen", "univariate_regression", "-o", f"{LONG}.py"],
    "derive -o": ["derive", "univariate_regression", "-o", f"{LONG}.tex"],
    "derive SPEC": ["derive", f"{LONG}.spec"],
    "check SPEC": ["check", f"{LONG}.py"],
    "train --data": ["train", "univariate_regression", "--data", f"{LONG}.npz"],
    "train --out": ["train", "univariate_regression", "--epochs", "1", "-q", "--out", LONG],
    "gradflow --out": ["gradflow", "univariate_regression", "--out", f"{LONG}.png"],
    "gradflow --data": ["gradflow", "univariate_regression", "--data", f"{LONG}.npz"],
    "verify --claims": ["verify", "univariate_regression", "--claims", LONG],
}


@pytest.mark.parametrize("case", list(PATH_OPTIONS))
def test_a_path_the_system_refuses_is_one_line(capsys, tmp_path: Path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *PATH_OPTIONS[case])
    last_line_is_the_error(code, err)
    assert err.count("\n") == 1 and err.startswith(("backprop: error: ", f"{LONG}")), err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_path_the_system_refuses_has_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    r = subprocess.run([*CLI, "codegen", "univariate_regression", "-o", f"{LONG}.py"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("backprop: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "File name too long" in r.stderr


@pytest.mark.parametrize("command", [["codegen", "univariate_regression", "-o"], ["derive", "univariate_regression", "-o"],
                                     ["train", "univariate_regression", "--out"], ["gradflow", "deep_relu", "--out"]])
def test_an_empty_path_is_refused_not_taken_as_no_file(capsys, tmp_path: Path, monkeypatch, command) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *command, "")
    last_line_is_the_error(code, err, "expected a path, got an empty string")
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dims", [",,", "n=3,,m=4", ",n=3", "n=3,"])
def test_an_empty_dims_item_is_refused(capsys, dims: str) -> None:
    code, _, err = run(capsys, "check", "mlp_softmax", "--dims", dims)
    last_line_is_the_error(code, err, "--dims: an empty item between commas")


@pytest.mark.parametrize("tol", ["inf", "nan", "0", "-1e-3"])
def test_a_tolerance_that_accepts_everything_is_refused(capsys, tol: str) -> None:
    code, _, err = run(capsys, "check", "mlp_softmax", f"--tol={tol}")
    last_line_is_the_error(code, err, "--tol must be a positive finite number")


def test_a_claims_file_that_is_a_device_is_read_not_called_missing(capsys) -> None:
    code, _, err = run(capsys, "verify", "univariate_regression", "--claims", os.devnull)
    assert "no such" not in err
    last_line_is_the_error(code, err, "no claims")


def test_an_endless_spec_stream_is_refused_not_read_forever(capsys) -> None:
    code, _, err = run(capsys, "derive", "/dev/zero")
    assert code == 2 and err == "/dev/zero: error: larger than 64 MiB: not a spec file\n"


def test_a_spec_from_a_pipe_is_read(tmp_path: Path) -> None:
    """Process substitution (``backprop derive <(...)``) names a pipe, not a regular file."""
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    p = subprocess.Popen([*CLI, "derive", str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(fifo, "w", encoding="utf-8") as f:
        f.write(LINEAR)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "∂L/∂w" in out


def test_control_characters_in_a_path_are_shown_escaped(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    name = "evil\x1b[2J\rname.spec"
    Path(name).write_text("input x[n, m]\nloss = sum(x) @ q\n", encoding="utf-8")
    code, _, err = run(capsys, "derive", name)
    assert code == 2
    assert "\x1b" not in err and "\r" not in err
    assert err.startswith("evil\\x1b[2J\\x0dname.spec:2:")


def test_control_characters_in_a_source_line_keep_the_caret_under_the_column(capsys, tmp_path: Path) -> None:
    spec = tmp_path / "tab.spec"
    spec.write_text("input x[n, m]\nloss = sum(\x1b[2Jx) \x07+ q\n", encoding="utf-8")
    code, _, err = run(capsys, "derive", str(spec))
    assert code == 2
    lines = err.split("\n")
    source, caret = lines[1], lines[2]
    assert "\x1b" not in err and "\x07" not in err and "\\x1b" in source
    assert source[caret.index("^"):].startswith("\\x1b[2Jx)")  # the first bad character, escaped


def test_a_param_with_an_axis_of_examples_is_refused_before_training(capsys, tmp_path: Path) -> None:
    spec = tmp_path / "per_example.spec"
    spec.write_text("input x[n, m]\ninput y[1, m]\nparam w[1, n]\nparam V[1, m]\nloss = sum((w @ x + V - y)**2) / m\n",
                    encoding="utf-8")
    code, out, err = run(capsys, "train", str(spec), "--synthetic", "--epochs", "1", "-q", "--out", str(tmp_path / "r"))
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"{spec}:4:1: error: param 'V' has shape 1×m, one entry per example")
    assert "training" not in out and not (tmp_path / "r").exists()


def test_an_internal_error_is_one_line_and_says_it_is_a_bug(capsys, monkeypatch) -> None:
    """A bug of ours ends as a compiler's internal error does: one line, its own exit status,
    the traceback only on request."""
    from backprop.cli import derive

    def broken(args):
        raise TypeError("BooleanAtom not allowed in this context.")

    monkeypatch.setattr(derive, "run", broken)
    monkeypatch.delenv("BACKPROP_TRACEBACK", raising=False)
    assert main(["derive", "two_layer_sigmoid"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("backprop: internal error: TypeError: BooleanAtom not allowed")
    assert "Traceback" not in err and "BACKPROP_TRACEBACK=1" in err
    monkeypatch.setenv("BACKPROP_TRACEBACK", "1")
    with pytest.raises(TypeError):
        main(["derive", "two_layer_sigmoid"])
