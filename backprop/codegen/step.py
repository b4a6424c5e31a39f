"""An optimizer's ``init_state``/``step`` functions, as NumPy or JAX source, from its row in :mod:`backprop.engine.optim`.

NumPy: the statements are the row's own in-place code, each block under the
update equation it carries out. JAX: each update equation printed by the JAX
printer (:mod:`backprop.codegen.jax_printer`, the one that prints the module),
one assignment per equation, so the step is pure and jit-able. The templates
(``optimizer.py.j2``, ``optimizer_jax.py.j2``) are only the scaffolding.
"""

from __future__ import annotations

import textwrap
from functools import cache
from types import ModuleType
from typing import Any

import sympy

from backprop.codegen.jax_printer import JaxPrinter
from backprop.codegen.loader import load_source
from backprop.codegen.templates import environment
from backprop.engine.optim import generic_updates, get_optimizer
from backprop.support.naming import CodeNames

_WIDTH = 76
_STATE = {"v": "v, the gradients' running average", "s": "s, the squared gradients' running average"}


def _state_doc(letters: tuple[str, ...]) -> list[str]:
    parts = ["the step count t"] + [_STATE.get(c, c) for c in letters] + ["a workspace per param"]
    text = "Holds " + "; ".join(parts[:-1]) + "; and " + parts[-1] + ", each array shaped and typed like its param"
    return textwrap.wrap(text + ", so ``step`` allocates nothing.", _WIDTH)


def _jax_state_doc(letters: tuple[str, ...]) -> list[str]:
    parts = ["the step count t"] + [_STATE.get(c, c) for c in letters]
    text = ("Holds " + "; ".join(parts[:-1]) + "; and " + parts[-1]) if letters else "Holds " + parts[0]
    return textwrap.wrap(text + (", each shaped and typed like its param." if letters else "."), _WIDTH)


def _sentence(text: str) -> list[str]:
    return textwrap.wrap(text[0].upper() + text[1:] + ".", _WIDTH)


@cache
def step_source(optimizer: str) -> str:
    """``init_state(params)`` and ``step(params, grads, state, lr=..., ...)`` for ``optimizer`` (numpy as np)."""
    opt = get_optimizer(optimizer)
    blocks = [{"comment": u.text(), "code": u.code} for u in generic_updates(opt, local=True)]
    return _render("optimizer.py.j2", opt, blocks, _state_doc(opt.state), prelude=opt.prelude)


@cache
def jax_step_source(optimizer: str) -> str:
    """``init_state(params)`` and a pure ``step(params, grads, state, lr=..., ...) -> (params, state)`` for
    ``optimizer`` (jax.numpy as jnp): each update equation printed as one assignment."""
    opt = get_optimizer(optimizer)
    hypers = {h.symbol: sympy.Symbol(h.arg) for h in opt.hypers}  # α prints as the argument lr
    printer = JaxPrinter(CodeNames(), {h.arg for h in opt.hypers} | {"t"})
    blocks = [{"comment": u.text(), "code": f"{printer.doprint(u.target)} = {printer.doprint(u.expr.xreplace(hypers))}"}
              for u in generic_updates(opt, local=True)]
    return _render("optimizer_jax.py.j2", opt, blocks, _jax_state_doc(opt.state))


def step_section(optimizer: str, backend: str = "numpy") -> str:
    """What a generated module appends for ``--optimizer``: a banner, then :func:`step_source`
    (:func:`jax_step_source` for ``backend`` jax)."""
    opt = get_optimizer(optimizer)
    pure = backend == "jax"
    return environment().get_template("optimizer_section.py.j2").render(
        title=opt.title, name=opt.name, pure=pure, source=jax_step_source(opt.name) if pure else step_source(opt.name),
    )


def load_step(optimizer: str) -> ModuleType:
    """A module holding just ``init_state`` and ``step`` (imported from a file, never exec'd)."""
    source = f'"""{get_optimizer(optimizer).title}: init_state and step."""\n\nimport numpy as np\n\n\n'
    return load_source(source + step_source(optimizer), f"step_{optimizer}")


def _render(template: str, opt: Any, blocks: list[dict[str, str]], state_doc: Any, **extra: Any) -> str:
    """An optimizer template filled in: what the NumPy and the JAX step share, and ``extra``."""
    return environment().get_template(template).render(
        title=opt.title,
        Title=opt.title[0].upper() + opt.title[1:],
        doc=_sentence(opt.doc),
        state=opt.state,
        state_doc=state_doc,
        signature=", ".join(f"{h.arg}={h.default!r}" for h in opt.hypers),
        hypers=opt.hypers,
        equations=[u.text() for u in generic_updates(opt)],
        blocks=blocks,
        **extra,
    )
