"""Convolution and pooling (issue 15): each row against PyTorch, max pooling's ties as PyTorch breaks
them, whole networks against torch autograd, the parse-time checks, and vectorized generated code.
"""

from __future__ import annotations

import ast
import os

import numpy as np
import pytest
import sympy
import torch
from test_fuzz_codegen import check_network
from test_ops import CASES, Case, draw
from torch_reference import TORCH

import backprop
from backprop import codegen
from backprop.expr import ir
from backprop.expr.evaluate import evaluate
from backprop.support.errors import SpecError

OPS = ("conv1d", "conv1d_input", "conv1d_filter", "conv2d", "conv2d_input", "conv2d_filter",
       "max_pool2d", "max_pool2d_route", "avg_pool2d", "avg_pool2d_spread", "dilate", "subsample",
       "im2col", "conv_windows", "corr_windows")  # route_max_at: against the route, on the pooled value, below
ROW_CASES = [c for op in OPS for c in CASES[op](op)]


@pytest.mark.parametrize("case", ROW_CASES, ids=[c.id for c in ROW_CASES])
def test_each_row_equals_pytorch(case: Case) -> None:
    """Our evaluation (the generated code's own helpers) against torch.nn.functional / torch.nn.grad."""
    node, vars_ = case.build()
    rng = np.random.default_rng(len(case.id))
    env = {n: draw(v, rng) for n, v in vars_.items()}
    ours = evaluate(node, env)
    theirs = TORCH[case.op](node, *(torch.tensor(env[n]) for n in vars_)).numpy()
    assert ours.shape == theirs.shape == tuple(int(d) for d in ir.shape_of(node))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12, err_msg=case.id)


@pytest.mark.parametrize(("size", "stride", "batch"), [(2, 1, 3), (3, 1, 3), (2, 2, 0), (3, 2, 3)])
def test_max_pool_ties_go_where_pytorch_sends_them(size: int, stride: int, batch: int) -> None:
    """Entries of 0 and 1 only: nearly every window ties. PyTorch's CPU kernel takes the first
    maximum in row-major order within the window; so does the route, and the gradients are equal."""
    n = 8 if (8 - size) % stride == 0 else 7
    shape = (2, n, n, 3) if batch == 3 else (3, 2, n, n)
    x = np.random.default_rng(size * 10 + stride).integers(0, 2, size=shape).astype(float)
    attrs = tuple(sympy.Integer(v) for v in (size, stride, batch))
    xs = ir.symbol("X", tuple(sympy.Integer(d) for d in shape))
    pooled = ir.node("max_pool2d", xs, *attrs)
    g = np.random.default_rng(1).normal(size=tuple(int(d) for d in ir.shape_of(pooled)))
    gs = ir.symbol("G", ir.shape_of(pooled))
    ours = evaluate(ir.node("max_pool2d_route", gs, xs, *attrs), {"X": x, "G": g})
    theirs = TORCH["max_pool2d_route"](ir.node("max_pool2d_route", gs, xs, *attrs), torch.tensor(g), torch.tensor(x))
    np.testing.assert_array_equal(ours != 0, theirs.numpy() != 0)  # the same entries receive δ
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-13, atol=1e-15)  # overlapping windows: sums


