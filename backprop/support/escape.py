"""One escaping path: every piece of user text on its way into a generated artifact.

Spec comments, spec and output paths, model names, docstrings of
``@backprop.network`` functions: any of them can hold quotes, backslashes, line
ends or LaTeX syntax. Each target has one function here, and nothing else
writes user text into generated code, documents or commands:

- Python: :func:`py_str` (a string literal), :func:`docstring_text` (a line
  inside ``\"\"\"...\"\"\"``), :func:`comment_text` (a ``#`` comment line);
- the shell: :func:`shell_quote` and its inverse :func:`shell_split` (the
  header's "regenerate with" command);
- LaTeX text mode: :func:`tex_text` (never raises: every character has a form);
- Markdown: :func:`markdown_text`, :func:`markdown_code`; matplotlib titles:
  :func:`mathtext_text`; JSON: :func:`json_text`; the terminal: :func:`visible`;
- HTML: :func:`html_text`; a CSV cell a spreadsheet opens: :func:`csv_cell`; a file
  name made from user text (a student's id): :func:`file_stems`.

The shared hazard is the *line end*: Python's tokenizer ends a line at ``\\n``
and ``\\r``, ``str.splitlines`` (and so linecache, editors) also at ``\\x0b``,
``\\x0c``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029; TeX at ``\\n`` and
``\\r``. A character is *unsafe* when it is a control, format, surrogate or
line/paragraph separator (categories Cc, Cf, Cs, Zl, Zp): that covers every line
end, NUL, bidirectional overrides and lone surrogates (which cannot be encoded
as UTF-8). No escaping function lets an unsafe character through raw.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shlex
import unicodedata
from collections.abc import Iterable
from typing import Any

__all__ = [
    "is_unsafe", "visible", "path_word", "py_str", "docstring_text", "comment_text", "shell_quote", "shell_split",
    "tex_text", "markdown_text", "markdown_code", "mathtext_text", "json_text", "TEX_SPECIAL",
    "html_text", "csv_cell", "file_stems",
]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_unsafe(ch: str) -> bool:
    """A control, format or surrogate character, or a line/paragraph separator."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _py_escape(ch: str) -> str:
    """``ch`` as a Python escape sequence (``\\x0b``, ``\\u2028``, ``\\U0001d430``)."""
    o = ord(ch)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def visible(text: str) -> str:
    """``text`` on one line, every unsafe character shown as its Python escape.

    For plain text (a comment, the terminal): not reversible, but what it shows
    is unambiguous to a reader and harmless to every tool.
    """
    if not any(is_unsafe(ch) for ch in text):
        return text
    return "".join(_py_escape(ch) if is_unsafe(ch) else ch for ch in text)


# ---------------------------------------------------------------------------
# Python source
# ---------------------------------------------------------------------------


def py_str(text: str) -> str:
    """A double-quoted Python string literal whose value is exactly ``text``."""
    body = "".join(
        "\\\\" if ch == "\\" else '\\"' if ch == '"' else _py_escape(ch) if is_unsafe(ch) else ch for ch in text
    )
    return f'"{body}"'


