"""Training under JAX (``backprop train SPEC --backend jax [--devices N]``): the optimizer's pure step
against the NumPy one, whole training runs against the NumPy trainer, and the examples axis split
over simulated devices.

Several devices on a CPU need ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before jax is
imported, so those tests run in a subprocess: this process keeps the one device every other test
sees. float64 needs ``jax_enable_x64``: the ``x64`` fixture turns it on for one test and restores it.
"""

from __future__ import annotations

import json
import os
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

from backprop.cli import main  # noqa: E402
from backprop.codegen.emit import derivation_of, generate  # noqa: E402
from backprop.codegen.loader import load_source  # noqa: E402
from backprop.codegen.step import jax_step_source, load_step  # noqa: E402
from backprop.engine.optim import OPTIMIZERS  # noqa: E402
from backprop.train.data import default_dims, synthetic  # noqa: E402
from backprop.train.loop import RUN_FILES, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def jax_step(optimizer: str):
    source = f'"""{optimizer}: init_state and step (JAX)."""\n\nimport jax.numpy as jnp\n\n\n' + jax_step_source(optimizer)
    return load_source(source, f"jax_step_{optimizer}")


# ---------------------------------------------------------------------------
# The optimizer's step, generated for JAX
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_jax_step_matches_the_numpy_step(optimizer, x64):
    """Five updates of a matrix, a column and a 0-d param, with fresh gradients each time: the pure
    JAX step and NumPy's in-place one agree to 1e-12, and the JAX step changes nothing it is given."""
    rng = np.random.default_rng(0)
    shapes = {"W": (3, 4), "b": (3, 1), "s": ()}
    np_step, jx = load_step(optimizer), jax_step(optimizer)
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    jparams = {k: jax.numpy.asarray(v) for k, v in params.items()}
    np_state, jstate = np_step.init_state(params), jx.init_state(jparams)
    step = jax.jit(jx.step)
    for _ in range(5):
        grads = {k: rng.standard_normal(s) for k, s in shapes.items()}
        before = {k: np.array(v) for k, v in jparams.items()}
        np_step.step(params, grads, np_state)
        new, jstate = step(jparams, {k: jax.numpy.asarray(g) for k, g in grads.items()}, jstate)
        for k in shapes:
            np.testing.assert_array_equal(np.asarray(jparams[k]), before[k])  # pure: the old params stand
        jparams = new
        for k in shapes:
            np.testing.assert_allclose(np.asarray(jparams[k]), params[k], rtol=1e-12, atol=1e-15, err_msg=k)
    assert int(jstate["t"]) == 5
    for letter in OPTIMIZERS[optimizer].state:
        for k in shapes:
            np.testing.assert_allclose(np.asarray(jstate[letter][k]), np_state[letter][k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_jax_step_keeps_float32(optimizer):
    jx = jax_step(optimizer)
    params = {"W": jax.numpy.ones((2, 3), jax.numpy.float32)}
    new, state = jax.jit(jx.step)(params, {"W": jax.numpy.full((2, 3), 0.5, jax.numpy.float32)}, jx.init_state(params))
    assert new["W"].dtype == jax.numpy.float32
    assert all(v["W"].dtype == jax.numpy.float32 for k, v in state.items() if k != "t")
    assert float(new["W"][0, 0]) < 1  # it stepped down the gradient


def test_generated_jax_module_carries_the_pure_step():
    text = generate("mlp_softmax", optimizer="adam", backend="jax")
    assert text.splitlines()[1].lstrip("# ") == "backprop codegen mlp_softmax --optimizer adam --backend jax -o mlp_softmax.py"
    assert "#         params, state = step(params, grads, state)\n" in text
    assert "out=" not in text and "-=" not in text  # nothing updated in place


def test_cli_codegen_jax_optimizer(capsys):
    assert main(["codegen", "logistic_regression", "--backend", "jax", "--optimizer", "rmsprop"]) == 0
    out = capsys.readouterr().out
    assert "def step(params, grads, state, lr=0.01, beta=0.9, eps=1e-08):" in out
    assert "p = p - lr * g / (jnp.sqrt(s) + eps)" in out


# ---------------------------------------------------------------------------
# Whole runs, one device: JAX against NumPy
# ---------------------------------------------------------------------------


def modules(name: str, optimizer: str):
    d = derivation_of(name)
    return (load_source(generate(d, optimizer=optimizer), f"{name}_{optimizer}_np"),
            load_source(generate(d, optimizer=optimizer, backend="jax"), f"{name}_{optimizer}_jax"), d)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("name", ["mlp_softmax", "mlp_rows", "svm_hinge"])
def test_jax_training_matches_numpy_training(name, optimizer, x64):
    """The same seed, data and optimizer: the same batches, and after three epochs the same params
    and history to 1e-9 (examples as columns, as rows, and with integer labels)."""
    np_mod, jax_mod, d = modules(name, optimizer)
    dims = default_dims(np_mod, {"m": 40})
    inputs = synthetic(d.model, d, np_mod, dims, 0).inputs
    kw = dict(optimizer=optimizer, epochs=3, batch_size=16, seed=3, progress=False, val_fraction=0.2)
    h_np, p_np = train(np_mod, inputs, dims, **kw)
    h_jax, p_jax = train(jax_mod, inputs, dims, **kw)
    assert h_jax.last < h_jax.first  # it learns
    for k in p_np:
        assert isinstance(p_jax[k], np.ndarray) and p_jax[k].dtype == np.float64
        np.testing.assert_allclose(p_jax[k], p_np[k], rtol=1e-9, atol=1e-12, err_msg=f"{name} {optimizer}: {k}")
    for a, b in ((h_jax.step_loss, h_np.step_loss), (h_jax.epoch_loss, h_np.epoch_loss),
                 (h_jax.epoch_val_loss, h_np.epoch_val_loss), (h_jax.step_norms["W" if "W" in p_np else "W1"],
                                                               h_np.step_norms["W" if "W" in p_np else "W1"])):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_jax_training_checks_the_labels(x64):
    """Inside the compiled step the labels cannot be looked at: they are checked on all the data
    before training, where the NumPy module checks them at every step."""
    np_mod, jax_mod, d = modules("svm_hinge", "sgd")
    dims = default_dims(np_mod, {"m": 16})
    inputs = synthetic(d.model, d, np_mod, dims, 0).inputs
    inputs["y"] = inputs["y"].copy()
    inputs["y"][0, 5] = dims["c"]
    for mod in (np_mod, jax_mod):
        with pytest.raises(ValueError, match=rf"y: labels must lie in 0\.\.{dims['c'] - 1}, got \[{dims['c']}\]"):
            train(mod, inputs, dims, optimizer="sgd", epochs=1, progress=False)


def test_jax_training_float64_needs_x64():
    if jax.config.read("jax_enable_x64"):
        pytest.skip("jax_enable_x64 is on in this process")
    np_mod, jax_mod, d = modules("logistic_regression", "sgd")
    dims = default_dims(np_mod, {"m": 8})
    inputs = synthetic(d.model, d, np_mod, dims, 0).inputs
    with pytest.raises(ValueError, match="jax_enable_x64"):
        train(jax_mod, inputs, dims, optimizer="sgd", epochs=1, progress=False)
    h, params = train(jax_mod, inputs, dims, optimizer="sgd", epochs=2, progress=False, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in params.values()) and h.last < h.first


def test_devices_need_a_jax_module():
    np_mod, _, d = modules("logistic_regression", "sgd")
    dims = default_dims(np_mod, {"m": 8})
    with pytest.raises(ValueError, match="needs a JAX module"):
        train(np_mod, synthetic(d.model, d, np_mod, dims, 0).inputs, dims, optimizer="sgd", progress=False, devices=2)


# ---------------------------------------------------------------------------
# The command line, in this process (one device)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["--backend", "jax", "--devices", "512"],
     "--devices 512 but JAX sees {n} CPU device{s}; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=512"),
    (["--devices", "2"], "--devices runs JAX devices: add --backend jax"),
    (["--backend", "jax", "--devices", "0"], "--devices must be at least 1, got 0"),
    (["--backend", "jax", "--coordinator", "10.0.0.1:1234"],
     "--coordinator without --num-processes, --process-id: a run on several hosts needs all three"),
    (["--backend", "jax", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
     "--process-id must lie in 0..1, got 2"),
])
def test_cli_train_refusals(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if jax.devices()[0].platform != "cpu":
        pytest.skip("the message is the CPU one")
    n = jax.device_count()
    assert main(["train", "logistic_regression", "-q", *argv]) == 2
    out, err = capsys.readouterr()
    assert err == "backprop: error: " + message.format(n=n, s="s" if n != 1 else "") + "\n"
    assert out == "" and list(tmp_path.iterdir()) == []


def test_cli_train_without_jax_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "jax", None)
    assert main(["train", "logistic_regression", "-q", "--backend", "jax"]) == 2
    assert capsys.readouterr().err == ("backprop: error: 'backprop train --backend jax' needs jax: "
                                       "pip install 'backprop-toolkit[jax]'\n")
    assert list(tmp_path.iterdir()) == []