NETWORKS = {
    "lenet-like, examples last": """\
input X[1, 12, 12, m]
input Y[10, m] onehot
param W1[4, 1, 3, 3]
param b1[4, 1, 1, 1]
param W2[10, 100]
param b2[10, 1]
A1 = relu(conv2d(X, W1) + b1)
P1 = max_pool2d(A1, size=2)
H = reshape(P1, [100, m])
loss = -sum(Y * log_softmax(W2 @ H + b2, axis=0)) / m
""",
    "examples first, as PyTorch lays images out": """\
examples m
input X[m, 2, 8, 8]
param W1[3, 2, 3, 3]
param b1[1, 3, 1, 1]
param W2[3, 3, 2, 2]
A = tanh(conv2d(X, W1, padding=1) + b1)
B = conv2d(avg_pool2d(A, size=2), W2, stride=2)
loss = mean(B**2)
""",
    "stride 2, padding 1, overlapping max pooling": """\
input X[3, 9, 9, m]
input Y[4, 2, 2, m]
param W[4, 3, 3, 3]
param b[4, 1, 1, 1]
Z = conv2d(X, W, stride=2, padding=1) + b
P = max_pool2d(relu(Z), size=3, stride=2)
loss = sum((P - Y)**2) / m
""",
    "dilated values: a transposed convolution by hand, both layouts' default axes": """\
input X[2, 3, 3, m]
input S[2, 4, m]
param W[3, 2, 3, 3]
param V[2, 2, 2]
Z = conv2d(dilate(X, 2), W, padding=2)
T = conv1d(dilate(S, 3), V)
loss = mean(tanh(Z)) + sum(dilate(T, 2, [1, 2]) ** 2) / m
""",
    "conv1d over embedded tokens, max over time": """\
input S[5, 9, m]
input y[1, m] binary
param V[4, 5, 3]
param c[4, 1, 1]
param w[1, 4]
H = relu(conv1d(S, V, padding=1) + c)
F = reshape(max(H, axis=1), [4, m])
p = sigmoid(w @ F)
loss = -sum(y * log(p) + (1 - y) * log(1 - p)) / m
""",
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_matches_torch(name: str) -> None:
    """The generated module against torch autograd, float64 and float32, the cache left intact."""
    for seed in range(3):
        check_network(NETWORKS[name], seed)


def test_generated_code_loops_only_over_kernel_offsets() -> None:
    """No Python loop over positions or examples: forward and backward are straight-line code, and the
    helpers' only loops run over a window's offsets (kh·kw iterations, whatever the image or batch)."""
    src = codegen.generate(backprop.parse_spec(NETWORKS["stride 2, padding 1, overlapping max pooling"], name="c"))
    tree = ast.parse(src)
    helpers = ("_conv", "_max_pool", "_avg_pool", "_scatter", "_windows")
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        loops = [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While))]
        if fn.name in ("_forward", "backward", "forward", "loss_and_grads"):
            assert not loops, fn.name
        elif fn.name.startswith(helpers):  # comprehensions there run over a shape's axes (1 or 2 of them)
            assert all(isinstance(n, ast.For) and ast.unparse(n.iter) == "np.ndindex(*kernel)" for n in loops), fn.name
    assert "np.ndindex(*kernel)" in src


@pytest.mark.parametrize(("line", "message"), [
    ("Z = conv2d(X, W, stride=2)", "(8 + 2·0 − 3) = 5 is not a multiple of 2; stride=1 or stride=5 would fit"),
    ("Z = conv2d(X, W, stride=3)", "padding=2 or stride=1 or stride=5 would fit"),
    ("Z = conv2d(X, V)", "read 2 channels but X"),
    ("Z = conv2d(S, W)", "takes an input of rank 4"),
    ("Z = conv2d(X, W, stride=0)", "stride must be at least 1"),
    ("Z = conv2d(X, W, padding=n)", "padding is a whole number written as one"),
    ("Z = conv2d(X, W, dilation=2)", "no keyword argument 'dilation='"),
    ("Z = max_pool2d(X)", "needs its window's size"),
    ("Z = max_pool2d(X, size=2)", "stride 2 does not fit spatial axis 2: (7 + 2·0 − 2) = 5 is not a multiple of 2; "
                                  "stride=1 or stride=5 would fit"),
    ("Z = conv2d(Xn, W, stride=2)", "needs spatial axis 1's size as a number"),
    ("Z = conv2d(X, Wbig)", "window (9) is larger than spatial axis 1 (8)"),
    ("Z = dilate(X, 0)", "dilate's stride is a whole number at least 1 written as one, e.g. dilate(dZ, 2); got 0"),
    ("Z = dilate(X, n)", "dilate's stride is a whole number at least 1"),
    ("Z = dilate(X, 2, [1, 4])", "dilate of a 3×8×7×m value (rank 4) takes distinct axes from 0 to 3, got [1, 4]"),
    ("Z = dilate(X, 2, 1)", "dilate's axes are a list of whole numbers, e.g. [1, 2]"),
    ("Z = dilate(X)", "dilate takes the value, the stride and optionally the axes"),
    ("Z = dilate(X, 2, axes=[1])", "dilate takes no keyword argument 'axes='"),
    ("Z = dilate(reshape(X, [168, m]), 2)",
     "has no spatial axes between channels and examples: name the axes, e.g. dilate(E, 2, [1])"),
])
def test_windows_that_do_not_fit_are_refused_at_their_column(line: str, message: str) -> None:
    head = ("input X[3, 8, 7, m]\ninput Xn[3, n, n, m]\ninput S[3, 8, m]\nparam W[4, 3, 3, 3]\nparam V[4, 2, 3, 3]\n"
            "param Wbig[4, 3, 9, 9]\n")
    with pytest.raises(SpecError) as e:
        backprop.parse_spec(head + line + "\nloss = sum(Z)\n", path="net.spec", name="net")
    text = str(e.value)
    assert message in text, text
    assert text.startswith("net.spec:7:"), text


