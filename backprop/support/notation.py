"""Course-notes notation for names: W1 -> W₁ (``W_{1}``), yhat -> ŷ, lam -> λ."""

from __future__ import annotations

import ast
import re
import unicodedata

from backprop.support.escape import TEX_SPECIAL, tex_text

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eps": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lam": "λ",
    "lambda_": "λ", "lmbda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_GREEK_TEX = {k: "\\" + (
    {"lam": "lambda", "lambda_": "lambda", "lmbda": "lambda", "eps": "epsilon"}.get(k, k)
) for k in GREEK}
LOSS_NAMES = frozenset({"loss", "L", "cost"})
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SPLIT = re.compile(r"^(?P<base>[A-Za-z]+?)(?P<hat>_?hat)?(?:_?(?P<sub>\d+)|_(?P<word>\w+))?$")


def _parts(name: str) -> tuple[str, bool, str | None]:
    """Split a name into base, whether it wears a hat, and its subscript."""
    m = _SPLIT.match(name)
    if not m:
        return name, False, None
    base, hat = m.group("base"), bool(m.group("hat"))
    sub = m.group("sub") or m.group("word")
    if base in ("hat",):
        return name, False, None
    return base, hat, sub


#: A value at a step of a loop: ``H[t]``, ``H[t-1]``, ``H[t+1]``, ``H[0]``, ``X[:, t]`` (a slice at step t).
_STEP = re.compile(r"^(?P<base>[A-Za-z_]\w*)\[(?:\s*:\s*,)*\s*(?P<at>[A-Za-z_]\w*(?:\s*[-+]\s*\d+)?|\d+)\s*\]$")
_STEP_SUB = {"-": "₋", "+": "₊"}


def step_parts(name: str) -> tuple[str, str] | None:
    """``H[t-1]`` -> (``H``, ``t-1``): a value of a loop's step and the step it is taken at."""
    m = _STEP.match(name)
    return (m.group("base"), re.sub(r"\s+", "", m.group("at"))) if m else None


def latex_name(name: str) -> str:
    if name in LOSS_NAMES:
        return r"\mathcal{L}"
    step = step_parts(name)
    if step is not None:  # H_{t-1}; a name with a subscript of its own keeps it first, W_{2,t}
        body = latex_name(step[0])
        at = re.sub(r"(?<=[A-Za-z])(?=[-+])|(?<=[-+])(?=\d)", "", step[1])
        return body[:-1] + "," + at + "}" if body.endswith("}") and "_{" in body else body + "_{" + at + "}"
    base, hat, sub = _parts(name)
    if base in _GREEK_TEX:
        body = _GREEK_TEX[base]
    elif len(base) == 1:
        body = base
    else:
        body = r"\mathrm{" + base.replace("_", r"\_") + "}"
    if hat:
        body = r"\hat{" + body + "}"
    if sub is not None:
        sub_tex = sub if sub.isdigit() else r"\mathrm{" + sub.replace("_", r"\_") + "}"
        body += "_{" + sub_tex + "}"
    return body


def with_hat(text: str) -> str:
    """``text`` wearing a circumflex: one precomposed character where Unicode has one (ŷ, ŝ),
    which every terminal draws; a combining U+0302 otherwise (v̂, p̂)."""
    return unicodedata.normalize("NFC", text + "\u0302")


def text_name(name: str) -> str:
    if name in LOSS_NAMES:
        return "L"
    step = step_parts(name)
    if step is not None:  # Hₜ₋₁, Xₜ
        body = text_name(step[0])
        table = {**_SUBSCRIPT_LETTERS, **{d: d.translate(_SUB) for d in "0123456789"}, **_STEP_SUB}
        if all(ch in table for ch in step[1]):
            comma = "," if body[-1] in table.values() else ""  # W₂,ₜ: not W₂ₜ
            return body + comma + "".join(table[ch] for ch in step[1])
        return f"{body}_{step[1]}" if len(step[1]) == 1 else f"{body}_{{{step[1]}}}"
    base, hat, sub = _parts(name)
    body = GREEK.get(base, base)
    if hat:
        body = with_hat(body)
    if sub is not None:
        body += sub.translate(_SUB) if sub.isdigit() else "_" + sub
    return body


# ---------------------------------------------------------------------------
# Rule text (Unicode, from the registry) as LaTeX math
# ---------------------------------------------------------------------------

