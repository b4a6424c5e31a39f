"""backprop: neural networks as symbolic forward equations -> derivations, generated code, verdicts.

The public API, one import away (``import backprop``):

- the language: :func:`load` (a spec path or a bundled example's name), :func:`parse_spec`,
  :func:`network` (a Python function as a spec), :func:`example_names`;
- the engine: :func:`get_model`, :func:`get_derivation` (a :class:`Derivation` that renders
  itself in Jupyter), :func:`backpropagate`; for a spec with a loop, :func:`get_notes_derivation`
  (a :class:`TimeDerivation`: backpropagation through time, shown the same way);
- verification: :func:`verify` (hand-derived gradients judged, with a diagnosis);
- code generation: :func:`generate`, :func:`load_module`, :func:`gradcheck`.

The packages below follow the pipeline (see the README's package map):
support -> expr -> language -> engine -> present / verification / codegen -> train -> cli.

Every name here is imported on first use (PEP 562): ``import backprop`` itself imports nothing
else, so the command line (``backprop.cli``, which Python can only reach through this package)
pays for the stages its subcommand uses and no more. The first name taken from here also imports
:mod:`backprop.present`, which registers how a Derivation displays in Jupyter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backprop import present as present
    from backprop.codegen import GradcheckReport, generate, gradcheck, load_module
    from backprop.engine.chain import derive as backpropagate
    from backprop.engine.derivation import Derivation, Equation, Path, Step
    from backprop.engine.pipeline import get_derivation, get_model, get_notes_derivation
    from backprop.engine.through_time import TimeDerivation, derive_through_time
    from backprop.language.builder import NetworkBuilder
    from backprop.language.model import Assign, Decl, Model
    from backprop.language.parse import load, parse_spec
    from backprop.present.functions import network
    from backprop.support.bundled import example_names
    from backprop.support.errors import ShapeError, SpecError, UnsupportedError
    from backprop.verification.report import ClaimResult, VerifyReport
    from backprop.verification.verify import verify

#: public name -> (module, attribute in it)
_API: dict[str, tuple[str, str]] = {
    "GradcheckReport": ("backprop.codegen", "GradcheckReport"),
    "generate": ("backprop.codegen", "generate"),
    "gradcheck": ("backprop.codegen", "gradcheck"),
    "load_module": ("backprop.codegen", "load_module"),
    "backpropagate": ("backprop.engine.chain", "derive"),
    "Derivation": ("backprop.engine.derivation", "Derivation"),
    "Equation": ("backprop.engine.derivation", "Equation"),
    "Path": ("backprop.engine.derivation", "Path"),
    "Step": ("backprop.engine.derivation", "Step"),
    "get_derivation": ("backprop.engine.pipeline", "get_derivation"),
    "get_model": ("backprop.engine.pipeline", "get_model"),
    "get_notes_derivation": ("backprop.engine.pipeline", "get_notes_derivation"),
    "TimeDerivation": ("backprop.engine.through_time", "TimeDerivation"),
    "derive_through_time": ("backprop.engine.through_time", "derive_through_time"),
    "NetworkBuilder": ("backprop.language.builder", "NetworkBuilder"),
    "Assign": ("backprop.language.model", "Assign"),
    "Decl": ("backprop.language.model", "Decl"),
    "Model": ("backprop.language.model", "Model"),
    "load": ("backprop.language.parse", "load"),
    "parse_spec": ("backprop.language.parse", "parse_spec"),
    "network": ("backprop.present.functions", "network"),
    "example_names": ("backprop.support.bundled", "example_names"),
    "ShapeError": ("backprop.support.errors", "ShapeError"),
    "SpecError": ("backprop.support.errors", "SpecError"),
    "UnsupportedError": ("backprop.support.errors", "UnsupportedError"),
    "ClaimResult": ("backprop.verification.report", "ClaimResult"),
    "VerifyReport": ("backprop.verification.report", "VerifyReport"),
    "verify": ("backprop.verification.verify", "verify"),
}
#: The stages, reachable as attributes (``backprop.present.text.to_text(d)``) as when all were imported.
_STAGES = frozenset({"support", "expr", "language", "engine", "present", "verification", "codegen", "train",
                     "grading", "cli"})

__all__ = [
    "Assign", "Decl", "Model", "NetworkBuilder", "ShapeError", "SpecError", "UnsupportedError",
    "example_names", "load", "parse_spec", "get_derivation", "get_model", "backpropagate",
    "Derivation", "Equation", "Path", "Step",
    "get_notes_derivation", "TimeDerivation", "derive_through_time",
    "verify", "VerifyReport", "ClaimResult",
    "network",
    "generate", "load_module", "gradcheck", "GradcheckReport",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """A public name, imported on first use (and kept: the next lookup is an ordinary attribute)."""
    if name == "__version__":
        from backprop.support.version import version

        value: Any = version()
    elif name in _API:
        importlib.import_module("backprop.present")  # registers the Derivation's Jupyter display formats
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _STAGES:
        importlib.import_module("backprop.present")
        value = importlib.import_module(f"backprop.{name}")
    else:
        raise AttributeError(f"module 'backprop' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _STAGES)
