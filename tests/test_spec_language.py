"""The spec language: bundled examples, the Python API, and fuzzing (only a model or a clean error)."""

from __future__ import annotations

import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy import MatrixSymbol

import backprop
from backprop.expr import ir
from backprop.expr.ir import fmt_shape
from backprop.support.errors import SpecError

EXPECTED_SHAPES = {
    "univariate_regression": {"x": "1×m", "y": "1×m", "w": "1×1", "b": "1×1", "yhat": "1×m", "loss": "1×1"},
    "multivariate_regression": {"X": "n×m", "y": "1×m", "w": "1×n", "b": "1×1", "yhat": "1×m", "loss": "1×1"},
    "two_linear_layers": {"X": "n×m", "W1": "k×n", "b1": "k×1", "w2": "1×k", "b2": "1×1", "Z": "k×m",
                          "yhat": "1×m", "loss": "1×1"},
    "two_layer_sigmoid": {"X": "n×m", "W1": "k×n", "b1": "k×1", "w2": "1×k", "b2": "1×1", "Z": "k×m",
                          "A": "k×m", "yhat": "1×m", "loss": "1×1"},
    "sigmoid_neuron": {"x": "n×m", "y": "1×m", "w": "1×n", "b": "1×1", "a": "1×m", "loss": "1×1"},
    "logistic_regression": {"X": "n×m", "y": "1×m", "w": "1×n", "b": "1×1", "p": "1×m", "loss": "1×1"},
    "mlp_softmax": {"X": "784×m", "Y": "10×m", "W1": "h×784", "b1": "h×1", "W2": "10×h", "b2": "10×1",
                    "A1": "h×m", "loss": "1×1"},
    "deep_relu": {"X": "n×m", "Y": "c×m", "W1": "h×n", "W2": "h×h", "W4": "c×h", "b4": "c×1", "A1": "h×m",
                  "A3": "h×m", "loss": "1×1"},
    "mlp_rows": {"X": "m×n", "Y": "m×c", "W1": "n×h", "b1": "1×h", "A1": "m×h", "loss": "1×1"},
    "self_attention": {"X": "d×T×m", "Wq": "d×d", "Q": "d×T×m", "P": "T×T×m", "H": "d×T×m", "loss": "1×1"},
    "multihead_attention": {"Wq": "a×k×d", "Wo": "d×a×k", "Q": "a×k×T×m", "P": "a×T×T×m", "H": "a×k×T×m",
                            "O": "d×T×m", "loss": "1×1"},
    "transformer_block": {"X": "m×T×d", "g1": "1×1×d", "N1": "m×T×d", "Q": "m×T×a×k", "P": "m×a×T×T", "R": "m×T×d",
                          "W1": "d×f", "b1": "1×1×f", "F": "m×T×f", "O": "m×T×d", "loss": "1×1"},
    "gated_concat": {"XH": "(k + n)×m", "R": "k×m", "Hn": "k×m", "loss": "1×1"},
    "embedding": {"X": "V×T×m", "E": "d×V", "H": "d×T×m", "P": "d×m", "loss": "1×1"},
    "maxout": {"W1": "4×h×n", "Z1": "4×h×m", "A1": "h×m", "loss": "1×1"},
    "gaussian_full_cov": {"X": "d×m", "A": "d×d", "S": "d×d", "D": "d×m", "loss": "1×1"},
    "svm_hinge": {"X": "n×m", "y": "1×m", "W": "c×n", "S": "c×m", "correct": "1×m", "loss": "1×1"},
    "embedding_bag": {"x": "T×m", "y": "1×m", "E": "d×V", "H": "d×T×m", "P": "d×m", "loss": "1×1"},
    "lenet": {"X": "1×28×28×m", "W1": "6×1×5×5", "A1": "6×24×24×m", "P1": "6×12×12×m", "A2": "16×8×8×m",
              "P2": "16×4×4×m", "H": "256×m", "A3": "120×m", "W4": "c×120", "loss": "1×1"},
    "conv_stride_pad": {"X": "3×7×7×m", "W1": "8×3×3×3", "A": "8×4×4×m", "P": "8×2×2×m", "H": "32×m",
                        "loss": "1×1"},
    "conv1d_text": {"x": "T×m", "E": "d×V", "W": "h×d×3", "X": "d×T×m", "C": "h×T×m", "F": "h×m", "loss": "1×1"},
    # a loop's sequences after it: every step stacked, time just before the examples (or after them)
    "rnn_tanh": {"X": "d×T×m", "Y": "c×m", "Wh": "h×h", "H": "h×T×m", "loss": "1×1"},
    "rnn_seq2seq": {"X": "d×T×m", "Y": "c×T×m", "H": "h×T×m", "O": "c×T×m", "loss": "1×1"},
    "gru": {"X": "m×T×d", "H0": "m×h", "Ur": "h×h", "H": "m×T×h", "loss": "1×1"},
    "lstm": {"X": "m×T×d", "Y": "m×T×h", "Wi": "d×h", "C": "m×T×h", "H": "m×T×h", "loss": "1×1"},
}


def test_every_bundled_example_is_listed_and_checked() -> None:
    assert sorted(EXPECTED_SHAPES) == backprop.example_names()


def test_bundled_examples_parse_with_the_right_shapes() -> None:
    for name, shapes in EXPECTED_SHAPES.items():
        model = backprop.load(name)
        for var, shape in shapes.items():
            assert fmt_shape(model.shape(var)) == shape, (name, var)
        assert model.loss.name == "loss"


