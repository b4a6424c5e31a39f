"""The bundled ``lstm`` as a benchmark case: ``nn.LSTM``'s step over ``T`` steps, examples as rows
(``X[m, T, d]``, ``Y[m, T, h]``), ``H₀ = C₀ = 0``, squared error on every step's output,
``loss = Σ (H − Y)² / (2m)``. Params: ``Wi, Wf, Wg, Wo [d, h]``, ``Ui, Uf, Ug, Uo [h, h]``,
``bi, bf, bg, bo [1, h]``.

The hand-written reference (:func:`reference_loss_and_grads`) is the 1.0 baseline, forward and
backpropagation through time as an expert writes them for NumPy:

- the four gates are one matrix: ``W``, ``U`` and ``b`` are concatenated along their columns once per
  call, in the order i, f, o, g, and the 1/2 of ``σ(z) = (1 + tanh(z/2)) / 2`` is folded into the three
  sigmoid gates' columns (exact: a power of two), so each step's activations are one in-place ``tanh``
  over a contiguous ``(m, 4h)`` block and a ``×½ + ½`` of its first ``3h`` columns (one transcendental
  per entry, no overflow);
- ``X`` is copied once to time-major rows ``(T·m, d)`` and the input projections of all steps are one
  GEMM before the loop, times ``W`` ``(d, 4h)``, the bias added once; the result ``A`` ``(T, m, 4h)`` is
  the only gate buffer: each step's block is contiguous, adds its recurrent product (one
  ``(m, h) @ (h, 4h)`` GEMM into a reused buffer, skipped at ``t = 1`` where ``H₀ = 0``) and is
  activated in place, so ``A`` keeps every step's gates for backward with no copy;
- the states are time-major too, ``H₀ … H_T`` and ``C₀ … C_T`` as ``(T + 1, m, h)``: ``Hₜ₋₁`` is a
  contiguous block for the recurrent GEMM, and ``H₀ … H_{T−1}`` a free ``(T·m, h)`` view for ``dU``;
- nothing else of size ``m·T·h`` is allocated: the residual ``Hₜ − Yₜ`` goes into a reused ``(m, h)``
  buffer, in forward for the loss and again in backward, and ``tanh(Cₜ)`` is recomputed in backward (one
  ``tanh`` of ``m·h`` entries per step costs less than faulting in and filling another ``m·T·h`` array);
- backward runs from ``t = T`` down to 1 and writes each step's pre-activation gradient over that
  step's gates in ``A`` (they are dead once read), in place where an operand is no longer needed; the
  state gradient sent to ``t − 1`` is one ``(m, 4h) @ (4h, h)`` GEMM per step, with a contiguous copy
  of ``Uᵀ``;
- the weight gradients come after the loop, one GEMM each over all steps (``dW = Xᵀ dA``,
  ``dU = H₋ᵀ dA`` on the ``(T·m, ·)`` views: one large product instead of ``T`` small ones, measured no
  slower here), the biases one sum; the separate gates' gradients are column blocks (views) of these;
  no gradient is formed for ``X``.

The frameworks are written as their users write them: ``torch.nn.LSTM(batch_first=True)`` in
float64 with our weights put in (``torch.func.functional_call``: its gate order is i, f, g, o, its
``weight_ih`` is ``(4h, d)``, our ``W`` transposed, and ``bias_hh`` is zero); JAX's ``lax.scan`` over
the time-major sequence of the concatenated-gate cell, under ``jax.jit(jax.value_and_grad(...))``;
and HIPS autograd, a Python loop over the steps in ``autograd.numpy``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import LossAndGrads, SizedCase

PARAMS = ("Wi", "Wf", "Wg", "Wo", "Ui", "Uf", "Ug", "Uo", "bi", "bf", "bg", "bo")
#: The reference's gate order inside its concatenated matrices: the three sigmoid gates first.
GATES = ("i", "f", "o", "g")
#: PyTorch's gate order in ``weight_ih``, ``weight_hh`` and the biases (and ours in JAX and autograd).
TORCH_GATES = ("i", "f", "g", "o")


def reference_loss_and_grads(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Loss and the 12 gradients of the LSTM by hand (see the module docstring)."""
    m, t_len, d = x.shape
    h = params["Ui"].shape[0]
    h2, h3, h4 = 2 * h, 3 * h, 4 * h
    w, u, b = (np.concatenate([params[k + g] for g in GATES], axis=1) for k in "WUb")  # (d|h|1, 4h)
    ut = np.ascontiguousarray(u.T)  # for ∂L/∂Hₜ₋₁, before the halving below
    for mat in (w, u, b):
        mat[:, :h3] *= 0.5  # σ(z) = (1 + tanh(z/2))/2: the 1/2 folded into the sigmoid gates' columns (exact)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(t_len * m, d)  # time-major rows
    # --- forward
    a = (xt @ w).reshape(t_len, m, h4)  # every step's input projection, one GEMM; A[t] keeps step t's gates
    a += b
    dtype = a.dtype
    hs = np.empty((t_len + 1, m, h), dtype)  # H₀ … H_T
    hs[0] = 0.0
    cs = np.empty((t_len + 1, m, h), dtype)  # C₀ … C_T
    cs[0] = 0.0
    rec, tmp = np.empty((m, h4), dtype), np.empty((m, h), dtype)
    loss = 0.0
    for t in range(t_len):
        at = a[t]
        if t:  # H₀ = 0: no recurrent product at the first step
            at += np.matmul(hs[t], u, out=rec)
        np.tanh(at, out=at)  # G, and tanh(z/2) for the three sigmoid gates
        s = at[:, :h3]
        s *= 0.5
        s += 0.5
        i, f, o, g = at[:, :h], at[:, h:h2], at[:, h2:h3], at[:, h3:]
        c = cs[t + 1]
        np.multiply(i, g, out=c)
        if t:
            c += np.multiply(f, cs[t], out=tmp)
        ht = hs[t + 1]
        np.tanh(c, out=ht)
        ht *= o
        np.subtract(ht, y[:, t], out=tmp)
        loss += np.vdot(tmp, tmp)
    loss = float(loss) / (2 * m)
    # --- backward through time, each step's ∂L/∂Z written over its gates in A
    inv_m = 1.0 / m
    dc_next = dh = None
    tc = np.empty((m, h), dtype)
    for t in range(t_len - 1, -1, -1):
        at = a[t]
        i, f, o, g = at[:, :h], at[:, h:h2], at[:, h2:h3], at[:, h3:]
        np.subtract(hs[t + 1], y[:, t], out=tmp)  # the residual again: cheaper than keeping it
        tmp *= inv_m
        if dh is None:
            dh = tmp.copy()
        else:
            dh += tmp  # ∂L/∂Hₜ
        np.tanh(cs[t + 1], out=tc)  # recomputed, not kept
        do = dh * tc
        np.multiply(tc, tc, out=tc)
        np.subtract(1.0, tc, out=tc)
        dc = dh * o
        dc *= tc  # ∂L/∂Cₜ = ∂L/∂Hₜ ⊙ O ⊙ (1 − tanh²Cₜ) + what t+1 sends
        if dc_next is not None:
            dc += dc_next
        di = dc * g
        df = dc * cs[t] if t else None  # C₀ = 0: F's gradient is zero at the first step
        dc_next = dc * f
        np.multiply(g, g, out=g)  # the g block becomes ∂L/∂Z_g = ∂L/∂Cₜ ⊙ I ⊙ (1 − G²)
        np.subtract(1.0, g, out=g)
        g *= dc
        g *= i
        s = at[:, :h3]  # the sigmoid blocks become σ(1 − σ) ⊙ their gradients
        s *= 1.0 - s
        i *= di
        if df is None:
            f[...] = 0.0
        else:
            f *= df
        o *= do
        if t:
            dh = at @ ut  # ∂L/∂Hₜ₋₁ from the four gates, one GEMM
    # --- the weight gradients, one GEMM each over every step; the biases one sum
    a2 = a.reshape(t_len * m, h4)
    dw = xt.T @ a2
    du = hs[:t_len].reshape(t_len * m, h).T @ a2
    db = a2.sum(axis=0, keepdims=True)
    grads: dict[str, Any] = {}
    for k, gate in enumerate(GATES):
        cols = slice(k * h, (k + 1) * h)
        grads["W" + gate], grads["U" + gate], grads["b" + gate] = dw[:, cols], du[:, cols], db[:, cols]
    return loss, {n: grads[n] for n in PARAMS}


