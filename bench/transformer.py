"""A pre-norm transformer block, the bundled ``transformer_block`` spec, as a benchmark case.

The spec: ``X[d, T, m]`` (features, positions, examples last), layer norm over
the ``d`` features of each token (biased variance, eps 1e-5) with gain ``g1`` and
shift ``c1``; ``a`` heads of width ``k`` with ``Wq, Wk, Wv[a, k, d]`` and
``Wo[d, a, k]``, softmax over the key positions, logits scaled by ``1/sqrt(k)``,
no mask; the residual; a second layer norm; a ReLU MLP of width ``f``
(``W1[f, d]``, ``b1``, ``W2[d, f]``, ``b2``); the residual again; and
``loss = mean((O - Y)**2)`` (``F.mse_loss``).

The hand-written reference (:func:`reference_loss_and_grads`) is the 1.0
baseline, written the way an expert writes this block by hand in NumPy:

- tokens are reordered once to ``(m, T)`` (a strided view of ``X``: every
  other array is then C-ordered by construction), so each ``(head, example)``
  slice of Q, K, V is a BLAS-ready ``k × T`` matrix and the attention products
  are single ``np.matmul`` calls over the ``(a, m)`` batch, each writing
  straight into its destination through ``out=`` -- no copy of a head anywhere;
- the projections are one GEMM: ``Wq, Wk, Wv`` are stacked into a
  ``3ak × d`` matrix, with ``1/sqrt(k)`` folded into the ``Wq`` rows (the scale
  then costs ``a·k·d`` multiplications instead of ``a·m·T²``); backward, one
  GEMM gives all three weight gradients and one gives ``dN1``;
- softmax in place on the logits; its backward fused,
  ``dS = P ⊙ (dP − Σ_s dP ⊙ P)``, in place on ``dP``;
- layer norm forward keeps ``x̂`` and ``1/σ``, backward in the compact form
  ``dx = (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)) / σ`` with ``dx̂ = g ⊙ dN``,
  in place; the first layer norm's input gradient is not computed at all (it
  would be ``dX``: no gradient for inputs);
- buffers whose value is dead are reused through ``out=`` (``dH`` into ``F``,
  ``dN2`` into ``N2``, ``dZ`` into ``Z``, ``dN1`` into ``N1``): fewer fresh
  pages to fault in on every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Case, LossAndGrads

#: The spec's layer-norm epsilon.
EPS = 1e-5
#: Params in the spec's order.
PARAMS = ("g1", "c1", "Wq", "Wk", "Wv", "Wo", "g2", "c2", "W1", "b1", "W2", "b2")


@dataclass(frozen=True)
class TransformerCase(Case):
    """A transformer-block case: the spec's name and its sizes ``d, T, m, a, k, f``."""

    name: str
    title: str
    spec: str
    dims: dict[str, int]
    x_name: str = "X"
    y_name: str = "Y"
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        missing = {"d", "T", "m", "a", "k", "f"} - set(self.dims)
        if missing:
            raise ValueError(f"case {self.name}: dims {', '.join(sorted(missing))} missing")

    @property
    def m(self) -> int:
        return self.dims["m"]

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
            "g1": normal((d, 1, 1), 0.1, 1.0), "c1": normal((d, 1, 1), 0.1),
            "Wq": normal((a, k, d), d**-0.5), "Wk": normal((a, k, d), d**-0.5), "Wv": normal((a, k, d), d**-0.5),
            "Wo": normal((d, a, k), (a * k) ** -0.5),
            "g2": normal((d, 1, 1), 0.1, 1.0), "c2": normal((d, 1, 1), 0.1),
            "W1": normal((f, d), (2 / d) ** 0.5), "b1": normal((f, 1, 1), 0.1),
            "W2": normal((d, f), f**-0.5), "b2": normal((d, 1, 1), 0.1),
        }
        inputs = {self.x_name: normal((d, t, m), 1.0), self.y_name: normal((d, t, m), 1.0)}
        return params, inputs

    def reference(self) -> LossAndGrads:
        x_name, y_name = self.x_name, self.y_name
        return lambda params, inputs: reference_loss_and_grads(params, inputs[x_name], inputs[y_name])

    def torch_loss(self, torch: Any, p: dict, x: Any, y: Any) -> Any:
        """Idiomatic PyTorch: tokens-major, ``F.layer_norm``, ``F.linear``, fused attention."""
        fn = torch.nn.functional
        d, t, m = x.shape
        a, k, _ = p["Wq"].shape
        xt = x.permute(2, 1, 0)  # (m, T, d): features last, as layer_norm and linear want them
        n1 = fn.layer_norm(xt, (d,), p["g1"].reshape(d), p["c1"].reshape(d), eps=EPS)

        def heads(w: Any) -> Any:  # (a, k, d) weights -> (m, a, T, k)
            return fn.linear(n1, w.reshape(a * k, d)).reshape(m, t, a, k).transpose(1, 2)

        z = fn.scaled_dot_product_attention(heads(p["Wq"]), heads(p["Wk"]), heads(p["Wv"]))  # scale 1/sqrt(k)
        r = xt + fn.linear(z.transpose(1, 2).reshape(m, t, a * k), p["Wo"].reshape(d, a * k))
        n2 = fn.layer_norm(r, (d,), p["g2"].reshape(d), p["c2"].reshape(d), eps=EPS)
        h = torch.relu(fn.linear(n2, p["W1"], p["b1"].reshape(-1)))
        o = r + fn.linear(h, p["W2"], p["b2"].reshape(d))
        return fn.mse_loss(o, y.permute(2, 1, 0))

    def jax_loss(self, jax: Any, p: dict, x: Any, y: Any) -> Any:
        return _array_loss(jax.numpy, lambda s: jax.nn.softmax(s, axis=-1), jax.nn.relu, p, x, y)

    def autograd_loss(self, anp: Any, p: dict, x: Any, y: Any) -> Any:
        def softmax(s: Any) -> Any:
            e = anp.exp(s - anp.max(s, axis=-1, keepdims=True))
            return e / anp.sum(e, axis=-1, keepdims=True)

        return _array_loss(anp, softmax, lambda z: anp.maximum(z, 0.0), p, x, y)


