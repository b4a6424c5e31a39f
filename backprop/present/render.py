"""A derivation in the format named on the command line (``backprop derive --format``)."""

from __future__ import annotations

from backprop.engine.derivation import Derivation
from backprop.engine.through_time import TimeDerivation
from backprop.present.jsondoc import to_json
from backprop.present.latex import to_latex
from backprop.present.markdown import to_markdown
from backprop.present.notes import AnyDerivation
from backprop.present.text import to_text
from backprop.present.through_time_json import time_json
from backprop.support.deepstack import deep_stack

FORMATS = ("text", "latex", "markdown", "json")
#: JSON is data, not notes: each kind of derivation has its own writer.
JSON_WRITERS = {Derivation: to_json, TimeDerivation: time_json}


@deep_stack
def render(d: AnyDerivation, fmt: str, *, standalone: bool = False, **options: object) -> str:
    """Dispatch on the format name (the CLI's ``--format``)."""
    if fmt == "latex":
        return to_latex(d, standalone=standalone, **options)  # type: ignore[arg-type]
    writers = {"text": to_text, "markdown": to_markdown, "json": JSON_WRITERS[type(d)]}
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    return writers[fmt](d, **options)  # type: ignore[arg-type]
