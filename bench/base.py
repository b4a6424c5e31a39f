"""What every benchmark case provides, whatever kind of network it is.

A case is a spec (what the generated module is built from) plus the same
network written by hand for NumPy and for each framework. The harness and the
implementations only ever go through this interface, so a new kind of
network (a layer-list perceptron in :mod:`bench.mlp`, a transformer block in
:mod:`bench.transformer`) is a new subclass, not a branch in the harness. The
agreement check (every implementation against the hand-written reference,
before any timing) is what ties the spec to the hand-written descriptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: ``loss_and_grads(params, inputs) -> (loss, {param name: gradient})``, as the generated modules do it.
LossAndGrads = Callable[[dict, dict], tuple[float, dict[str, Any]]]


class Case(ABC):
    """One benchmark case. Subclasses are frozen dataclasses that define these fields."""

    name: str
    title: str
    spec: str  # a bundled example's name or a path, for ``codegen.load_module``
    dims: dict[str, int]
    m: int  # examples per call
    x_name: str
    y_name: str

    @property
    @abstractmethod
    def param_names(self) -> list[str]:
        """The spec's params, in its order (the order gradients are reported in)."""

    @abstractmethod
    def data(self, seed: int = 0, dtype: type = np.float64) -> tuple[dict, dict]:
        """``(params, inputs)``: a fixed, reproducible draw at a scale where every gradient matters."""

    @abstractmethod
    def reference(self) -> LossAndGrads:
        """The hand-written NumPy loss and gradients: the 1.0 baseline of the timings."""

    @abstractmethod
    def torch_loss(self, torch: Any, p: dict, x: Any, y: Any) -> Any:
        """The loss as a PyTorch expression of the tensors ``p`` (leaves), ``x`` and ``y``."""

    @abstractmethod
    def jax_loss(self, jax: Any, p: dict, x: Any, y: Any) -> Any:
        """The loss as a JAX expression, traced under ``jax.jit(jax.value_and_grad(...))``."""

    @abstractmethod
    def autograd_loss(self, anp: Any, p: dict, x: Any, y: Any) -> Any:
        """The loss written with ``autograd.numpy``, differentiated by HIPS autograd."""


@dataclass(frozen=True)
class SizedCase(Case):
    """A case whose network is fixed by its spec and sized by ``dims`` (examples ``m`` among them): the
    fields every such case has, and the check that the dims its hand-written versions read are given."""

    name: str
    title: str
    spec: str
    dims: dict[str, int]
    x_name: str = "X"
    y_name: str = "Y"
    note: str = field(default="", compare=False)
    #: the dims the case's hand-written versions read
    NEEDS: ClassVar[frozenset[str]] = frozenset({"m"})

    def __post_init__(self) -> None:
        missing = self.NEEDS - set(self.dims)
        if missing:
            raise ValueError(f"case {self.name}: dims {', '.join(sorted(missing))} missing")

    @property
    def m(self) -> int:  # type: ignore[override]
        return self.dims["m"]
