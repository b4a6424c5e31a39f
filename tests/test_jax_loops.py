"""The JAX backend of a loop (``backprop codegen lstm --backend jax``): the forward one ``lax.scan`` over
t, the backward one reversed ``lax.scan`` over the derived step adjoint (not ``jax.grad``), ``truncate=k``
a static argument. For every bundled loop its loss and gradients equal the NumPy module's in float64 to
1e-9 at T = 1, 2, 7 with and without truncation; it is pure, jit-able (compiled once per shape), keeps
float32 float32, and runs with the examples sharded over four simulated devices.

float64 needs ``jax_enable_x64``: the ``x64`` fixture turns it on for one test and restores it. Several
devices need ``XLA_FLAGS`` before jax is imported: that test runs in a subprocess. jax is in the test
extra: CI fails here rather than skip when it is missing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI"):
    import jax  # CI installs the test extra, which has jax: a missing jax is a failure there
else:
    jax = pytest.importorskip("jax", reason="jax is not installed (pip install '.[jax]'; CI fails instead of skipping)")
import jax.numpy as jnp  # noqa: E402
from helpers import LOOP_EXAMPLES  # noqa: E402

from backprop.cli import main  # noqa: E402
from backprop.codegen.emit import generate  # noqa: E402
from backprop.codegen.loader import load_source  # noqa: E402
from backprop.codegen.points import random_point, resolve_dims  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "codegen_lstm_jax.py.txt"
TOL = 1e-9

_MODULES: dict[tuple[str, str], object] = {}


def module(name: str, backend: str):
    if (name, backend) not in _MODULES:
        _MODULES[name, backend] = load_source(generate(name, backend=backend), f"{name}_{backend}_loop")
    return _MODULES[name, backend]


def point(name: str, steps: int, seed: int, **dims: int):
    """Params and inputs at random for T = ``steps`` (the dims not given drawn at random too)."""
    rng = np.random.default_rng(seed)
    np_mod = module(name, "numpy")
    return random_point(np_mod, resolve_dims(np_mod, {"T": steps, **dims}, rng), rng)


def close(got, want, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, NumPy's {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL * scale, err_msg=what)


@pytest.mark.parametrize("name", LOOP_EXAMPLES)
def test_same_loss_and_gradients_as_the_numpy_module(name, x64):
    np_mod, jax_mod = module(name, "numpy"), module(name, "jax")
    for steps in (1, 2, 7):
        params, inputs = point(name, steps, steps)
        whole = None
        for truncate in (None, 1, 3):
            loss, grads = np_mod.loss_and_grads({n: np.copy(v) for n, v in params.items()}, inputs, truncate=truncate)
            jloss, jgrads = jax_mod.loss_and_grads(params, inputs, truncate=truncate)
            assert isinstance(jloss, jax.Array) and jloss.shape == () and jloss.dtype == jnp.float64
            close(jloss, loss, f"{name} T={steps} truncate={truncate}: loss")
            assert sorted(jgrads) == sorted(grads)
            for p in grads:
                assert jgrads[p].dtype == jnp.float64, p
                close(jgrads[p], grads[p], f"{name} T={steps} truncate={truncate}: d{p}")
            whole = whole or grads
            if steps == 7 and truncate == 1:  # the cut is real: one-step windows change the gradients
                assert any(not np.allclose(grads[p], whole[p]) for p in grads), name


def test_backward_is_the_derivation_scanned_not_autodiff():
    """One lax.scan forward, one reversed backward over the derived statements; nothing unrolled, no
    Python loop, no jax.grad / vjp; the traced code calls jnp, never np; the NumPy loop's math comments."""
    src = generate("lstm", backend="jax")
    numpy_src = generate("lstm")
    core = src[src.index("\n\n\ndef ", src.index("_CACHE = ")): src.index("\ndef init_params(")]
    assert core.count("jax.lax.scan(") == 2 and core.count("reverse=True") == 1
    assert "jnp.arange(T)" in core and "for t in range" not in core
    assert not re.search(r"jax\.(grad|vjp|value_and_grad|linearize)", src)
    assert not re.search(r"(?<![\w.])np\.", core.replace("np.integer", "")), "a NumPy call in the traced code"
    assert "out=" not in src and "_weak(" not in src and ".append(" not in core
    assert not re.search(r"^\s+\w+ [-+*/]= ", core, re.M), "an in-place update in the traced code"
    comments = [line.strip() for line in numpy_src.splitlines() if line.strip().startswith("# ∂L/∂")]
    assert comments and [c for c in comments if c in src] == comments
    assert "#     backprop codegen lstm --backend jax -o lstm.py" in src


