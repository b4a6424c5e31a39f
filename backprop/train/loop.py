"""Mini-batch training with a generated module and an optimizer's generated ``step``.

``train(spec, data, ...)`` generates the module (with ``--optimizer``'s
``init_state``/``step``), initializes the params, and runs epochs of
mini-batches -- the example columns shuffled each epoch -- recording every
step's mini-batch loss and gradient norms, and at the end of every epoch the
loss and gradient norms on the whole training set. With ``val_fraction`` a
seeded random share of the examples is held out before training and its loss
recorded every epoch too: the gap between the two curves is overfitting.
:func:`write_outputs` writes ``history.csv``, ``loss.png``, ``gradflow.png``
and ``params.npz``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from backprop.engine.optim import get_optimizer
from backprop.support.extras import require
from backprop.support.files import write_atomic
from backprop.train.data import example_axis, example_dim, save_npz

DEFAULT_OPTIMIZER = "adam"
DEFAULT_EPOCHS = 30
DEFAULT_BATCH = 32


@dataclass
class History:
    """What happened in training: per step and per epoch."""

    name: str
    optimizer: str
    lr: float
    batch_size: int
    params: tuple[str, ...]
    steps_per_epoch: int
    biases: tuple[str, ...] = ()  # params that start at zero (drawn dashed)
    step_loss: list[float] = field(default_factory=list)
    step_norms: dict[str, list[float]] = field(default_factory=dict)
    epoch_loss: list[float] = field(default_factory=list)  # index 0: before training
    epoch_train_loss: list[float] = field(default_factory=list)  # mean mini-batch loss (0: before training)
    epoch_norms: dict[str, list[float]] = field(default_factory=dict)
    examples: int = 0  # training examples: what the end-of-epoch loss is taken on (0: unknown)
    val_examples: int = 0  # examples held out for validation (0: no split)
    epoch_val_loss: list[float] = field(default_factory=list)  # loss on them (0: before training)
    diverged: bool = False

    @property
    def first(self) -> float:
        return self.epoch_loss[0]

    @property
    def stalled(self) -> list[str]:
        """Params whose gradient was exactly 0 at every step of the last epoch but not at the first step:
        the units they feed stopped responding (dead ReLUs, saturated gates) and no step moves them again."""
        last = slice(-self.steps_per_epoch, None)
        return [p for p, norms in self.step_norms.items()
                if len(norms) > self.steps_per_epoch and norms[0] > 0 and not any(norms[last])]

    @property
    def last(self) -> float:
        return self.epoch_loss[-1]

    @property
    def val_first(self) -> float:
        return self.epoch_val_loss[0]

    @property
    def val_last(self) -> float:
        return self.epoch_val_loss[-1]

    def csv(self) -> str:
        """history.csv: a header, then one row per epoch (0 = before training); the last column is the
        loss on the training data, preceded by the validation loss when examples were held out."""
        val = ["val_loss"] if self.val_examples else []
        head = ["epoch", "steps", "train_loss", *(f"grad_norm_{p}" for p in self.params), *val, "loss"]
        rows = [",".join(head)]
        for e, loss in enumerate(self.epoch_loss):
            cells = [str(e), str(e * self.steps_per_epoch), _num(self.epoch_train_loss[e])]
            cells += [_num(self.epoch_norms[p][e]) for p in self.params]
            cells += [_num(self.epoch_val_loss[e])] if self.val_examples else []
            rows.append(",".join([*cells, _num(loss)]))
        return "\n".join(rows) + "\n"


def _num(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


class SplitError(ValueError):
    """``--val`` leaves no example on one side of the split."""


def grad_norm(g: Any) -> float:
    return float(np.sqrt(np.sum(np.square(g))))


def split(
    inputs: Mapping[str, Any], sliced: Mapping[str, int], m: int, fraction: float, seed: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Training and held-out inputs: ``round(fraction * m)`` example columns drawn at random (seeded),
    in their original order, taken out of every example-carrying input. None when ``fraction`` is 0."""
    held = round(fraction * m)
    if not fraction:
        return dict(inputs), None
    if not sliced:
        raise SplitError("no input carries examples (columns), so none can be held out for validation")
    if not 1 <= held < m:
        raise SplitError(f"holding out {fraction:g} of {m} examples leaves {held} for validation and {m - held} "
                         "for training; each needs at least one")
    order = np.random.default_rng([seed, 3]).permutation(m)
    val_cols, train_cols = np.sort(order[:held]), np.sort(order[held:])
    train = {k: (np.take(v, train_cols, axis=sliced[k]) if k in sliced else v) for k, v in inputs.items()}
    val = {k: (np.take(v, val_cols, axis=sliced[k]) if k in sliced else v) for k, v in inputs.items()}
    return train, val


