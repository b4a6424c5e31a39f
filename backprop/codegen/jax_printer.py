"""Model expressions as JAX source: :class:`JaxPrinter`, the NumPy printer for ``jax.numpy``.

JAX's ``jax.numpy`` is NumPy's API on immutable arrays, so the JAX printer is the NumPy printer
(:mod:`backprop.codegen.printer`) with three differences, each decided here and nowhere else:

- an operation prints in its registry row's ``jax`` form where the row has one (a form that
  writes into an array, or scatters with ``np.add.at``, has no JAX equivalent), else in its
  ``numpy`` form;
- ``np.`` prints as ``jnp.`` (the one namespace the module's computing functions call);
- a function of Python numbers needs no ``_weak``: JAX's scalars are weakly typed already, and
  under ``jax.jit`` a scalar argument is a traced array, never a float to convert.
"""

from __future__ import annotations

import re

from sympy import Basic

from backprop.codegen.printer import NumpyPrinter
from backprop.expr.ir import OpNode
from backprop.expr.ops_row import Form, Op

#: ``np.`` as a namespace, not the tail of a longer name (``jnp.``, ``xnp.``).
_NUMPY = re.compile(r"(?<![\w.])np\.")


def to_jnp(code: str) -> str:
    """NumPy source with its ``np.`` calls as ``jnp.`` calls."""
    return _NUMPY.sub("jnp.", code)


class JaxPrinter(NumpyPrinter):
    """``jax.numpy`` code for model expressions; one printer per generated JAX module."""

    def doprint(self, expr: Basic) -> str:
        return to_jnp(super().doprint(expr))

    def form(self, op: Op) -> Form:
        return op.jax or op.numpy

    def weak(self, code: str) -> str:
        return code

    def _needs_weak(self, e: OpNode) -> bool:
        return False
