"""Build a :class:`~backprop.language.model.Model` from Python calls, one spec line per call.

The builder writes spec text and hands it to :func:`~backprop.language.parse.parse_spec`, so it
sits above the parser (and the model below both): a network built line by line meets exactly the
checks and error messages of a spec file.
"""

from __future__ import annotations

from backprop.language.model import Model
from backprop.language.parse import parse_spec


class NetworkBuilder:
    """Build a :class:`Model` from Python, one spec line per call.

    >>> net = NetworkBuilder("neuron")
    >>> net.input("x", "n", "m").input("y", 1, "m").param("w", 1, "n").param("b")
    >>> net.assign("a", "sigmoid(w @ x + b)").assign("loss", "sum((a - y)**2) / m")
    >>> model = net.build()

    Expressions are spec-language text and go through the same parser and
    checks as a spec file; nothing is evaluated.
    """

    def __init__(self, name: str = "network") -> None:
        self.name = name
        self.lines: list[str] = []

    def _decl(self, kind: str, name: str, dims: tuple, domain: str | None) -> NetworkBuilder:
        if len(dims) == 1 and isinstance(dims[0], str) and " " in dims[0].strip():
            dims = tuple(dims[0].split())
        shape = f"[{', '.join(str(d) for d in dims)}]" if dims else ""
        self.lines.append(f"{kind} {name}{shape}" + (f" {domain}" if domain else ""))
        return self

    def input(self, name: str, *dims: str | int, domain: str | None = None) -> NetworkBuilder:
        return self._decl("input", name, dims, domain)

    def param(self, name: str, *dims: str | int) -> NetworkBuilder:
        return self._decl("param", name, dims, None)

    def assign(self, name: str, expr: str) -> NetworkBuilder:
        self.lines.append(f"{name} = {expr}")
        return self

    @property
    def source(self) -> str:
        return "\n".join(self.lines) + "\n"

    def build(self) -> Model:
        return parse_spec(self.source, path=f"<{self.name}>", name=self.name)
