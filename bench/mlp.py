"""Multilayer perceptrons described as a layer list, examples as columns.

The spec is what the generated module is built from; the layer list is what
the hand-written NumPy reference and the framework losses below are written
against.

The hand-written reference is written the way a careful practitioner writes a
perceptron by hand: one matrix product per layer and direction, the bias added
in place, activations applied in place on the pre-activation (which nothing
needs afterwards), the fused softmax-cross-entropy gradient ``(softmax(Z) - Y) / m``,
bias gradients as row sums, and nothing computed that no gradient needs (no
gradient for the inputs). The sigmoid is ``(1 + tanh(z/2)) / 2``, in place: it
cannot overflow for any input and costs one transcendental call per entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Case, LossAndGrads

#: Activations the layer description knows ("linear": none, the output layer of a regression).
ACTIVATIONS = ("sigmoid", "relu", "linear")
#: Losses: mean squared error over examples, or softmax cross-entropy (one-hot targets).
LOSSES = ("mse", "softmax_ce")


@dataclass(frozen=True)
class Layer:
    """``A = act(W @ A_prev + b)``, with the spec's names for ``W`` and ``b``."""

    weight: str
    bias: str
    activation: str
    scalar_bias: bool = False  # the spec declares b without brackets: a float


@dataclass(frozen=True)
class MLPCase(Case):
    """A perceptron case: the spec (bundled example name or path), dims, and layers."""

    name: str
    title: str
    spec: str
    dims: dict[str, int]
    widths: tuple[int, ...]  # input width, then each layer's output width
    layers: tuple[Layer, ...]
    loss: str
    m: int
    x_name: str = "X"
    y_name: str = "Y"
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.layers) + 1:
            raise ValueError(f"case {self.name}: {len(self.layers)} layers need {len(self.layers) + 1} widths")
        if self.loss not in LOSSES or any(layer.activation not in ACTIVATIONS for layer in self.layers):
            raise ValueError(f"case {self.name}: unknown loss or activation")

    @property
    def param_names(self) -> list[str]:
        return [n for layer in self.layers for n in (layer.weight, layer.bias)]

    def data(self, seed: int = 0, dtype: type = np.float64) -> tuple[dict, dict]:
        """Params and inputs: a fixed, reproducible draw at a sensible scale.

        Weights use He (ReLU) or Xavier (sigmoid, linear) scaling so activations
        neither saturate nor vanish through 20 layers; biases are small but
        non-zero so that their gradients are exercised too.
        """
        rng = np.random.default_rng(seed)
        params: dict = {}
        for layer, n_in, n_out in zip(self.layers, self.widths[:-1], self.widths[1:]):
            gain = 2.0 if layer.activation == "relu" else 1.0
            params[layer.weight] = (rng.standard_normal((n_out, n_in)) * np.sqrt(gain / n_in)).astype(dtype)
            bias = rng.standard_normal((n_out, 1)) * 0.1
            params[layer.bias] = float(bias[0, 0]) if layer.scalar_bias else bias.astype(dtype)
        x = rng.standard_normal((self.widths[0], self.m)).astype(dtype)
        if self.loss == "softmax_ce":
            y = np.zeros((self.widths[-1], self.m), dtype=dtype)
            y[rng.integers(0, self.widths[-1], self.m), np.arange(self.m)] = 1
        else:
            y = rng.uniform(0.0, 1.0, (self.widths[-1], self.m)).astype(dtype)
        return params, {self.x_name: x, self.y_name: y}

    def reference(self) -> LossAndGrads:
        return STRAIGHT.get(self.name) or _layer_loop(self)

    def torch_loss(self, torch: Any, p: dict, x: Any, y: Any) -> Any:
        a = x
        for layer in self.layers:
            z = p[layer.weight] @ a + p[layer.bias]
            a = torch.sigmoid(z) if layer.activation == "sigmoid" else torch.relu(z) if layer.activation == "relu" else z
        m = x.shape[1]
        if self.loss == "mse":
            return ((a - y) ** 2).sum() / m
        return -(y * torch.log_softmax(a, dim=0)).sum() / m

    def jax_loss(self, jax: Any, p: dict, x: Any, y: Any) -> Any:
        jnp, nn = jax.numpy, jax.nn
        a = x
        for layer in self.layers:
            z = p[layer.weight] @ a + p[layer.bias]
            a = nn.sigmoid(z) if layer.activation == "sigmoid" else nn.relu(z) if layer.activation == "relu" else z
        m = x.shape[1]
        if self.loss == "mse":
            return jnp.sum((a - y) ** 2) / m
        return -jnp.sum(y * nn.log_softmax(a, axis=0)) / m

    def autograd_loss(self, anp: Any, p: dict, x: Any, y: Any) -> Any:
        a = x
        for layer in self.layers:
            z = anp.dot(p[layer.weight], a) + p[layer.bias]
            if layer.activation == "sigmoid":
                a = 0.5 * (anp.tanh(0.5 * z) + 1.0)
            elif layer.activation == "relu":
                a = anp.maximum(z, 0.0)
            else:
                a = z
        m = x.shape[1]
        if self.loss == "mse":
            return anp.sum((a - y) ** 2) / m
        s = a - anp.max(a, axis=0, keepdims=True)
        return -anp.sum(y * (s - anp.log(anp.sum(anp.exp(s), axis=0, keepdims=True)))) / m


