"""Presentations: a derivation as lecture notes (text, LaTeX, Markdown, JSON) and in index notation.

Importing the package registers the Derivation's Jupyter display formats (:mod:`backprop.present.jupyter`).
"""

from backprop.present.jupyter import install

install()
