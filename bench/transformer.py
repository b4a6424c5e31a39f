"""A pre-norm transformer block, the bundled ``transformer_block`` spec, as a benchmark case.

The spec, batch first as PyTorch writes it: ``X[m, T, d]`` (examples,
positions, features), layer norm over the ``d`` features of each token (biased
variance, eps 1e-5) with gain ``g1`` and shift ``c1`` (``[1, 1, d]``); ``a``
heads of width ``k`` with ``Wq, Wk, Wv[d, a, k]`` and ``Wo[a, k, d]``, softmax
over the key positions, logits scaled by ``1/sqrt(k)``, no mask; the residual; a
second layer norm; a ReLU MLP of width ``f`` (``W1[d, f]``, ``b1[1, 1, f]``,
``W2[f, d]``, ``b2[1, 1, d]``); the residual again; and
``loss = mean((O - Y)**2)`` (``F.mse_loss``).

The hand-written reference (:func:`reference_loss_and_grads`) is the 1.0
baseline, written the way an expert writes this block by hand in NumPy:

- batch first is the natural layout: the tokens are the rows of a C-ordered
  ``(m·T, d)`` matrix, a free reshape of ``X``, and every weight is already a
  ``(fan-in, fan-out)`` matrix (``Wq`` is ``d × ak``, ``Wo`` is ``ak × d``);
- the projections are one GEMM: ``Wq, Wk, Wv`` are stacked into a
  ``d × 3ak`` matrix, with ``1/sqrt(k)`` folded into the ``Wq`` columns (the
  scale then costs ``d·a·k`` multiplications instead of ``m·a·T²``); each
  ``(example, head)`` slice of Q, K, V is then a ``T × k`` view with a
  contiguous last axis, so the attention products are single ``np.matmul``
  calls over the ``(m, a)`` batch on views, the output written straight into
  its ``(m·T, ak)`` destination through ``out=`` -- no copy of a head anywhere;
- each layer norm's gain and shift are folded into the weights of the product
  that follows (``N @ W = x̂ @ (g ⊙ W) + c @ W``), so ``N1`` and ``N2`` are never
  formed; backward, the one GEMM ``x̂ᵀ dZ`` gives the weight gradient
  (``g ⊙ x̂ᵀdZ + c·colsum(dZ)``) and ``dg, dc`` come from ``d × fan-out``
  matrices; with no gradient for the input ``X``, ``dN1`` is never computed;
- softmax in place on the logits; its backward fused,
  ``dS = P ⊙ (dP − Σ_s dP ⊙ P)``, in place on ``dP``;
- the second layer norm's backward in the compact form
  ``dx = (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)) / σ``, in place;
- buffers whose value is dead are reused through ``out=`` (``dH`` into the
  ReLU output, ``dx̂2`` into ``R``, ``dZ`` into ``Z``): fewer fresh pages to
  fault in on every call. Gradients come back in the params' shapes
  (``dWq`` is ``d × a × k``) and dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import LossAndGrads, SizedCase

#: The spec's layer-norm epsilon.
EPS = 1e-5
#: Params in the spec's order.
PARAMS = ("g1", "c1", "Wq", "Wk", "Wv", "Wo", "g2", "c2", "W1", "b1", "W2", "b2")


@dataclass(frozen=True)
class TransformerCase(SizedCase):
    """A transformer-block case: the spec's name and its sizes ``d, T, m, a, k, f``."""

    NEEDS = frozenset({"d", "T", "m", "a", "k", "f"})

    @property
    def param_names(self) -> list[str]:
        return list(PARAMS)

    def data(self, seed: int = 0, dtype: type = np.float64) -> tuple[dict, dict]:
        """Params and inputs at the scale of a block in training.

        Projections have variance 1/fan-in (He for the ReLU layer), so the
        logits are of order one and the softmax neither saturates nor is
        uniform; the layer-norm gains are 1 ± 0.1 and every shift and bias is
        small but non-zero, so that every gradient is exercised.
        """
        d, t, m, a, k, f = (self.dims[n] for n in ("d", "T", "m", "a", "k", "f"))
        rng = np.random.default_rng(seed)

        def normal(shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
            return (mean + std * rng.standard_normal(shape)).astype(dtype)

        params = {
            "g1": normal((1, 1, d), 0.1, 1.0), "c1": normal((1, 1, d), 0.1),
            "Wq": normal((d, a, k), d**-0.5), "Wk": normal((d, a, k), d**-0.5), "Wv": normal((d, a, k), d**-0.5),
            "Wo": normal((a, k, d), (a * k) ** -0.5),
            "g2": normal((1, 1, d), 0.1, 1.0), "c2": normal((1, 1, d), 0.1),
            "W1": normal((d, f), (2 / d) ** 0.5), "b1": normal((1, 1, f), 0.1),
            "W2": normal((f, d), f**-0.5), "b2": normal((1, 1, d), 0.1),
        }
        inputs = {self.x_name: normal((m, t, d), 1.0), self.y_name: normal((m, t, d), 1.0)}
        return params, inputs

    def reference(self) -> LossAndGrads:
        x_name, y_name = self.x_name, self.y_name
        return lambda params, inputs: reference_loss_and_grads(params, inputs[x_name], inputs[y_name])

    def torch_loss(self, torch: Any, p: dict, x: Any, y: Any) -> Any:
        """Idiomatic PyTorch, batch first: ``F.layer_norm``, ``@``, fused attention, ``F.mse_loss``."""
        fn = torch.nn.functional
        m, t, d = x.shape
        _, a, k = p["Wq"].shape
        n1 = fn.layer_norm(x, (d,), p["g1"].reshape(d), p["c1"].reshape(d), eps=EPS)

        def heads(w: Any) -> Any:  # (d, a, k) weights -> (m, a, T, k)
            return (n1 @ w.reshape(d, a * k)).reshape(m, t, a, k).transpose(1, 2)

        z = fn.scaled_dot_product_attention(heads(p["Wq"]), heads(p["Wk"]), heads(p["Wv"]))  # scale 1/sqrt(k)
        r = x + z.transpose(1, 2).reshape(m, t, a * k) @ p["Wo"].reshape(a * k, d)
        n2 = fn.layer_norm(r, (d,), p["g2"].reshape(d), p["c2"].reshape(d), eps=EPS)
        h = torch.relu(n2 @ p["W1"] + p["b1"].reshape(-1))
        o = r + h @ p["W2"] + p["b2"].reshape(d)
        return fn.mse_loss(o, y)

    def jax_loss(self, jax: Any, p: dict, x: Any, y: Any) -> Any:
        return _array_loss(jax.numpy, lambda s: jax.nn.softmax(s, axis=-1), jax.nn.relu, p, x, y)

    def autograd_loss(self, anp: Any, p: dict, x: Any, y: Any) -> Any:
        def softmax(s: Any) -> Any:
            e = anp.exp(s - anp.max(s, axis=-1, keepdims=True))
            return e / anp.sum(e, axis=-1, keepdims=True)

        return _array_loss(anp, softmax, lambda z: anp.maximum(z, 0.0), p, x, y)


def _array_loss(xp: Any, softmax: Any, relu: Any, p: dict, x: Any, y: Any) -> Any:
    """The block's loss in NumPy-like array code (``jax.numpy`` or ``autograd.numpy``), batch first."""
    m, t, d = x.shape
    _, a, k = p["Wq"].shape

    def norm(v: Any, g: Any, c: Any) -> Any:
        u = v - xp.mean(v, axis=-1, keepdims=True)
        return u / xp.sqrt(xp.mean(u * u, axis=-1, keepdims=True) + EPS) * g + c

    n1 = norm(x, p["g1"], p["c1"])

    def heads(w: Any) -> Any:  # (d, a, k) weights -> (m, a, T, k)
        return xp.transpose(xp.reshape(n1 @ xp.reshape(w, (d, a * k)), (m, t, a, k)), (0, 2, 1, 3))

    q, key, v = heads(p["Wq"]), heads(p["Wk"]), heads(p["Wv"])
    z = softmax(q @ xp.swapaxes(key, -1, -2) / np.sqrt(k)) @ v  # (m, a, T, k)
    r = x + xp.reshape(xp.transpose(z, (0, 2, 1, 3)), (m, t, a * k)) @ xp.reshape(p["Wo"], (a * k, d))
    n2 = norm(r, p["g2"], p["c2"])
    h = relu(n2 @ p["W1"] + p["b1"])
    o = r + h @ p["W2"] + p["b2"]
    return xp.mean((o - y) ** 2)


# --- the hand-written reference --------------------------------------------------------


def _normalize(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x̂`` as a fresh ``(tokens, d)`` matrix, and ``1/σ`` as a ``(tokens, 1)`` column: layer norm over
    the features of each token (the last, contiguous axis), biased variance."""
    u = v - v.mean(axis=1, keepdims=True)
    rstd = np.einsum("nd,nd->n", u, u)[:, None]
    rstd *= 1.0 / u.shape[1]
    rstd += EPS
    np.sqrt(rstd, out=rstd)
    np.divide(1.0, rstd, out=rstd)
    u *= rstd
    return u, rstd


def reference_loss_and_grads(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Loss and the 12 param gradients of the block, forward and backward written out by hand.

    Internally every activation is a C-ordered ``(tokens, features)`` matrix,
    tokens ordered ``(m, T)`` as in ``X``; heads are ``(m, a, T, k)`` views of
    the stacked projections. Each layer norm's gain and shift are folded into
    the weights of the product that follows it. Inputs and params are only read.
    """
    g1, c1, wq, wk, wv, wo, g2, c2, w1, b1, w2, b2 = (params[name] for name in PARAMS)
    m, t, d = x.shape
    _, a, k = wq.shape
    f = w1.shape[1]
    n, ak = m * t, a * k
    scale = 1.0 / float(np.sqrt(k))  # a Python float: float32 stays float32
    g1, c1, g2, c2 = (v.reshape(d, 1) for v in (g1, c1, g2, c2))

    # --- forward
    w_qkv = np.empty((d, 3, ak), dtype=wq.dtype)  # columns: the scaled Wq, then Wk, then Wv
    np.multiply(wq.reshape(d, ak), scale, out=w_qkv[:, 0])
    w_qkv[:, 1], w_qkv[:, 2] = wk.reshape(d, ak), wv.reshape(d, ak)
    w_qkv = w_qkv.reshape(d, 3 * ak)
    xh1, _ = _normalize(x.reshape(n, d))
    qkv = xh1 @ (g1 * w_qkv)  # N1 @ W = x̂1 @ (g1 ⊙ W) + c1 @ W: N1 is never formed
    qkv += c1.T @ w_qkv
    q, kk, v = (h.transpose(0, 2, 1, 3) for h in qkv.reshape(m, t, 3, a, k).transpose(2, 0, 1, 3, 4))  # (m, a, T, k)
    p = np.matmul(q, kk.transpose(0, 1, 3, 2))  # logits (m, a, T, T), already scaled
    p -= p.max(axis=-1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    z = np.empty((n, ak), dtype=p.dtype)  # attention output, columns (head, k) as Wo wants them
    zh = z.reshape(m, t, a, k).transpose(0, 2, 1, 3)
    np.matmul(p, v, out=zh)
    wo2 = wo.reshape(ak, d)
    r = z @ wo2
    r += x.reshape(n, d)
    xh2, rstd2 = _normalize(r)
    w1g = g2 * w1  # the same folding: N2 @ W1 + b1 = x̂2 @ (g2 ⊙ W1) + (c2 @ W1 + b1)
    hid = xh2 @ w1g
    hid += c2.T @ w1 + b1.reshape(1, f)
    np.maximum(hid, 0.0, out=hid)
    e = hid @ w2
    e += b2.reshape(d)
    e += r
    e -= y.reshape(n, d)
    loss = float(np.vdot(e, e)) / e.size

    # --- backward
    do = e
    do *= 2.0 / do.size
    db2 = do.sum(axis=0)
    dw2 = hid.T @ do
    active = hid > 0
    dh = np.matmul(do, w2.T, out=hid)  # ReLU output is dead: its buffer takes dH
    dh *= active
    del active
    db1 = dh.sum(axis=0)
    gw1 = xh2.T @ dh  # x̂2ᵀ dH: dW1 = g2 ⊙ gw1 + c2 db1ᵀ, dg2 = rowsum(gw1 ⊙ W1), dc2 = W1 db1
    dg2 = np.einsum("df,df->d", gw1, w1)
    dc2 = w1 @ db1
    dw1 = gw1
    dw1 *= g2
    dw1 += c2 * db1
    dr = np.matmul(dh, w1g.T, out=r)  # dx̂2 = dN2 ⊙ g2; R's buffer is free since E took R in
    del dh, hid
    proj = np.einsum("nd,nd->n", dr, xh2)[:, None]  # layer-norm backward, in place:
    proj *= 1.0 / d  # dR = (dx̂ - mean dx̂ - x̂ mean(dx̂ x̂)) / σ + dO
    dr -= dr.mean(axis=1, keepdims=True)
    xh2 *= proj
    dr -= xh2
    dr *= rstd2
    dr += do
    del do, e, xh2
    dwo = (z.T @ dr).reshape(a, k, d)
    dz = np.matmul(dr, wo2.T, out=z).reshape(m, t, a, k).transpose(0, 2, 1, 3)  # (m, a, T, k)
    del dr
    dqkv = np.empty((n, 3 * ak), dtype=dz.dtype)
    dq, dk, dv = (h.transpose(0, 2, 1, 3) for h in dqkv.reshape(m, t, 3, a, k).transpose(2, 0, 1, 3, 4))
    np.matmul(p.transpose(0, 1, 3, 2), dz, out=dv)
    ds = np.matmul(dz, v.transpose(0, 1, 3, 2))  # dP (m, a, T, T)
    ds -= np.einsum("mats,mats->mat", ds, p)[..., None]  # fused softmax backward, in place
    ds *= p
    np.matmul(ds, kk, out=dq)  # gradient of the scaled Q
    np.matmul(ds.transpose(0, 1, 3, 2), q, out=dk)
    del ds, dz, zh, z, p, q, kk, v, qkv
    gw = xh1.T @ dqkv  # as for W1: dW = g1 ⊙ gw + c1 colsum(dQKV)ᵀ; no dN1, and no dX
    cs = dqkv.sum(axis=0)
    dg1 = np.einsum("dj,dj->d", gw, w_qkv)
    dc1 = w_qkv @ cs
    dw = gw.reshape(d, 3, a, k)
    dw *= g1.reshape(d, 1, 1, 1)
    dw += c1.reshape(d, 1, 1, 1) * cs.reshape(1, 3, a, k)
    dw[:, 0] *= scale
    return loss, {
        "g1": dg1.reshape(1, 1, d), "c1": dc1.reshape(1, 1, d), "Wq": dw[:, 0], "Wk": dw[:, 1], "Wv": dw[:, 2],
        "Wo": dwo, "g2": dg2.reshape(1, 1, d), "c2": dc2.reshape(1, 1, d), "W1": dw1, "b1": db1.reshape(1, 1, f),
        "W2": dw2, "b2": db2.reshape(1, 1, d),
    }
