"""The benchmark cases: a spec, its dims, and the same network described as layers.

Every case is a multilayer perceptron, examples as columns. The spec is what the
generated module is built from; the layer list is what the hand-written and
framework implementations are written against. The agreement check (every
implementation against the hand-written reference, before any timing) is what
ties the two descriptions together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPECS = Path(__file__).resolve().parent / "specs"

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
class Case:
    """One benchmark case: the spec (bundled example name or path), dims, and layers."""

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


def _stack(n_layers: int, activation: str) -> tuple[Layer, ...]:
    return tuple(Layer(f"W{i}", f"b{i}", activation) for i in range(1, n_layers + 1))


def cs230_two_layer(m: int = 64) -> Case:
    """CS230 example 4: 3 -> 4 sigmoid -> 1, squared error (call overhead dominates)."""
    return Case(
        "cs230_two_layer", "CS230 two-layer sigmoid 3→4→1, squared error", "two_layer_sigmoid",
        {"n": 3, "k": 4, "m": m}, (3, 4, 1),
        (Layer("W1", "b1", "sigmoid"), Layer("w2", "b2", "linear", scalar_bias=True)), "mse", m, "X", "y",
    )


def mnist_mlp(m: int = 128, h: int = 256) -> Case:
    """The bundled MNIST-shaped perceptron: 784 -> 256 ReLU -> 10, softmax cross-entropy."""
    return Case(
        "mnist_mlp", f"784→{h} ReLU→10, softmax CE", "mlp_softmax", {"h": h, "m": m}, (784, h, 10),
        (Layer("W1", "b1", "relu"), Layer("W2", "b2", "linear")), "softmax_ce", m,
    )


def wide_mlp(m: int = 512, h: int = 1024) -> Case:
    """784 -> 1024 ReLU -> 1024 ReLU -> 10, softmax cross-entropy (matrix products dominate)."""
    return Case(
        "wide_mlp", f"784→{h} ReLU→{h} ReLU→10, softmax CE", str(SPECS / "mlp2_relu.spec"),
        {"n": 784, "h": h, "c": 10, "m": m}, (784, h, h, 10),
        (Layer("W1", "b1", "relu"), Layer("W2", "b2", "relu"), Layer("W3", "b3", "linear")), "softmax_ce", m,
    )


def deep_sigmoid(m: int = 64, h: int = 64) -> Case:
    """20 sigmoid layers of width 64, squared error (many small steps)."""
    return Case(
        "deep_sigmoid", f"20 sigmoid layers of width {h}, squared error", str(SPECS / "sigmoid20.spec"),
        {"h": h, "m": m}, (h,) * 21, _stack(20, "sigmoid"), "mse", m,
    )


def default_cases() -> list[Case]:
    """The four cases of the benchmark, in the order they are reported."""
    return [cs230_two_layer(), mnist_mlp(), wide_mlp(), deep_sigmoid()]


def tiny_case() -> Case:
    """A seconds-fast case for the smoke test: the CS230 network with m = 8."""
    return cs230_two_layer(m=8)


#: Every case by name: the four reported ones and the smoke test's tiny one.
CASES: dict[str, Case] = {c.name: c for c in default_cases()} | {"tiny": tiny_case()}
