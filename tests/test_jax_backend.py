"""The JAX backend (``backprop codegen SPEC --backend jax``): for every bundled example without a loop
(a loop's JAX module: tests/test_jax_loops.py) the generated JAX module's loss and gradients equal the
NumPy module's and ``jax.grad`` of its own forward, in float64, to 1e-9; the module is pure and
jit-able; without jax the command says how to install it.

float64 needs ``jax_enable_x64``: the ``x64`` fixture turns it on for one test and restores it, so
no other test sees it. jax is in the test extra: CI fails here rather than skip when it is missing.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI"):
    import jax  # CI installs the test extra, which has jax: a missing jax is a failure there
else:
    jax = pytest.importorskip("jax", reason="jax is not installed (pip install '.[jax]'; CI fails instead of skipping)")
import jax.numpy as jnp  # noqa: E402
from helpers import FLAT_EXAMPLES  # noqa: E402

from backprop.cli import main  # noqa: E402
from backprop.codegen.emit import generate  # noqa: E402
from backprop.codegen.gradcheck import random_point, resolve_dims  # noqa: E402
from backprop.codegen.loader import load_source  # noqa: E402

EXAMPLES = FLAT_EXAMPLES  # a loop: tests/test_jax_loops.py (its own contract: lax.scan, truncate=k)
GOLDEN = Path(__file__).parent / "golden" / "codegen_mlp_softmax_jax.py.txt"
TOL = 1e-9


_MODULES: dict[tuple[str, str], object] = {}


def module(name: str, backend: str):
    if (name, backend) not in _MODULES:
        _MODULES[name, backend] = load_source(generate(name, backend=backend), f"{name}_{backend}")
    return _MODULES[name, backend]


def point(name: str, seed: int):
    rng = np.random.default_rng(seed)
    np_mod = module(name, "numpy")
    return random_point(np_mod, resolve_dims(np_mod, None, rng), rng)


def close(got, want, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, NumPy's {want.shape}"
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL * scale, err_msg=what)


def own_grad(mod, params, inputs):
    """jax.grad of the loss the JAX module's own forward computes: an independent check of its backward."""
    def loss(p):
        return jnp.reshape(mod.forward(*(p[n] if n in p else inputs[n] for n in mod.SHAPES))[0], ())
    return jax.grad(loss)({n: jnp.asarray(v) for n, v in params.items()})


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", EXAMPLES)
def test_same_loss_and_gradients_as_numpy_and_jax_grad(name, seed, x64):
    params, inputs = point(name, seed)
    loss, grads = module(name, "numpy").loss_and_grads({n: np.copy(v) for n, v in params.items()}, inputs)
    jax_mod = module(name, "jax")
    jloss, jgrads = jax_mod.loss_and_grads(params, inputs)
    assert isinstance(jloss, jax.Array) and jloss.shape == () and jloss.dtype == jnp.float64
    close(jloss, loss, f"{name}: loss")
    assert sorted(jgrads) == sorted(grads)  # jax.jit gives dicts back with sorted keys
    auto = own_grad(jax_mod, params, inputs)
    for p in grads:
        assert isinstance(jgrads[p], jax.Array) and jgrads[p].dtype == jnp.float64, p
        close(jgrads[p], grads[p], f"{name}: d{p} vs the NumPy module")
        close(auto[p], grads[p], f"{name}: jax.grad of the JAX forward, d{p}")