def test_cli_train_jax_one_device_leaves_x64_as_it_was(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = jax.config.read("jax_enable_x64")
    assert main(["train", "logistic_regression", "-q", "--backend", "jax", "--epochs", "2", "--dims", "m=64"]) == 0
    assert jax.config.read("jax_enable_x64") == before
    out = capsys.readouterr().out
    assert "; JAX on 1 CPU device\n" in out or jax.devices()[0].platform != "cpu"
    with np.load(tmp_path / "runs" / "logistic_regression" / "params.npz") as saved:
        assert all(saved[k].dtype == np.float64 for k in saved.files)


# ---------------------------------------------------------------------------
# Several devices, simulated (a subprocess: XLA_FLAGS before jax is imported)
# ---------------------------------------------------------------------------


def run_with_devices(n: int, code: str | None = None, argv: list[str] | None = None,
                     cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [sys.executable, "-c", textwrap.dedent(code)] if code else [sys.executable, "-m", "backprop", *argv]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


SHARDED = """
import json
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from backprop.codegen.emit import derivation_of, generate
from backprop.codegen.loader import load_source
from backprop.engine.optim import OPTIMIZERS
from backprop.train.data import default_dims, synthetic
from backprop.train.jax_step import JaxStepper
from backprop.train.loop import train

out = {"devices": jax.device_count(), "diff": {}, "learns": {}}
for name in ("mlp_softmax", "mlp_rows", "embedding_bag"):
    d = derivation_of(name)
    np_mod = load_source(generate(d, optimizer="sgd"), name + "_np")
    dims = default_dims(np_mod, {"m": 48})
    inputs = synthetic(d.model, d, np_mod, dims, 0).inputs
    for opt in OPTIMIZERS:
        mod = load_source(generate(d, optimizer=opt, backend="jax"), f"{name}_{opt}")
        runs = {n: train(mod, inputs, dims, optimizer=opt, epochs=2, batch_size=16, seed=1, progress=False,
                         devices=n) for n in (1, 4)}
        (h1, p1), (h4, p4) = runs[1], runs[4]
        out["diff"][f"{name} {opt}"] = max(float(np.max(np.abs(p4[k] - p1[k]))) for k in p1)
        out["learns"][f"{name} {opt}"] = h4.last < h4.first
    # the batch really is split: each device holds a quarter of the examples axis, the params whole
    stepper = JaxStepper(mod, mod.init_params(dims, seed=0), mod.init_state(mod.init_params(dims, seed=0)), 0.1,
                         dict(mod.EXAMPLE_AXES), 4)
    batch = stepper._inputs({k: np.take(v, np.arange(16), axis=mod.EXAMPLE_AXES[k]) if k in mod.EXAMPLE_AXES else v
                             for k, v in inputs.items()})
    out[name] = {
        "batch": sorted({tuple(s.data.shape) for k in mod.EXAMPLE_AXES for s in batch[k].addressable_shards}),
        "devices": len({s.device for k in mod.EXAMPLE_AXES for s in batch[k].addressable_shards}),
        "params": all(v.sharding.is_fully_replicated for v in stepper.params.values()),
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sharded():
    done = run_with_devices(4, SHARDED)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_four_devices_give_the_params_of_one(sharded):
    """Every optimizer, examples as columns (mlp_softmax), as rows (mlp_rows) and as integer token ids
    and labels (embedding_bag): two epochs on 4 simulated devices, the params of 1 device to 1e-12."""
    assert sharded["devices"] == 4
    assert len(sharded["diff"]) == 3 * len(OPTIMIZERS)
    for run, diff in sharded["diff"].items():
        assert diff <= 1e-12, run
        assert sharded["learns"][run], run


def test_batches_are_split_along_the_examples_axis(sharded):
    assert {tuple(s) for s in sharded["mlp_softmax"]["batch"]} == {(784, 4), (10, 4)}
    assert {tuple(s) for s in sharded["mlp_rows"]["batch"]} == {(4, 8)}  # X[m, n], Y[m, c]: rows
    assert {tuple(s) for s in sharded["embedding_bag"]["batch"]} == {(8, 4), (1, 4)}  # x[T, m], y[1, m]
    for name in ("mlp_softmax", "mlp_rows", "embedding_bag"):
        assert sharded[name]["devices"] == 4 and sharded[name]["params"], name


def test_cli_train_on_four_devices_learns(tmp_path):
    """The issue's command, as a new user runs it: it learns and writes the run directory."""
    done = run_with_devices(4, argv=["train", "mlp_softmax", "--backend", "jax", "--devices", "4", "-q",
                                     "--epochs", "5"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "; JAX on 4 CPU devices\n" in done.stdout
    first, last = (float(x) for x in done.stdout.split("\nloss ")[1].split(" (")[0].split(" -> "))
    assert last < first / 10
    assert set(RUN_FILES) <= {p.name for p in (tmp_path / "runs" / "mlp_softmax").iterdir()}


@pytest.mark.parametrize(("argv", "message"), [
    (["--batch-size", "30"], "--devices 4 does not divide the batch size 30: each device takes an equal share of "
     "every batch; pick a --batch-size that is a multiple of 4"),
    (["--dims", "m=102"], "--devices 4: the last batch of every epoch has 6 examples (102 mod 32), which 4 devices "
     "cannot share evenly; pick a --batch-size that divides 102, or a number of examples that is a multiple of 4"),
])
def test_cli_devices_that_cannot_share_the_batches(argv, message, tmp_path):
    done = run_with_devices(4, argv=["train", "mlp_softmax", "--backend", "jax", "--devices", "4", "-q", *argv],
                            cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"backprop: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_two_hosts_train_as_one(tmp_path):
    """The README's multi-host commands, on one machine: two processes of 2 simulated devices each join
    through --coordinator (jax.distributed.initialize) and train on the 4 devices as one; each writes the
    params a single process with 4 devices writes, to 1e-12."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    common = ["train", "mlp_softmax", "--backend", "jax", "--devices", "4", "-q", "--epochs", "2", "--dims", "m=128"]
    hosts = [subprocess.Popen([sys.executable, "-m", "backprop", *common, "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i), "--out", f"host{i}"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [h.communicate(timeout=600) for h in hosts]
    for h, (out, err) in zip(hosts, outs):
        assert h.returncode == 0, err
        assert "; JAX on 4 CPU devices on 2 hosts\n" in out
    single = run_with_devices(4, argv=[*common, "--out", "single"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    with np.load(tmp_path / "single" / "params.npz") as ref:
        for i in range(2):
            with np.load(tmp_path / f"host{i}" / "params.npz") as got:
                for k in ref.files:
                    np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=1e-12, err_msg=f"host {i}: {k}")
