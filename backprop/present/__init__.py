"""Presentations: a derivation as lecture notes (text, LaTeX, Markdown, JSON) and in index notation.

Importing the package registers the Derivation's Jupyter display formats (:mod:`backprop.present.jupyter`)
and makes every presenter reachable from ``import backprop`` alone, as the README writes them:
``backprop.present.text.to_text(d)``, ``backprop.present.render.render(d, "json")``.
"""

from backprop.present import jsondoc as jsondoc
from backprop.present import latex as latex
from backprop.present import markdown as markdown
from backprop.present import render as render
from backprop.present import text as text
from backprop.present.jupyter import install

install()
