"""backprop code generation: NumPy modules from derivations, and gradient checks.

The API the other tools build on:

- ``generate(spec) -> str``: the module's source for a spec path, a bundled
  example's name, a ``Model`` or a ``Derivation``;
- ``load_module(spec_or_source) -> module``: that module, compiled in memory
  (no temporary files; its lines in ``linecache`` for tracebacks and getsource);
- ``gradcheck(spec, dims=None, seed=0) -> GradcheckReport``: every gradient of
  the generated module against central finite differences in float64, each
  param judged ok, wrong or too noisy against the differences' measured noise.

Every generated module defines ``forward``, ``backward``, ``loss_and_grads``,
``init_params`` and the data ``SHAPES``, ``PARAMS``, ``INPUTS``, ``DOMAINS``,
``DIMS``, ``INIT``; see the README section "Generated code".
"""

from __future__ import annotations

from backprop.codegen.emit import generate, load_module
from backprop.codegen.gradcheck import GradcheckReport, gradcheck

__all__ = ["generate", "load_module", "gradcheck", "GradcheckReport"]
