"""User text on its way into generated artifacts (issue 11, "Under attack").

Hostile strings -- every kind of quote, backslashes that start escapes, line
ends of every kind (Python's tokenizer's and ``str.splitlines``'), NUL, jinja
syntax, shell syntax, lone surrogates -- go through a spec's description
comment, its file name (the header's label, the model's name, the output
path) and a ``@backprop.network`` docstring. The generated module must parse,
hold exactly the top-level statements of a benign one, keep the text in its
docstring, and its header's regenerate command must split back to the argv.
LaTeX descriptions compile with pdflatex, whatever their characters.
"""

from __future__ import annotations

import ast
import csv
import html
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop import get_derivation, parse_spec
from backprop.cli import build_parser, main
from backprop.codegen.emit import generate
from backprop.codegen.header import spec_of, status
from backprop.codegen.latex import latex_document
from backprop.present.jsondoc import to_json
from backprop.present.latex import to_latex
from backprop.present.markdown import to_markdown
from backprop.present.text import to_text
from backprop.support.escape import (
    comment_text,
    csv_cell,
    docstring_text,
    file_stems,
    html_text,
    is_unsafe,
    markdown_code,
    path_word,
    py_str,
    shell_quote,
    shell_split,
    tex_text,
    visible,
)

BODY = "input x[n, m]\ninput y[1, m]\nparam w[1, n]\nparam b\nloss = sum((w @ x + b - y)**2) / m\n"

#: Every line end Python's tokenizer or str.splitlines knows, and NUL.
LINE_ENDS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00"]
PIECES = [
    "'", '"', '"""', "'''", '""', "\\", "\\U", "\\N{", "\\x", "\\u2028", "\\n", "\\\n", *LINE_ENDS,
    "{{", "}}", "{%", "%}", "{#", "<<", ">>", "<%", "$(touch x)", "`id`", ";", "&&", "|", "#", "%", "~", "^", "_",
    "$", "&", "{", "}", " ", "\t", "--", "-o", "ŷ", "×", "α", "𝐰", "ｂ", "\u202e", "\ufeff", "\udcff", "—",
    "import os", "os.system('x')", "a", "b", "1",
]
hostile = st.lists(st.sampled_from(PIECES), max_size=10).map("".join)
PROPERTY = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

def top_level(src: str) -> list[tuple[str, str]]:
    """The module's top-level statements: (node type, the names it defines)."""
    out = []
    for node in ast.parse(src).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.Assign):
            name = ",".join(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import):
            name = ",".join(a.name for a in node.names)
        else:
            name = ""
        out.append((type(node).__name__, name))
    return out


BENIGN = top_level(generate(parse_spec("# A benign description.\n" + BODY, path="net.spec")))


def header_argv(src: str) -> list[str]:
    line = src.split("\n")[1]
    assert line.startswith("#     ")
    return shell_split(line[len("#     "):])


def assert_module_is_safe(src: str) -> ast.Module:
    """Parses, defines exactly what the template defines, and every line ends at a '\\n' only."""
    tree = ast.parse(src)
    assert top_level(src) == BENIGN
    compile(src, "<generated>", "exec")
    assert not any(is_unsafe(ch) for ch in src if ch != "\n"), sorted({hex(ord(c)) for c in src if is_unsafe(c)})
    assert src.splitlines() == src.split("\n")[:-1]
    src.encode("utf-8")  # no lone surrogate
    return tree


def description_of(text: str) -> str:
    """The description a generated module states: the leading comment lines, stripped, joined by spaces."""
    lines = []
    for raw in text.splitlines():
        if not raw.startswith("#"):
            break
        lines.append(raw.lstrip("#").strip())
    return " ".join(lines)


# ---------------------------------------------------------------------------
# The property: hostile descriptions, file names and output paths
# ---------------------------------------------------------------------------


