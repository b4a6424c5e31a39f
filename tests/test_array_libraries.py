"""The generated NumPy module on other NumPy-compatible arrays, through NumPy's dispatch protocols.

What docs/array_libraries.md states is checked here: Dask arrays as inputs give the
NumPy module's loss (a Python float: ``float()`` computes it) and gradients (lazy
Dask arrays, or NumPy arrays where Dask falls back to NumPy for a function it lacks)
equal to NumPy's; the transformer block's in-place ``np.matmul(..., out=...)`` is
refused by Dask, and computing the inputs first is the way. dask is in the test
extra: in CI a missing dask fails here rather than skipping. CuPy needs a GPU: its
test skips, with the reason, when cupy is not installed.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import backprop
from backprop.codegen.emit import generate
from backprop.codegen.gradcheck import random_point, resolve_dims
from backprop.codegen.loader import load_source

if os.environ.get("CI"):
    import dask.array as da  # CI installs the test extra, which has dask: a missing dask is a failure there
else:
    da = pytest.importorskip("dask.array", reason="dask is not installed (pip install dask; CI fails instead of skipping)")

#: Examples whose generated code Dask refuses: the error and what it says. The convolution's im2col
#: hands back NumPy arrays, and a NumPy gradient multiplied in place by a Dask mask (``dZ *= (A > 0)``)
#: is an ``out=`` Dask will not write into. A loop computes each step into its slot of a NumPy array
#: (``np.tanh(Z_t, out=H_steps[t])``), which Dask refuses likewise: stepping through time, nothing
#: stays lazy anyway.
_LOOP = (NotImplementedError, "out parameter is not fully supported")
NEEDS_NUMPY = {"transformer_block": (TypeError, "out"), "rnn_tanh": _LOOP, "rnn_seq2seq": _LOOP, "gru": _LOOP,
               "lstm": _LOOP,
               "conv_stride_pad": (NotImplementedError, "out parameter is not fully supported")}

_MODULES: dict[str, object] = {}


def module(name: str):
    if name not in _MODULES:
        _MODULES[name] = load_source(generate(name), f"{name}_dask")
    return _MODULES[name]


def point(name: str):
    mod = module(name)
    rng = np.random.default_rng(0)
    return random_point(mod, resolve_dims(mod, None, rng), rng)


def lazy(inputs: dict) -> dict:
    """The inputs as Dask arrays of two chunks along their last axis where it has two entries."""
    return {k: (da.from_array(v, chunks=(*v.shape[:-1], max(1, -(-v.shape[-1] // 2)))) if isinstance(v, np.ndarray)
                and v.ndim else v) for k, v in inputs.items()}


@pytest.mark.parametrize("name", [n for n in backprop.example_names() if n not in NEEDS_NUMPY])
def test_dask_inputs_give_numpys_loss_and_gradients(name: str) -> None:
    mod = module(name)
    params, inputs = point(name)
    want_loss, want = mod.loss_and_grads(params, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Dask's "not implemented, computed by NumPy" notice
        loss, grads = mod.loss_and_grads(params, lazy(inputs))
        assert isinstance(loss, float)  # float() in loss_and_grads computes the loss's graph
        assert loss == pytest.approx(want_loss, rel=1e-12, abs=1e-14)
        assert set(grads) == set(want)
        for k, g in grads.items():
            assert isinstance(g, (da.Array, np.ndarray, float)), (k, type(g))
            np.testing.assert_allclose(np.asarray(g), want[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_dask_gradients_stay_lazy_until_computed() -> None:
    """A dense network's gradients are Dask arrays: nothing is computed for them until asked."""
    mod = module("mlp_softmax")
    params, inputs = point("mlp_softmax")
    _, grads = mod.loss_and_grads(params, lazy(inputs))
    assert all(isinstance(g, da.Array) for g in grads.values())
    computed = da.compute(*grads.values())
    assert all(isinstance(g, np.ndarray) for g in computed)


@pytest.mark.parametrize("name", sorted(NEEDS_NUMPY))
def test_what_dask_refuses_and_computing_the_inputs_first(name: str) -> None:
    mod = module(name)
    params, inputs = point(name)
    want_loss, _ = mod.loss_and_grads(params, inputs)
    error, says = NEEDS_NUMPY[name]
    with pytest.raises(error, match=says):
        mod.loss_and_grads(params, lazy(inputs))
    computed = {k: (v.compute() if isinstance(v, da.Array) else v) for k, v in lazy(inputs).items()}
    assert mod.loss_and_grads(params, computed)[0] == pytest.approx(want_loss, rel=1e-12)


def test_cupy_inputs_on_a_gpu() -> None:
    cupy = pytest.importorskip("cupy", reason="cupy is not installed: it needs a CUDA GPU (pip install cupy-cuda12x)")
    mod = module("mlp_softmax")
    params, inputs = point("mlp_softmax")
    want_loss, want = mod.loss_and_grads(params, inputs)
    on_gpu = {k: cupy.asarray(v) for k, v in params.items()}, {k: cupy.asarray(v) for k, v in inputs.items()}
    loss, grads = mod.loss_and_grads(*on_gpu)
    assert isinstance(loss, float) and loss == pytest.approx(want_loss, rel=1e-9)
    for k, g in grads.items():
        assert isinstance(g, cupy.ndarray), k
        np.testing.assert_allclose(cupy.asnumpy(g), want[k], rtol=1e-9, atol=1e-12, err_msg=k)
