"""Check a generated module's gradients against central finite differences.

``gradcheck(spec)`` generates and imports the module, draws params and inputs
(from their declared domains), and compares every entry of every gradient with
central differences of the loss, evaluated in float64. Params are normal with
the spread the module's own initializer gives them (capped at 1; ``scale="unit"``
draws them standard normal; see :mod:`backprop.codegen.points`).

Finite differences (fd) are a measurement with an error of their own; a checker
that ignores it cries wolf (on a gradient that is zero everywhere, a loss of
10⁷, a nest of exp∘tanh) and teaches users to ignore it. So each entry θᵢ gets

- **a step of its own**, hᵢ = ∛ε·max(1, |θᵢ|) (ε = 2⁻⁵², h ≈ 6e-6 for a unit
  param): the step that balances truncation (∝ h²) against rounding (∝ ε|L|/h),
  scaled with the entry so that θ ± h changes it in the same bits whatever its size;
- **a measured noise**, nᵢ = K·(|D(hᵢ) − D(2hᵢ)| + ε·|L|/hᵢ) with K = 4: the
  central differences at h and 2h differ by 3× the truncation error for a smooth
  loss, by the whole error at a kink the steps straddle, and by about the rounding
  noise, which ε·|L|/h (|L| the largest loss met) bounds from below in case the
  two agree by chance. Over 35,000 entries of correct modules (examples, random
  networks, the cases above, 3 to 10 seeds each) the largest discrepancy was
  1/8 of max(nᵢ, tol·S).

With gᵢ the module's gradient, Dᵢ = D(hᵢ), S = max(|g|, |D|) over the param (the
gradient's own scale) and tol the tolerance, a param is

- **ok** when every |gᵢ − Dᵢ| ≤ tol·S: the two agree (noise does not fake an
  agreement); or, for a gradient that is zero within the noise (S ≤ max n),
  when |gᵢ − Dᵢ| and nᵢ are ≤ tol·σᵢ, σᵢ = |L| / max(1, |θᵢ|) being the natural
  size of a gradient (moving θᵢ by its own size moves L by about |L|): the fd
  then show the gradient is below tol·σ, all they can say of a zero;
- **wrong** when some |gᵢ − Dᵢ| exceeds both tol·S and nᵢ: so the scale errors
  are judged against is max(S, n/tol), which does not vanish with the gradient;
- **too noisy** otherwise: the discrepancy is above the tolerance but within what
  the fd can produce here, so the check says nothing either way (exit status 0
  with a warning: exit 1 is kept for evidence of a wrong gradient).

``dtype=float32`` computes the module's gradients in float32 (params and inputs
rounded to it) and the fd still in float64 at that same point; tol defaults to
1e-4 and the gradient's own rounding, 256·ε₃₂·(S + σᵢ), is added to the noise.
σ is in it because float32 cancellation scales with the loss, not the gradient:
1 − tanh² at saturation under exp(10·tanh(…)) is off by 2e-4 relative; with
64·ε₃₂·S alone, correct modules were called wrong.

When the spec is known, the module's loss is also compared with the reference
evaluator (:func:`backprop.expr.evaluate.evaluate`) on the derivation's textbook forms,
which checks the stable rewrites.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import sympy

from backprop.codegen.emit import derivation_of, load_module
from backprop.codegen.points import DIM_RANGE, SCALES, draw, param_spreads, random_point, resolve_dims
from backprop.engine.derivation import Derivation
from backprop.engine.through_time import TimeDerivation
from backprop.expr.evaluate import evaluate
from backprop.expr.ir import OpNode
from backprop.language.model import Model
from backprop.support.deepstack import deep_stack
from backprop.verification.through_time import TimeRun

#: Default tolerance per dtype of the checked gradients: relative to the gradient's scale.
TOLERANCES = {"float64": 1e-7, "float32": 1e-4}
TOLERANCE = TOLERANCES["float64"]
MACHINE_EPS = float(np.finfo(np.float64).eps)
#: Relative step: hᵢ = STEP · max(1, |θᵢ|).
STEP = float(np.cbrt(MACHINE_EPS))
#: Safety factor K between the measured fd uncertainty and the noise a discrepancy must exceed.
SAFETY = 4.0
#: Rounding allowed to a gradient computed in a lower precision, in units of its ε.
LOW_PRECISION = 256.0
#: Reference loss and module loss may differ by rounding only.
LOSS_TOLERANCE = 1e-10
#: Params with more entries are checked on a seeded sample of this many (each entry costs four losses).
MAX_ENTRIES = 1000

VERDICTS = ("ok", "noisy", "wrong")


@dataclass(frozen=True)
class ParamCheck:
    """One param's comparison: the largest numbers over its entries, and the verdict."""

    name: str
    shape: tuple[int, ...]
    scale: float  # S = max(|g|, |fd|) over the entries
    discrepancy: float  # max |g − fd|
    noise: float  # max fd noise (K·u, plus the rounding allowed a float32 gradient)
    verdict: str  # "ok", "noisy" or "wrong"
    zero: bool = False  # the gradient is zero within the noise
    noisy_entries: int = 0  # entries whose noise exceeds tol·S (or tol·σ for a zero gradient)
    wrong_entries: int = 0
    entries: int = 1
    checked: int | None = None  # entries compared, when a sample of them (None: every entry)

    @property
    def error(self) -> float:
        """max |g − fd| relative to the gradient's scale (0 for a gradient that is 0 both ways)."""
        return self.discrepancy / self.scale if self.scale > 0 else (0.0 if self.discrepancy == 0 else np.inf)


