"""README.md's code blocks as a reader meets them, and how each one runs (for tests/test_readme.py).

Every fenced block is one of:

- a file: the block right after ``<!-- file: NAME -->`` is saved as NAME (a spec, a Python module);
- a shell block (```` ```sh ````): its commands run in order; a plain block right after it is
  their output;
- a transcript (a plain block whose first line is ``$ COMMAND``): the command, then its output;
- a Python block: a notebook cell, run in order in one interpreter;
- the package map after ``<!-- package-map -->`` (tests/test_layout.py holds the code to it).

Anything else is a block the test cannot run, and fails it: a new block needs a way to run.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    body: str  # without the fence's indentation
    marker: str | None  # the HTML comment right above the fence
    follows: bool = False  # only blank lines separate it from the block before


@dataclass
class Step:
    """One thing the reader does: save a file, run commands (and compare what they print), run a cell."""

    kind: str  # "file", "shell", "cell", "package-map"
    line: int
    text: str  # the file's content, the commands, the cell
    name: str = ""  # a file's name
    shown: list[str] | None = None  # the output the README shows
    notes: list[str] = field(default_factory=list)


def blocks(readme: str) -> list[Block]:
    out: list[Block] = []
    lines = readme.splitlines()
    i = 0
    last_end = -2
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        above = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = _MARKER.match(above)
        follows = all(not ln.strip() for ln in lines[last_end + 1:start])
        out.append(Block(start + 1, lang, "\n".join(body) + "\n", marker.group(1) if marker else None, follows))
        last_end = i
        i += 1
    return out


def steps(readme: str) -> list[Step]:
    """The README as steps in reading order; AssertionError for a block with no way to run."""
    bs = blocks(readme)
    out: list[Step] = []
    taken: set[int] = set()
    for k, b in enumerate(bs):
        if k in taken:
            continue
        if b.marker and b.marker.startswith("file:"):
            out.append(Step("file", b.line, b.body, name=b.marker.split(":", 1)[1].strip()))
        elif b.marker == "package-map":
            out.append(Step("package-map", b.line, b.body))
        elif b.lang == "sh":
            shown = None
            nxt = bs[k + 1] if k + 1 < len(bs) else None
            if nxt and nxt.follows and nxt.lang == "" and not nxt.marker and not nxt.body.startswith("$ "):
                shown = nxt.body.splitlines()
                taken.add(k + 1)
            out.append(Step("shell", b.line, b.body, shown=shown))
        elif b.lang == "" and b.body.startswith("$ "):
            command, *shown = b.body.splitlines()
            out.append(Step("shell", b.line, command[2:] + "\n", shown=shown))
        elif b.lang == "python":
            out.append(Step("cell", b.line, b.body))
        else:
            raise AssertionError(f"README.md:{b.line}: a block the test cannot run: mark a file with "
                                 "<!-- file: NAME -->, or show a command as '$ COMMAND'")
    return out


def commands(text: str) -> list[tuple[dict[str, str], list[str], str | None]]:
    """Shell text as (environment, words, file standard output goes to) per command: lines joined at
    a trailing backslash, comments dropped, ``&&`` separating commands."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            cmd, words = words[:cut], words[cut + 1:]
            env = {}
            while cmd and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", cmd[0]):
                key, value = cmd.pop(0).split("=", 1)
                env[key] = value
            target = None
            if ">" in cmd:
                at = cmd.index(">")
                cmd, target = cmd[:at], cmd[at + 1]
            out.append((env, cmd, target))
    return out


def expected_status(program: str, shown: list[str] | None) -> int:
    """What the README implies: an error shown means failure (2 for backprop, 1 for Python's
    uncaught exception), a wrong claim (✗) means 1, else 0."""
    lines = shown or []
    if any(re.search(r"(^|: )\S+:\d+:\d+: error: |^backprop: error: ", ln) for ln in lines):
        return 2 if program == "backprop" else 1
    return 1 if any(ln.startswith("✗") for ln in lines) else 0


def _same_but_numbers(want: str, got: str, rel: float = 2e-2) -> bool:
    """Equal text, numbers within ``rel`` (a loss printed from another BLAS build's run)."""
    if _NUMBER.sub("#", want) != _NUMBER.sub("#", got):
        return False
    return all(math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)
               for a, b in zip(_NUMBER.findall(want), _NUMBER.findall(got)))


def _bar(line: str) -> str | None:
    """A tqdm progress bar up to its counts (the rate and times vary): 'name: 100%|███| 480/480'."""
    m = re.match(r"(.*\d+%\|.*\| \d+/\d+) \[", line)
    return m.group(1) if m else None


def assert_shown(shown: list[str], output: str, where: str) -> None:
    """Every line the README shows appears in the output, in order ('...' stands for lines left out)."""
    lines = [seg for ln in output.splitlines() for seg in ln.split("\r")]
    at = 0
    for want in shown:
        if not want.strip() or want.strip() == "...":
            continue
        bar = _bar(want)
        for k in range(at, len(lines)):
            got = lines[k]
            if got == want or (bar is not None and _bar(got) == bar) or _same_but_numbers(want, got):
                at = k + 1
                break
        else:
            raise AssertionError(f"{where}: README line not in the output (in order): {want!r}\n--- output:\n{output}")


def extras_of(pyproject: Path) -> set[str]:
    text = pyproject.read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([a-z][a-z0-9_-]*)\s*=", section, flags=re.M))