@settings(PROPERTY, max_examples=120)
@given(description=hostile, label=hostile, output=hostile, stem=hostile)
def test_hostile_text_cannot_escape_the_generated_module(description: str, label: str, output: str, stem: str) -> None:
    comments = "\n".join("# " + line for line in description.replace("\x00", "").splitlines())
    text = (comments + "\n" if comments else "") + BODY
    path = f"dir/{stem.replace('/', '_')}x.spec"
    model = parse_spec(text, path=path)
    label, output = label or "net.spec", output or "net.py"
    src = generate(model, output=output, label=label)

    doc = ast.get_docstring(assert_module_is_safe(src), clean=False)
    assert doc is not None
    assert doc.startswith(f"{model.name}: forward and backward pass")  # the file's stem, exactly
    about = description_of(text) or f"The network defined in {path}."
    assert f"\n\n{about}\n\n" in doc
    # the header: one comment line each, a command that splits back to the argv, an intact hash
    argv = ["backprop", "codegen", path_word(label), "-o", path_word(output)]
    assert header_argv(src) == argv
    if not any(is_unsafe(ch) for ch in label + output):
        assert shlex.split(src.split("\n")[1][len("#     "):]) == argv
    # backprop's own command line reads the words back as the same spec and output files
    args = build_parser().parse_args(argv[1:])
    assert (Path(args.spec), Path(args.output)) == (Path(label), Path(output))
    assert spec_of(src) == path_word(label)
    assert status(src) == "generated"