def _array_loss(xp: Any, softmax: Any, relu: Any, p: dict, x: Any, y: Any) -> Any:
    """The block's loss in NumPy-like array code (``jax.numpy`` or ``autograd.numpy``), tokens-major."""
    d, t, m = x.shape
    a, k, _ = p["Wq"].shape
    xt = xp.transpose(x, (2, 1, 0))  # (m, T, d)

    def norm(v: Any, g: Any, c: Any) -> Any:
        u = v - xp.mean(v, axis=-1, keepdims=True)
        return u / xp.sqrt(xp.mean(u * u, axis=-1, keepdims=True) + EPS) * xp.reshape(g, (d,)) + xp.reshape(c, (d,))

    n1 = norm(xt, p["g1"], p["c1"])

    def heads(w: Any) -> Any:  # (a, k, d) weights -> (m, a, T, k)
        return xp.transpose(xp.reshape(n1 @ xp.reshape(w, (a * k, d)).T, (m, t, a, k)), (0, 2, 1, 3))

    q, key, v = heads(p["Wq"]), heads(p["Wk"]), heads(p["Wv"])
    z = softmax(q @ xp.swapaxes(key, -1, -2) / np.sqrt(k)) @ v  # (m, a, T, k)
    r = xt + xp.reshape(xp.transpose(z, (0, 2, 1, 3)), (m, t, a * k)) @ xp.reshape(p["Wo"], (d, a * k)).T
    n2 = norm(r, p["g2"], p["c2"])
    h = relu(n2 @ p["W1"].T + xp.reshape(p["b1"], (-1,)))
    o = r + h @ p["W2"].T + xp.reshape(p["b2"], (d,))
    return xp.mean((o - xp.transpose(y, (2, 1, 0))) ** 2)


# --- the hand-written reference --------------------------------------------------------


