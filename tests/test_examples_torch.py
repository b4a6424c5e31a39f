"""Bundled examples against PyTorch as a practitioner would write them: ``nn.functional`` layers
and losses (``functional.linear``, ``amax``, ``functional.cross_entropy`` with integer targets), not a transcription
of the spec's equations (tests/test_torch_reference.py does that for every example).

The generated module (generated/NAME.py, the file users import) must agree to 1e-9 in float64, at
random points and at ties, where the convention (PyTorch's) decides the gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
import torch
from torch.nn import functional

from backprop.codegen.emit import load_module
from backprop.codegen.regenerate import GENERATED


def load(name: str) -> ModuleType:
    return load_module(GENERATED / f"{name}.py")


# ---------------------------------------------------------------------------
# The references: (params, inputs) as torch tensors -> the loss
# ---------------------------------------------------------------------------


def maxout(p: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """A maxout layer as nn.Linear to k·h units viewed as [k, h] pieces, amax over the pieces,
    then a linear classifier under functional.cross_entropy with integer class targets."""
    k, h, n = p["W1"].shape
    rows = x["X"].T  # PyTorch's rows-are-examples layout
    pieces = functional.linear(rows, p["W1"].reshape(k * h, n), p["b1"].reshape(k * h)).view(-1, k, h)
    hidden = pieces.amax(dim=1)
    logits = functional.linear(hidden, p["W2"], p["b2"].reshape(-1))
    return functional.cross_entropy(logits, x["Y"].argmax(dim=0))


def maxout_ties(p: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> None:
    """Every piece the same, in small integers so every sum is exact: every max is a k-way tie."""
    rng = np.random.default_rng(5)
    x["X"][:] = rng.integers(-2, 3, x["X"].shape)
    p["W1"][:] = rng.integers(-2, 3, p["W1"].shape[1:])
    p["b1"][:] = rng.integers(-2, 3, p["b1"].shape[1:])


def gaussian_full_cov(p: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """torch.distributions' multivariate normal with the covariance A Aᵀ + εI: the mean NLL."""
    d = p["A"].shape[0]
    cov = p["A"] @ p["A"].T + 0.001 * torch.eye(d, dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(p["mu"].reshape(-1), covariance_matrix=cov)
    return -dist.log_prob(x["X"].T).mean()


def svm_hinge(p: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """functional.multi_margin_loss (margin 1) on integer targets: it averages over the classes too,
    where CS231n's loss sums them, hence the factor c."""
    scores = functional.linear(x["X"].T, p["W"], p["b"].reshape(-1))
    return functional.multi_margin_loss(scores, x["y"].reshape(-1), margin=1.0) * p["W"].shape[0]


def svm_ties(p: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> None:
    """Small integers everywhere: many margins are exactly 0, the hinge's kink (no gradient, as torch)."""
    rng = np.random.default_rng(7)
    for v in (x["X"], p["W"], p["b"]):
        v[:] = rng.integers(-1, 2, v.shape)


def embedding_bag(p: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """functional.embedding_bag (mode="mean") of the token ids, a linear layer, functional.cross_entropy
    on the integer targets."""
    bags = functional.embedding_bag(x["x"].T, p["E"].T, mode="mean")  # one bag (row) per example
    logits = functional.linear(bags, p["W"], p["b"].reshape(-1))
    return functional.cross_entropy(logits, x["y"].reshape(-1))


def lenet(p: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """LeNet as PyTorch writes it: images (m, 1, 28, 28), functional.conv2d, relu, max_pool2d twice,
    flattened per example, two functional.linear layers, cross_entropy on the integer labels."""
    a = x["X"].permute(3, 0, 1, 2)
    for w, b in (("W1", "b1"), ("W2", "b2")):
        a = functional.max_pool2d(functional.relu(functional.conv2d(a, p[w], p[b].reshape(-1))), 2)
    hidden = functional.relu(functional.linear(a.flatten(1), p["W3"], p["b3"].reshape(-1)))
    return functional.cross_entropy(functional.linear(hidden, p["W4"], p["b4"].reshape(-1)), x["y"].reshape(-1))


def lenet_ties(p: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> None:
    """Small integers in the images and the filters: every convolution output is a whole number, and
    many pooling windows hold their maximum twice (PyTorch routes δ to the first in row-major order)."""
    rng = np.random.default_rng(3)
    for v in (x["X"], p["W1"], p["b1"], p["W2"], p["b2"]):
        v[:] = rng.integers(-1, 2, v.shape)


def conv_stride_pad(p: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """functional.conv2d at stride 2, padding 1; avg_pool2d; a linear read-out; the mean over the
    examples of the summed squared error."""
    a = functional.relu(functional.conv2d(x["X"].permute(3, 0, 1, 2), p["W1"], p["b1"].reshape(-1), stride=2, padding=1))
    out = functional.linear(functional.avg_pool2d(a, 2).flatten(1), p["W2"], p["b2"].reshape(-1))
    return ((out - x["Y"].T) ** 2).sum() / out.shape[0]


def conv1d_text(p: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """Kim's sentence classifier: functional.embedding of the token ids, functional.conv1d (padding 1)
    over time, amax over time (ties share δ evenly, as the spec's max), cross_entropy."""
    tokens = functional.embedding(x["x"].T, p["E"].T).transpose(1, 2)  # (m, d, T)
    features = functional.relu(functional.conv1d(tokens, p["W"], p["b"].reshape(-1), padding=1)).amax(dim=2)
    return functional.cross_entropy(functional.linear(features, p["U"]), x["y"].reshape(-1))


def conv1d_ties(p: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> None:
    """Whole-number embeddings and filters: responses repeat over time, and the max over time ties."""
    rng = np.random.default_rng(4)
    for v in (p["E"], p["W"], p["b"]):
        v[:] = rng.integers(-1, 2, v.shape)


REFERENCES: dict[str, tuple[Callable[..., torch.Tensor], dict[str, int], Callable[..., None] | None]] = {
    "maxout": (maxout, {"n": 4, "m": 6, "c": 3, "h": 5}, maxout_ties),
    "gaussian_full_cov": (gaussian_full_cov, {"d": 4, "m": 7}, None),
    "svm_hinge": (svm_hinge, {"n": 4, "m": 9, "c": 3}, svm_ties),
    "embedding_bag": (embedding_bag, {"T": 5, "m": 6, "V": 7, "c": 3, "d": 4}, None),
    "lenet": (lenet, {"m": 3, "c": 4}, lenet_ties),
    "conv_stride_pad": (conv_stride_pad, {"m": 4, "k": 3}, None),
    "conv1d_text": (conv1d_text, {"T": 6, "m": 4, "V": 7, "c": 3, "d": 4, "h": 5}, conv1d_ties),
}


def point(mod: ModuleType, dims: dict[str, int], seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    from backprop.codegen.gradcheck import random_point

    return random_point(mod, dims, np.random.default_rng(seed))


def compare(name: str, params: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> None:
    mod = load(name)
    reference = REFERENCES[name][0]
    loss, grads = mod.loss_and_grads(params, inputs)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    tx = {k: torch.tensor(v, dtype=None if np.asarray(v).dtype.kind in "iu" else torch.float64)  # labels: int64
          for k, v in inputs.items()}
    ref = reference(tp, tx)
    ref.backward()
    assert loss == pytest.approx(float(ref.detach()), rel=1e-12)
    for k, t in tp.items():
        assert t.grad is not None
        np.testing.assert_allclose(grads[k], t.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"{name}: ∂L/∂{k}")


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("seed", [0, 1])
def test_generated_module_matches_pytorch(name: str, seed: int) -> None:
    mod = load(name)
    params, inputs = point(mod, REFERENCES[name][1], seed)
    compare(name, params, inputs)


@pytest.mark.parametrize("name", sorted(n for n, r in REFERENCES.items() if r[2] is not None))
def test_generated_module_matches_pytorch_at_ties(name: str) -> None:
    mod = load(name)
    params, inputs = point(mod, REFERENCES[name][1], 2)
    ties = REFERENCES[name][2]
    assert ties is not None
    ties(params, inputs)
    compare(name, params, inputs)


def test_every_reference_is_a_bundled_example() -> None:
    import backprop

    assert set(REFERENCES) <= set(backprop.example_names())