@pytest.mark.parametrize("name", EXAMPLES)
def test_pure_and_jit_able(name, x64):
    """Compiled as a whole (loss_and_grads, and forward then backward under one jit): the same numbers."""
    jax_mod = module(name, "jax")
    params, inputs = point(name, 2)
    want_loss, want = jax_mod.loss_and_grads(params, inputs)
    loss, grads = jax.jit(jax_mod.loss_and_grads)(params, inputs)
    close(loss, want_loss, f"{name}: jitted loss")
    for p in want:
        close(grads[p], want[p], f"{name}: jitted d{p}")

    @jax.jit
    def step(values):
        loss, cache = jax_mod.forward(*(values[n] for n in jax_mod.SHAPES))
        return loss, jax_mod.backward(**cache)

    loss, grads = step(params | inputs)
    close(jnp.reshape(loss, ()), want_loss, f"{name}: forward+backward jitted")
    for p in want:
        close(jnp.reshape(grads[p], np.shape(want[p])), want[p], f"{name}: forward+backward jitted d{p}")


@pytest.mark.parametrize("name", EXAMPLES)
def test_source_is_jax_only_in_the_computation(name):
    """No out=, no in-place update, no float(); the functions jax.jit traces call jnp, never np (NumPy
    stays on the host: shape checks, init_params' random draws); the same names and comments."""
    src = generate(name, backend="jax")
    numpy_src = generate(name)
    assert "out=" not in src and "_weak(" not in src and "np.copy" not in src
    core = src[src.index("\n\n\ndef ", src.index("_CACHE = ")): src.index("\ndef init_params(")]
    assert not re.search(r"(?<![\w.])np\.", core), "a NumPy call in the traced code"
    assert not re.search(r"^\s+\w+ [-+*/]= ", core, re.M), "an in-place update in the traced code"
    assert "float(" not in core
    assert "import jax\nimport jax.numpy as jnp\n" in src
    for table in ("SHAPES", "PARAMS", "INPUTS", "DOMAINS", "EXAMPLES", "EXAMPLE_AXES", "DIMS", "INIT", "_CACHE"):
        assert re.search(rf"^{table} = ", src, re.M), table
    # the math comments above each statement; a temporary's (t₁ = …) are each backend's own: a NumPy
    # module gathers a convolution's windows once (codegen/windows.py), a JAX one leaves that to XLA
    comments = [line.strip() for line in numpy_src.splitlines()
                if line.strip().startswith("# ") and "=" in line and not re.match(r"# t[₀-₉]+ = ", line.strip())]
    assert [c for c in comments if c in src] == comments, "the math comments above each statement"
    assert f"backprop codegen {name} --backend jax -o {name}.py" in src.splitlines()[1]


def test_labels_out_of_range_refused_outside_the_compiled_function(x64):
    jax_mod = module("svm_hinge", "jax")
    params, inputs = point("svm_hinge", 0)
    bad = dict(inputs, y=np.where(np.arange(inputs["y"].size) == 0, -1, inputs["y"]).reshape(inputs["y"].shape))
    with pytest.raises(ValueError, match=r"y: labels must lie in 0\.\.\d+, got \[-1\]"):
        jax_mod.loss_and_grads(params, bad)
    with pytest.raises(ValueError, match="expected integer class labels"):
        jax_mod.loss_and_grads(params, dict(inputs, y=inputs["y"].astype(float)))
    with pytest.raises(KeyError, match="inputs is missing y"):
        jax_mod.loss_and_grads(params, {"X": inputs["X"]})


class _CopyWatch:
    """numpy for a generated module, recording every JAX array of more than two entries that
    np.asarray or np.array would copy to the host."""

    def __init__(self):
        self.copied = []

    def __getattr__(self, name):
        return getattr(np, name)

    def _watch(self, value):
        if isinstance(value, jax.Array) and value.size > 2:
            self.copied.append(value.shape)

    def asarray(self, value, *args, **kwargs):
        self._watch(value)
        return np.asarray(value, *args, **kwargs)

    def array(self, value, *args, **kwargs):
        self._watch(value)
        return np.array(value, *args, **kwargs)


