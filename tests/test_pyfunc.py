"""Networks written as Python functions build the same model as the equivalent spec.

The decorated functions below are never called: their source is read. Errors
must point at this file's line and column (found through marker comments).
"""

# ruff: noqa: N803, N805, N806, F821, F841
# (the networks below are course notation -- W1, X -- over spec-language functions that Python never sees)
from __future__ import annotations

from pathlib import Path

import latexify
import pytest

import backprop
from backprop import Model, SpecError

HERE = Path(__file__).read_text(encoding="utf-8").splitlines()


def marker(tag: str, text: str) -> tuple[int, int]:
    """(line, column) of ``text`` on the line of this file carrying ``# <tag>``."""
    for i, line in enumerate(HERE, 1):
        if line.rstrip().endswith(f"# {tag}"):
            return i, line.index(text) + 1
    raise AssertionError(f"no marker {tag}")


def same_model(a: Model, b: Model) -> None:
    """Same dims, declarations, equations and shapes (file, lines and names of the network aside)."""
    assert list(a.dims) == list(b.dims)
    assert [(d.name, d.kind, d.symbol, d.domain, d.scalar) for d in a.decls.values()] == \
        [(d.name, d.kind, d.symbol, d.domain, d.scalar) for d in b.decls.values()]
    assert [(x.name, x.expr, x.symbol) for x in a.assigns] == [(x.name, x.expr, x.symbol) for x in b.assigns]
    assert a.describe().splitlines()[1:] == b.describe().splitlines()[1:]


# ---------------------------------------------------------------------------
# Same model as the spec
# ---------------------------------------------------------------------------


@backprop.network(inputs={"X": "784 m", "Y": "10 m onehot"},
                params={"W1": "h 784", "b1": "h 1", "W2": "10 h", "b2": "10 1"})
def mlp_softmax(X, Y, W1, b1, W2, b2):
    """Two-layer perceptron for MNIST-shaped data."""
    A1 = relu(W1 @ X + b1)
    return -sum(Y * log_softmax(W2 @ A1 + b2, axis=0)) / m


@backprop.network(X="n m", y="1 m", W1="k n", b1="k 1", w2="1 k", b2="")
def two_layer_sigmoid(X, y, *, W1, b1, w2, b2):
    Z = W1 @ X + b1
    A = sigmoid(Z)
    yhat = w2 @ A + b2
    loss = sum((yhat - y)**2) / m
    return loss


@backprop.network(inputs=dict(x="1 m", y="1 m"), params=dict(w=None, b="scalar"))
def univariate_regression(x, y, w, b):
    yhat = w * x + b
    loss = (
        sum((yhat - y)**2)  # a comment inside a continued expression
        / m
    )
    return loss


@backprop.network(X="n m", Y="c m onehot", W1="h n", b1="h 1", W2="h h", b2="h 1", W3="h h", b3="h 1",
                W4="c h", b4="c 1", params=("W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"))
def deep_relu(X, Y, W1, b1, W2, b2, W3, b3, W4, b4):
    A1 = relu(W1 @ X + b1)
    A2 = relu(W2 @ A1 + b2)
    A3 = relu(W3 @ A2 + b3)
    loss = -sum(Y * log_softmax(W4 @ A3 + b4, axis=0)) / m
    return loss


@pytest.mark.parametrize("fn", [mlp_softmax, two_layer_sigmoid, univariate_regression, deep_relu],
                         ids=lambda f: f.__name__)
def test_python_function_builds_the_bundled_examples_model(fn) -> None:
    same_model(fn.model, backprop.load(fn.__name__))


def test_python_function_has_the_same_derivation() -> None:
    want = backprop.get_derivation("two_layer_sigmoid")
    got = two_layer_sigmoid.derivation
    assert [(e.name, e.expr) for e in got.equations] == [(e.name, e.expr) for e in want.equations]
    assert [(s.target, s.result) for s in got.steps] == [(s.target, s.result) for s in want.steps]


def test_returned_expression_becomes_the_loss() -> None:
    m = mlp_softmax.model
    assert m.loss.name == "loss"
    assert m.source.splitlines()[m.loss.line - 1] == "loss = -sum(Y * log_softmax(W2 @ A1 + b2, axis=0)) / m"
    assert m.source.startswith("# Two-layer perceptron for MNIST-shaped data.\ninput X[784, m]\n")
    assert (m.name, m.path) == ("mlp_softmax", __file__)


def test_the_function_is_never_called() -> None:
    calls = []

    def relu(x):  # a relu that records its calls: the body would call it if it ran
        calls.append(x)
        return x

    @backprop.network(inputs={"X": "n m"}, params={"W": "k n"})
    def net(X, W):
        return sum(relu(W @ X))

    assert calls == []
    assert str(net.model.loss.expr) == "Σ(ReLU(W X))"