@settings(PROPERTY, max_examples=40)
@given(doc=hostile)
def test_hostile_network_docstring_cannot_escape(doc: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("net") / "hostile_net.py"
    path.write_text(
        "import backprop\n\n\n"
        '@backprop.network(inputs={"x": "n m", "y": "1 m"}, params={"w": "1 n", "b": ""})\n'
        "def hostile(x, y, w, b):\n"
        f"    {py_str(doc)}\n"
        "    return sum((w @ x + b - y)**2) / m\n",
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location(f"hostile_{abs(hash(doc))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.hostile.model
    src = generate(model)
    docstring = ast.get_docstring(assert_module_is_safe(src), clean=False)
    assert docstring is not None
    # the description: the docstring's first paragraph, each line with its control characters shown
    cleaned = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")).body[1]) or ""
    lines = [("# " + comment_text(line)).rstrip().lstrip("#").strip() for line in cleaned.split("\n\n")[0].splitlines()]
    about = " ".join(lines) or f"The network defined in {model.path}."
    assert about in docstring
    for fmt in (to_text, to_markdown, to_json):
        fmt(module.hostile.derivation).encode("utf-8")


@settings(PROPERTY, max_examples=300)
@given(text=hostile)
def test_escapes_round_trip(text: str) -> None:
    """Each escape on its own: literal and docstring values are exact, comments and commands one line."""
    assert ast.literal_eval(py_str(text)) == text
    assert ast.literal_eval('"""' + docstring_text(text) + '"""') == text
    for one_line in (comment_text(text), shell_quote(text), markdown_code(text)):
        assert not any(is_unsafe(ch) for ch in one_line)
    assert shell_split(shell_quote(text)) == [text]
    assert shell_split(f"backprop codegen {shell_quote(text)} -o {shell_quote(text)}") == [
        "backprop", "codegen", text, "-o", text]
    tex = tex_text(text)
    assert tex.isascii() and not any(is_unsafe(ch) for ch in tex)
    assert_tex_text_is_inert(tex)
    page = html_text(text)  # character data or an attribute value: no tag, entity or quote of its own
    assert not any(is_unsafe(ch) for ch in page) and not re.search(r"[<>\"']|&(?!(?:amp|lt|gt|quot|#x27);)", page)
    assert html.unescape(page) == visible(text)
    cell = csv_cell(text)  # one cell of one row, never a spreadsheet formula
    buf = io.StringIO()
    csv.writer(buf).writerow([cell, "x"])
    assert list(csv.reader(io.StringIO(buf.getvalue()))) == [[cell, "x"]]
    assert not cell.startswith(("=", "+", "-", "@")) and not any(is_unsafe(ch) for ch in cell)


#: What a file-name stem may look like: portable characters, no hidden file, no option, bounded length.
SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,130}")


@settings(PROPERTY, max_examples=200)
@given(names=st.lists(hostile, max_size=8))
def test_file_stems_are_safe_unique_and_stable(names: list[str]) -> None:
    """Students' ids become feedback file names: each safe, all distinct (whatever the case rules of the
    file system), and each name's stem the same whoever else is in the class (unless case clashes)."""
    stems = file_stems(names + ["Alice", "alice", "ALICE.", "con", "../x"])
    assert set(stems) == set(names) | {"Alice", "alice", "ALICE.", "con", "../x"}
    assert all(SAFE_STEM.fullmatch(s) and ".." not in s and not s.endswith(".") for s in stems.values()), stems
    assert len({s.lower() for s in stems.values()}) == len(stems)
    assert file_stems(reversed(names + ["Alice", "alice", "ALICE.", "con", "../x"])) == stems
    for name in names:  # the stem of a name alone, unless a clash in the class made it longer
        alone = file_stems([name])[name]
        assert stems[name] == alone or (len(stems[name]) > len(alone) and stems[name].startswith(alone))


def assert_tex_text_is_inert(tex: str) -> None:
    """Nothing in ``tex`` acts outside itself: braces balance, no bare special, no line break."""
    bare = re.sub(r"\\[{}$&#_%^~'\"`=.]", "", tex)  # escaped specials and accent commands
    depth = 0
    for ch in bare:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, tex
    assert depth == 0, tex
    bare = re.sub(r"\\ensuremath\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}", "", bare)  # math: closed where it opens
    assert not re.search(r"[$&#%~^_]", bare), tex
    assert "\\\\" not in tex


# ---------------------------------------------------------------------------
# The examples of issue 11, through the command line
# ---------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def import_file(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(f"gen_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAYLOAD = '# harmless """; import os; os.system("touch PWNED") ; """\n'


@pytest.mark.parametrize("comment", [PAYLOAD, "# data in C:\\Users\\x, \\N{oops} and a trailing \\\n",
                                     "# '''; import os; '''\n"])
def test_description_comment_stays_in_the_docstring(comment: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.spec").write_text(comment + BODY, encoding="utf-8")
    assert run_cli(capsys, "codegen", "net.spec", "-o", "net.py")[0] == 0
    module = import_file(tmp_path / "net.py")  # the payload would run here
    assert not (tmp_path / "PWNED").exists()
    assert comment[1:].strip() in (module.__doc__ or "")
    assert_module_is_safe((tmp_path / "net.py").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ['a"""b', "nl\nimport os; os.system('touch PWNED')\n#", "semi;$(touch x)",
                                  "it's \\U0001 $HOME", "\udcff-bytes", "--help", "-o"])
def test_hostile_file_names(name: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    spec = f"{name}.spec"
    Path(spec).write_text(PAYLOAD + BODY, encoding="utf-8")
    code, _, err = run_cli(capsys, "codegen", "-o", "out.py", "--", spec)
    assert code == 0, err
    src = Path("out.py").read_text(encoding="utf-8")
    assert_module_is_safe(src)
    import_file(tmp_path / "out.py")
    assert not Path("PWNED").exists() and not Path("x").exists()
    assert header_argv(src) == ["backprop", "codegen", path_word(spec), "-o", "out.py"]
    assert spec_of(src) == path_word(spec)
    # the regenerate command, run by a real shell, regenerates the very file (and runs nothing else)
    bash = shutil.which("bash")
    if bash is not None:
        command = src.split("\n")[1][len("#     "):]
        argv = subprocess.run([bash, "-c", f"printf '%s\\0' {command}"], capture_output=True, check=True).stdout
        assert argv.split(b"\0")[:-1] == [os.fsencode(a) for a in ["backprop", "codegen", path_word(spec), "-o", "out.py"]]
        # ... and backprop's own parser reads those words as the same spec file
        assert Path(build_parser().parse_args(header_argv(src)[1:]).spec) == Path(spec)
    assert run_cli(capsys, *header_argv(src)[1:])[0] == 0  # the regenerate command, run: our own file, overwritten
    assert not Path("x").exists()


def test_semicolon_file_name_header_is_shell_quoted(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("semi;$(touch x).spec").write_text(BODY, encoding="utf-8")
    assert run_cli(capsys, "codegen", "semi;$(touch x).spec", "-o", "o;ut.py")[0] == 0
    head = Path("o;ut.py").read_text(encoding="utf-8").split("\n")[1]
    assert head == "#     backprop codegen 'semi;$(touch x).spec' -o 'o;ut.py'"
    code, out, _ = run_cli(capsys, "codegen", "semi;$(touch x).spec", "--latex")
    assert code == 0 and "%     backprop codegen 'semi;$(touch x).spec' --latex -o" in out
    assert r"\section*{semi;\ensuremath{\$}(touch x): the generated" in out


def test_network_docstring_payload(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "netfn.py"
    path.write_text(
        "import backprop\n\n\n"
        '@backprop.network(inputs={"x": "n m", "y": "1 m"}, params={"w": "1 n", "b": ""})\n'
        "def net(x, y, w, b):\n"
        "    '''A net. \"\"\"; import os; os.system(\"touch PWNED\"); \"\"\" C:\\\\Users\\\\x \\x00\\x1b'''\n"
        "    return sum((w @ x + b - y)**2) / m\n",
        encoding="utf-8",
    )
    net = import_file(path).net  # type: ignore[attr-defined]
    out = tmp_path / "gen.py"
    out.write_text(generate(net.model), encoding="utf-8")
    module = import_file(out)
    assert not (tmp_path / "PWNED").exists()
    assert 'A net. """; import os; os.system("touch PWNED"); """ C:\\Users\\x \\x00\\x1b' in (module.__doc__ or "")
    assert_module_is_safe(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("ident, normal, col", [("𝐰", "w", 12), ("ｂ", "b", 12), ("W１", "W1", 13)])
def test_nfkc_identifiers_are_rejected(ident: str, normal: str, col: int, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "net.spec"
    spec.write_text(f"input x[n, m]\nparam w[1, n]\nparam b\nparam W1\nloss = sum({ident} @ x + b + w @ x * W1)\n",
                    encoding="utf-8")
    code, out, err = run_cli(capsys, "derive", str(spec))
    assert code == 2 and out == ""
    first = err.splitlines()[0]
    assert first.startswith(f"{spec}:5:{col}: error: identifier '{ident}'")
    assert f"would be read as '{normal}'" in first and "NFKC" in first
    assert "Traceback" not in err
    assert err.splitlines()[2] == " " * 4 + " " * (col - 1) + "^"


def test_nfkc_declaration_and_claim_rejected(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "net.spec"
    spec.write_text("input x[n, m]\nparam 𝐰[1, n]\nloss = sum(w @ x)\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "codegen", str(spec))
    assert code == 2 and err.startswith(f"{spec}:2:7: error: identifier '𝐰' (U+1D430 MATHEMATICAL BOLD SMALL W)")
    code, _, err = run_cli(capsys, "verify", "two_layer_sigmoid", "dW1 = dZ @ Ｘ.T")
    assert code == 2 and err.startswith("<claim 1>:1:12: error: identifier 'Ｘ'") and "'X'" in err


@pytest.mark.parametrize("text, col", [
    ("input xé[1, m]\nloss = sum(xé)\n", (1, 8)),
    ("input x[1, m]\nparam w\nhé = w * x\nloss = sum(hé)\n", (3, 2)),
    ("input x[1, mé]\nparam w\nloss = sum(x) * w\n", (1, 13)),
])
def test_non_ascii_names_are_named_in_the_error(text: str, col: tuple[int, int], tmp_path: Path, capsys) -> None:
    """A name outside ASCII is refused where it stands, naming the character (the README's rule),
    not as a confusing parse error further along the line."""
    spec = tmp_path / "net.spec"
    spec.write_text(text, encoding="utf-8")
    code, out, err = run_cli(capsys, "derive", str(spec))
    assert code == 2 and out == ""
    assert err.startswith(f"{spec}:{col[0]}:{col[1]}: error: name '") and "names are ASCII" in err
    assert "Traceback" not in err


def test_a_claims_greek_letters_are_read_and_a_specs_get_the_notation_hint(capsys, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "verify", "sigmoid_neuron", "da = σ(z)")  # a claim's σ is read (forms.py)
    assert code == 1 and "(read as da = sigmoid(z))  wrong" in out
    spec = tmp_path / "net.spec"
    spec.write_text("input x[1, m]\nparam w\nloss = σ(sum(x) * w) + Σ(x)\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "derive", str(spec))
    assert code == 2 and err.startswith(f"{spec}:3:8: error: 'σ' is written sigmoid(...) here")


def test_nfkc_in_a_network_function_points_at_the_python_file(tmp_path: Path) -> None:
    path = tmp_path / "nfkc_net.py"
    path.write_text(
        "import backprop\n\n\n"
        '@backprop.network(inputs={"x": "n m"}, params={"w": "1 n"})\n'
        "def net(x, w):\n"
        "    return sum(𝐰 @ x)\n",
        encoding="utf-8",
    )
    from backprop.support.errors import SpecError

    with pytest.raises(SpecError) as e:
        import_file(path)
    assert e.value.format().startswith(f"{path}:6:16: error: identifier '𝐰'")


# ---------------------------------------------------------------------------
# LaTeX: every character of a description renders
# ---------------------------------------------------------------------------

NON_ASCII = "ŷ × α β Σ ∂ ≤ ≥ → ← é è ê ë ç ñ ø å ß æ œ ł ı ǘ — – “ ” ‘ ’ … ½ ² ₁ 𝐰 ｂ ﬁ µ ° ± · € £ § ¶ © « » ¡ ¿ ☃ 中 😀"
SPECIALS = "\\ { } $ & # ^ _ ~ % < > | \" ' `"
CONTROLS = "a\x1bb\x7fc\u202ed\ufeffe\tf"


def _pdflatex() -> str:
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing in CI: .ci/run installs texlive-latex-base and texlive-latex-recommended")
        pytest.skip("pdflatex is not installed (CI installs it and fails instead of skipping)")
    return exe


def compile_tex(tex: str, tmp_path: Path, ot1_only: bool = False) -> str:
    """pdflatex ``tex``: no error, no missing glyph; with ``ot1_only``, no font METAFONT would have to
    make (a TS1 symbol; a derivation's itemize bullets already need one, so only text alone is held to it)."""
    exe = _pdflatex()
    (tmp_path / "doc.tex").write_text(tex, encoding="utf-8")
    env = {**os.environ, "TEXMFVAR": str(tmp_path / "texmf-var")}  # no fonts cached by earlier runs
    run = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    log = (tmp_path / "doc.log").read_text(encoding="latin-1")
    errors = [ln for ln in log.splitlines() if ln.startswith("!")]
    assert run.returncode == 0 and not errors, "\n".join(errors or [run.stdout[-3000:]])
    if ot1_only:
        assert "mktexpk" not in run.stdout + run.stderr, "a font had to be made by METAFONT"
    assert "Missing character" not in log
    return log


@pytest.mark.parametrize("description", [
    "ŷ = w × x: the CS230 prediction (README's own comment style)",
    NON_ASCII,
    SPECIALS,
    CONTROLS,
    "\\documentclass \\input{/etc/passwd} \\write18{touch x} $x^2$ %comment",
], ids=["readme", "non-ascii", "specials", "controls", "commands"])
def test_standalone_latex_with_any_description_compiles(description: str, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "net.spec"
    spec.write_text("# " + description + "\n" + BODY, encoding="utf-8")
    code, _, err = run_cli(capsys, "derive", str(spec), "--format", "latex", "--standalone", "-o",
                           str(tmp_path / "net.tex"))
    assert code == 0, err
    tex = (tmp_path / "net.tex").read_text(encoding="utf-8")
    assert tex.isascii()
    assert r"\input{" not in tex.split(r"\begin{document}")[1].replace(r"\textbackslash{}input\{", "")
    compile_tex(tex, tmp_path)
    assert not (tmp_path / "x").exists()


def test_latex_name_and_every_format_of_a_hostile_model(tmp_path: Path) -> None:
    """The model's name (a file's stem) with specials and non-ASCII, in every renderer and --latex."""
    model = parse_spec("# ŷ: \\ $ & # ^ _ ~ % < > |\n" + BODY, path="my_$net&#%^~ŷ{x}.spec")
    d = get_derivation(model)
    compile_tex(to_latex(d, standalone=True), tmp_path)
    md = to_markdown(d)
    assert md.splitlines()[0] == "# Backpropagation through `my_$net&#%^~ŷ{x}`"
    assert md.splitlines()[2] == "ŷ: \\\\ \\$ \\& \\# ^ \\_ \\~ % \\< \\> \\|"
    assert to_text(d).splitlines()[1] == "ŷ: \\ $ & # ^ _ ~ % < > |"
    to_json(d)
    doc = latex_document(model)
    assert r"\section*{my\_\ensuremath{\$}net\&\#\%\textasciicircum{}\textasciitilde{}\^{y}\{x\}:" in doc


def test_every_character_sample_renders(tmp_path: Path) -> None:
    """A wide sample of code points, each in text, \\texttt, \\emph and a bold heading."""
    ranges = [range(0x20, 0x7F), range(0xA0, 0x250), range(0x370, 0x400), range(0x2000, 0x2070),
              range(0x2190, 0x2300), range(0xFF01, 0xFF5F)]
    sample = "".join(chr(c) for r in ranges for c in r) + "\x00\x1b\x85\u2028\u2029\ufeff\U0001d430\U0001f600中"
    chunks = [tex_text(sample[i:i + 60]) for i in range(0, len(sample), 60)]
    body = "\n\n".join(chunks)
    tex = "\n".join([
        r"\documentclass{article}", r"\usepackage{amsmath,amssymb}", r"\begin{document}", body,
        r"\section*{" + chunks[1] + "}", r"\texttt{" + chunks[2] + "}", r"\emph{" + chunks[3] + "}",
        r"\end{document}", "",
    ])
    assert tex.isascii()
    compile_tex(tex, tmp_path, ot1_only=True)


def test_tex_text_forms() -> None:
    assert tex_text("ŷ × x") == r"\^{y} \ensuremath{\times} x"
    assert tex_text("\\ { } $ & # ^ _ ~ %") == (
        r"\textbackslash{} \{ \} \ensuremath{\$} \& \# \textasciicircum{} \_ \textasciitilde{} \%")
    assert tex_text("ｂ𝐰²") == r"bw\ensuremath{^{\mathrm{2}}}"
    assert tex_text("☃\x1b") == r"\texttt{[U+2603]}\texttt{[U+001B]}"
    assert tex_text("naïve café") == r"na\"{\i}ve caf\'{e}"


def test_every_unsafe_character_class_is_covered() -> None:
    for ch in "".join(LINE_ENDS) + "\x7f\u202e\ufeff\ud800\udcff":
        assert is_unsafe(ch), hex(ord(ch))
        assert ch not in comment_text(f"a{ch}b") and ch not in docstring_text(f"a{ch}b")
    for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029":  # everything str.splitlines ends a line at
        assert len(f"a{ch}b".splitlines()) == 2
    assert all(unicodedata.category(ch) != "Zs" or not is_unsafe(ch) for ch in " \u00a0\u3000")
    assert sys.maxunicode > 0x10000