class NotFiniteError(ValueError):
    """The loss is not a finite number at the drawn point: there is nothing to check there."""


@dataclass(frozen=True)
class GradcheckReport:
    """The result of one gradient check: per-param comparison and verdict, and the loss."""

    name: str
    dims: dict[str, int]
    seed: int
    tol: float
    step: float
    dtype: str
    loss: float  # the module's, in dtype
    loss64: float  # the module's in float64, at the same point
    params: dict[str, ParamCheck]
    reference_loss: float | None = None
    loss_error: float | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No gradient wrong and the loss right (a noisy param is not a failure)."""
        return not self.failed

    @property
    def noisy(self) -> list[str]:
        """Params finite differences could not check to the tolerance here."""
        return [p for p, c in self.params.items() if c.verdict == "noisy"]

    @property
    def errors(self) -> dict[str, float]:
        """Max relative error per param, max|g − fd| / max(|g|, |fd|)."""
        return {p: c.error for p, c in self.params.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {p: c.shape for p, c in self.params.items()}

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def format(self) -> str:
        """The report as the ``backprop check`` command prints it."""
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items()) or "none"
        lines = [
            f"gradcheck {self.name}: dims {dims}; seed {self.seed}; {self.dtype} gradients vs "
            f"central differences in float64 at h and 2h, h = {self.step:.2g}·max(1, |θ|)",
            f"  {'param':<10} {'shape':>10}  {'scale':>9}  {'max |grad − fd|':>15}  "
            f"{'fd noise':>9}  {'rel. error':>10}  verdict",
        ]
        for p, c in self.params.items():
            shape = "×".join(str(s) for s in c.shape) or "scalar"
            verdict = c.verdict
            if c.verdict == "wrong":
                verdict = "WRONG"
            elif c.verdict == "noisy":
                verdict = f"too noisy ({c.noisy_entries} of {c.entries} entries)"
            elif c.zero and c.scale > 0:
                verdict = "ok (zero within the noise)"
            if c.checked is not None:
                verdict += f"; {c.checked} of {c.entries} entries, sampled"
            error = "-" if c.zero and c.verdict == "ok" else f"{c.error:.2e}"
            lines.append(f"  {p:<10} {shape:>10}  {c.scale:>9.2e}  {c.discrepancy:>15.2e}  "
                         f"{c.noise:>9.1e}  {error:>10}  {verdict}")
        loss = f"loss {self.loss:.10g}"
        if self.dtype != "float64":
            loss += f" ({self.dtype}), {self.loss64:.10g} (float64)"
        if self.reference_loss is not None:
            loss += f"; reference evaluator {self.reference_loss:.10g} (rel. diff {self.loss_error:.1e})"
        lines.append(loss)
        wrong = [p for p in self.failed if p != "loss"]
        if wrong:
            lines.append(f"WRONG: {', '.join(wrong)}: |grad − fd| above both the tolerance {self.tol:g} "
                         "(relative) and the finite differences' noise")
        if "loss" in self.failed:
            lines.append(f"WRONG: loss differs from the reference evaluator by {self.loss_error:.1e} "
                         f"(relative; above {LOSS_TOLERANCE:g})")
        if self.noisy:
            lines.append(f"too noisy: {', '.join(self.noisy)}: finite differences cannot check "
                         f"{'it' if len(self.noisy) == 1 else 'them'} to {self.tol:g} here "
                         "(fd noise above); no error above that noise was found; try another --seed")
        if not self.failed and not self.noisy:
            lines.append(f"ok: every gradient within {self.tol:g}")
        return "\n".join(lines)


def _cast(value: Any, dtype: np.dtype) -> Any:
    """``value`` in ``dtype``: an array cast, a scalar rounded to it (kept a Python float)."""
    if np.ndim(value) == 0:
        return float(dtype.type(value))
    if np.asarray(value).dtype.kind in "iu":  # integer labels stay indices
        return value
    return np.asarray(value).astype(dtype)


# ---------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------


def _loss(module: ModuleType, values: Mapping[str, Any]) -> float:
    """The module's loss, calling forward with arguments in declaration (SHAPES) order."""
    return float(module.forward(*(values[n] for n in module.SHAPES))[0])


