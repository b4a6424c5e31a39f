"""The implementations under comparison, each optional except the hand-written reference.

An :class:`Implementation` builds, for one case and one draw of data, a
:class:`Prepared` runner: ``call()`` computes the loss and every parameter
gradient (that is what is timed), ``to_numpy`` turns its result into a float and
NumPy arrays for the agreement check. Frameworks that are not installed
(torch, jax, autograd are the ``bench`` extra) are simply absent from
:func:`available`; so is the generated module when ``codegen`` cannot load it.
An implementation that cannot take part in one case raises :class:`NotApplicableError`
from its build: it is left out of that case, with the reason (every implementation takes
part in every case today; the generated JAX module of the LSTM is a ``lax.scan`` each way).
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Case
from .reference import make_reference

REFERENCE = "numpy"


class NotApplicableError(Exception):
    """Raised by a build when its implementation cannot take part in this case; the message says why."""


@dataclass
class Prepared:
    """A ready-to-time computation of loss and gradients for one case."""

    call: Callable[[], Any]
    to_numpy: Callable[[Any], tuple[float, dict[str, Any]]]
    compile_seconds: float | None = None  # a one-off cost (JIT), reported apart
    threads: str = ""


@dataclass(frozen=True)
class Implementation:
    """One contender: how to build it, and whether tracemalloc sees its memory."""

    name: str
    label: str
    modules: tuple[str, ...]  # what must be importable for it to take part
    build: Callable[[Case, dict, dict], Prepared]
    numpy_memory: bool  # its arrays are NumPy's, whose allocations tracemalloc traces


def blas_threads() -> int:
    """Threads NumPy's BLAS uses (threadpoolctl), so frameworks can be given the same."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 1
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else 1


def _identity_result(out: tuple[float, dict]) -> tuple[float, dict[str, Any]]:
    return float(out[0]), dict(out[1])


# --- the two NumPy implementations ------------------------------------------------------


def _build_reference(case: Case, params: dict, inputs: dict) -> Prepared:
    f = make_reference(case)
    return Prepared(lambda: f(params, inputs), _identity_result, threads=f"BLAS {blas_threads()}")


def generated_module(case: Case) -> Any:
    """The module ``codegen`` generates from the case's spec, loaded from a file."""
    codegen = importlib.import_module("backprop.codegen")
    return codegen.load_module(case.spec)


def _build_generated(case: Case, params: dict, inputs: dict) -> Prepared:
    f = generated_module(case).loss_and_grads
    return Prepared(lambda: f(params, inputs), _identity_result, threads=f"BLAS {blas_threads()}")


# --- PyTorch eager -----------------------------------------------------------------------


def _build_torch(case: Case, params: dict, inputs: dict, threads: int | None = None) -> Prepared:
    """PyTorch eager with ``threads`` intra-op threads (default: as many as NumPy's BLAS).

    The thread count is process-wide, so each call sets it if another runner changed it.
    """
    import torch

    n = threads or blas_threads()
    torch.set_num_threads(n)
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x, y = (torch.from_numpy(inputs[k]) for k in (case.x_name, case.y_name))
    leaves = [p[k] for k in case.param_names]

    def call() -> Any:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        loss = case.torch_loss(torch, p, x, y)
        return loss, torch.autograd.grad(loss, leaves)

    def to_numpy(out: Any) -> tuple[float, dict[str, Any]]:
        loss, grads = out
        return loss.item(), {k: (g.item() if g.ndim == 0 else g.numpy()) for k, g in zip(case.param_names, grads)}

    return Prepared(call, to_numpy, threads=f"torch {n}")


def _build_torch_1(case: Case, params: dict, inputs: dict) -> Prepared:
    return _build_torch(case, params, inputs, threads=1)


# --- JAX: jit(value_and_grad) ------------------------------------------------------------


