"""The stack pass (backprop/codegen/stack.py): products of one operand with several weights as one."""

from __future__ import annotations

from backprop import codegen
from backprop.language.parse import parse_spec

TWO_PROJECTIONS = """
examples m
input X[m, T, d]
input Y[m, T, k]
param A[d, k]
param B[d, {kb}]
P = einsum("mtd,dk->mtk", X, A)
S = einsum("mtd,dj->mtj", X, B)
loss = mean((P * sum(S, axis=2) - Y)**2)
"""


def test_projections_of_one_operand_are_slices_of_one_product() -> None:
    spec = parse_spec(TWO_PROJECTIONS.format(kb="k"))
    src = codegen.generate(spec)
    assert "np.concatenate((A, B), axis=1)" in src
    assert "    P = t1[:, :, :k]\n" in src and "    S = t1[:, :, k:]\n" in src
    for seed in range(3):
        report = codegen.gradcheck(spec, seed=seed)
        assert report.ok, report.format()


def test_weights_of_different_shapes_are_not_stacked() -> None:
    spec = parse_spec(TWO_PROJECTIONS.format(kb="e").replace("input Y[m, T, k]", "input Y[m, T, k]"))
    src = codegen.generate(spec)
    assert "np.concatenate" not in src
    assert codegen.gradcheck(spec, seed=0).ok


def test_the_transformer_blocks_projections_are_one_product() -> None:
    src = codegen.generate("transformer_block")
    assert src.count("np.concatenate((Wq, Wk, Wv), axis=1)") == 1