#: The loss as finite differences see it: the module's, or one with cut paths held fixed.
LossFn = Callable[[Mapping[str, Any]], float]


def frozen_loss(d: Derivation, at: Mapping[str, Any], dims: Mapping[str, int]) -> LossFn | None:
    """The loss with every cut (``stop_gradient(H)``, a comparison) held at its value at ``at``: the
    function whose gradient the module computes, by the reference evaluator. None when the spec
    cuts no path, so that finite differences of the module's own loss are taken as always."""
    if not getattr(d, "cuts", ()):  # a derivation through time cuts no path
        return None
    cuts = {x for eq in d.equations for x in sympy.preorder_traversal(eq.expr)
            if isinstance(x, OpNode) and x.children and not any(x.op.operand_vjp(i) for i in range(len(x.children)))}
    sizes = {sym: dims[name] for name, sym in d.model.dims.items()}

    def run(values: Mapping[str, Any], held: dict[Any, Any]) -> float:
        env: dict[Any, Any] = {**values, **sizes}
        for eq in d.equations:
            cache = dict(held)
            env[eq.name] = evaluate(eq.expr, env, cache)
            for c in cuts:
                if c in cache:
                    held.setdefault(c, cache[c])
        return float(np.asarray(env[d.loss.name]).reshape(()))

    held: dict[Any, Any] = {}
    run(at, held)
    return lambda values: run(values, dict(held))


@dataclass(frozen=True)
class Differences:
    """Central differences of the loss for every entry of one param, at two steps each."""

    fd: np.ndarray  # D(h)
    fd2: np.ndarray  # D(2h)
    step: np.ndarray  # h per entry, as represented (θ + h − θ)
    loss: np.ndarray  # the largest |L| met per entry
    rounding: float = 0.0  # the loss's measured rounding noise near θ (see loss_noise)
    checked: np.ndarray | None = None  # the entries differenced, when a sample (None: all)

    @property
    def noise(self) -> np.ndarray:
        """K·(|D(h) − D(2h)| + max(ε·|L|, r)/h): truncation measured, rounding measured twice and bounded below."""
        floor = np.maximum(MACHINE_EPS * self.loss, self.rounding)
        return SAFETY * (np.abs(self.fd - self.fd2) + floor / self.step)