def test_jit_compiles_once_per_shape_and_is_pure(x64):
    """jax.jit(loss_and_grads): new values at the same shapes reuse the compiled call, a new T compiles
    once more; forward then backward(**cache) under one jit give the same numbers; truncate is static."""
    jax_mod = module("gru", "jax")
    jitted = jax.jit(jax_mod.loss_and_grads, static_argnames="truncate")
    want = {}
    for seed in (0, 1):
        params, inputs = point("gru", 4, seed, m=3, d=2, h=3)
        want[seed] = jax_mod.loss_and_grads(params, inputs)
        loss, grads = jitted(params, inputs)
        close(loss, want[seed][0], "jitted loss")
        for p in grads:
            close(grads[p], want[seed][1][p], f"jitted d{p}")
    assert jitted._cache_size() == 1
    jitted(*point("gru", 5, 0, m=3, d=2, h=3))
    assert jitted._cache_size() == 2
    params, inputs = point("gru", 4, 0, m=3, d=2, h=3)

    @jax.jit
    def step(values):
        loss, cache = jax_mod.forward(*(values[n] for n in jax_mod.SHAPES))
        return loss, jax_mod.backward(**cache, truncate=2)

    loss, grads = step(params | inputs)
    _, want_t = jax_mod.loss_and_grads(params, inputs, truncate=2)
    close(jnp.reshape(loss, ()), want[0][0], "forward+backward jitted")
    for p in want_t:
        close(jnp.reshape(grads[p], np.shape(want_t[p])), want_t[p], f"forward+backward jitted d{p}")
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="truncate is a number of steps, at least 1"):
            jax_mod.loss_and_grads(params, inputs, truncate=bad)


@pytest.mark.parametrize("x64_on", [False, True])
def test_float32_in_float32_out(x64_on, request):
    """float32 params and inputs give a float32 loss and gradients, with or without jax_enable_x64 (the
    carries start in the step's dtype)."""
    if x64_on:
        request.getfixturevalue("x64")
    elif jax.config.read("jax_enable_x64"):
        pytest.skip("jax_enable_x64 is on in this process")
    jax_mod = module("rnn_tanh", "jax")
    params, inputs = point("rnn_tanh", 3, 0)
    f32 = {n: np.asarray(v, np.float32) for n, v in params.items()}
    x32 = {n: np.asarray(v, np.float32) for n, v in inputs.items()}
    loss, grads = jax_mod.loss_and_grads(f32, x32, truncate=2)
    assert loss.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads.values())
    want, wgrads = module("rnn_tanh", "numpy").loss_and_grads(params, inputs, truncate=2)
    assert float(loss) == pytest.approx(want, rel=1e-4)
    for p in wgrads:
        np.testing.assert_allclose(np.asarray(grads[p]), wgrads[p], rtol=1e-3, atol=1e-4, err_msg=p)


SHARDED = """
import json
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from backprop.codegen.emit import generate
from backprop.codegen.loader import load_source
from backprop.codegen.points import random_point, resolve_dims

np_mod = load_source(generate("lstm"), "lstm_np")
mod = load_source(generate("lstm", backend="jax"), "lstm_jax")
rng = np.random.default_rng(0)
params, inputs = random_point(np_mod, resolve_dims(np_mod, {"m": 8, "T": 5}, rng), rng)
mesh = Mesh(np.array(jax.devices()), ("batch",))

def spec(name, value):
    axis = mod.EXAMPLE_AXES.get(name)
    return PartitionSpec(*["batch" if a == axis else None for a in range(np.ndim(value))])

split = {k: jax.device_put(v, NamedSharding(mesh, spec(k, v))) for k, v in inputs.items()}
whole = {k: jax.device_put(v, NamedSharding(mesh, PartitionSpec())) for k, v in params.items()}
out = {"devices": jax.device_count(), "diff": {}, "numpy": {},
       "shards": sorted({tuple(s.data.shape) for s in split["X"].addressable_shards}),
       "on": len({s.device for s in split["X"].addressable_shards})}
for truncate in (None, 3):
    loss, grads = mod.loss_and_grads(whole, split, truncate=truncate)
    loss1, grads1 = mod.loss_and_grads(params, inputs, truncate=truncate)
    nloss, ngrads = np_mod.loss_and_grads(params, inputs, truncate=truncate)
    out["diff"][str(truncate)] = max([abs(float(loss) - float(loss1))]
                                     + [float(np.max(np.abs(np.asarray(grads[p]) - np.asarray(grads1[p])))) for p in grads])
    out["numpy"][str(truncate)] = max([abs(float(loss) - nloss)]
                                      + [float(np.max(np.abs(np.asarray(grads[p]) - ngrads[p]))) for p in grads])
print(json.dumps(out))
"""


def test_sharded_over_four_devices_gives_the_gradients_of_one():
    """The LSTM with its examples axis split over 4 simulated CPU devices (params replicated): the loss
    and gradients of one device, with and without truncation, to 1e-12."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SHARDED)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["devices"] == 4 and out["on"] == 4 and out["shards"] == [[2, 5, out["shards"][0][2]]]
    for truncate, diff in out["diff"].items():
        assert diff <= 1e-12, truncate
        assert out["numpy"][truncate] <= 1e-9, truncate


def test_golden():
    """The emitted JAX module for lstm, for reviewers (BACKPROP_UPDATE_GOLDEN=1 rewrites it)."""
    text = generate("lstm", backend="jax")
    if os.environ.get("BACKPROP_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_cli_codegen_writes_a_loop_module(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["codegen", "rnn_seq2seq", "--backend", "jax", "-o", "out.py"]) == 0
    text = (tmp_path / "out.py").read_text(encoding="utf-8")
    assert text == generate("rnn_seq2seq", output="out.py", backend="jax")
    assert "jax.lax.scan(" in text
