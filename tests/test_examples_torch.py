"""Bundled examples against PyTorch as a practitioner would write them: ``nn.functional`` layers
and losses (``functional.linear``, ``amax``, ``functional.cross_entropy`` with integer targets), not a transcription
of the spec's equations (tests/test_torch_reference.py does that for every example).

The generated module (generated/NAME.py, the file users import) must agree to 1e-9 in float64, at
random points and at ties, where the convention (PyTorch's) decides the gradient.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
import torch
from torch.nn import functional

from backprop.codegen.regenerate import GENERATED


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"generated_{name}", GENERATED / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


REFERENCES: dict[str, tuple[Callable[..., torch.Tensor], dict[str, int], Callable[..., None] | None]] = {
    "maxout": (maxout, {"n": 4, "m": 6, "c": 3, "h": 5}, maxout_ties),
    "gaussian_full_cov": (gaussian_full_cov, {"d": 4, "m": 7}, None),
}


def point(mod: ModuleType, dims: dict[str, int], seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    from backprop.codegen.gradcheck import random_point

    return random_point(mod, dims, np.random.default_rng(seed))


def compare(name: str, params: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> None:
    mod = load(name)
    reference = REFERENCES[name][0]
    loss, grads = mod.loss_and_grads(params, inputs)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    tx = {k: torch.tensor(v, dtype=torch.float64) for k, v in inputs.items()}
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