def loss_noise(module: ModuleType, values: Mapping[str, Any], name: str, steps: np.ndarray,
               loss_fn: LossFn | None = None) -> float:
    """A bound on the rounding noise of the loss near θ: ε·M, M the largest magnitude met on the way to
    the loss, or a measured estimate (Moré & Wild's ECnoise) where that is larger.

    ε·|L| underestimates the noise when the loss is a small difference of large terms: a cross-entropy
    of 1e-8 is log(1 + 1e-8), whose quanta are ε·1, not ε·1e-8; and |D(h) − D(2h)| can miss it, when
    the quantized loss moves by a whole number of quanta per step (then both differences are off by the
    same amount). M is the largest |value| among the params, inputs and the values forward keeps for
    backward. The measurement evaluates the loss at θ + k·v for k = 0..8, v a fixed pseudo-random ±h
    direction: high-order differences of a smooth function at that step are negligible, while noise of
    standard deviation σ gives E[(Δᵏf)²] = C(2k, k)·σ²; the largest estimate over k = 4..6 counts. An
    overestimate can only make a check "too noisy", never call a right gradient wrong.
    """
    loss, cache = module.forward(*(values[n] for n in module.SHAPES))
    magnitude = max((_largest(v) for v in (*values.values(), *cache, loss)), default=0.0)
    at = loss_fn or (lambda v: _loss(module, v))
    x = np.array(values[name], dtype=np.float64)
    scalar = np.ndim(values[name]) == 0
    signs = np.where(np.random.default_rng(len(name)).random(x.shape) < 0.5, -1.0, 1.0)
    f = []
    for k in range(9):
        moved = x + k * signs * steps
        f.append(at({**values, name: float(moved) if scalar else moved}))
    f_arr = np.array(f)
    measured = 0.0
    if np.all(np.isfinite(f_arr)):
        measured = max(float(np.sqrt(np.mean(np.diff(f_arr, n=k) ** 2) / math.comb(2 * k, k))) for k in (4, 5, 6))
    return max(MACHINE_EPS * magnitude, measured)


def _largest(value: Any) -> float:
    """The largest finite |entry| of a value (0 for one that holds no numbers, e.g. a dim)."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf" or a.size == 0:
        return 0.0
    a = np.abs(a[np.isfinite(a)], dtype=np.float64)
    return float(a.max(initial=0.0))


def sample_entries(shape: tuple[int, ...], limit: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """A boolean mask of ``limit`` entries drawn without replacement, or None when all are to be checked."""
    size = int(np.prod(shape, dtype=np.int64))
    if not limit or size <= limit:
        return None
    mask = np.zeros(size, dtype=bool)
    mask[rng.choice(size, limit, replace=False)] = True
    return mask.reshape(shape)


def differences(module: ModuleType, values: Mapping[str, Any], name: str, step: float = STEP,
                loss_fn: LossFn | None = None, checked: np.ndarray | None = None) -> Differences:
    """Central differences (float64) with respect to ``values[name]``, at h = step·max(1, |θᵢ|) and 2h,
    of the module's loss or of ``loss_fn`` (the loss with cut paths held, :func:`frozen_loss`), at every
    entry or at those ``checked`` marks."""
    at = loss_fn or (lambda v: _loss(module, v))
    x = np.array(values[name], dtype=np.float64)
    scalar = np.ndim(values[name]) == 0
    trial = dict(values)
    base = abs(at({**values, name: float(x) if scalar else x}))
    out = {k: np.zeros(x.shape) for k in ("fd", "fd2", "loss")}
    out["step"] = (x + step * np.maximum(1.0, np.abs(x))) - x  # exactly representable
    for idx in np.ndindex(x.shape) if checked is None else zip(*np.nonzero(checked), strict=True):
        keep = float(x[idx])
        h = float(out["step"][idx])
        losses = []
        for k in (1, -1, 2, -2):
            x[idx] = keep + k * h
            trial[name] = float(x) if scalar else x
            losses.append(at(trial))
        x[idx] = keep
        plus, minus, plus2, minus2 = losses
        out["fd"][idx] = (plus - minus) / (2 * h)
        out["fd2"][idx] = (plus2 - minus2) / (4 * h)
        out["loss"][idx] = max(base, *(abs(v) for v in losses))
    return Differences(**out, rounding=loss_noise(module, values, name, out["step"], loss_fn), checked=checked)


def numeric_gradient(module: ModuleType, values: dict[str, Any], name: str, step: float = STEP) -> Any:
    """Central finite differences of the loss with respect to ``values[name]`` (at h per entry)."""
    fd = differences(module, values, name, step).fd
    return float(fd) if np.ndim(values[name]) == 0 else fd


def relative_error(g: Any, fd: Any) -> float:
    """max|g − fd| relative to the larger of the two gradients' largest entries."""
    g, fd = np.asarray(g, dtype=float), np.asarray(fd, dtype=float)
    scale = max(np.max(np.abs(g), initial=0.0), np.max(np.abs(fd), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(g - fd)) / scale)