def _normalize(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x̂`` as a fresh C-ordered ``(d, tokens)`` matrix, and ``1/σ``: layer norm over axis 0, biased variance."""
    u = np.subtract(v, v.mean(axis=0), order="C").reshape(v.shape[0], -1)
    rstd = np.einsum("dn,dn->n", u, u)
    rstd *= 1.0 / u.shape[0]
    rstd += EPS
    np.sqrt(rstd, out=rstd)
    np.divide(1.0, rstd, out=rstd)
    u *= rstd
    return u, rstd


def reference_loss_and_grads(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Loss and the 12 param gradients of the block, forward and backward written out by hand.

    Internally every activation is a ``(features, tokens)`` matrix with tokens
    ordered ``(m, T)``; heads are ``(a, m, k, T)`` views of the stacked
    projections. Inputs and params are only read.
    """
    g1, c1, wq, wk, wv, wo, g2, c2, w1, b1, w2, b2 = (params[name] for name in PARAMS)
    d, t, m = x.shape
    a, k, _ = wq.shape
    f = w1.shape[0]
    n, ak = m * t, a * k
    scale = 1.0 / np.sqrt(k)
    xt = x.transpose(0, 2, 1)  # (d, m, T), a view

    # --- forward
    xh1, rstd1 = _normalize(xt)
    n1 = xh1 * g1.reshape(d, 1)
    n1 += c1.reshape(d, 1)
    w_qkv = np.empty((3, a, k, d), dtype=wq.dtype)
    np.multiply(wq, scale, out=w_qkv[0])
    w_qkv[1], w_qkv[2] = wk, wv
    w_qkv = w_qkv.reshape(3 * ak, d)
    qkv = w_qkv @ n1  # (3ak, n): the scaled Q, then K, then V
    q, kk, v = (h.transpose(0, 2, 1, 3) for h in qkv.reshape(3, a, k, m, t))  # (a, m, k, T) views
    p = np.matmul(q.transpose(0, 1, 3, 2), kk)  # logits (a, m, T, T), already scaled
    p -= p.max(axis=-1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    z = np.empty((ak, n), dtype=p.dtype)  # attention output, rows (head, k) as Wo wants them
    np.matmul(v, p.transpose(0, 1, 3, 2), out=z.reshape(a, k, m, t).transpose(0, 2, 1, 3))
    wo2 = wo.reshape(d, ak)
    r = wo2 @ z
    r.reshape(d, m, t).__iadd__(xt)
    xh2, rstd2 = _normalize(r)
    n2 = xh2 * g2.reshape(d, 1)
    n2 += c2.reshape(d, 1)
    hid = w1 @ n2
    hid += b1.reshape(f, 1)
    np.maximum(hid, 0.0, out=hid)
    e = w2 @ hid
    e += b2.reshape(d, 1)
    e += r
    e.reshape(d, m, t).__isub__(y.transpose(0, 2, 1))
    loss = float(np.vdot(e, e)) / e.size
    del r

    # --- backward
    do = e
    do *= 2.0 / do.size
    db2 = do.sum(axis=1).reshape(d, 1, 1)
    dw2 = do @ hid.T
    active = hid > 0
    dh = np.matmul(w2.T, do, out=hid)  # ReLU output is dead: its buffer takes dH
    dh *= active
    del active
    db1 = dh.sum(axis=1).reshape(f, 1, 1)
    dw1 = dh @ n2.T
    dn2 = np.matmul(w1.T, dh, out=n2)
    del dh, hid
    dg2 = np.einsum("dn,dn->d", dn2, xh2).reshape(d, 1, 1)
    dc2 = dn2.sum(axis=1).reshape(d, 1, 1)
    dr = dn2  # layer-norm backward, in place: dR = (dx̂ - mean dx̂ - x̂ mean(dx̂ x̂)) / σ + dO
    dr *= g2.reshape(d, 1)
    proj = np.einsum("dn,dn->n", dr, xh2)
    proj *= 1.0 / d
    dr -= dr.mean(axis=0)
    xh2 *= proj
    dr -= xh2
    dr *= rstd2
    dr += do
    del do, e, xh2
    dwo = (dr @ z.T).reshape(d, a, k)
    dz = np.matmul(wo2.T, dr, out=z).reshape(a, k, m, t).transpose(0, 2, 1, 3)  # (a, m, k, T)
    del dr, dn2, n2
    dqkv = np.empty((3 * ak, n), dtype=dz.dtype)
    dq, dk, dv = (h.transpose(0, 2, 1, 3) for h in dqkv.reshape(3, a, k, m, t))
    np.matmul(dz, p, out=dv)
    ds = np.matmul(dz.transpose(0, 1, 3, 2), v)  # dP (a, m, T, T)
    ds -= np.einsum("amts,amts->amt", ds, p)[..., None]  # fused softmax backward, in place
    ds *= p
    np.matmul(kk, ds.transpose(0, 1, 3, 2), out=dq)  # gradient of the scaled Q
    np.matmul(q, ds, out=dk)
    del ds, dz, z, p, q, kk, v, qkv
    dw = (dqkv @ n1.T).reshape(3, a, k, d)
    dw[0] *= scale
    dn1 = np.matmul(w_qkv.T, dqkv, out=n1)
    dg1 = np.einsum("dn,dn->d", dn1, xh1).reshape(d, 1, 1)
    dc1 = dn1.sum(axis=1).reshape(d, 1, 1)
    return loss, {
        "g1": dg1, "c1": dc1, "Wq": dw[0], "Wk": dw[1], "Wv": dw[2], "Wo": dwo,
        "g2": dg2, "c2": dc2, "W1": dw1, "b1": db1, "W2": dw2, "b2": db2,
    }
