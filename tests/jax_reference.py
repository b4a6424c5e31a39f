"""Every bundled example's loss written by hand in ``jax.numpy``, as a JAX user would write it
(``jax.nn`` activations and softmaxes, integer targets indexed, ``jax.scipy.stats`` for the
Gaussian), not generated from the spec: ``jax.grad`` of these is the independent reference the
generated JAX modules are held to (tests/test_jax_reference.py).

Each function takes ``(params, inputs)`` -- dicts of arrays named as the spec names them, laid out
as the spec lays them out -- and returns the scalar loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.stats import multivariate_normal

Arrays = Mapping[str, Any]


def _cross_entropy(logits: Any, onehot: Any, axis: int = 0) -> Any:
    """Mean softmax cross-entropy over the examples, the classes along ``axis``."""
    return -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits, axis=axis), axis=axis))


def _cross_entropy_int(logits: Any, labels: Any) -> Any:
    """The same with integer targets: logits c×m, labels m."""
    logp = jax.nn.log_softmax(logits, axis=0)
    return -jnp.mean(logp[labels, jnp.arange(labels.shape[0])])


def _layer_norm(x: Any, gain: Any, shift: Any) -> Any:
    return gain * (x - x.mean(axis=-1, keepdims=True)) / jnp.sqrt(x.var(axis=-1, keepdims=True) + 1e-5) + shift


def deep_relu(p: Arrays, x: Arrays) -> Any:
    a = x["X"]
    for i in (1, 2, 3):
        a = jax.nn.relu(p[f"W{i}"] @ a + p[f"b{i}"])
    return _cross_entropy(p["W4"] @ a + p["b4"], x["Y"])


def embedding(p: Arrays, x: Arrays) -> Any:
    tokens = jnp.einsum("dv,vtm->dtm", p["E"], x["X"])  # one-hot tokens times the table: their vectors
    return _cross_entropy(p["W"] @ tokens.mean(axis=1) + p["b"], x["Y"])


def embedding_bag(p: Arrays, x: Arrays) -> Any:
    bags = p["E"].T[x["x"]].mean(axis=0)  # (T, m, d) looked up, averaged over the T tokens: m×d
    return _cross_entropy_int(p["W"] @ bags.T + p["b"], x["y"][0])


def gated_concat(p: Arrays, x: Arrays) -> Any:
    """A GRU cell, its input and hidden weights kept apart."""
    xs, h = x["X"], x["H"]
    r = jax.nn.sigmoid(p["Wr"] @ xs + p["Ur"] @ h + p["br"])
    z = jax.nn.sigmoid(p["Wz"] @ xs + p["Uz"] @ h + p["bz"])
    n = jnp.tanh(p["Wn"] @ xs + p["bn"] + r * (p["Un"] @ h + p["cn"]))
    h_new = (1 - z) * n + z * h
    return jnp.sum((h_new - x["Y"]) ** 2) / (2 * xs.shape[1])


def gaussian_full_cov(p: Arrays, x: Arrays) -> Any:
    a = p["A"]
    cov = a @ a.T + 0.001 * jnp.eye(a.shape[0])
    return -jnp.mean(multivariate_normal.logpdf(x["X"].T, p["mu"][:, 0], cov))


def logistic_regression(p: Arrays, x: Arrays) -> Any:
    z = p["w"] @ x["X"] + p["b"]
    return jnp.mean(jax.nn.softplus(z) - x["y"] * z)  # binary cross-entropy on the logits


def maxout(p: Arrays, x: Arrays) -> Any:
    pieces = jnp.einsum("khn,nm->khm", p["W1"], x["X"]) + p["b1"]
    return _cross_entropy(p["W2"] @ pieces.max(axis=0) + p["b2"], x["Y"])


def mlp_rows(p: Arrays, x: Arrays) -> Any:
    hidden = jax.nn.relu(x["X"] @ p["W1"] + p["b1"])
    return _cross_entropy(hidden @ p["W2"] + p["b2"], x["Y"], axis=1)


def mlp_softmax(p: Arrays, x: Arrays) -> Any:
    hidden = jax.nn.relu(p["W1"] @ x["X"] + p["b1"])
    return _cross_entropy(p["W2"] @ hidden + p["b2"], x["Y"])


def multihead_attention(p: Arrays, x: Arrays) -> Any:
    xs = x["X"]
    q, k, v = (jnp.einsum("hkd,dtm->mhtk", p[w], xs) for w in ("Wq", "Wk", "Wv"))
    scores = q @ jnp.swapaxes(k, -1, -2) / jnp.sqrt(q.shape[-1])  # m×a×T×T
    heads = jax.nn.softmax(scores, axis=-1) @ v  # m×a×T×k
    out = jnp.einsum("dhk,mhtk->dtm", p["Wo"], heads)
    return jnp.sum((out - x["Y"]) ** 2) / (2 * xs.shape[2])


def multivariate_regression(p: Arrays, x: Arrays) -> Any:
    return jnp.mean((p["w"] @ x["X"] + p["b"] - x["y"]) ** 2)


def self_attention(p: Arrays, x: Arrays) -> Any:
    xs = jnp.moveaxis(x["X"], 2, 0)  # m×d×T
    q, k, v = (jnp.swapaxes(p[w] @ xs, 1, 2) for w in ("Wq", "Wk", "Wv"))  # m×T×d
    attn = jax.nn.softmax(q @ jnp.swapaxes(k, 1, 2) / jnp.sqrt(q.shape[-1]), axis=-1)
    out = jnp.moveaxis(attn @ v, 0, 2)  # T×d×m
    return jnp.sum((jnp.swapaxes(out, 0, 1) - x["Y"]) ** 2) / (2 * xs.shape[0])


def sigmoid_neuron(p: Arrays, x: Arrays) -> Any:
    return jnp.mean((jax.nn.sigmoid(p["w"] @ x["x"] + p["b"]) - x["y"]) ** 2)


def svm_hinge(p: Arrays, x: Arrays) -> Any:
    """CS231n's multiclass SVM loss: margins against the correct class, which itself counts 0."""
    scores = p["W"] @ x["X"] + p["b"]
    labels, cols = x["y"][0], jnp.arange(scores.shape[1])
    margins = jnp.maximum(0, scores - scores[labels, cols] + 1).at[labels, cols].set(0)
    return jnp.sum(margins) / scores.shape[1]