#: The placeholders a rule's formula is written in (𝒰, 𝒱, ...): script capitals, which no name of a
#: spec renders as (names are ASCII; their notation is Latin or Greek letters), so a rule cited
#: under a step never reads as a statement about the network's own Z or X.
PLACEHOLDERS: dict[str, str] = {
    "A": "𝒜", "B": "ℬ", "C": "𝒞", "M": "ℳ", "P": "𝒫", "S": "𝒮", "U": "𝒰", "V": "𝒱", "W": "𝒲",
    "X": "𝒳", "Y": "𝒴", "Z": "𝒵",
}
#: Unicode in registry rule text -> LaTeX math.
MATH_CHARS: dict[str, str] = {
    "∂": r"\partial ", "⊙": r"\odot ", "−": "-", "ᵀ": r"^{\top}", "ᵖ": "^{p}", "²": "^{2}",
    "³": "^{3}", "′": "'", "Σ": r"\Sigma ", "≤": r"\le ", "≥": r"\ge ", "·": r"\cdot ",
    "×": r"\times ", "→": r"\to ", "←": r"\leftarrow ", "≠": r"\ne ", "∈": r"\in ", "½": r"\tfrac{1}{2}",
    **{g: _GREEK_TEX[k] + " " for k, g in reversed(list(GREEK.items()))},
    **{s: rf"{{\mathcal{{{c}}}}}" for c, s in PLACEHOLDERS.items()},  # braced: a superscript takes it whole
}
#: Words that are operators, not prose, when they occur in a rule's formula.
MATH_WORDS: dict[str, str] = {
    "L": r"\mathcal{L}", "log": r"\log", "exp": r"\exp", "tanh": r"\tanh",
    **{w: rf"\operatorname{{{w}}}" for w in (
        "ReLU", "LeakyReLU", "softplus", "softmax", "sign", "mean", "rowsum", "colsum", "erf", "log1p", "expm1")},
    "log_softmax": r"\operatorname{logsoftmax}", "logsoftmax": r"\operatorname{logsoftmax}",
    "logsumexp": r"\operatorname{logsumexp}",
    "sin": r"\sin", "cos": r"\cos", "max": r"\max", "min": r"\min", "det": r"\det", "tr": r"\operatorname{tr}",
}
_TOKEN = re.compile(r"log_softmax|[A-Za-z]+|\d+|\s+|.")
class NotationError(ValueError):
    """Text holds a character the LaTeX output has no form for."""


def _is_prose(tok: str) -> bool:
    return tok.isalpha() and len(tok) > 1 and tok not in MATH_WORDS


def _juxtaposed(toks: list[str], i: int) -> bool:
    """A space between two factors (``∂L/∂Z Xᵀ``, ``p A``) is a product: keep a thin space."""
    before = toks[i - 1][-1:] if i else ""
    after = toks[i + 1][:1] if i + 1 < len(toks) else ""
    return bool(before) and bool(after) and (before.isalnum() or before in ")]ᵀᵖ²′") and (
        after.isalnum() or after in "([∂√" or after in MATH_CHARS and after not in "−⊙·×≤≥→←≠∈"
    )


def math_to_latex(formula: str) -> str:
    """A registry formula (``∂L/∂W = ∂L/∂Z Xᵀ for Z = W X``) as LaTeX math.

    Operator words become ``\\log``/``\\operatorname``, other words of two or
    more letters are prose (``\\text{ for }``), and every Unicode symbol goes
    through :data:`MATH_CHARS`; anything else raises :class:`NotationError`.
    """
    toks = _TOKEN.findall(formula)
    kinds = ["prose" if _is_prose(t) else "space" if t.isspace() else "math" for t in toks]
    for i, k in enumerate(kinds):  # a space next to prose is part of the prose
        if k == "space" and ("prose" in kinds[max(i - 1, 0) : i] or "prose" in kinds[i + 1 : i + 2]):
            kinds[i] = "prose-space"
    out: list[str] = []
    text_run: list[str] = []
    closers: list[int] = []  # paren depths at which a ^( group closes
    depth = 0
    i = 0
    while i < len(toks):
        tok, kind = toks[i], kinds[i]
        if kind.startswith("prose"):
            text_run.append(tok if kind == "prose" else " ")
            i += 1
            continue
        if text_run:
            out.append(r"\text{" + "".join(text_run) + "}")
            text_run = []
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if kind == "space":
            out.append(r"\," if _juxtaposed(toks, i) else " ")
        elif tok == "^" and nxt == "(":
            out.append("^{(")
            depth += 1
            closers.append(depth)
            i += 1
        elif tok == "(":
            depth += 1
            out.append("(")
        elif tok == ")":
            out.append(")")
            if closers and closers[-1] == depth:
                closers.pop()
                out.append("}")
            depth -= 1
        elif tok == "⁻" and nxt in ("¹", "ᵀ"):  # A⁻¹, A⁻ᵀ
            out.append("^{-1}" if nxt == "¹" else r"^{-\top}")
            i += 1
        elif tok == "√" and nxt == "′":
            out.append(r"\left(\sqrt{\cdot}\right)'")
            i += 1
        elif tok == "√" and nxt[:1].isalnum():
            out.append(r"\sqrt{" + MATH_WORDS.get(nxt, MATH_CHARS.get(nxt, nxt)).strip() + "}")
            i += 1
        elif tok in MATH_WORDS:
            out.append(MATH_WORDS[tok] + ("" if nxt[:1] in "(^[" else " "))
        elif tok in MATH_CHARS:
            out.append(MATH_CHARS[tok])
        elif tok.isascii() and tok not in TEX_SPECIAL or tok in "{}^_<>|":
            out.append(tok)
        else:
            raise NotationError(f"no LaTeX form for {tok!r} in rule text {formula!r}")
        i += 1
    if text_run:
        out.append(r"\text{" + "".join(text_run) + "}")
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def inline_math(f: str) -> str:
    """A formula from :func:`math_to_latex` as running text: its prose runs (``\\text{ for }``) set
    outside the math, so a line may break there (one ``$...$`` holding a whole rule cannot break)."""
    out = "$" + re.sub(r"\\text\{([^{}]*)\}", r"$\1$", f) + "$"
    return re.sub(r"\$([,;.() ]*)\$", r"\1", out.replace("$$", ""))  # no math around bare punctuation


