"""The bundled ``lenet`` as a benchmark case: two conv–ReLU–max-pool stages on 1×28×28 images,
examples last (``X[1, 28, 28, m]``), two dense layers, cross-entropy on integer labels ``y[1, m]``.

The hand-written reference (:func:`reference_loss_and_grads`) is the 1.0 baseline, im2col as CS231n
teaches it, written with care for NumPy:

- each convolution is one GEMM: the windows of X gathered once, channel-and-offset major, into a
  contiguous ``(c·k·k, positions·m)`` matrix (the examples axis stays innermost, so the gather copies
  runs of m), kept for the filter gradient ``dW = δ colsᵀ``;
- the input gradient is ``Wᵀ δ`` as columns, added back by col2im: one strided slice per kernel offset;
- 2×2 max pooling by reshape (the windows tile the maps), its backward a mask of the maxima;
- ReLU's backward reads the mask of the pooled output's route; the first layer's input gradient
  is never formed (X is data).

The frameworks are written as their users write them: PyTorch's ``F.conv2d``/``F.max_pool2d`` on
NCHW tensors (a transpose of X), JAX's ``lax.conv_general_dilated`` and ``lax.reduce_window``, and
HIPS autograd, which has no convolution, by the same im2col in ``autograd.numpy`` (fancy indexing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import LossAndGrads, SizedCase

PARAMS = ("W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4")


def _im2col(x: np.ndarray, k: int) -> np.ndarray:
    """x (c, h, w, m) -> a contiguous (c·k·k, oh·ow·m) matrix of its k×k windows (stride 1, no padding)."""
    c, h, w, m = x.shape
    win = sliding_window_view(x, (k, k), axis=(1, 2))  # (c, oh, ow, m, k, k), a view
    return np.ascontiguousarray(win.transpose(0, 4, 5, 1, 2, 3)).reshape(c * k * k, -1)


def _col2im(cols: np.ndarray, shape: tuple[int, int, int, int], k: int) -> np.ndarray:
    """The adjoint of :func:`_im2col`: each window's share added back where it was read."""
    c, h, w, m = shape
    oh, ow = h - k + 1, w - k + 1
    cols = cols.reshape(c, k, k, oh, ow, m)
    out = np.zeros(shape, dtype=cols.dtype)
    for p in range(k):
        for q in range(k):
            out[:, p:p + oh, q:q + ow, :] += cols[:, p, q]
    return out