def _build_jax(case: Case, params: dict, inputs: dict) -> Prepared:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    p = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
    x, y = (jnp.asarray(inputs[k]) for k in (case.x_name, case.y_name))
    f = jax.jit(jax.value_and_grad(lambda p, x, y: case.jax_loss(jax, p, x, y)))
    start = time.perf_counter()
    jax.block_until_ready(f(p, x, y))  # trace + compile + one run
    compile_seconds = time.perf_counter() - start

    def call() -> Any:
        return jax.block_until_ready(f(p, x, y))

    def to_numpy(out: Any) -> tuple[float, dict[str, Any]]:
        loss, grads = out
        return float(loss), {k: (float(g) if np.ndim(g) == 0 else np.asarray(g)) for k, g in grads.items()}

    return Prepared(call, to_numpy, compile_seconds, threads=f"XLA CPU default (intra-op pool over {os.cpu_count()} cores)")


def _generated_jax_module(case: Case) -> Any:
    """The case's module from ``codegen --backend jax`` (a spec with a loop: a ``lax.scan`` each way)."""
    return importlib.import_module("backprop").codegen.load_module(case.spec, backend="jax")


def _build_generated_jax(case: Case, params: dict, inputs: dict) -> Prepared:
    """The module ``codegen --backend jax`` generates, its jitted ``loss_and_grads`` called as a user calls it.

    Params and inputs go to the device once, as for the hand-written JAX column, so
    the two columns time the same thing: one compiled call on device arrays.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    module = _generated_jax_module(case)
    p = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
    x = {k: jnp.asarray(v) for k, v in inputs.items()}
    f = module.loss_and_grads
    start = time.perf_counter()
    jax.block_until_ready(f(p, x))  # trace + compile + one run
    compile_seconds = time.perf_counter() - start

    def call() -> Any:
        return jax.block_until_ready(f(p, x))

    def to_numpy(out: Any) -> tuple[float, dict[str, Any]]:
        loss, grads = out
        return float(loss), {k: (float(g) if np.ndim(g) == 0 else np.asarray(g)) for k, g in grads.items()}

    return Prepared(call, to_numpy, compile_seconds, threads=f"XLA CPU default (intra-op pool over {os.cpu_count()} cores)")


# --- HIPS autograd -----------------------------------------------------------------------


def _build_autograd(case: Case, params: dict, inputs: dict) -> Prepared:
    import autograd.numpy as anp
    from autograd import value_and_grad

    x, y = inputs[case.x_name], inputs[case.y_name]
    f = value_and_grad(lambda p: case.autograd_loss(anp, p, x, y))
    return Prepared(lambda: f(params), _identity_result, threads=f"BLAS {blas_threads()}")


IMPLEMENTATIONS: tuple[Implementation, ...] = (
    Implementation("generated", "generated", ("backprop.codegen",), _build_generated, numpy_memory=True),
    Implementation(REFERENCE, "hand-written NumPy", ("numpy",), _build_reference, numpy_memory=True),
    Implementation("torch", "PyTorch eager", ("torch",), _build_torch, numpy_memory=False),
    # The same, single-threaded: on a busy machine a thread pool's synchronisation can cost more
    # than small operations themselves; this row shows how much of PyTorch's time that is.
    Implementation("torch1", "PyTorch eager, 1 thread", ("torch",), _build_torch_1, numpy_memory=False),
    Implementation("jax", "JAX jit", ("jax",), _build_jax, numpy_memory=False),
    Implementation("generated_jax", "generated (JAX)", ("backprop.codegen", "jax"), _build_generated_jax,
                   numpy_memory=False),
    Implementation("autograd", "HIPS autograd", ("autograd",), _build_autograd, numpy_memory=True),
)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _generated_loadable() -> bool:
    return _importable("backprop.codegen") and callable(getattr(importlib.import_module("backprop.codegen"), "load_module", None))


def available(names: list[str] | None = None) -> list[Implementation]:
    """The implementations that can run here (optionally only ``names``), reference included."""
    chosen = [i for i in IMPLEMENTATIONS if names is None or i.name in names or i.name == REFERENCE]
    ok = []
    for impl in chosen:
        if impl.name == "generated":
            if _generated_loadable():
                ok.append(impl)
        elif all(_importable(mod) for mod in impl.modules):
            ok.append(impl)
    return ok


def by_name(name: str) -> Implementation:
    """The implementation called ``name`` (KeyError naming the known ones otherwise)."""
    for impl in IMPLEMENTATIONS:
        if impl.name == name:
            return impl
    raise KeyError(f"unknown implementation {name!r}; known: {', '.join(i.name for i in IMPLEMENTATIONS)}")
