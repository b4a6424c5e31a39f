"""A student's own NumPy backward pass, checked against the spec's true gradient (CS231n style).

The student writes ``loss_and_grads(params, inputs) -> (loss, grads)`` in a ``.py`` file -- the
contract of backprop's generated modules, dicts keyed by the spec's names. Their code is not ours
to trust: it runs in a separate Python process with a time limit, reading the arrays from a file
and writing its results to another, so an infinite loop, a crash or a stray ``sys.exit`` costs a
verdict, not the grader. Each gradient is compared, at random points of several sizes, with the
generated module's, and a wrong one is described: missing, the wrong shape (or its transpose), a
constant multiple, or just wrong with its relative error.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backprop.codegen.emit import derivation_of, load_module
from backprop.codegen.gradcheck import random_point, resolve_dims
from backprop.engine.derivation import Derivation
from backprop.verification.factors import factor_phrase, fit_factor

#: Relative error below which a student's gradient counts as right (float64 throughout).
TOL = 1e-6
#: Seconds the student's code may take for all points together.
TIMEOUT = 20.0

# Runs in the child process: import the student's file by path, call it at every point, save.
_RUNNER = """
import importlib.util, sys, traceback
import numpy as np
path, points, out = sys.argv[1:4]
try:
    spec = importlib.util.spec_from_file_location("student_answer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data = np.load(points, allow_pickle=False)
    results = {}
    for k in range(int(data["count"])):
        params = {n[len(f"p{k}."):]: data[n] for n in data.files if n.startswith(f"p{k}.")}
        inputs = {n[len(f"x{k}."):]: data[n] for n in data.files if n.startswith(f"x{k}.")}
        loss, grads = mod.loss_and_grads(params, inputs)
        results[f"loss{k}"] = np.asarray(loss, dtype=float)
        for n, g in dict(grads).items():
            results[f"g{k}.{n}"] = np.asarray(g, dtype=float)
    np.savez(out, **results)
except BaseException as e:  # the student's error, reported as one line
    tb = traceback.extract_tb(e.__traceback__)
    where = next((f"{f.filename}:{f.lineno}" for f in reversed(tb) if f.filename == path), path)
    print(f"{where}: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(3)
"""


@dataclass(frozen=True)
class GradientVerdict:
    """One parameter's gradient as the student computed it."""

    name: str
    ok: bool
    error: float  # largest relative error over the points (inf: missing or wrong shape)
    why: str = ""

    def format(self) -> str:
        mark = "✓" if self.ok else "✗"
        return f"{mark} d{self.name}: " + ("correct" if self.ok else f"wrong: {self.why}") + \
            (f" (relative error {self.error:.1e})" if self.ok else "")


@dataclass
class StudentReport:
    """Every parameter's verdict; ``problem`` when the code could not be run at all."""

    path: str
    verdicts: list[GradientVerdict] = field(default_factory=list)
    problem: str = ""
    points: int = 0

    @property
    def ok(self) -> bool:
        return not self.problem and all(v.ok for v in self.verdicts)

    def format(self) -> str:
        if self.problem:
            return f"? {self.path}: could not be checked: {self.problem}"
        lines = [v.format() for v in self.verdicts]
        right = sum(v.ok for v in self.verdicts)
        lines.append(f"{right} of {len(self.verdicts)} gradients correct "
                     f"(against the spec's true gradient at {self.points} random points, tolerance {TOL:g})")
        return "\n".join(lines)


def check_student(spec: str | Path | Derivation, path: str | Path, dims: dict[str, int] | None = None,
                  seed: int = 0, points: int = 3, timeout: float = TIMEOUT) -> StudentReport:
    """Run the student's ``loss_and_grads`` in ``path`` at ``points`` random points (sizes drawn
    from ``seed`` where ``dims`` does not fix them) and judge each of its gradients."""
    d = spec if isinstance(spec, Derivation) else derivation_of(spec)
    ref = load_module(d)
    report = StudentReport(str(path), points=points)
    arrays: dict[str, Any] = {"count": np.asarray(points)}
    want: list[tuple[float, dict[str, Any]]] = []
    sizes: list[dict[str, int]] = []
    for k in range(points):
        rng = np.random.default_rng([seed, k])
        at = resolve_dims(ref, dims, rng)
        sizes.append(at)
        params, inputs = random_point(ref, at, rng)
        want.append(ref.loss_and_grads(params, inputs))
        arrays.update({f"p{k}.{n}": np.asarray(v) for n, v in params.items()})
        arrays.update({f"x{k}.{n}": np.asarray(v) for n, v in inputs.items()})
    got = _run(Path(path), arrays, timeout, report)
    if got is None:
        return report
    for name in ref.PARAMS:
        report.verdicts.append(_judge(name, [got.get(f"g{k}.{name}") for k in range(points)],
                                      [w[1][name] for w in want], sizes))
    return report


def _run(path: Path, arrays: dict[str, Any], timeout: float, report: StudentReport) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        report.problem = f"no such file: {path}"
        return None
    with tempfile.TemporaryDirectory(prefix="backprop-student-") as tmp:
        points, out = Path(tmp) / "points.npz", Path(tmp) / "out.npz"
        np.savez(points, **arrays)
        try:
            run = subprocess.run([sys.executable, "-I", "-c", _RUNNER, str(path.resolve()), str(points), str(out)],
                                 capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            report.problem = f"it ran longer than {timeout:g} s (an endless loop?)"
            return None
        if run.returncode != 0 or not out.exists():
            lines = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
            problem = lines[-1] if lines else f"it exited with status {run.returncode}"
            report.problem = problem.replace(str(path.resolve()), str(path))  # the path as the user gave it
            return None
        with np.load(out, allow_pickle=False) as data:
            return {n: data[n] for n in data.files}


def _judge(name: str, got: list[np.ndarray | None], want: list[np.ndarray], sizes: list[dict[str, int]]) -> GradientVerdict:
    if any(g is None for g in got):
        return GradientVerdict(name, False, np.inf, f"grads has no '{name}'")
    worst = 0.0
    ratios = []
    for g, w in zip(got, want):
        w = np.asarray(w, dtype=float)
        if g.shape != w.shape:
            if g.shape == w.T.shape and np.allclose(g.T, w, rtol=TOL, atol=0):
                shape = "×".join(map(str, w.shape))
                return GradientVerdict(name, False, np.inf, f"it is the transpose of the correct {shape} gradient")
            if g.size == w.size and np.allclose(g.reshape(w.shape), w, rtol=TOL, atol=0):
                return GradientVerdict(name, False, np.inf,
                                       f"shape {g.shape}, but the parameter's is {w.shape} (keepdims=True?)")
            return GradientVerdict(name, False, np.inf, f"shape {g.shape}, but the parameter's is {w.shape}")
        scale = max(float(np.abs(w).max()), float(np.abs(g).max()), 1e-300)
        err = float(np.abs(g - w).max()) / scale
        worst = max(worst, err)
        dot = float((w * w).sum())
        ratios.append(float((g * w).sum()) / dot if dot else np.nan)
    if worst <= TOL:
        return GradientVerdict(name, True, worst)
    proportional = all(np.isfinite(r) and np.allclose(g, r * np.asarray(w), rtol=1e-6, atol=0)
                       for g, w, r in zip(got, want, ratios))
    f = fit_factor(ratios, sizes) if proportional else None
    if f is not None:  # m times too large: a missing 1/m?
        return GradientVerdict(name, False, worst, factor_phrase(f))
    return GradientVerdict(name, False, worst, f"relative error {worst:.2g}")