def test_check_command_passes_on_a_conv_network(tmp_path) -> None:
    """backprop check: every gradient of a conv/pool network within 1e-7 of finite differences."""
    spec = tmp_path / "net.spec"
    spec.write_text(NETWORKS["stride 2, padding 1, overlapping max pooling"])
    report = codegen.gradcheck(backprop.parse_spec(spec.read_text(), name="net"), seed=0)
    assert report.ok, report.errors


@pytest.mark.parametrize("name", list(NETWORKS))
def test_jax_module_equals_the_numpy_module(name: str, x64: None) -> None:
    """--backend jax: the same loss and gradients in float64, under jax.jit (the helpers' loops run
    over kernel offsets while tracing)."""
    if not os.environ.get("CI"):
        pytest.importorskip("jax")
    from backprop.codegen.gradcheck import random_point, resolve_dims
    from backprop.codegen.loader import load_source

    model = backprop.parse_spec(NETWORKS[name], name="net")
    np_mod = load_source(codegen.generate(model), "net_numpy")
    jax_mod = load_source(codegen.generate(model, backend="jax"), "net_jax")
    rng = np.random.default_rng(0)
    params, inputs = random_point(np_mod, resolve_dims(np_mod, None, rng), rng)
    loss, grads = np_mod.loss_and_grads(params, inputs)
    jloss, jgrads = jax_mod.loss_and_grads(params, inputs)
    assert abs(float(jloss) - loss) <= 1e-9 * max(1.0, abs(loss))
    for k, g in grads.items():
        np.testing.assert_allclose(np.asarray(jgrads[k]), g, rtol=1e-9, atol=1e-12, err_msg=k)


def test_derivation_shows_no_index_line_that_only_repeats_a_window_op() -> None:
    """Z[i,j,k,l] = conv2d(X, W)[i,j,k,l] says nothing the vectorized line does not: such lines are
    left out (windows stride apart have no index form), elementwise ones stay."""
    from backprop.present.text import to_text

    text = to_text(backprop.get_derivation(backprop.parse_spec(NETWORKS["lenet-like, examples last"], name="c")))
    index_lines = [line for line in text.splitlines() if "[i,j,k,l] =" in line]
    assert index_lines and not any("conv2d" in line or "route" in line or "corr" in line for line in index_lines)
    assert any("ReLU(Z₁[i,j,k,l])" in line for line in index_lines)


WINDOW_CASES = [c for c in CASES["im2col"]("im2col")]