def docstring_text(text: str) -> str:
    """``text`` for a line inside a ``\"\"\"`` docstring; the docstring's value holds ``text`` exactly.

    Backslashes are doubled (``C:\\Users`` is no ``\\U`` escape), unsafe
    characters escaped, and a double quote escaped when it touches another one
    or an end of ``text`` -- so no ``\"\"\"`` can form, inside ``text`` or with
    the template's quotes -- while ``{"h": 8}`` in a usage example stays
    readable.
    """
    out = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"' and (i in (0, last) or text[i - 1] == '"' or text[i + 1] == '"'):
            out.append('\\"')
        elif is_unsafe(ch):
            out.append(_py_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def comment_text(text: str) -> str:
    """``text`` for the rest of a comment line (``#`` in Python, ``%`` in LaTeX): one line, always."""
    return visible(text)


# ---------------------------------------------------------------------------
# The shell
# ---------------------------------------------------------------------------

_ANSI_ESCAPES = {"\\": "\\\\", "'": "\\'"}


def _ansi_c_escape(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape): the byte itself
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x80:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def shell_quote(word: str) -> str:
    """``word`` as one shell word on one line: :func:`shlex.quote` when that holds no unsafe
    character, else ANSI-C quoting (``$'a\\nb'``: bash, zsh, ksh and POSIX.1-2024 sh)."""
    if not any(is_unsafe(ch) for ch in word):
        return shlex.quote(word)
    body = "".join(_ANSI_ESCAPES.get(ch) or (_ansi_c_escape(ch) if is_unsafe(ch) else ch) for ch in word)
    return f"$'{body}'"


def path_word(path: str) -> str:
    """A path as a command-line word that no parser takes for an option: ``-x.spec`` -> ``./-x.spec``.

    The same file, but ``backprop codegen -x.spec`` would read ``-x`` as an option; every path that
    goes into a "regenerate with" command passes through here before :func:`shell_join`.
    """
    return f"./{path}" if path.startswith("-") else path


def shell_join(words: list[str]) -> str:
    """A command line from its words, each through :func:`shell_quote`: one line, copy-pastable."""
    return " ".join(shell_quote(w) for w in words)


_ANSI_CODE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([\\'\"]))")


def _ansi_c_decode(body: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1):
            b = int(m.group(1), 16)
            return chr(b) if b < 0x80 else chr(0xDC00 + b)
        return chr(int(m.group(2) or m.group(3), 16)) if not m.group(4) else m.group(4)

    rest = _ANSI_CODE.sub("", body)
    if "\\" in rest:
        raise ValueError(f"unsupported escape in $'{body}'")
    return _ANSI_CODE.sub(sub, body)


def shell_split(command: str) -> list[str]:
    """The words of a command :func:`shell_quote` wrote: :func:`shlex.split`, plus ``$'...'`` words.

    ValueError when ``command`` does not split (an unclosed quote).
    """
    if "$'" not in command:
        return shlex.split(command)
    words: list[str] = []
    word = r"""(?:[^\s$'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*"|\$(?!'))+"""
    for m in re.finditer(rf"\$'((?:[^'\\]|\\.)*)'|{word}", command, re.S):
        if m.group(1) is not None:
            words.append(_ansi_c_decode(m.group(1)))
        else:
            words += shlex.split(m.group())
    return words


# ---------------------------------------------------------------------------
# LaTeX (text mode), for pdflatex with the default OT1 fonts: ASCII out
# ---------------------------------------------------------------------------

#: LaTeX's special characters (and those OT1 text fonts draw as something else: < > |). Every
#: form uses the OT1 text and math fonts only: ``\$`` in \texttt or bold would need TS1 fonts,
#: which a bare TeX Live only has by running METAFONT.
TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\ensuremath{\$}", "&": r"\&", "#": r"\#",
    "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}
#: Combining marks -> the OT1 accent command that draws them.
_TEX_ACCENTS = {
    "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u",
    "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0323": "d",
    "\u0327": "c", "\u0331": "b",
}
_TEX_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
    "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi", "π": "pi",
    "ρ": "rho", "σ": "sigma", "ς": "varsigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi",
    "ψ": "psi", "ω": "omega", "ϕ": "phi", "ϵ": "epsilon", "Γ": "Gamma", "Δ": "Delta", "Θ": "Theta",
    "Λ": "Lambda", "Ξ": "Xi", "Π": "Pi", "Σ": "Sigma", "Υ": "Upsilon", "Φ": "Phi", "Ψ": "Psi",
    "Ω": "Omega", "µ": "mu",
}
_TEX_MATH = {
    "×": r"\times", "÷": r"\div", "±": r"\pm", "∓": r"\mp", "·": r"\cdot", "⋅": r"\cdot", "−": "-",
    "∗": "*", "→": r"\to", "←": r"\leftarrow", "↔": r"\leftrightarrow", "⇒": r"\Rightarrow",
    "⇐": r"\Leftarrow", "⇔": r"\Leftrightarrow", "↦": r"\mapsto", "≤": r"\le", "≥": r"\ge",
    "≠": r"\ne", "≈": r"\approx", "≡": r"\equiv", "∼": r"\sim", "∝": r"\propto", "∞": r"\infty",
    "∂": r"\partial", "∇": r"\nabla", "∑": r"\sum", "∏": r"\prod", "∫": r"\int", "√": r"\surd",
    "∈": r"\in", "∉": r"\notin", "⊂": r"\subset", "⊆": r"\subseteq", "∪": r"\cup", "∩": r"\cap",
    "∀": r"\forall", "∃": r"\exists", "∅": r"\emptyset", "¬": r"\neg", "∧": r"\wedge", "∨": r"\vee",
    "⊙": r"\odot", "⊗": r"\otimes", "⊕": r"\oplus", "∘": r"\circ", "‖": r"\|", "∥": r"\|",
    "°": r"^\circ", "′": r"'", "″": r"''", "•": r"\bullet", "∉": r"\notin", "ℓ": r"\ell",
    "ℒ": r"\mathcal{L}", "ᵀ": r"^{\top}",
    "⊤": r"\top", "†": r"\dagger", "‡": r"\ddagger", "…": r"\dots", "⋯": r"\cdots",
}
_TEX_TEXT = {
    "ß": r"\ss{}", "æ": r"\ae{}", "Æ": r"\AE{}", "œ": r"\oe{}", "Œ": r"\OE{}", "ø": r"\o{}",
    "Ø": r"\O{}", "å": r"\aa{}", "Å": r"\AA{}", "ł": r"\l{}", "Ł": r"\L{}", "ı": r"\i{}",
    "ȷ": r"\j{}", "–": "--", "—": "---", "‐": "-", "‑": "-", "‘": "`", "’": "'", "‚": ",",
    "“": "``", "”": "''", "„": ",,", "«": r"\ensuremath{\ll}", "»": r"\ensuremath{\gg}",
    "‹": r"\ensuremath{<}", "›": r"\ensuremath{>}", "¡": "!`", "¿": "?`", "£": r"\ensuremath{\pounds}",
    "§": r"\ensuremath{\S}", "¶": r"\ensuremath{\P}", "©": "(c)", "€": "EUR", "⁄": "/", "\u00a0": "~",
    "\u2009": r"\,", "\u202f": r"\,", "\t": " ",
}
_TEX_DOTLESS = {"i": r"\i", "j": r"\j"}


def _tex_char(ch: str) -> str:
    """One non-ASCII (or control) character as ASCII LaTeX text that pdflatex draws."""
    if ch in _TEX_TEXT:
        return _TEX_TEXT[ch]
    if ch in _TEX_GREEK:
        return rf"\ensuremath{{\{_TEX_GREEK[ch]}}}"
    if ch in _TEX_MATH:
        return rf"\ensuremath{{{_TEX_MATH[ch]}}}"
    decomposed = unicodedata.normalize("NFD", ch)
    base, marks = decomposed[:1], decomposed[1:]
    if base.isascii() and base.isalpha() and marks and all(m in _TEX_ACCENTS for m in marks):
        out = _TEX_DOTLESS.get(base, base)
        for m in marks:
            out = "\\" + _TEX_ACCENTS[m] + "{" + out + "}"
        return out
    compat = unicodedata.normalize("NFKC", ch)
    if compat != ch and not is_unsafe(ch):
        sup = unicodedata.decomposition(ch).startswith(("<super>", "<sub>"))
        inner = "".join(TEX_SPECIAL.get(c, c) if c.isascii() else _tex_char(c) for c in compat)
        if sup and compat.isascii():
            mark = "^" if unicodedata.decomposition(ch).startswith("<super>") else "_"
            return rf"\ensuremath{{{mark}{{\mathrm{{{inner}}}}}}}"
        return inner
    return rf"\texttt{{[U+{ord(ch):04X}]}}"


def tex_text(text: str) -> str:
    """``text`` in LaTeX text mode (a paragraph, ``\\emph``, ``\\texttt``): ASCII, compiles with pdflatex.

    LaTeX's specials are escaped; a non-ASCII character becomes the command
    that draws it (ŷ -> ``\\^{y}``, × -> ``\\ensuremath{\\times}``, α ->
    ``\\ensuremath{\\alpha}``, ｂ -> b, ² -> a superscript 2); any other,
    and every control character, is shown as its code point (``[U+2603]``).
    """
    return "".join(TEX_SPECIAL.get(ch, ch) if ch.isascii() and ch.isprintable() else _tex_char(ch) for ch in text)


# ---------------------------------------------------------------------------
# Markdown, matplotlib, JSON
# ---------------------------------------------------------------------------

_MD_SPECIAL = frozenset("\\`*_[]<>|#$&~")


def markdown_text(text: str) -> str:
    """``text`` as one Markdown paragraph line: inline syntax (and ``$`` math) escaped, no line breaks."""
    out = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in visible(text))
    m = re.match(r"(\s*)([-+=]|\d+(?=[.)]))", out)  # a list item, a setext underline
    if m:
        lead = m.group(2)
        out = m.group(1) + ("\\" + lead if not lead.isdigit() else lead + "\\") + out[m.end():]
    return out


def markdown_code(text: str) -> str:
    """``text`` as a Markdown code span: fenced by more backticks than it holds, on one line."""
    text = visible(text)
    run = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def mathtext_text(text: str) -> str:
    """``text`` for a matplotlib title or label: a ``$`` would start mathtext."""
    return visible(text).replace("$", r"\$")


def json_text(doc: Any, indent: int | None = 2) -> str:
    """``doc`` as JSON, UTF-8 kept readable, but no raw lone surrogate (unencodable) or
    U+2028/U+2029 (line ends to JavaScript)."""
    out = json.dumps(doc, ensure_ascii=False, indent=indent)
    return re.sub("[\ud800-\udfff\u2028\u2029]", lambda m: f"\\u{ord(m.group()):04x}", out)


# ---------------------------------------------------------------------------
# HTML, spreadsheets, file names
# ---------------------------------------------------------------------------


def html_text(text: str) -> str:
    """``text`` as HTML character data or a quoted attribute value: ``& < > " '`` escaped, on one line."""
    return html.escape(visible(text), quote=True)


#: What a spreadsheet reads as the start of a formula (OWASP's list for "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """``text`` for a CSV cell a spreadsheet will open: one line, and never read as a formula.

    The csv module quotes commas and quotes; what it cannot prevent is Excel or LibreOffice running
    ``=HYPERLINK(...)`` typed as a student's id or answer. A cell starting with a formula character
    gets a leading ``'`` (which spreadsheets show as text and hide), as OWASP recommends.
    """
    out = visible(text)
    return "'" + out if out.startswith(_FORMULA_START) else out


#: Windows refuses these as file names, with any extension.
_RESERVED_STEMS = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
_STEM_MAX = 60


def _stem(name: str) -> str:
    """``name`` in portable file-name characters: ASCII letters and digits, ``-``, ``_``, ``.``."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))  # é -> e
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", plain)
    stem = stem.strip("._- ")[:_STEM_MAX].rstrip("._- ")
    return stem or "student"


def file_stems(names: Iterable[str]) -> dict[str, str]:
    """A file-name stem for each of ``names``: safe, unique, and the same for a name in every run.

    A stem holds only ASCII letters, digits and ``. _ -``, never starts with a dot or a dash (so it
    is no hidden file and no option), is at most 60 characters and a hash, and is no name Windows reserves.
    A name that had to change -- a path such as ``../x``, a space, a non-ASCII letter -- gets the
    first hex digits of its SHA-256, so names that change alike stay apart (``a/b``, ``a b``) and a
    name's stem does not depend on who else is in the class. Names whose stems differ only in case
    (``Alice``, ``alice``: one file on macOS and Windows) get the hash as well.
    """
    unique = sorted(set(names))
    stems = {}
    for name in unique:
        stem = _stem(name)
        if stem != name or stem.lower().split(".")[0] in _RESERVED_STEMS:
            stem = f"{stem}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        stems[name] = stem
    width = 8
    while True:
        seen: dict[str, list[str]] = {}
        for name, stem in stems.items():
            seen.setdefault(stem.lower(), []).append(name)
        clashes = [group for group in seen.values() if len(group) > 1]
        if not clashes:
            return stems
        width += 8  # a clash of hashes (or of a plain name with a hashed one): more digits
        for group in clashes:
            for name in group:
                digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:width]
                stems[name] = f"{_stem(name)}-{digest}"
