"""The benchmark cases: each a spec, its dims, and the same network written by hand.

Five kinds of case share one interface (:class:`bench.base.Case`): perceptrons
described by a layer list (:mod:`bench.mlp`), a transformer block
(:mod:`bench.transformer`), a Gaussian's likelihood (:mod:`bench.gaussian`), a
convolutional network (:mod:`bench.lenet`) and a recurrent one (:mod:`bench.lstm`).
Each kind draws its own data and writes its own hand-written reference and
framework losses; the harness never asks which kind it has.
"""

from __future__ import annotations

from pathlib import Path

from .base import Case
from .gaussian import GaussianCase
from .lenet import LeNetCase
from .lstm import LSTMCase
from .mlp import Layer, MLPCase
from .transformer import TransformerCase

SPECS = Path(__file__).resolve().parent / "specs"


def _stack(n_layers: int, activation: str) -> tuple[Layer, ...]:
    return tuple(Layer(f"W{i}", f"b{i}", activation) for i in range(1, n_layers + 1))


def cs230_two_layer(m: int = 64) -> MLPCase:
    """CS230 example 4: 3 -> 4 sigmoid -> 1, squared error (call overhead dominates)."""
    return MLPCase(
        "cs230_two_layer", "CS230 two-layer sigmoid 3→4→1, squared error", "two_layer_sigmoid",
        {"n": 3, "k": 4, "m": m}, (3, 4, 1),
        (Layer("W1", "b1", "sigmoid"), Layer("w2", "b2", "linear", scalar_bias=True)), "mse", m, "X", "y",
    )


def mnist_mlp(m: int = 128, h: int = 256) -> MLPCase:
    """The bundled MNIST-shaped perceptron: 784 -> 256 ReLU -> 10, softmax cross-entropy."""
    return MLPCase(
        "mnist_mlp", f"784→{h} ReLU→10, softmax CE", "mlp_softmax", {"h": h, "m": m}, (784, h, 10),
        (Layer("W1", "b1", "relu"), Layer("W2", "b2", "linear")), "softmax_ce", m,
    )


def wide_mlp(m: int = 512, h: int = 1024) -> MLPCase:
    """784 -> 1024 ReLU -> 1024 ReLU -> 10, softmax cross-entropy (matrix products dominate)."""
    return MLPCase(
        "wide_mlp", f"784→{h} ReLU→{h} ReLU→10, softmax CE", str(SPECS / "mlp2_relu.spec"),
        {"n": 784, "h": h, "c": 10, "m": m}, (784, h, h, 10),
        (Layer("W1", "b1", "relu"), Layer("W2", "b2", "relu"), Layer("W3", "b3", "linear")), "softmax_ce", m,
    )


def deep_sigmoid(m: int = 64, h: int = 64) -> MLPCase:
    """20 sigmoid layers of width 64, squared error (many small steps)."""
    return MLPCase(
        "deep_sigmoid", f"20 sigmoid layers of width {h}, squared error", str(SPECS / "sigmoid20.spec"),
        {"h": h, "m": m}, (h,) * 21, _stack(20, "sigmoid"), "mse", m,
    )


def transformer_block(t: int = 64, d: int = 128, a: int = 4, f: int = 512, m: int = 16) -> TransformerCase:
    """The bundled pre-norm transformer block: batched attention products, layer norms, a ReLU MLP."""
    return TransformerCase(
        "transformer_block", f"pre-norm transformer block, T={t} d={d} {a} heads f={f} m={m}, squared error",
        "transformer_block", {"d": d, "T": t, "m": m, "a": a, "k": d // a, "f": f},
    )


def gaussian_full_cov(d: int = 64, m: int = 1024) -> GaussianCase:
    """The bundled Gaussian NLL with a full learned covariance: an inverse, a log-determinant, d²m products."""
    return GaussianCase(
        "gaussian_full_cov", f"Gaussian NLL, full covariance A Aᵀ + εI, d={d} m={m}", "gaussian_full_cov",
        {"d": d, "m": m},
    )


def lenet(m: int = 64, c: int = 10) -> LeNetCase:
    """The bundled LeNet: two im2col convolutions, max pooling, two dense layers, integer labels."""
    return LeNetCase("lenet", f"LeNet, 1×28×28 images, conv 5×5 ×6 and ×16, max pool, m={m}, softmax CE on labels",
                     "lenet", {"m": m, "c": c})


def lstm(t: int = 50, d: int = 64, h: int = 128, m: int = 32) -> LSTMCase:
    """The bundled LSTM (nn.LSTM's step) over T steps: backpropagation through time, squared error on every step."""
    return LSTMCase("lstm", f"LSTM, T={t} d={d} h={h} m={m}, squared error on every step", "lstm",
                    {"m": m, "T": t, "d": d, "h": h})


def default_cases() -> list[MLPCase]:
    """The four perceptron cases, in the order they are reported (the smoke tests shrink their layer lists)."""
    return [cs230_two_layer(), mnist_mlp(), wide_mlp(), deep_sigmoid()]


def reported_cases() -> list[Case]:
    """Every case of the benchmark, in the order they are reported: the perceptrons, the transformer, the
    Gaussian, LeNet, the LSTM."""
    return [*default_cases(), transformer_block(), gaussian_full_cov(), lenet(), lstm()]


def tiny_case() -> MLPCase:
    """A seconds-fast case for the smoke test: the CS230 network with m = 8."""
    return cs230_two_layer(m=8)


#: Every case by name: the reported ones and the smoke test's tiny one.
CASES: dict[str, Case] = {c.name: c for c in reported_cases()} | {"tiny": tiny_case()}
