"""The training step under JAX: the generated loss_and_grads and the optimizer's pure ``step``,
compiled together with ``jax.jit``, the examples axis sharded over a mesh of devices.

:class:`JaxStepper` is what :func:`backprop.train.loop.train` drives when the module is a JAX
module (``backprop train --backend jax``). The mesh has one axis, ``examples``, over ``devices``
devices; every mini-batch is laid out with a ``NamedSharding`` that splits each input along its
examples axis (``EXAMPLE_AXES``), and the params and optimizer state are replicated. XLA then
inserts the sums across devices that the parameter gradients need (``dW = δ Aᵀ`` over columns
held by different devices is an all-reduce), so every device holds the same updated params.

Arrays are built with ``jax.make_array_from_callback`` from host data every process holds whole:
on one host that is a ``device_put``; across hosts (after ``jax.distributed.initialize()``) each
process supplies the slices its own devices hold, and the step is the same program.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np


class DeviceError(ValueError):
    """The devices asked for do not exist, or cannot share the batches evenly."""


def device_hint(devices: int) -> str:
    """How to get more devices where there are none: XLA simulates them on the CPU."""
    return f"on CPU set XLA_FLAGS=--xla_force_host_platform_device_count={devices}"


def check_device_count(devices: int) -> None:
    """DeviceError unless JAX sees at least ``devices`` devices (across every process)."""
    import jax

    if devices < 1:
        raise DeviceError(f"--devices must be at least 1, got {devices}")
    have = jax.device_count()
    if devices > have:
        platform = jax.devices()[0].platform
        hint = f"; {device_hint(devices)}" if platform == "cpu" else ""
        raise DeviceError(f"--devices {devices} but JAX sees {have} {platform.upper()} "
                          f"device{'s' if have != 1 else ''}{hint}")


def check_devices(devices: int, batch_size: int, m: int | None) -> None:
    """DeviceError unless ``devices`` exist and split every mini-batch of an epoch evenly:
    the batches of ``batch_size`` examples and the last, ``m mod batch_size`` (``m`` None: the data
    has no examples axis, so there is nothing to split)."""
    check_device_count(devices)
    if devices == 1:
        return
    if m is None:
        raise DeviceError(f"--devices {devices}: no input has an examples axis, so there is nothing to split "
                          "across devices")
    batch = min(batch_size, m)
    if batch % devices:
        raise DeviceError(f"--devices {devices} does not divide the batch size {batch}: each device takes an "
                          f"equal share of every batch; pick a --batch-size that is a multiple of {devices}")
    last = m % batch
    if last % devices:
        raise DeviceError(f"--devices {devices}: the last batch of every epoch has {last} examples ({m} mod {batch}), "
                          f"which {devices} devices cannot share evenly; pick a --batch-size that divides {m}, "
                          f"or a number of examples that is a multiple of {devices}")


class JaxStepper:
    """The params and optimizer state on the devices, and the compiled step and evaluation.

    ``step(batch)`` runs one mini-batch: the loss and gradient, then the optimizer's update
    (skipped, as the NumPy trainer skips it, when the loss is not finite); it returns the loss and
    every gradient's norm as Python floats. ``evaluate(data)`` is the loss and gradient norms on
    ``data`` without updating. ``result()`` is the params as NumPy arrays.
    """

    def __init__(self, module: ModuleType, params: Mapping[str, Any], state: Any, lr: float,
                 axes: Mapping[str, int], devices: int = 1) -> None:
        import jax
        import jax.numpy as jnp
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self.jax, self.axes, self.devices = jax, dict(axes), devices
        self.mesh = Mesh(np.array(jax.devices()[:devices]), ("examples",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self._split = {k: NamedSharding(self.mesh, PartitionSpec(*([None] * a), "examples")) for k, a in axes.items()}

        def norms(grads: Mapping[str, Any]) -> dict[str, Any]:
            return {k: jnp.sqrt(jnp.sum(jnp.square(g))) for k, g in grads.items()}

        def train_step(params: Any, state: Any, batch: Any) -> tuple[Any, Any, Any, Any]:
            loss, grads = module.loss_and_grads(params, batch)
            new_params, new_state = module.step(params, grads, state, lr=lr)
            finite = jnp.isfinite(loss)  # a diverged step leaves params and state as they were

            def keep(new: Any, old: Any) -> Any:
                return jnp.where(finite, new, old)

            return (jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_state, state), loss, norms(grads))

        def finish(loss: Any, grads: Any) -> tuple[Any, Any]:
            return loss, norms(grads)

        rep = self.replicated
        self.module = module
        self._step = jax.jit(train_step, out_shardings=(rep, rep, rep, rep), donate_argnums=(0, 1))
        self._finish = jax.jit(finish, out_shardings=(rep, rep))
        self.params = self._put(params, {})
        self.state = self._put(state, {})

    def _put(self, tree: Any, split: Mapping[str, Any]) -> Any:
        """Host arrays (a dict, or a pytree when nothing is split) as global arrays: an input in
        ``split`` divided along its examples axis, everything else replicated."""
        jax = self.jax

        def put(value: Any, sharding: Any) -> Any:
            value = np.asarray(value)
            return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

        if split:
            return {k: put(v, split.get(k, self.replicated)) for k, v in tree.items()}
        return jax.tree.map(lambda v: put(v, self.replicated), tree)

    def _inputs(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` on the devices: split along the examples axis when the devices share it evenly."""
        split = {k: s for k, s in self._split.items()
                 if k in data and np.shape(data[k])[self.axes[k]] % self.devices == 0}
        return self._put(data, split)

    def step(self, batch: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        self.params, self.state, loss, norms = self._step(self.params, self.state, self._inputs(batch))
        return _floats(loss, norms)

    def evaluate(self, data: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        """Called on all the training data (and the held-out) before training and after every epoch:
        the module's loss_and_grads is called as users call it, outside any jit, so it checks the
        labels' range (on the devices) of every example the batches are drawn from."""
        loss, grads = self.module.loss_and_grads(self.params, self._inputs(data))
        return _floats(*self._finish(loss, grads))

    def result(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.params.items()}


def _floats(loss: Any, norms: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    return float(loss), {k: float(v) for k, v in norms.items()}


def is_jax_module(module: ModuleType) -> bool:
    """Whether a generated module computes with JAX (it imports jax.numpy as jnp)."""
    return getattr(getattr(module, "jnp", None), "__name__", "") == "jax.numpy"
