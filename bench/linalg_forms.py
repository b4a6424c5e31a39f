"""``python -m bench.linalg_forms``: the measurements behind the generated code's linear-algebra forms.

docs/operations.md quotes this table. For X = A⁻¹ B with A n×n (symmetric positive definite,
eigenvalues ≥ 1) and B n×k: ``inv(A) @ B`` against ``np.linalg.solve(A, B)`` (one LU, triangular
solves) and against a product by an inverse already computed (what the code does when the gradient
needs A⁻¹ anyway); the backward error ‖A X − B‖/(‖A‖ ‖X‖ + ‖B‖) of each at cond(A) = 10¹⁰, B = A X₀
for a random X₀ (a backward-stable method keeps it near the unit roundoff, a product by the computed
inverse does not); and log det A by ``slogdet``
(LU) against a Cholesky factor. BLAS single-threaded (a shared machine's second core is not ours),
best of interleaved rounds. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

SIZES = ((16, 1024), (64, 1024), (256, 256), (512, 64), (512, 512))


def _best(fns: dict[str, Callable[[], object]], rounds: int = 15, budget: float = 0.02) -> dict[str, float]:
    """Seconds per call of each function: the best over rounds, each round a burst of about ``budget`` s."""
    best = dict.fromkeys(fns, float("inf"))
    reps = {k: max(1, int(budget / max(_once(f), 1e-7))) for k, f in fns.items()}
    for _ in range(rounds):
        for k, f in fns.items():
            start = time.perf_counter()
            for _ in range(reps[k]):
                f()
            best[k] = min(best[k], (time.perf_counter() - start) / reps[k])
    return best


def _once(f: Callable[[], object]) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def _spd(n: int, rng: np.random.Generator, cond: float | None = None) -> np.ndarray:
    if cond is None:
        b = rng.normal(size=(n, n))
        return b @ b.T / n + np.eye(n)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.logspace(0, np.log10(cond), n)) @ q.T
    return (a + a.T) / 2


def table() -> str:
    rng = np.random.default_rng(0)
    lines = ["| n, k | inv(A) @ B | solve(A, B) | A⁻¹ @ B, A⁻¹ at hand | backward error at cond 10¹⁰: inv @ B / solve |",
             "|---|---|---|---|---|"]
    for n, k in SIZES:
        a, b = _spd(n, rng), rng.normal(size=(n, k))
        a_inv = np.linalg.inv(a)
        t = _best({"inv": lambda a=a, b=b: np.linalg.inv(a) @ b, "solve": lambda a=a, b=b: np.linalg.solve(a, b),
                   "cached": lambda a_inv=a_inv, b=b: a_inv @ b})
        ill = _spd(n, rng, 1e10)
        b = ill @ rng.normal(size=(n, k))  # a right-hand side with a solution of moderate size
        norm = np.linalg.norm(ill, 2)
        res = [np.linalg.norm(ill @ x - b) / (norm * np.linalg.norm(x) + np.linalg.norm(b))
               for x in (np.linalg.inv(ill) @ b, np.linalg.solve(ill, b))]
        lines.append(f"| {n}, {k} | {_ms(t['inv'])} | {_ms(t['solve'])} | {_ms(t['cached'])} | {res[0]:.0e} / {res[1]:.0e} |")
    lines += ["", "| n | slogdet (LU) | Cholesky: 2 Σ log diag L |", "|---|---|---|"]
    for n in (64, 256, 512):
        a = _spd(n, rng)
        t = _best({"lu": lambda a=a: np.linalg.slogdet(a),
                   "chol": lambda a=a: 2 * np.log(np.diagonal(np.linalg.cholesky(a))).sum()})
        lines.append(f"| {n} | {_ms(t['lu'])} | {_ms(t['chol'])} |")
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def main() -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the bench extra installs it
        print(table())
        return
    with threadpool_limits(1):
        print(table())


if __name__ == "__main__":
    main()
