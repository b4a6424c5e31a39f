"""``python -m bench.labels``: the measurement behind the generated code's scatter-add.

docs/operations.md quotes this table. The adjoint of a lookup ``np.take(E, x, axis=1)`` (an embedding:
E d×V, token ids x T×m) adds each looked-up column's gradient G[:, t, i] into column x[t, i] of a
zero d×V matrix. Three ways: ``np.add.at`` (unbuffered, one index at a time), the generated
``_scatter_add`` (one ``np.bincount`` over (index, position) pairs), and a product with the one-hot
matrix of the ids (V×Tm, what a spec without ``take`` computes). Each is checked against the others
first. BLAS single-threaded, best of interleaved rounds. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import numpy as np

from backprop.expr.ops_labels import _SCATTER_HELPER
from bench.linalg_forms import _best, _ms

#: (d, V, T, m): embedding width, vocabulary, tokens per example, examples
SIZES = ((32, 1000, 16, 64), (64, 10_000, 32, 64), (128, 30_000, 64, 32))


def _generated() -> object:
    """The generated module's ``_scatter_add``, from the same source the code generator pastes."""
    scope: dict[str, object] = {"np": np}
    exec(compile(_SCATTER_HELPER, "<_scatter_add>", "exec"), scope)  # the registry's own text, not user input
    return scope["_scatter_add"]


def table() -> str:
    scatter = _generated()
    rng = np.random.default_rng(0)
    lines = ["| d, V, T, m | np.add.at | _scatter_add (bincount) | one-hot product | add.at / bincount |",
             "|---|---|---|---|---|"]
    for d, v, t, m in SIZES:
        x = rng.integers(0, v, size=(t, m))
        g = rng.normal(size=(d, t, m))

        def add_at(g=g, x=x, d=d, v=v) -> np.ndarray:
            out = np.zeros((d, v))
            np.add.at(out, (slice(None), x), g)
            return out

        def onehot(g=g, x=x, d=d, v=v) -> np.ndarray:
            hot = (x.reshape(1, -1) == np.arange(v)[:, None]).astype(float)
            return g.reshape(d, -1) @ hot.T

        fns = {"add.at": add_at, "bincount": lambda g=g, x=x, v=v: scatter(g, x, v, 1), "onehot": onehot}
        ref = add_at()
        for name, f in fns.items():
            np.testing.assert_allclose(f(), ref, rtol=1e-10, atol=1e-10, err_msg=name)
        s = _best(fns, rounds=5)
        lines.append(f"| {d}, {v}, {t}, {m} | {_ms(s['add.at'])} | {_ms(s['bincount'])} | {_ms(s['onehot'])} | "
                     f"{s['add.at'] / s['bincount']:.1f}× |")
    return "\n".join(lines)


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