# --- the hand-written reference --------------------------------------------------------


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    """Apply the activation to ``z`` in place (z is a fresh product, owned here)."""
    if activation == "sigmoid":
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
    elif activation == "relu":
        np.maximum(z, 0.0, out=z)
    return z


def _through_activation(g: np.ndarray, a: np.ndarray, activation: str) -> None:
    """Turn dL/dA into dL/dZ in place, from the layer's output A alone."""
    if activation == "sigmoid":
        t = 1.0 - a
        t *= a
        g *= t
    elif activation == "relu":
        g *= a > 0


def _mse(a: np.ndarray, y: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """L = ||A - Y||² / m and dL/dA = 2 (A - Y) / m, sharing the difference."""
    d = a - y
    loss = float(np.vdot(d, d)) / m
    d *= 2.0 / m
    return loss, d


def _softmax_ce(z: np.ndarray, y: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """L = -Σ Y ⊙ log softmax(Z) / m and the fused dL/dZ = (softmax(Z) - Y) / m.

    ``z`` (the logits, owned here) is shifted by its column maxima in place.
    """
    z -= z.max(axis=0, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=0, keepdims=True)
    loss = -float(np.vdot(y, z - np.log(s))) / m
    e /= s
    e -= y
    e *= 1.0 / m
    return loss, e


def cs230_two_layer(params: dict, inputs: dict) -> tuple[float, dict[str, Any]]:
    """The CS230 network written out line by line, as one writes a two-layer net by hand.

    On this tiny network (3 -> 4 -> 1) call overhead is most of the cost, and the
    generic layer loop below would add about a microsecond of its own: the
    baseline would then flatter every other implementation.
    """
    x, y = inputs["X"], inputs["y"]
    w1, b1, w2, b2 = params["W1"], params["b1"], params["w2"], params["b2"]
    m = x.shape[1]
    a = w1 @ x
    a += b1
    _activate(a, "sigmoid")
    d = w2 @ a
    d += b2
    d -= y
    loss = float(np.vdot(d, d)) / m
    d *= 2.0 / m
    dw2 = d @ a.T
    db2 = float(d.sum())
    g = w2.T @ d
    t = 1.0 - a
    t *= a
    g *= t
    return loss, {"W1": g @ x.T, "b1": g.sum(axis=1, keepdims=True), "w2": dw2, "b2": db2}


#: Cases written out by hand rather than through the layer loop.
STRAIGHT: dict[str, LossAndGrads] = {"cs230_two_layer": cs230_two_layer}


def _layer_loop(case: MLPCase) -> LossAndGrads:
    """``loss_and_grads(params, inputs)`` for any layer list, written by hand."""
    layers = case.layers
    x_name, y_name = case.x_name, case.y_name
    loss_fn = _mse if case.loss == "mse" else _softmax_ce

    def loss_and_grads(params: dict, inputs: dict) -> tuple[float, dict[str, Any]]:
        x = inputs[x_name]
        m = x.shape[1]
        acts = [x]
        for layer in layers:
            z = params[layer.weight] @ acts[-1]
            z += params[layer.bias]
            acts.append(_activate(z, layer.activation))
        loss, g = loss_fn(acts[-1], inputs[y_name], m)
        grads: dict[str, Any] = {}
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            _through_activation(g, acts[i + 1], layer.activation)
            grads[layer.weight] = g @ acts[i].T
            grads[layer.bias] = float(g.sum()) if layer.scalar_bias else g.sum(axis=1, keepdims=True)
            if i:
                g = params[layer.weight].T @ g
        return loss, grads

    return loss_and_grads