def judge(name: str, grad: Any, d: Differences, theta: Any, tol: float, dtype: np.dtype) -> ParamCheck:
    """The verdict on one param's gradient (see the module docstring for the rules), over the entries
    the differences were taken at."""
    at = np.ones(d.fd.shape, dtype=bool) if d.checked is None else d.checked
    g = np.asarray(grad, dtype=np.float64).reshape(d.fd.shape)[at]
    theta = np.asarray(theta, dtype=np.float64).reshape(d.fd.shape)[at]
    fd, fd2 = d.fd[at], d.fd2[at]
    scale = max(np.max(np.abs(g), initial=0.0), np.max(np.abs(fd), initial=0.0))
    natural = d.loss[at] / np.maximum(1.0, np.abs(theta))  # σᵢ = |L| / max(1, |θᵢ|)
    noise = d.noise[at]
    eps = float(np.finfo(dtype).eps)
    if eps > MACHINE_EPS:  # a gradient computed in lower precision has rounding of its own
        noise = noise + LOW_PRECISION * eps * (scale + natural)
    diff = np.abs(g - fd)
    zero = bool(scale <= np.max(noise, initial=0.0))  # the gradient is zero within the noise
    ok = diff <= tol * scale
    if zero:
        ok |= (diff <= tol * natural) & (noise <= tol * natural)
    ok &= np.isfinite(g)
    # where a step left the loss's domain the fd say nothing: such an entry is unchecked (noisy), not wrong
    measured = np.isfinite(fd) & np.isfinite(fd2)
    wrong = ~ok & ~(diff <= noise) & measured
    noisy = ~ok & ~wrong
    verdict = "wrong" if wrong.any() else "noisy" if noisy.any() else "ok"
    return ParamCheck(name, tuple(np.shape(grad)), float(scale), float(np.max(diff, initial=0.0)),
                      float(np.max(noise, initial=0.0)), verdict, zero, int(noisy.sum()), int(wrong.sum()),
                      int(np.size(grad)), None if d.checked is None else int(g.size))


def reference_loss(d: Derivation, values: Mapping[str, Any], dims: Mapping[str, int]) -> float:
    """The loss by the reference evaluator, equation by equation, in textbook form (a loop's step
    run T times)."""
    env: dict[Any, Any] = dict(values)
    env.update({sym: dims[name] for name, sym in d.model.dims.items()})
    if isinstance(d, TimeDerivation):
        return TimeRun(d, env).loss
    for eq in d.equations:
        env[eq.name] = evaluate(eq.expr, env)
    return float(np.asarray(env[d.loss.name]).reshape(()))


