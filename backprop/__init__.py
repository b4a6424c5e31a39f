"""backprop: neural networks as symbolic forward equations -> derivations, generated code, verdicts.

The public API, one import away (``import backprop``):

- the language: :func:`load` (a spec path or a bundled example's name), :func:`parse_spec`,
  :func:`network` (a Python function as a spec), :func:`example_names`;
- the engine: :func:`get_model`, :func:`get_derivation` (a :class:`Derivation` that renders
  itself in Jupyter), :func:`backpropagate`;
- verification: :func:`verify` (hand-derived gradients judged, with a diagnosis);
- code generation: :func:`generate`, :func:`load_module`, :func:`gradcheck`.

The packages below follow the pipeline (see the README's package map):
support -> expr -> language -> engine -> present / verification / codegen -> train -> cli.
"""

from __future__ import annotations

from backprop import present as present  # importing it registers how a Derivation displays in Jupyter
from backprop.codegen import GradcheckReport, generate, gradcheck, load_module
from backprop.engine.chain import derive as backpropagate
from backprop.engine.derivation import Derivation, Equation, Path, Step
from backprop.engine.pipeline import get_derivation, get_model
from backprop.language.builder import NetworkBuilder
from backprop.language.model import Assign, Decl, Model
from backprop.language.parse import load, parse_spec
from backprop.present.functions import network
from backprop.support.bundled import example_names
from backprop.support.errors import ShapeError, SpecError, UnsupportedError
from backprop.support.version import version as _version
from backprop.verification.report import ClaimResult, VerifyReport
from backprop.verification.verify import verify

__version__ = _version()

__all__ = [
    "Assign", "Decl", "Model", "NetworkBuilder", "ShapeError", "SpecError", "UnsupportedError",
    "example_names", "load", "parse_spec", "get_derivation", "get_model", "backpropagate",
    "Derivation", "Equation", "Path", "Step",
    "verify", "VerifyReport", "ClaimResult",
    "network",
    "generate", "load_module", "gradcheck", "GradcheckReport",
    "__version__",
]