def _pool(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2×2 max pooling of (f, h, w, m) by reshape, and the mask of each window's maxima."""
    f, h, w, m = a.shape
    r = a.reshape(f, h // 2, 2, w // 2, 2, m)
    out = r.max(axis=(2, 4))
    return out, r == out[:, :, None, :, None, :]


def reference_loss_and_grads(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Loss and the 8 gradients of LeNet by hand (see the module docstring)."""
    w1, b1, w2, b2, w3, b3, w4, b4 = (params[n] for n in PARAMS)
    m = x.shape[-1]
    f1, c1, k, _ = w1.shape
    f2 = w2.shape[0]
    # --- forward
    cols1 = _im2col(x, k)
    z1 = (w1.reshape(f1, -1) @ cols1).reshape(f1, 24, 24, m)
    z1 += b1
    np.maximum(z1, 0, out=z1)
    p1, mask1 = _pool(z1)
    cols2 = _im2col(p1, k)
    z2 = (w2.reshape(f2, -1) @ cols2).reshape(f2, 8, 8, m)
    z2 += b2
    np.maximum(z2, 0, out=z2)
    p2, mask2 = _pool(z2)
    h = p2.reshape(-1, m)
    a3 = w3 @ h
    a3 += b3
    np.maximum(a3, 0, out=a3)
    s = w4 @ a3
    s += b4
    s -= s.max(axis=0, keepdims=True)
    e = np.exp(s)
    total = e.sum(axis=0, keepdims=True)
    labels, cols = y.reshape(-1), np.arange(m)
    loss = float(np.log(total).sum() - s[labels, cols].sum()) / m
    # --- backward
    ds = e
    ds /= total
    ds[labels, cols] -= 1.0
    ds /= m
    dw4, db4 = ds @ a3.T, ds.sum(axis=1, keepdims=True)
    da3 = w4.T @ ds
    da3 *= a3 > 0
    dw3, db3 = da3 @ h.T, da3.sum(axis=1, keepdims=True)
    dp2 = (w3.T @ da3).reshape(f2, 4, 1, 4, 1, m)
    dz2 = (mask2 * dp2).reshape(f2, 8, 8, m)  # δ to each window's maxima (ReLU'd zeros get δ·0 below)
    dz2 *= z2 > 0
    dz2 = dz2.reshape(f2, -1)
    dw2 = (dz2 @ cols2.T).reshape(w2.shape)
    db2 = dz2.sum(axis=1).reshape(b2.shape)
    dp1 = _col2im(w2.reshape(f2, -1).T @ dz2, p1.shape, k).reshape(f1, 12, 1, 12, 1, m)
    dz1 = (mask1 * dp1).reshape(f1, 24, 24, m)
    dz1 *= z1 > 0
    dz1 = dz1.reshape(f1, -1)
    dw1 = (dz1 @ cols1.T).reshape(w1.shape)
    db1 = dz1.sum(axis=1).reshape(b1.shape)
    return loss, {"W1": dw1, "b1": db1, "W2": dw2, "b2": db2, "W3": dw3, "b3": db3, "W4": dw4, "b4": db4}


@dataclass(frozen=True)
class LeNetCase(SizedCase):
    """LeNet at ``m`` examples of 1×28×28 and ``c`` classes."""

    NEEDS = frozenset({"m", "c"})
    y_name: str = "y"

    @property
    def param_names(self) -> list[str]:
        return list(PARAMS)

    def data(self, seed: int = 0, dtype: type = np.float64) -> tuple[dict, dict]:
        """He-scaled filters and weights, small non-zero biases, images in [0, 1), labels uniform."""
        rng = np.random.default_rng(seed)
        c = self.dims["c"]
        shapes = {"W1": (6, 1, 5, 5), "b1": (6, 1, 1, 1), "W2": (16, 6, 5, 5), "b2": (16, 1, 1, 1),
                  "W3": (120, 256), "b3": (120, 1), "W4": (c, 120), "b4": (c, 1)}
        params = {}
        for name, shape in shapes.items():
            fan_in = int(np.prod(shape[1:]))
            std = 0.1 if name.startswith("b") else (2 / fan_in) ** 0.5
            params[name] = (std * rng.standard_normal(shape)).astype(dtype)
        inputs = {"X": rng.random((1, 28, 28, self.m)).astype(dtype), "y": rng.integers(0, c, (1, self.m))}
        return params, inputs

    def reference(self) -> LossAndGrads:
        return lambda params, inputs: reference_loss_and_grads(params, inputs["X"], inputs["y"])

    def torch_loss(self, torch: Any, p: dict, x: Any, y: Any) -> Any:
        fn = torch.nn.functional
        a = x.permute(3, 0, 1, 2)
        for w, b in (("W1", "b1"), ("W2", "b2")):
            a = fn.max_pool2d(torch.relu(fn.conv2d(a, p[w], p[b].reshape(-1))), 2)
        hidden = torch.relu(fn.linear(a.flatten(1), p["W3"], p["b3"].reshape(-1)))
        return fn.cross_entropy(fn.linear(hidden, p["W4"], p["b4"].reshape(-1)), y.reshape(-1))

    def jax_loss(self, jax: Any, p: dict, x: Any, y: Any) -> Any:
        jnp, lax = jax.numpy, jax.lax
        a = jnp.transpose(x, (3, 0, 1, 2))
        for w, b in (("W1", "b1"), ("W2", "b2")):
            z = jax.nn.relu(lax.conv_general_dilated(a, p[w], (1, 1), "VALID") + p[b].reshape(1, -1, 1, 1))
            a = lax.reduce_window(z, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        hidden = jax.nn.relu(p["W3"] @ a.reshape(a.shape[0], -1).T + p["b3"])
        logp = jax.nn.log_softmax(p["W4"] @ hidden + p["b4"], axis=0)
        labels = y.reshape(-1)
        return -jnp.mean(logp[labels, jnp.arange(labels.shape[0])])

    def autograd_loss(self, anp: Any, p: dict, x: Any, y: Any) -> Any:
        def conv(a: Any, w: Any, b: Any) -> Any:
            c, hh, ww, m = a.shape
            f, _, k, _ = w.shape
            oh, ow = hh - k + 1, ww - k + 1
            rows = np.arange(oh)[:, None] + np.arange(k)[None, :]  # (oh, k)
            cols = np.arange(ow)[:, None] + np.arange(k)[None, :]
            win = a[:, rows[:, None, :, None], cols[None, :, None, :], :]  # (c, oh, ow, k, k, m)
            return anp.tensordot(w, win, axes=([1, 2, 3], [0, 3, 4])) + b  # (f, oh, ow, m)

        def pool(a: Any) -> Any:
            f, hh, ww, m = a.shape
            return anp.max(anp.max(anp.reshape(a, (f, hh // 2, 2, ww // 2, 2, m)), axis=4), axis=2)

        a = x
        for w, b in (("W1", "b1"), ("W2", "b2")):
            a = pool(anp.maximum(conv(a, p[w], p[b]), 0.0))
        m = x.shape[-1]
        hidden = anp.maximum(anp.dot(p["W3"], anp.reshape(a, (-1, m))) + p["b3"], 0.0)
        s = anp.dot(p["W4"], hidden) + p["b4"]
        s = s - anp.max(s, axis=0, keepdims=True)
        logp = s - anp.log(anp.sum(anp.exp(s), axis=0, keepdims=True))
        labels = np.asarray(y).reshape(-1)
        return -anp.sum(logp[labels, np.arange(m)]) / m