def batches(inputs: Mapping[str, Any], sliced: Mapping[str, int], order: np.ndarray, size: int) -> list[dict[str, Any]]:
    """The mini-batches of one epoch: every example-carrying input's examples (along its examples
    axis, given in ``sliced``) taken in ``order``."""
    out = []
    for start in range(0, len(order), size):
        cols = order[start : start + size]
        out.append({k: (np.take(v, cols, axis=sliced[k]) if k in sliced else v) for k, v in inputs.items()})
    return out


def train(
    module: ModuleType,
    inputs: Mapping[str, Any],
    dims: Mapping[str, int],
    *,
    optimizer: str = DEFAULT_OPTIMIZER,
    lr: float | None = None,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    dtype: Any = np.float64,
    progress: bool = True,
    name: str = "network",
    on_epoch: Callable[[int, float], None] | None = None,
    val_fraction: float = 0.0,
    devices: int = 1,
) -> tuple[History, dict[str, Any]]:
    """Train the params of a generated ``module`` (which must carry ``init_state``/``step``).

    Returns the history and the final params. The same seed gives the same
    params, batches and numbers. ``val_fraction`` of the examples are held out
    (ValueError when that leaves either side empty). A JAX module (``--backend
    jax``) trains with its loss, gradient and update compiled as one step, each
    batch split along its examples axis over ``devices`` devices
    (:mod:`backprop.train.jax_step`; DeviceError when they cannot split it evenly).
    """
    if progress:  # before the work, not when the bar is first drawn
        require("backprop.train.loop.train(progress=True)", "tqdm")
    opt = get_optimizer(optimizer)
    lr = opt.lr.default if lr is None else float(lr)
    mdim = example_dim(module)
    sliced = {k: axis for k in module.INPUTS if (axis := example_axis(module, k)) is not None}
    m = int(dims[mdim]) if mdim else 1
    data = {k: (np.asarray(v, dtype=None if np.asarray(v).dtype.kind in "iu" else dtype) if np.ndim(v) else v)
            for k, v in inputs.items()}  # integer labels stay indices
    data, val = split(data, sliced, m, val_fraction, seed)
    m -= round(val_fraction * m) if val is not None else 0
    batch_size = max(1, min(batch_size, m))
    make_stepper = _stepper(module, lr, sliced, devices, batch_size, m, dtype)  # before the work: errors first
    stepper = make_stepper(module.init_params(dict(dims), seed=seed, dtype=dtype))
    rng = np.random.default_rng([seed, 2])
    steps = math.ceil(m / batch_size) if sliced else 1
    biases = tuple(p for p in module.PARAMS if getattr(module, "INIT", {}).get(p) == "zeros")
    h = History(name, opt.name, lr, batch_size, tuple(module.PARAMS), steps, biases)
    h.examples = m if sliced else 0
    h.val_examples = 0 if val is None else int(dims[mdim]) - m
    h.step_norms = {p: [] for p in h.params}
    h.epoch_norms = {p: [] for p in h.params}
    _record_epoch(h, stepper, data, float("nan"), val)
    h.epoch_train_loss[0] = h.epoch_loss[0]
    bar = _bar(epochs * steps, f"{name} · {opt.name}", progress)
    quiet_overflow = np.errstate(over="ignore", invalid="ignore")  # a diverging run is detected and reported
    quiet_overflow.__enter__()
    try:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(m) if sliced else np.arange(m)
            losses = []
            for batch in batches(data, sliced, order, batch_size):
                loss, norms = stepper.step(batch)  # the update is skipped when the loss is not finite
                h.step_loss.append(loss)
                for p in h.params:
                    h.step_norms[p].append(norms[p])
                losses.append(loss * _count(batch, sliced, batch_size))
                if not math.isfinite(loss):
                    h.diverged = True
                    break
                if bar is not None:
                    bar.update(1)
                    # The bar's loss is this mini-batch's; the loss printed at the end (and plotted per epoch) is on all the data.
                    bar.set_postfix_str(f"epoch {epoch}/{epochs}  batch loss {loss:.4g}", refresh=False)
            _record_epoch(h, stepper, data, sum(losses) / m if sliced else losses[0], val)
            if on_epoch is not None:
                on_epoch(epoch, h.last)
            if h.diverged or not math.isfinite(h.last):
                h.diverged = True
                break
    finally:
        quiet_overflow.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    return h, stepper.result()