def transformer_block(p: Arrays, x: Arrays) -> Any:
    """A pre-norm block: layer norm, multi-head attention and a residual; layer norm, an MLP and a residual."""
    xs = x["X"]
    n1 = _layer_norm(xs, p["g1"], p["c1"])
    q, k, v = (jnp.einsum("mtd,dhk->mhtk", n1, p[w]) for w in ("Wq", "Wk", "Wv"))
    attn = jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / jnp.sqrt(q.shape[-1]), axis=-1)
    r = xs + jnp.einsum("mhtk,hkd->mtd", attn @ v, p["Wo"])
    n2 = _layer_norm(r, p["g2"], p["c2"])
    out = r + jax.nn.relu(n2 @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    return jnp.mean((out - x["Y"]) ** 2)


def two_layer_sigmoid(p: Arrays, x: Arrays) -> Any:
    yhat = p["w2"] @ jax.nn.sigmoid(p["W1"] @ x["X"] + p["b1"]) + p["b2"]
    return jnp.mean((yhat - x["y"]) ** 2)


def two_linear_layers(p: Arrays, x: Arrays) -> Any:
    yhat = p["w2"] @ (p["W1"] @ x["X"] + p["b1"]) + p["b2"]
    return jnp.mean((yhat - x["y"]) ** 2)


def _pool(a: Any, reduce: Callable[[Any, Any], Any], start: float) -> Any:
    """2×2 windows at stride 2 of an NCHW batch, reduced with lax.reduce_window."""
    return jax.lax.reduce_window(a, start, reduce, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def lenet(p: Arrays, x: Arrays) -> Any:
    """lax.conv_general_dilated on NCHW images (OIHW filters, as the spec stores them), max pooling by
    lax.reduce_window, flattened per example, two dense layers, cross-entropy on integer labels."""
    a = jnp.transpose(x["X"], (3, 0, 1, 2))
    for w, b in (("W1", "b1"), ("W2", "b2")):
        z = jax.lax.conv_general_dilated(a, p[w], (1, 1), "VALID") + p[b].reshape(1, -1, 1, 1)
        a = _pool(jax.nn.relu(z), jax.lax.max, -jnp.inf)
    hidden = jax.nn.relu(p["W3"] @ a.reshape(a.shape[0], -1).T + p["b3"])
    return _cross_entropy_int(p["W4"] @ hidden + p["b4"], x["y"][0])


def conv_stride_pad(p: Arrays, x: Arrays) -> Any:
    a = jnp.transpose(x["X"], (3, 0, 1, 2))
    z = jax.lax.conv_general_dilated(a, p["W1"], (2, 2), ((1, 1), (1, 1))) + p["b1"].reshape(1, -1, 1, 1)
    pooled = _pool(jax.nn.relu(z), jax.lax.add, 0.0) / 4
    out = p["W2"] @ pooled.reshape(pooled.shape[0], -1).T + p["b2"]
    return jnp.sum((out - x["Y"]) ** 2) / out.shape[1]


def conv1d_text(p: Arrays, x: Arrays) -> Any:
    tokens = jnp.transpose(p["E"][:, x["x"]], (2, 0, 1))  # d×T×m looked up, as (m, d, T)
    z = jax.lax.conv_general_dilated(tokens, p["W"], (1,), ((1, 1),)) + p["b"].reshape(1, -1, 1)
    features = jax.nn.relu(z).max(axis=2)  # m×h: the largest response over time
    return _cross_entropy_int(p["U"] @ features.T, x["y"][0])


def univariate_regression(p: Arrays, x: Arrays) -> Any:
    return jnp.mean((p["w"] * x["x"] + p["b"] - x["y"]) ** 2)


#: example name -> its loss by hand
REFERENCES: dict[str, Callable[[Arrays, Arrays], Any]] = {
    f.__name__: f for f in (
        conv1d_text, conv_stride_pad, deep_relu, embedding, embedding_bag, gated_concat, gaussian_full_cov,
        lenet, logistic_regression, maxout, mlp_rows, mlp_softmax, multihead_attention, multivariate_regression,
        self_attention, sigmoid_neuron, svm_hinge, transformer_block, two_layer_sigmoid, two_linear_layers, univariate_regression,
    )
}
