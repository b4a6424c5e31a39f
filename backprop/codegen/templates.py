"""The jinja2 environment every generated file is rendered with: Python modules and LaTeX alike.

Separate from the modules that fill the templates (:mod:`backprop.codegen.emit`,
:mod:`backprop.codegen.step`, :mod:`backprop.codegen.latex`) so that each of them
reaches the same escaping filters and delimiters without importing another.
"""

from __future__ import annotations

import jinja2

from backprop.support.bundled import templates_dir
from backprop.support.escape import comment_text, docstring_text, py_str, tex_text


def environment(latex: bool = False) -> jinja2.Environment:
    """Jinja for the templates; LaTeX templates use ``<< >>`` / ``<% %>`` (braces are LaTeX's).

    User text reaches a template only through these filters (:mod:`backprop.support.escape`):
    ``pystr`` (a string literal), ``docstring`` (a line of a docstring), ``comment``
    (the rest of a comment line), ``tex`` (LaTeX text).
    """
    delimiters = dict(
        block_start_string="<%", block_end_string="%>", variable_start_string="<<",
        variable_end_string=">>", comment_start_string="<#", comment_end_string="#>",
    ) if latex else {}
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        **delimiters,
    )
    env.filters.update(pystr=py_str, docstring=docstring_text, comment=comment_text, tex=tex_text)
    return env