@pytest.mark.parametrize("name", ["svm_hinge", "embedding_bag"])
def test_labels_on_a_device_are_checked_there(name, x64, monkeypatch):
    """Labels already on the device are not copied to the host to be checked (only their least and
    greatest come back); a label out of range is still refused, naming it."""
    jax_mod = module(name, "jax")
    params, inputs = point(name, 0)
    label = next(k for k, v in inputs.items() if np.asarray(v).dtype.kind in "iu")
    on_device = {k: jax.device_put(v) for k, v in inputs.items()}
    want, _ = module(name, "numpy").loss_and_grads(params, inputs)
    watch = _CopyWatch()
    monkeypatch.setattr(jax_mod, "np", watch)
    loss, _ = jax_mod.loss_and_grads(params, on_device)
    assert float(loss) == pytest.approx(want, rel=1e-12)
    assert watch.copied == []
    big = int(np.max(inputs[label])) + 100
    bad = dict(on_device, **{label: on_device[label].at[(0,) * np.ndim(inputs[label])].set(big)})
    with pytest.raises(ValueError, match=rf"{label}: labels must lie in 0\.\.\d+, got \[{big}\]"):
        jax_mod.loss_and_grads(params, bad)


def test_shapes_checked_while_tracing():
    jax_mod = module("mlp_softmax", "jax")
    params = jax_mod.init_params({"h": 4}, seed=0)
    x, y = np.zeros((784, 3), np.float32), np.eye(10, 3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"X: expected shape \(784, m\)"):
        jax_mod.loss_and_grads(params, {"X": x[:5], "Y": y})


def test_float32_by_default_as_jax():
    """Without jax_enable_x64: params, loss and gradients float32, as JAX computes."""
    if jax.config.read("jax_enable_x64"):
        pytest.skip("jax_enable_x64 is on in this process")
    jax_mod = module("two_layer_sigmoid", "jax")
    np_mod = module("two_layer_sigmoid", "numpy")
    rng = np.random.default_rng(0)
    dims = resolve_dims(np_mod, None, rng)
    _, inputs = random_point(np_mod, dims, rng)
    params = jax_mod.init_params(dims, seed=0)
    ref = np_mod.init_params(dims, seed=0)
    for p in params:
        assert params[p].dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(params[p]), ref[p], rtol=1e-6)  # the same draws
    loss, grads = jax_mod.loss_and_grads(params, inputs)
    assert loss.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads.values())


def test_golden():
    """The emitted JAX module for mlp_softmax, for reviewers (BACKPROP_UPDATE_GOLDEN=1 rewrites it)."""
    text = generate("mlp_softmax", backend="jax")
    if os.environ.get("BACKPROP_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def test_cli_codegen_writes_a_module(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["codegen", "mlp_softmax", "--backend", "jax", "-o", "out.py"]) == 0
    text = (tmp_path / "out.py").read_text(encoding="utf-8")
    assert text == generate("mlp_softmax", output="out.py", backend="jax")
    assert "#     backprop codegen mlp_softmax --backend jax -o out.py\n" in text
    assert main(["codegen", "mlp_softmax", "--backend", "jax", "-o", "out.py"]) == 0  # up to date, regenerated safely
    assert "up to date" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["codegen", "mlp_softmax", "--backend", "jax", "-o", "out.py"],
    ["codegen", "mlp_softmax", "--backend", "jax"],
    ["check", "mlp_softmax", "--backend", "jax"],
])
def test_cli_without_jax_says_how_to_install_it(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "jax", None)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    command = " ".join(argv[:1] + argv[2:4])
    assert err == f"backprop: error: 'backprop {command}' needs jax: pip install 'backprop-toolkit[jax]'\n"
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["codegen", "mlp_softmax", "--backend", "jax", "--latex"], "--backend applies to the generated module"),
])
def test_cli_refuses_what_jax_modules_do_not_have(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", ["svm_hinge", "transformer_block"])
def test_cli_check_backend_jax(name, capsys, x64):
    assert main(["check", name, "--backend", "jax", "--dims", "m=3"]) == 0
    out = capsys.readouterr().out
    assert "float64 gradients" in out and "ok: every gradient within" in out