def _count(batch: Mapping[str, Any], sliced: Mapping[str, int], size: int) -> int:
    for k, axis in sliced.items():
        return int(np.shape(batch[k])[axis])
    return 1


def _record_epoch(
    h: History, stepper: Any, data: Mapping[str, Any], train_loss: float, val: Mapping[str, Any] | None,
) -> None:
    loss, norms = stepper.evaluate(data)
    if val is not None:
        h.epoch_val_loss.append(stepper.evaluate(val)[0])
    h.epoch_loss.append(loss)
    h.epoch_train_loss.append(train_loss)
    for p in h.params:
        h.epoch_norms[p].append(norms[p])


class NumpyStepper:
    """The params and optimizer state of a NumPy module: ``step(batch)`` computes the loss and
    gradients and updates in place (not when the loss is not finite), ``evaluate(data)`` only
    computes; both return the loss and every gradient's norm."""

    def __init__(self, module: ModuleType, params: dict[str, Any], lr: float) -> None:
        self.module, self.params, self.lr = module, params, lr
        self.state = module.init_state(params)

    def step(self, batch: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        loss, grads = self.module.loss_and_grads(self.params, batch)
        norms = {p: grad_norm(g) for p, g in grads.items()}
        if math.isfinite(loss):
            self.module.step(self.params, grads, self.state, lr=self.lr)
        return loss, norms

    def evaluate(self, data: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        with np.errstate(all="ignore"):
            loss, grads = self.module.loss_and_grads(self.params, data)
            return loss, {p: grad_norm(g) for p, g in grads.items()}

    def result(self) -> dict[str, Any]:
        return self.params


def _stepper(module: ModuleType, lr: float, sliced: Mapping[str, int], devices: int, batch_size: int, m: int,
             dtype: Any) -> Callable[[dict[str, Any]], Any]:
    """What makes the stepper from the initial params: the NumPy module's in-place one, or for a JAX
    module the compiled, sharded one (ValueError when the devices or the dtype cannot be had)."""
    from backprop.train.jax_step import JaxStepper, check_devices, is_jax_module

    if not is_jax_module(module):
        if devices != 1:
            raise ValueError(f"devices={devices} needs a JAX module (backprop train --backend jax)")
        return lambda params: NumpyStepper(module, params, lr)
    check_devices(devices, batch_size, m if sliced else None)
    if np.dtype(dtype) == np.float64 and not module.jax.config.read("jax_enable_x64"):
        raise ValueError('float64 in JAX needs jax.config.update("jax_enable_x64", True) before training')
    return lambda params: JaxStepper(module, params, module.init_state(params), lr, sliced, devices)


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=0.1, leave=True)


#: The files of a run directory, in the order they are written.
RUN_FILES = ("history.csv", "loss.png", "gradflow.png", "params.npz")


def write_outputs(out: str | Path, h: History, params: Mapping[str, Any], title: str) -> list[Path]:
    """:data:`RUN_FILES` in ``out`` (each written atomically; ``backprop train`` passes a staging
    directory that replaces the run directory as a whole)."""
    require("backprop.train.loop.write_outputs", "matplotlib")
    from backprop.train.plots import gradflow_over_training, loss_curve, png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "history.csv": h.csv(),
        "loss.png": png(loss_curve(h, title)),
        "gradflow.png": png(gradflow_over_training(h, title, h.biases)),
        "params.npz": save_npz(params),
    }
    written = []
    for fname, data in files.items():
        write_atomic(out / fname, data)
        written.append(out / fname)
    return written