@functools.cache
def _torch_lstm(torch: Any, d: int, h: int) -> Any:
    """One ``nn.LSTM`` per shape, built once (its own initial weights are replaced on every call)."""
    return torch.nn.LSTM(d, h, batch_first=True, dtype=torch.float64)


@dataclass(frozen=True)
class LSTMCase(SizedCase):
    """The LSTM at ``T`` steps of ``d`` inputs, ``h`` hidden units and ``m`` examples."""

    NEEDS = frozenset({"m", "T", "d", "h"})

    @property
    def param_names(self) -> list[str]:
        return list(PARAMS)

    def data(self, seed: int = 0, dtype: type = np.float64) -> tuple[dict, dict]:
        """Weights of variance 1/fan-in (the gates' pre-activations of order one: no gate saturated or
        constant), small non-zero biases, inputs and targets standard normal / half that."""
        m, t, d, h = (self.dims[n] for n in ("m", "T", "d", "h"))
        rng = np.random.default_rng(seed)

        def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
            return (std * rng.standard_normal(shape)).astype(dtype)

        params = {}
        for name in PARAMS:
            fan_in = {"W": d, "U": h, "b": 0}[name[0]]
            params[name] = normal((1, h), 0.1) if not fan_in else normal((fan_in, h), fan_in**-0.5)
        return params, {self.x_name: normal((m, t, d), 1.0), self.y_name: normal((m, t, h), 0.5)}

    def reference(self) -> LossAndGrads:
        x_name, y_name = self.x_name, self.y_name
        return lambda params, inputs: reference_loss_and_grads(params, inputs[x_name], inputs[y_name])

    def torch_loss(self, torch: Any, p: dict, x: Any, y: Any) -> Any:
        """``nn.LSTM(batch_first=True)`` with our weights: its ``weight_ih`` is ``[Wi Wf Wg Wo]ᵀ``."""
        m, _, d = x.shape
        h = p["Ui"].shape[0]
        lstm = _torch_lstm(torch, d, h)
        weights = {
            "weight_ih_l0": torch.cat([p["W" + g] for g in TORCH_GATES], dim=1).T,
            "weight_hh_l0": torch.cat([p["U" + g] for g in TORCH_GATES], dim=1).T,
            "bias_ih_l0": torch.cat([p["b" + g] for g in TORCH_GATES], dim=1).reshape(-1),
            "bias_hh_l0": torch.zeros(4 * h, dtype=x.dtype),
        }
        out, _ = torch.func.functional_call(lstm, weights, (x,))
        return torch.nn.functional.mse_loss(out, y, reduction="sum") / (2 * m)

    def jax_loss(self, jax: Any, p: dict, x: Any, y: Any) -> Any:
        """``lax.scan`` of the concatenated-gate cell over the time-major sequence."""
        jnp = jax.numpy
        m = x.shape[0]
        h = p["Ui"].shape[0]
        w, u, b = (jnp.concatenate([p[k + g] for g in TORCH_GATES], axis=1) for k in "WUb")

        def cell(carry: Any, x_t: Any) -> Any:
            h_prev, c_prev = carry
            z = x_t @ w + h_prev @ u + b
            i, f, g, o = jnp.split(z, 4, axis=1)
            c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
            h_t = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h_t, c), h_t

        zeros = jnp.zeros((m, h), x.dtype)
        _, hs = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
        return jnp.sum((hs - jnp.swapaxes(y, 0, 1)) ** 2) / (2 * m)

    def autograd_loss(self, anp: Any, p: dict, x: Any, y: Any) -> Any:
        """A Python loop over the steps, the four gates one product each step."""
        m, t_len, _ = x.shape
        h = p["Ui"].shape[0]
        w, u, b = (anp.concatenate([p[k + g] for g in TORCH_GATES], axis=1) for k in "WUb")

        def sigmoid(z: Any) -> Any:
            return 0.5 * (anp.tanh(0.5 * z) + 1.0)

        h_t = c = anp.zeros((m, h))
        loss = 0.0
        for t in range(t_len):
            z = anp.dot(x[:, t], w) + anp.dot(h_t, u) + b
            i, f, g, o = z[:, :h], z[:, h:2 * h], z[:, 2 * h:3 * h], z[:, 3 * h:]
            c = sigmoid(f) * c + sigmoid(i) * anp.tanh(g)
            h_t = sigmoid(o) * anp.tanh(c)
            loss = loss + anp.sum((h_t - y[:, t]) ** 2)
        return loss / (2 * m)