def rule_parts(rule: str) -> tuple[str, str | None]:
    """``"name: formula"`` -> (name, formula); a rule without a formula -> (rule, None)."""
    name, sep, formula = rule.partition(": ")
    return (name, formula) if sep else (rule, None)


def rule_latex(rule: str) -> tuple[str, str | None]:
    """A registry rule as (LaTeX text for its name, LaTeX math for its formula)."""
    name, formula = rule_parts(rule)
    return tex_text(name), (math_to_latex(formula) if formula is not None else None)


# ---------------------------------------------------------------------------
# Terminal layout helpers
# ---------------------------------------------------------------------------

_SUBSCRIPT_LETTERS = dict(zip("aehijklmnoprstuvx", "ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))


def text_subscript(s: str) -> str:
    """``t`` -> ``ₜ`` when Unicode has every character as a subscript, else ``_t``."""
    table = {**_SUBSCRIPT_LETTERS, **{d: d.translate(_SUB) for d in "0123456789"}, ",": ","}
    if all(ch in table for ch in s):
        return "".join(table[ch] for ch in s)
    return "_" + s


def display_width(s: str) -> int:
    """Columns a string takes in a terminal: combining marks (ŷ's hat) take none."""
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


# ---------------------------------------------------------------------------
# latexify's renderings (``codegen --latex``, ``@backprop.network``) in the derivation's notation
# ---------------------------------------------------------------------------

#: A placeholder latexify prints between the factors of a matrix product (``A \cdot \mathrm{zqmatmul}
#: \cdot B``), which :func:`juxtaposed` then removes: latexify sets ``@`` and a product with a scalar
#: alike, as ``·``.
_MATMUL_MARK = "zqmatmul"
#: latexify may leave out a ``\cdot`` on either side of the mark (it juxtaposes a power and a name).
_MARKED = re.compile(rf"\s*(?:\\cdot\s*)?(?:\\mathrm\{{{_MATMUL_MARK}\}}|{_MATMUL_MARK})\s*(?:\\cdot\s*)?")


def juxtaposed(tex: str) -> str:
    """latexify's output with each marked matrix product (:func:`juxtapose`) written ``A B``."""
    return _MARKED.sub(" ", tex)


def juxtapose(node: ast.BinOp) -> ast.BinOp:
    """A matrix product ``A @ B`` as the derivation writes it, ``A B``: a product with a mark between
    its factors (see :func:`juxtaposed`); any other operation as it is."""
    if not isinstance(node.op, ast.MatMult):
        return node
    marked = ast.BinOp(node.left, ast.Mult(), ast.Name(_MATMUL_MARK, ast.Load()))
    return ast.BinOp(marked, ast.Mult(), node.right)


def display_fractions(tex: str) -> str:
    r"""Every fraction at display size, ``\dfrac``, as the derivation's display math sets ∂L/∂W and the
    loss: latexify's inline ``$...$`` would set them in small type."""
    return tex.replace(r"\frac{", r"\dfrac{")