def test_method_style_indentation_and_name_override() -> None:
    class Holder:
        @backprop.network(inputs={"x": "n m"}, params={"w": "1 n"}, name="neuron")
        def f(x, w):
            return mean(sigmoid(w @ x))

    assert Holder.f.model.name == "neuron"
    assert [d.name for d in Holder.f.model.decls.values()] == ["x", "w"]


# ---------------------------------------------------------------------------
# Errors point at the Python file
# ---------------------------------------------------------------------------


def _raises(build) -> SpecError:
    with pytest.raises(SpecError) as ei:
        build()
    e = ei.value
    assert e.file == __file__
    return e


def test_shape_error_on_a_continuation_line() -> None:
    def build():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n", "b1": "k 1", "W2": "k k"})
        def net(X, W1, b1, W2):
            Z = W1 @ X + b1
            A = W2 @ (Z +
                      W1)  # MARK-continued
            return sum(A)

    e = _raises(build)
    line, _ = marker("MARK-continued", "W1")
    assert (e.line, e.col) == (line - 1, HERE[line - 2].index("+") + 1)
    assert "cannot broadcast k×m and k×n" in e.message
    assert e.format().splitlines()[1].strip() == "A = W2 @ (Z +"


def test_unknown_function_points_at_the_call() -> None:
    def build():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n"})
        def net(X, W1):
            Z = sigmod(W1 @ X)  # MARK-typo
            return sum(Z)

    e = _raises(build)
    assert (e.line, e.col) == marker("MARK-typo", "sigmod")
    assert "did you mean 'sigmoid'" in e.message


def test_eval_is_just_an_unknown_function() -> None:
    def build():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n"})
        def net(X, W1):
            Z = eval("W1 @ X")  # MARK-eval
            return sum(Z)

    e = _raises(build)
    assert (e.line, e.col) == marker("MARK-eval", "eval")
    assert "unknown function 'eval'" in e.message


def test_statements_other_than_assignments_are_refused() -> None:
    def build():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n"})
        def net(X, W1):
            Z = W1 @ X
            for _ in range(3):  # MARK-loop
                pass
            return sum(Z)

    e = _raises(build)
    assert (e.line, e.col) == marker("MARK-loop", "for")
    assert "not a for loop" in e.message


def test_reassignment_names_the_python_line() -> None:
    def build():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n"})
        def net(X, W1):
            Z = W1 @ X  # MARK-first
            Z = Z * 2  # MARK-second
            return sum(Z)

    e = _raises(build)
    assert (e.line, e.col) == marker("MARK-second", "Z")
    assert f"first on line {marker('MARK-first', 'Z')[0]}" in e.message


def test_bad_shape_points_at_the_decorator_string() -> None:
    def build():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n z"})  # MARK-shape
        def net(X, W1):
            return sum(W1 @ X)

    e = _raises(build)
    assert (e.line, e.col) == marker("MARK-shape", '"k n z"')
    assert "two dimensions" in e.message


def test_undeclared_argument_and_missing_return() -> None:
    def undeclared():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n"})
        def net(X, W1, W2):  # MARK-arg
            return sum(W1 @ X)

    e = _raises(undeclared)
    assert (e.line, e.col) == marker("MARK-arg", "W2")

    def no_return():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n"})
        def net(X, W1):
            Z = W1 @ X  # MARK-noreturn

    e = _raises(no_return)
    assert e.line == marker("MARK-noreturn", "Z")[0]
    assert "return LOSS" in e.message


def test_non_scalar_loss_points_at_the_return() -> None:
    def build():
        @backprop.network(inputs={"X": "n m"}, params={"W1": "k n"})
        def net(X, W1):
            return W1 @ X  # MARK-ret

    e = _raises(build)
    assert (e.line, e.col) == marker("MARK-ret", "return")
    assert "must be a scalar" in e.message


def test_params_must_be_said() -> None:
    def build():
        @backprop.network(X="n m", W1="k n")  # MARK-noparams
        def net(X, W1):
            return sum(W1 @ X)

    e = _raises(build)
    assert e.line == marker("MARK-noparams", "@")[0]
    assert "no params" in e.message


# ---------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------


def test_latexify_renders_the_function_in_course_notation() -> None:
    tex = two_layer_sigmoid.latex()
    for piece in (r"W_{1}", r"\hat{y}", r"\sigma", r"w_{2}", r"\mathcal{L}"):
        assert piece in tex, piece
    assert r"\mathrm{W1}" not in tex and "zqnet" not in tex
    alg = mlp_softmax.latex("algorithmic")
    assert r"\begin{algorithmic}" in alg and r"\operatorname{ReLU}" in alg
    assert r"Y \odot \operatorname{logsoftmax}" in alg  # elementwise product of matrices
    assert mlp_softmax._repr_latex_().startswith("$$")


def test_latexify_get_latex_accepts_the_decorated_function() -> None:
    assert r"\mathrm{sigmoid}" in latexify.get_latex(two_layer_sigmoid)


def test_scalar_products_keep_cdot() -> None:
    tex = univariate_regression.latex()
    assert r"w \cdot x" in tex and r"\odot" not in tex
