"""Every class of spec error: exit status 2, the line and column, a message that says what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backprop.cli import main

HEAD = "input X[n, m]\ninput y[1, m]\nparam W1[k, n]\nparam b1[k, 1]\nparam w2[1, k]\n"
T3 = "input X3[d, T, m]\nparam W[d, d]\n"

# (id, spec text, line, col, fragments the message must contain)
CASES = [
    ("syntax", HEAD + "A = sigmoid(W1 @ X +)\nloss = sum(A)\n", 6, 21, ["syntax error"]),
    ("ends-early", HEAD + "A = W1 @ X +\nloss = sum(A)\n", 6, 13, ["syntax error: the expression ends too early"]),
    ("unbalanced", HEAD + "A = sigmoid(W1 @ X + b1\nloss = sum(A)\n", 6, 12, ["unbalanced parentheses", "never closed"]),
    ("unmatched-close", HEAD + "A = sigmoid(W1 @ X + b1))\nloss = sum(A)\n", 6, 25, ["unbalanced parentheses"]),
    ("undefined", HEAD + "A = sigmoid(W2 @ X + b1)\nloss = sum(w2 @ A)\n", 6, 13, ["undefined name 'W2'", "did you mean 'w2'"]),
    ("unknown-function", HEAD + "A = sigmod(W1 @ X + b1)\nloss = sum(w2 @ A)\n", 6, 5,
     ["unknown function 'sigmod'", "did you mean 'sigmoid'", "known functions", "log_softmax"]),
    ("subscript-step", HEAD + "A = W1[0:2:1, :]\nloss = sum(A)\n", 6, 12, ["a slice takes no step"]),
    ("subscript-outside", HEAD + "A = W1[0:k + 1, :]\nloss = sum(A)\n", 6, 8, ["slice 0:k + 1 is outside axis 0 (length k)"]),
    ("subscript-too-many", HEAD + "A = W1[0, 0, 0]\nloss = sum(A)\n", 6, 8, ["3 indices for a k×n value"]),
    ("subscript-ellipsis", HEAD + "A = W1[..., 0]\nloss = sum(A)\n", 6, 8, ["an index is a whole number"]),
    ("subscript-fraction", HEAD + "A = W1[0.5, :]\nloss = sum(A)\n", 6, 8, ["an index must be a whole number", "0.5"]),
    ("rank-mismatch", T3 + "param b[d, 1]\nloss = sum(X3 + b + W)\n", 4, 15,
     ["d×T×m (rank 3) and d×1 (rank 2)", "do not broadcast", "reshape(E, [d, 1, 1])"]),
    ("einsum-sizes", T3 + 'loss = sum(einsum("ed,tdm->etm", W, X3))\n', 3, 19, ["axis 'd' has length d", "T in operand 2"]),
    ("einsum-ellipsis", T3 + 'loss = sum(einsum("...d,dtm->tm", W, X3))\n', 3, 19, ["an ellipsis"]),
    ("einsum-count", T3 + 'loss = sum(einsum("ed,dtm->etm", W))\n', 3, 19, ["name 2 operands, but 1 is given"]),
    ("einsum-first", T3 + "loss = sum(einsum(W, X3))\n", 3, 19, ["first argument is its subscripts"]),
    ("einsum-diagonal", T3 + 'loss = sum(einsum("dd->d", W))\n', 3, 19, ["repeat 'd' within one operand"]),
    ("reshape-entries", T3 + "loss = sum(reshape(X3, [d, m]) + W)\n", 3, 12, ["cannot reshape d×T×m", "to d×m"]),
    ("reshape-not-list", T3 + "loss = sum(reshape(X3, d))\n", 3, 24, ["a list in brackets", "got d"]),
    ("transpose-perm", T3 + "loss = sum(transpose(X3, [0, 0, 1])) + sum(W)\n", 3, 26, ["needs each axis 0 to 2 once"]),
    ("dot-T-rank3", T3 + "loss = sum(X3.T) + sum(W)\n", 3, 12, [".T transposes a matrix", "transpose(E, [2, 1, 0])"]),
    ("concat-shapes", HEAD + "loss = sum(concat(W1, w2, axis=1))\n", 6, 12, ["every axis but 1 must agree"]),
    ("concat-no-axis", HEAD + "loss = sum(concat(W1, b1))\n", 6, 12, ["concat needs the axis to join along"]),
    ("axis-rank3", T3 + "loss = sum(sum(X3, axis=3)) + sum(W)\n", 3, 25, ["axis 3 is out of range for d×T×m", "0 to 2"]),
    ("examples-unknown-dim", "examples q\ninput X[m, n]\nparam w[n, 1]\nloss = sum(X @ w)\n", 1, 10,
     ["'q' is not a dim of this spec", "its dims: m, n"]),
    ("examples-not-in-data", "examples k\ninput X[m, n]\nparam w[n, k]\nloss = sum(X @ w)\n", 1, 10,
     ["no input has an axis of length k"]),
    ("examples-twice", "examples m\nexamples m\ninput X[m, n]\nparam w[n, 1]\nloss = sum(X @ w)\n", 2, 1,
     ["already declared (line 1)"]),
    ("examples-two-dims", "examples m n\ninput X[m, n]\nparam w[n, 1]\nloss = sum(X @ w)\n", 1, 12,
     ["'examples' names one dim"]),
    ("list-elsewhere", HEAD + "A = [W1]\nloss = sum(A)\n", 6, 5, ["lists are not supported here"]),
    ("attribute", HEAD + "A = W1.shape\nloss = sum(A)\n", 6, 5, ["'.shape'", "only .T"]),
    ("lambda", HEAD + "A = lambda: W1\nloss = sum(A)\n", 6, 5, ["lambda"]),
    ("comprehension", HEAD + "A = [W1 for W1 in X]\nloss = sum(A)\n", 6, 5, ["comprehensions"]),
    ("conditional", HEAD + "A = W1 if X else W1\nloss = sum(A)\n", 6, 5, ["conditional expressions"]),
    ("comparison-chained", HEAD + "A = 0 < W1 < 1\nloss = sum(A * W1)\n", 6, 5, ["chained comparisons"]),
    ("comparison-equal", HEAD + "A = W1 == 0\nloss = sum(A * W1)\n", 6, 5, ["'==' is not supported", ">, >=, <, <="]),
    ("comparison-shapes", HEAD + "A = W1 > w2\nloss = sum(A * W1)\n", 6, 8, ["shape mismatch", "'>'"]),
    ("only-through-a-mask", HEAD + "loss = sum(W1 > 0) + sum(b1) + sum(w2)\n", 3, 7,
     ["param 'W1' reaches the loss only through", "would always be 0", "declare it an input"]),
    ("only-through-stop-gradient", HEAD + "A = stop_gradient(W1 @ X + b1)\nloss = sum(w2 @ A)\n", 3, 7,
     ["param 'W1' reaches the loss only through stop_gradient"]),
    ("where-not-a-mask", HEAD + "A = where(W1, W1, 0)\nloss = sum(A)\n", 6, 11, ["where's condition must be a mask"]),
    ("where-shapes", HEAD + "A = where(W1 > 0, W1, w2)\nloss = sum(A)\n", 6, 5, ["shape mismatch", "where"]),
    ("where-arity", HEAD + "A = where(W1 > 0, W1)\nloss = sum(A)\n", 6, 5, ["where takes 3 arguments", "where(C, A, B)"]),
    ("clip-bounds-order", HEAD + "A = clip(W1, 1, -1)\nloss = sum(A)\n", 6, 5,
     ["clip's lower bound 1 is above its upper bound -1"]),
    ("eye-not-a-dim", HEAD + "A = W1 @ eye(W1)\nloss = sum(A)\n", 6, 14, ["eye's size must be a whole number"]),
    ("eye-fraction", HEAD + "A = W1 @ eye(n / 2)\nloss = sum(A)\n", 6, 14, ["eye's size must be a whole number"]),
    ("ones-not-positive", HEAD + "A = W1 + ones(k, n - n)\nloss = sum(A)\n", 6, 18, ["must be positive"]),
    ("max-of-two", HEAD + "A = max(W1, 0)\nloss = sum(A)\n", 6, 5, ["max takes one value", "maximum(A, B)"]),
    ("inv-not-square", HEAD + "A = inv(W1)\nloss = sum(A)\n", 6, 5, ["inv needs a square matrix, got k×n"]),
    ("det-rank3", T3 + "loss = det(X3) + sum(W)\n", 3, 8, ["det needs a square matrix, got d×T×m (rank 3)"]),
    ("logdet-scalar", HEAD + "loss = logdet(w2 @ W1 @ X @ y.T)\n", 6, 8, ["logdet needs a square matrix, got a scalar",
                                                                            "write log(x)"]),
    ("solve-rows", HEAD + "A = solve(W1 @ W1.T, X)\nloss = sum(A)\n", 6, 5,
     ["solve(A, B) needs B with k rows, as A is k×k; got B n×m"]),
    ("spd-not-square", "input S[n, k] spd\nparam W[n, k]\nloss = sum(W * S)\n", 1, 15,
     ["spd (symmetric positive definite) needs a square matrix", "'S' is declared n×k"]),
    ("maximum-arity", HEAD + "A = maximum(W1)\nloss = sum(A)\n", 6, 5, ["maximum takes 2 arguments", "maximum(A, B)"]),
    ("logsumexp-axis", HEAD + "A = logsumexp(W1, axis=2)\nloss = sum(A)\n", 6, 24, ["axis must be 0"]),
    ("string", HEAD + "A = 'W1'\nloss = sum(A)\n", 6, 5, ["strings are not supported"]),
    ("call-non-function", HEAD + "A = np.exp(W1)\nloss = sum(A)\n", 6, 5, ["only the known functions can be called"]),
    ("call-variable", HEAD + "A = W1(X)\nloss = sum(A)\n", 6, 5, ["'W1' is not a function"]),
    ("matmul-shapes", HEAD + "A = sigmoid(W1 @ X.T + b1)\nloss = sum(w2 @ A)\n", 6, 16,
     ["shape mismatch", "k×n @ m×n", "inner dimensions n and m differ"]),
    ("broadcast-shapes", HEAD + "A = sigmoid(W1 @ X + w2)\nloss = sum(A)\n", 6, 20,
     ["cannot broadcast k×m and 1×k", "columns m and k differ"]),
    ("non-scalar-loss", HEAD + "A = sigmoid(W1 @ X + b1)\nloss = w2 @ A\n", 7, 1,
     ["the loss (the last assignment, 'loss' at line 7) must be a scalar", "1×m", "sum(...) or mean(...)"]),
    ("duplicate-declaration", HEAD + "param W1[k, n]\nloss = sum(W1)\n", 6, 7, ["duplicate declaration of 'W1'", "line 3"]),
    ("assigned-twice", HEAD + "A = W1 @ X\nA = A + b1\nloss = sum(w2 @ A)\n", 7, 1, ["'A' is assigned twice", "line 6"]),
    ("assign-declared", HEAD + "X = W1\nloss = sum(X)\n", 6, 1, ["cannot assign 'X'", "input"]),
    ("unknown-statement", HEAD + "parm W3[k, k]\nloss = sum(W1)\n", 6, 1, ["unknown statement 'parm'", "did you mean 'param'"]),
    ("dim-zero", "input X[n, 0]\nparam w[1, n]\nloss = sum(w @ X)\n", 1, 12, ["positive integer, got 0"]),
    ("dim-negative", "input X[n, -3]\nparam w[1, n]\nloss = sum(w @ X)\n", 1, 12, ["positive integer, got -3"]),
    ("dim-fraction", "input X[n, 2.5]\nparam w[1, n]\nloss = sum(w @ X)\n", 1, 12, ["name or a positive integer, got '2.5'"]),
    ("rank-3-matmul", "input X[n, m, p]\nparam w[1, n]\nloss = sum(w @ X)\n", 3, 14, ["product of two matrices", "einsum"]),
    ("bad-axis", HEAD + "loss = sum(sum(W1, axis=2))\n", 6, 25, ["axis must be 0", "got 2"]),
    ("axis-missing", HEAD + "loss = sum(softmax(W1))\n", 6, 12, ["softmax needs axis=0"]),
    ("no-params", "input X[n, m]\nloss = sum(X)\n", 2, 1, ["no params"]),
    ("unused-param", "param W1[k, n]\nparam W9[k, k]\nloss = sum(W1)\n", 2, 7,
     ["'W9' is declared but the loss (the last assignment, 'loss' at line 3) does not depend on it"]),
    # a stray last line is taken as the loss: the message names it, so the real loss's absence is plain
    ("last-line-is-the-loss", "param W[1, n]\ninput X[n, m]\nloss = sum(W @ X)\nextra = 1\n", 1, 7,
     ["param 'W' is declared but the loss (the last assignment, 'extra' at line 4) does not depend on it"]),
    ("empty", "# nothing here\n\n", 1, 1, ["empty spec"]),
    ("used-before-assigned", HEAD + "A = B + W1\nB = W1\nloss = sum(A)\n", 6, 5, ["'B' is used before it is assigned (line 7)"]),
    ("function-as-name", HEAD + "sum = W1\nloss = W1\n", 6, 1, ["'sum' is a function name"]),
    ("dim-as-name", HEAD + "n = W1\nloss = sum(W1)\n", 1, 9, ["'n' names a variable and cannot also name a dimension"]),
    ("dim-as-declared-name", "param n[1, 1]\ninput X[n, m]\nloss = sum(X) * n\n", 2, 9, ["'n' names a variable"]),
    ("keyword-name", "param lambda[1, 1]\nloss = sum(lambda)\n", 1, 7, ["Python keyword"]),
    ("reserved-gradient", HEAD + "dW1 = W1\nloss = sum(W1)\n", 6, 1, ["'dW1' is reserved", "gradient of W1"]),
    ("gradient-in-spec", HEAD + "loss = sum(dW1)\n", 6, 12, ["'dW1' means the gradient of W1"]),
    ("unknown-domain", "input Y[c, m] onehto\nparam w[1, c]\nloss = sum(w @ Y)\n", 1, 15, ["unknown domain 'onehto'", "onehot"]),
    ("param-domain", "param w[1, c] onehot\nloss = sum(w)\n", 1, 15, ["a param takes no domain"]),
    ("operator", HEAD + "A = W1 % 2\nloss = sum(A)\n", 6, 5, ["operator '%' is not supported"]),
    ("caret-power", HEAD + "A = W1 ^ 2\nloss = sum(A)\n", 6, 5, ["for powers write **"]),
    ("leaky-slope-shape", HEAD + "A = leaky_relu(W1 @ X, b1)\nloss = sum(A)\n", 6, 24, ["slope of leaky_relu must be a scalar"]),
    ("arity", HEAD + "A = sigmoid(W1, X)\nloss = sum(A)\n", 6, 5, ["sigmoid takes 1 argument"]),
    ("keyword-argument", HEAD + "A = sigmoid(W1, slope=2)\nloss = sum(A)\n", 6, 23, ["no keyword argument 'slope='"]),
    ("missing-bracket", "input X[n, m\nparam w[1, n]\nloss = sum(w @ X)\n", 1, 8, ["unbalanced '['"]),
    ("trailing-junk", "input X[n, m] onehot extra\nparam w[1, n]\nloss = sum(w @ X)\n", 1, 22, ["unexpected 'extra'"]),
    ("complex", HEAD + "A = W1 * 2j\nloss = sum(A)\n", 6, 10, ["complex literals are not supported"]),
    # constants without a float64 value: refused where written, never folded into generated code
    ("zero-to-negative-power", HEAD + "A = W1 * 0**-1\nloss = sum(A)\n", 6, 10, ["not finite"]),
    ("imaginary-constant", HEAD + "A = (-1)**0.5 * W1\nloss = sum(A)\n", 6, 5, ["not a real number"]),
    ("cube-root-of-negative", HEAD + "A = W1 * (-8)**(1/3)\nloss = sum(A)\n", 6, 10, ["not a real number"]),
    ("constant-division-by-zero", HEAD + "A = W1 / 0\nloss = sum(A)\n", 6, 5, ["division by zero"]),
    ("division-by-constant-zero", HEAD + "A = W1 / (m - m)\nloss = sum(A)\n", 6, 5, ["division by zero"]),
    ("float-division-by-zero", HEAD + "A = W1 * (1 / 0.0)\nloss = sum(A)\n", 6, 11, ["not finite"]),
    ("huge-power", HEAD + "A = W1 * 10**4301\nloss = sum(A)\n", 6, 10, ["exponent 4301", "too large to compute"]),
    ("tower-power", HEAD + "A = W1 * 10**10**10\nloss = sum(A)\n", 6, 10, ["exponent 1e+10", "too large"]),
    ("beyond-float", HEAD + "A = W1 * (1e308 * 1e308)\nloss = sum(A)\n", 6, 11, ["about 1e616", "beyond float64's range"]),
    ("dim-in-exponent", HEAD + "A = W1 * 2**m\nloss = sum(A)\n", 6, 10, ["only where the power stays at most 1"]),
    ("dim-power-overflow", HEAD + "A = W1 / m**30\nloss = sum(A)\n", 6, 10, ["power 30", "at most 25"]),
]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("text", "line", "col", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_class(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, col: int,
                     fragments: list[str]) -> None:
    spec = tmp_path / "net.spec"
    spec.write_text(text, encoding="utf-8")
    code, out, err = run_cli(capsys, "show", str(spec))
    assert code == 2
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith(f"{spec}:{line}:{col}: error: "), first
    for frag in fragments:
        assert frag in first, (frag, first)
    assert "Traceback" not in err
    # at most the source line and a caret follow
    assert len(err.splitlines()) <= 3


def test_caret_points_at_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.spec"
    spec.write_text(HEAD + "Z = W1 @ X.T + b1\nloss = sum(Z)\n", encoding="utf-8")
    _, _, err = run_cli(capsys, "show", str(spec))
    _, src, caret = err.splitlines()
    assert src.strip() == "Z = W1 @ X.T + b1"
    assert src.index("@") == caret.index("^")


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.spec"
    spec.write_bytes(b"input X[n, m]\nparam w[1, n]\nloss = sum(w @ X) # caf\xe9\n")
    code, _, err = run_cli(capsys, "show", str(spec))
    assert code == 2
    assert err.startswith(f"{spec}:3:24: error: not UTF-8 text")


def test_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.spec"
    spec.write_bytes(b"input X[n, m]\x00\x01")
    code, _, err = run_cli(capsys, "show", str(spec))
    assert code == 2 and "NUL byte" in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "show", str(tmp_path / "nope.spec"))
    assert code == 2
    assert err.startswith(f"{tmp_path / 'nope.spec'}: error: no such file or bundled example")
    assert "two_layer_sigmoid" in err  # lists what is bundled


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "show", str(tmp_path))
    assert code == 2 and "directory" in err


def test_real_process_exit_status_and_no_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.spec"
    spec.write_text(HEAD + "A = sigmoid(W1 @ X + b1\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "backprop", "show", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"{spec}:6:12: error: syntax error: unbalanced parentheses")
    assert "Traceback" not in proc.stderr


def test_every_case_is_distinct() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_python_clashing_names_work() -> None:
    """Names that would clash in generated Python (np, len, ...) are accepted here; codegen renames them."""
    from backprop import parse_spec

    m = parse_spec("input np[n, m]\nparam len[1, n]\nloss = sum(len @ np)\n")
    assert [d.name for d in m.decls.values()] == ["np", "len"]