def test_model_holds_sympy_objects() -> None:
    model = backprop.load("two_layer_sigmoid")
    w1 = model.symbol("W1")
    assert isinstance(w1, MatrixSymbol)
    k = model.dims["k"]
    assert k.is_integer and k.is_positive
    assert w1.shape == (k, model.dims["n"])
    z = model.assigned["Z"].expr
    assert isinstance(z, sympy.Basic) and ir.shape_of(z) == (k, model.dims["m"])


def test_domains_and_kinds() -> None:
    model = backprop.load("mlp_softmax")
    assert model.domain("Y") == "onehot"
    assert [p.name for p in model.params] == ["W1", "b1", "W2", "b2"]
    assert [i.name for i in model.inputs] == ["X", "Y"]


def test_builder_matches_spec_text() -> None:
    net = backprop.NetworkBuilder("two_layer_sigmoid")
    net.input("X", "n m").input("y", 1, "m").param("W1", "k", "n").param("b1", "k", 1)
    net.param("w2", 1, "k").param("b2")
    net.assign("Z", "W1 @ X + b1").assign("A", "sigmoid(Z)").assign("yhat", "w2 @ A + b2")
    net.assign("loss", "sum((yhat - y)**2) / m")
    built, bundled = net.build(), backprop.load("two_layer_sigmoid")
    assert [(a.name, a.expr) for a in built.assigns] == [(a.name, a.expr) for a in bundled.assigns]
    assert {n: d.symbol for n, d in built.decls.items()} == {n: d.symbol for n, d in bundled.decls.items()}


def test_builder_errors_point_into_its_lines() -> None:
    net = backprop.NetworkBuilder("oops").input("X", "n", "m").param("W", "k", "n").assign("loss", "sum(W @ X.T)")
    try:
        net.build()
    except SpecError as e:
        assert (e.line, e.file) == (3, "<oops>") and "inner dimensions" in e.message
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("expected a SpecError")


def test_scalar_input_and_dims_as_numbers() -> None:
    m = backprop.parse_spec("input X[n, m]\ninput lam\nparam W[k, n]\nloss = sum(W @ X) / m + lam * sum(W**2) / (k * n)\n")
    assert ir.is_scalar(m.symbol("lam")) and m.decls["lam"].scalar


def test_broadcasting_rules() -> None:
    ok = "input X[r, c]\ninput col[r, 1]\ninput row[1, c]\ninput s\nparam W[r, c]\n"
    m = backprop.parse_spec(ok + "loss = sum(W * X + col - row / s + 2)\n")
    assert fmt_shape(m.loss.shape) == "1×1"


def test_reductions_keep_two_dimensions() -> None:
    m = backprop.parse_spec("param W[r, c]\nA = sum(W, axis=0)\nB = mean(W, axis=1)\nloss = sum(A) + sum(B) + mean(W)\n")
    assert fmt_shape(m.shape("A")) == "1×c" and fmt_shape(m.shape("B")) == "r×1"


def test_comments_blank_lines_crlf_and_bom() -> None:
    text = "\ufeff# header\r\n\r\ninput x[1, m]   # data\r\nparam w\r\nloss = sum((w * x)**2)  # the loss\r\n"
    m = backprop.parse_spec(text)
    assert m.loss.line == 5


# --- fuzzing: never anything but a model or a clean SpecError -----------------


def _parses_or_fails_cleanly(text: str) -> None:
    try:
        model = backprop.parse_spec(text, path="fuzz.spec")
    except SpecError as e:
        assert e.file == "fuzz.spec"
        assert e.message and "\n" not in e.message
        if e.line:
            assert 1 <= e.line <= max(1, len(text.splitlines()))
            assert e.col >= 1
        return
    assert model.params and ir.is_scalar(model.loss.symbol)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    _parses_or_fails_cleanly(text)


PRELUDE = "input X[n, m]\ninput Y[c, m] onehot\ninput s\nparam W[c, n]\nparam b[c, 1]\nparam v\n"
TOKENS = ["X", "Y", "W", "b", "s", "v", "m", "n", "2", "0.5", "+", "-", "*", "/", "**", "@", ".T", "(", ")", ",",
          "axis=0", "axis=1", "sum(", "mean(", "sigmoid(", "tanh(", "relu(", "log_softmax(", "softmax(", "exp(",
          "log(", "sqrt(", "abs(", "softplus(", "leaky_relu(", "[", "]", "=", "lambda", "'s'", "if", ">", " "]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=18), st.booleans())
def test_fuzz_token_sequences(tokens: list[str], wrap: bool) -> None:
    body = " ".join(tokens)
    if wrap:
        body = f"sum({body})"
    _parses_or_fails_cleanly(PRELUDE + f"loss = {body}\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["input", "param", "X", "[", "]", "n", ",", "m", "0", "-1", "onehot", "=", "W",
                                 "#", "\n", "loss", "sum(W)", " "]), max_size=25))
def test_fuzz_declarations(tokens: list[str]) -> None:
    _parses_or_fails_cleanly(" ".join(tokens))


def test_pathological_inputs_fail_cleanly() -> None:
    chain = " + ".join(["W"] * 5000)
    for body in [chain, "(" * 300 + "W" + ")" * 300, "sum(W) * 10 ** 10 ** 10"]:
        _parses_or_fails_cleanly(PRELUDE + f"loss = sum({body})\n")