@deep_stack
def gradcheck(spec: str | Path | Model | Derivation | ModuleType, dims: Mapping[str, int] | None = None,
              seed: int = 0, tol: float | None = None, step: float = STEP,
              reference: str | Model | Derivation | None = None, dtype: Any = np.float64,
              scale: str = "init", entries: int | None = MAX_ENTRIES) -> GradcheckReport:
    """Check every gradient of ``spec``'s generated module (or of a module, or a ``.py`` file)
    at one random point.

    ``dims`` fixes some sizes (e.g. ``{"m": 5}``); the others are drawn from
    ``seed``; ``scale`` is the params' spread (see :func:`param_spreads`). A param of more
    than ``entries`` entries is checked on a sample of that many, drawn from ``seed``
    (``None`` or 0: every entry). ``dtype`` (float64 or float32) is the precision the module's
    gradients are computed in; ``tol`` defaults to that dtype's entry in
    TOLERANCES. The loss is compared with the reference evaluator on the spec's
    textbook forms -- ``spec`` itself, or ``reference`` when checking a module.
    Raises ValueError for an unknown dim, a non-positive size or another dtype.
    """
    dtype = np.dtype(dtype)
    if dtype.name not in TOLERANCES:
        raise ValueError(f"dtype must be one of {', '.join(TOLERANCES)}, got {dtype.name}")
    tol = TOLERANCES[dtype.name] if tol is None else tol
    if isinstance(spec, ModuleType) or isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith(".py")):
        module = load_module(spec)
        d = derivation_of(reference) if reference is not None else None
        name = d.model.name if d is not None else Path(getattr(module, "__file__", None) or module.__name__).stem
    else:
        d = derivation_of(spec)
        module = load_module(d)
        name = d.model.name
    rng = np.random.default_rng(seed)
    sizes = resolve_dims(module, dims, rng)
    params, inputs = random_point(module, sizes, rng, scale)
    params = {n: _cast(v, dtype) for n, v in params.items()}
    inputs = {n: _cast(v, dtype) for n, v in inputs.items()}
    # The check probes the loss where it may overflow or leave its domain: that is reported, not warned.
    with np.errstate(all="ignore"):
        loss, grads = module.loss_and_grads(params, inputs)
        if not np.isfinite(loss):
            raise NotFiniteError(f"the loss is {loss} at the point drawn with seed {seed}: a function of the "
                                 "spec is undefined or overflows there; declare the inputs' domains (positive, "
                                 "prob, binary, onehot) or try another seed")
        # differences in float64, at the point the gradients were computed at
        values = {n: (_cast(v, np.dtype(np.float64))) for n, v in (params | inputs).items()}
        values = {n: values[n] for n in module.SHAPES}
        held = frozen_loss(d, values, sizes) if d is not None else None
        picks = np.random.default_rng([seed, 1])
        checks = {p: judge(p, grads[p], differences(module, values, p, step, held,
                                                    sample_entries(np.shape(values[p]), entries, picks)),
                           values[p], tol, dtype)
                  for p in module.PARAMS}
        failed = [p for p, c in checks.items() if c.verdict == "wrong"]
        ref = loss_err = None
        loss64 = _loss(module, values) + 0.0  # + 0.0: a loss of -0.0 is shown as 0
        if d is not None:
            ref = reference_loss(d, values, sizes) + 0.0
            loss_err = abs(loss64 - ref) / max(abs(ref), 1.0)
            if not loss_err <= LOSS_TOLERANCE:
                failed.append("loss")
    return GradcheckReport(name, sizes, seed, tol, step, dtype.name, float(loss) + 0.0, loss64, checks, ref,
                           loss_err, failed)


__all__ = ["GradcheckReport", "NotFiniteError", "ParamCheck", "gradcheck", "differences", "sample_entries",
           "numeric_gradient", "relative_error", "random_point", "resolve_dims", "draw", "param_spreads",
           "DIM_RANGE", "SCALES", "TOLERANCES", "MAX_ENTRIES"]
