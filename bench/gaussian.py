"""The bundled ``gaussian_full_cov`` as a benchmark case: the mean negative log-likelihood of the m
columns of ``X[d, m]`` under N(mu, S), S = A Aᵀ + εI (ε = 10⁻³), the constant d/2 · log 2π included.

The hand-written reference (:func:`reference_loss_and_grads`) is the 1.0 baseline, written the way
one writes it by hand in NumPy knowing S is symmetric positive definite:

- log det S from its Cholesky factor, 2 Σ log diag(L): half the flops of the LU ``slogdet`` does;
- one inverse S⁻¹ (the gradient holds S⁻¹ itself, so a solve would not spare it), then Y = S⁻¹ D
  once: the quadratic form is ⟨D, Y⟩ and ∂L/∂μ = −Σ_cols Y / m;
- ∂L/∂S = (S⁻¹ − Y Yᵀ/m)/2 is symmetric, so ∂L/∂A = (∂L/∂S + ∂L/∂Sᵀ) A = (S⁻¹ − Y Yᵀ/m) A: one
  d × d product where the chain rule writes two, and Y Yᵀ a symmetric rank-m update (``syrk``).

The generated module factorizes S once too (one ``np.linalg.inv``, reused by every product), but
without knowing S is symmetric it computes S⁻ᵀ (D/2) besides S⁻¹ (D/m), one more d × d × m product.
The frameworks are written as their users write it: PyTorch and JAX by a Cholesky factor and a
triangular solve, HIPS autograd (no triangular solve) by ``solve`` and ``slogdet``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import LossAndGrads, SizedCase

#: The spec's ε in S = A Aᵀ + εI.
EPS = 1e-3
LOG_2PI = math.log(2 * math.pi)


def reference_loss_and_grads(params: dict, inputs: dict) -> tuple[float, dict[str, Any]]:
    """Loss and gradients of the Gaussian's mean NLL, by hand (see the module docstring)."""
    a, mu, x = params["A"], params["mu"], inputs["X"]
    d, m = x.shape
    s = a @ a.T  # NumPy calls syrk for a @ a.T: exactly symmetric
    s.flat[:: d + 1] += EPS
    logdet = 2.0 * float(np.log(np.diagonal(np.linalg.cholesky(s))).sum())
    s_inv = np.linalg.inv(s)
    dev = x - mu
    y = s_inv @ dev
    loss = (float(np.vdot(dev, y)) / m + logdet + d * LOG_2PI) / 2
    dmu = y.sum(axis=1, keepdims=True)
    dmu /= -m
    g = y @ y.T
    g /= -m
    g += s_inv  # 2 ∂L/∂S = S⁻¹ − Y Yᵀ/m
    return loss, {"mu": dmu, "A": g @ a}


@dataclass(frozen=True)
class GaussianCase(SizedCase):
    """The Gaussian NLL at sizes ``d`` (features) and ``m`` (examples)."""

    NEEDS = frozenset({"d", "m"})
    y_name: str = "X"  # a density of X has no target: the harness's y is X again, unused

    @property
    def param_names(self) -> list[str]:
        return ["mu", "A"]

    def data(self, seed: int = 0, dtype: type = np.float64) -> tuple[dict, dict]:
        """Data from a Gaussian with a random mean and correlated covariance; params part way to the fit."""
        rng = np.random.default_rng(seed)
        d, m = self.dims["d"], self.dims["m"]
        root = np.eye(d) + rng.normal(size=(d, d)) / (2 * math.sqrt(d))
        x = root @ rng.normal(size=(d, m)) + rng.normal(size=(d, 1))
        params = {"mu": rng.normal(size=(d, 1)).astype(dtype),
                  "A": (np.eye(d) + rng.normal(size=(d, d)) / (4 * math.sqrt(d))).astype(dtype)}
        return params, {"X": x.astype(dtype)}

    def reference(self) -> LossAndGrads:
        return reference_loss_and_grads

    def torch_loss(self, torch: Any, p: dict, x: Any, y: Any) -> Any:
        d, m = x.shape
        s = p["A"] @ p["A"].T + EPS * torch.eye(d, dtype=x.dtype)
        chol = torch.linalg.cholesky(s)
        z = torch.linalg.solve_triangular(chol, x - p["mu"], upper=False)
        return (z * z).sum() / (2 * m) + torch.log(torch.diagonal(chol)).sum() + d * LOG_2PI / 2

    def jax_loss(self, jax: Any, p: dict, x: Any, y: Any) -> Any:
        jnp = jax.numpy
        d, m = x.shape
        chol = jnp.linalg.cholesky(p["A"] @ p["A"].T + EPS * jnp.eye(d))
        z = jax.scipy.linalg.solve_triangular(chol, x - p["mu"], lower=True)
        return jnp.sum(z * z) / (2 * m) + jnp.sum(jnp.log(jnp.diagonal(chol))) + d * LOG_2PI / 2

    def autograd_loss(self, anp: Any, p: dict, x: Any, y: Any) -> Any:
        d, m = x.shape
        s = anp.dot(p["A"], p["A"].T) + EPS * anp.eye(d)
        dev = x - p["mu"]
        return (anp.sum(dev * anp.linalg.solve(s, dev)) / m + anp.linalg.slogdet(s)[1] + d * LOG_2PI) / 2