@pytest.mark.parametrize("case", WINDOW_CASES, ids=[c.id for c in WINDOW_CASES])
def test_gathered_windows_give_what_the_helpers_they_replace_give(case: Case) -> None:
    """conv_windows(im2col(X), W) is conv(X, W) and corr_windows(im2col(X), δ) is corr(X, δ), to the
    last bit: the same matrix products over the same columns (codegen/windows.py rewrites one into the other)."""
    (x_var,) = case.operands
    stride, pad, batch, *kernel = (int(v) for v in case.attrs)
    nd = len(kernel)
    rng = np.random.default_rng(len(case.id))
    x = rng.normal(size=x_var.shape)
    c = x.shape[1] if batch == 0 else x.shape[0]
    w = rng.normal(size=(3, c, *kernel))
    xs, ws = ir.symbol("X", tuple(sympy.Integer(d) for d in x.shape)), ir.symbol("W", tuple(sympy.Integer(d) for d in w.shape))
    attrs = tuple(sympy.Integer(v) for v in (stride, pad, batch))
    conv = ir.node(f"conv{nd}d", xs, ws, *attrs)
    g = rng.normal(size=tuple(int(d) for d in ir.shape_of(conv)))
    gs = ir.symbol("G", ir.shape_of(conv))
    cols = ir.node("im2col", xs, *case.attrs)
    env = {"X": x, "W": w, "G": g}
    np.testing.assert_array_equal(evaluate(ir.node("conv_windows", cols, ws, attrs[2]), env), evaluate(conv, env))
    np.testing.assert_array_equal(evaluate(ir.node("corr_windows", cols, gs, attrs[2]), env),
                                  evaluate(ir.node(f"conv{nd}d_filter", xs, gs, *attrs), env))


@pytest.mark.parametrize(("size", "stride", "batch"), [(2, 1, 3), (3, 1, 3), (2, 2, 0), (3, 2, 3)])
def test_route_handed_the_pooled_value_routes_as_the_route(size: int, stride: int, batch: int) -> None:
    """Ties everywhere (entries 0 and 1): route_max_at(δ, X, maxpool(X)) sends δ where route_max(δ, X) does."""
    n = 8 if (8 - size) % stride == 0 else 7
    shape = (2, n, n, 3) if batch == 3 else (3, 2, n, n)
    x = np.random.default_rng(size + stride).integers(0, 2, size=shape).astype(float)
    attrs = tuple(sympy.Integer(v) for v in (size, stride, batch))
    xs = ir.symbol("X", tuple(sympy.Integer(d) for d in shape))
    pooled = ir.node("max_pool2d", xs, *attrs)
    gs = ir.symbol("G", ir.shape_of(pooled))
    env = {"X": x, "G": np.random.default_rng(0).normal(size=tuple(int(d) for d in ir.shape_of(pooled)))}
    np.testing.assert_array_equal(evaluate(ir.node("max_pool2d_route_at", gs, xs, pooled, *attrs), env),
                                  evaluate(ir.node("max_pool2d_route", gs, xs, *attrs), env))


@pytest.mark.parametrize("name", list(NETWORKS))
def test_windows_are_gathered_once_and_pooling_is_not_redone(name: str) -> None:
    """Each convolution input's windows are copied once, in the forward pass, and its filter gradient
    reads that copy; the backward pass never pools again (the route reads the forward pass's pooling)."""
    tree = ast.parse(codegen.generate(backprop.parse_spec(NETWORKS[name], name="c")))
    calls = {fn.name: [ast.unparse(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call)]
             for fn in tree.body if isinstance(fn, ast.FunctionDef)}
    convs = sum(line.count("conv1d(") + line.count("conv2d(") for line in NETWORKS[name].splitlines() if "=" in line)
    assert calls["_forward"].count("_im2col") == convs
    assert calls["_forward"].count("_conv_windows") == convs and "_conv" not in calls["_forward"]
    assert calls["backward"].count("_corr_windows") == convs
    assert not {"_im2col", "_conv_filter", "_max_pool", "_max_pool_route"} & set(calls["backward"])


def test_a_kernel_sized_by_a_name_keeps_the_helpers_that_gather_their_own_windows() -> None:
    """im2col needs the kernel's sizes as numbers (its call spells them): with a named size the pass
    leaves the convolution and its filter gradient as they are, and the module still equals torch."""
    spec = "input S[5, L, m]\nparam V[4, 5, k]\nH = relu(conv1d(S, V))\nloss = sum(H * H) / m\n"
    src = codegen.generate(backprop.parse_spec(spec, name="named"))
    assert "_conv(S, V" in src and "_conv_filter(S, " in src and "_im2col" not in src
    check_network(spec, 0)
