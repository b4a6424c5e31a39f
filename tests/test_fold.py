"""Affine folds (backprop.codegen.fold): a gain and shift shared by the examples moved into the
contractions reading them, and a gradient only summed over the examples contracted first.

Each case is a whole network checked against PyTorch autograd (as the fuzzer checks random ones,
float64 and float32, the cache left intact), plus what the fold must and must not do to its code.
"""

from __future__ import annotations

import pytest
from test_fuzz_codegen import check_network

import backprop
from backprop import codegen

LAYER_NORM_COLUMNS = """\
input X[n, m]
input Y[k, m]
param g[n, 1]
param c[n, 1]
param W[k, n]
U = X - mean(X, axis=0)
N = g * U / sqrt(mean(U**2, axis=0) + 1e-5) + c
loss = sum((W @ N - Y)**2) / m
"""

LAYER_NORM_ROWS = """\
examples m
input X[m, n]
input Y[m, k]
param g[1, n]
param c[1, n]
param W[n, k]
param b[1, k]
U = X - mean(X, axis=1)
N = g * U / sqrt(mean(U**2, axis=1) + 1e-5) + c
loss = mean((tanh(N @ W + b) - Y)**2)
"""

# Examples in the middle, features last, an einsum consumer with the feature axis contracted.
LAYER_NORM_RANK3 = """\
examples m
input X[T, m, d]
param g[1, 1, d]
param c[1, 1, d]
param W[d, h]
U = X - mean(X, axis=2)
N = g * U / sqrt(mean(U**2, axis=2) + 1e-5) + c
Z = einsum("tmd,dh->tmh", N, W)
loss = sum(relu(Z)) / m
"""

# ∂L/∂N is needed for ∂L/∂H: only the forward fold applies.
AFTER_HIDDEN = """\
input X[n, m]
param W0[n, n]
param g[n, 1]
param c[n, 1]
param W[k, n]
H = tanh(W0 @ X)
N = g * H + c
loss = sum(sigmoid(W @ N)) / m
"""

# N is also read elementwise: nothing is folded.
READ_ELSEWHERE = """\
input X[n, m]
param g[n, 1]
param W[k, n]
N = g * tanh(X)
loss = sum((W @ N)**2) + sum(N)
"""

# A scalar gain, a shift subtracted; the main term negated; a gain in a denominator.
SIGNS = """\
input X[n, m]
param s
param c[n, 1]
param g[n, 1]
param W[k, n]
param V[k, n]
A = s * sigmoid(X) - c
B = c - X / (g**2 + 1)
loss = sum((W @ A) * (V @ B)) / m
"""

CASES = {
    "layer norm, columns": (LAYER_NORM_COLUMNS, {"N", "dN"}),
    "layer norm, rows": (LAYER_NORM_ROWS, {"N", "dN"}),
    "layer norm, rank 3, examples in the middle": (LAYER_NORM_RANK3, {"N", "dN"}),
    "after a hidden layer": (AFTER_HIDDEN, {"N"}),
    "read elsewhere": (READ_ELSEWHERE, set()),
    "signs and a scalar gain": (SIGNS, {"A", "B"}),
}


def _assigned(source: str) -> set[str]:
    return {line.split("=")[0].strip() for line in source.splitlines() if " = " in line and not line.lstrip().startswith("#")}


@pytest.mark.parametrize("name", list(CASES))
def test_folded_network_matches_torch(name: str) -> None:
    spec, _ = CASES[name]
    for seed in range(3):
        check_network(spec, seed)


@pytest.mark.parametrize("name", list(CASES))
def test_folded_values_are_never_formed(name: str) -> None:
    spec, gone = CASES[name]
    model = backprop.parse_spec(spec, name="fold")
    src = codegen.generate(model)
    assigned = _assigned(src)
    candidates = {a.name for a in model.assigns} | {"d" + a.name for a in model.assigns}
    assert candidates & gone == gone
    assert not gone & assigned, f"{sorted(gone & assigned)} still computed"
    if not gone:
        assert "folded" not in src


def test_transformer_block_forms_neither_layer_norm_output():
    """The bundled block: N₁, N₂ folded into the projections and the MLP; ∂L/∂N₁ never formed (the
    block's input has no gradient); ∂L/∂N₂ is, as ∂L/∂R needs it."""
    src = codegen.generate(backprop.get_model("transformer_block"))
    assigned = _assigned(src)
    assert not {"N1", "N2", "dN1"} & assigned
    assert "dN2" in assigned
    assert "N₁'s gain and shift folded into the product" in src
