"""Layouts (backprop.codegen.layout): a temporary only products read is stored in the axis order they
take without a copy, the product making it writes that order directly, and the values do not change."""

from __future__ import annotations

from test_fuzz_codegen import check_network

import backprop
from backprop import codegen

# Attention's output written head-major (m, h, t, k), then contracted over (h, k) with a weight and,
# for that weight's gradient, over (m, t): token-major (m, t, h, k) serves both without a copy.
HEADS = """\
examples m
input X[m, T, d]
param A[d, h, k]
param B[h, k, d]
V = einsum("mtd,dhk->mthk", X, A)
P = softmax(einsum("mthk,mshk->mhts", V, V), axis=3)
loss = mean(tanh(einsum("mhtk,hkd->mtd", einsum("mhts,mshk->mhtk", P, V), B))**2)
"""


def test_a_head_major_temporary_is_stored_token_major() -> None:
    src = codegen.generate(backprop.parse_spec(HEADS, name="heads"))
    assert "stored as mthk (not mhtk)" in src
    assert "_matmul_to(" in src  # the product writes token-major through out=, no copy after it
    assert "axes=((2, 3), (0, 1))" in src  # Z·B contracts the last two axes: one block, no copy


def test_the_stored_order_changes_no_value() -> None:
    for seed in range(3):
        check_network(HEADS, seed)


def test_transformer_block_attention_output_is_token_major() -> None:
    src = codegen.generate(backprop.get_model("transformer_block"))
    assert "# stored as mthk (not mhtk): the order the products reading it take without a copy" in src
    assert ".transpose(0, 2, 1, 3), Wo" not in src and "axes=((1, 3), (0, 1))" not in src
