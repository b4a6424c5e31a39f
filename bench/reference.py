"""Hand-written NumPy: the 1.0 baseline every other implementation is measured against.

Each kind of case writes its own, as an expert writes that network by hand:
:mod:`bench.mlp` for the perceptrons (in-place bias and activations, the fused
softmax-cross-entropy gradient, a line-by-line version for the tiny network),
:mod:`bench.transformer` for the transformer block (batched ``np.matmul`` over
heads and examples, stacked projections, fused softmax and layer-norm
backward). Neither computes a gradient for the inputs.
"""

from __future__ import annotations

from .base import Case, LossAndGrads


def make_reference(case: Case) -> LossAndGrads:
    """``loss_and_grads(params, inputs)`` for ``case``, written by hand."""
    return case.reference()
