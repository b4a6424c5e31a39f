"""How a :class:`~backprop.engine.derivation.Derivation` shows itself in Jupyter: rendered math.

The Derivation's display hooks (``_repr_latex_``, ``_repr_markdown_``) live in the engine, which
cannot import its presenters: they sit above it in the pipeline. The engine keeps a registry of
display formats instead (:data:`~backprop.engine.derivation.DISPLAY_FORMATS`); :func:`install`
fills it with the renderers here, and importing :mod:`backprop.present` (which ``import backprop``
does) calls it.
"""

from __future__ import annotations

from backprop.engine.derivation import DISPLAY_FORMATS, Derivation
from backprop.present.latex import to_latex
from backprop.present.markdown import to_markdown


def latex_display(d: Derivation) -> str:
    """Jupyter's LaTeX form: the notes as one ``aligned`` environment in a ``$$`` display."""
    return "$$" + to_latex(d, body_only=True) + "$$"


def markdown_display(d: Derivation) -> str:
    """Jupyter's Markdown form: the whole notes."""
    return to_markdown(d)


def install() -> None:
    """Register the display formats with the engine (again: the same ones)."""
    DISPLAY_FORMATS.register(latex=latex_display, markdown=markdown_display)
