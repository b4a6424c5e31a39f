"""The verdicts: one claim's result and the report on all of them, as text, JSON, Markdown or HTML.

Separate from the judging (:mod:`backprop.verification.verify`): these are plain records, written
once the verifier is done, and the only part of verification a caller (the CLI, a notebook) reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from backprop.support.escape import html_text, json_text, markdown_code

#: How a verdict is marked in every form: correct, wrong, could not be read.
_MARKS = {"correct": "✓", "wrong": "✗", "unusable": "?"}


@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim, why, and how it was checked."""

    name: str
    claim_text: str
    verdict: bool
    diagnosis: str | None
    error: float  # largest relative error over the size sets (inf: wrong shape)
    exact_checked: bool
    #: about a loop also last (one step's share), own and carry (a term of the recursion left out)
    mistake: str | None = None  # shape, transpose, sum, factor, sign, zero, near, tie, paths, axis, slip, step, value, unusable
    exact_note: str = ""
    file: str = "<claim 1>"
    line: int = 1
    #: the claim could not be read (a syntax error, an unknown name): ``diagnosis`` holds the error
    unusable: bool = False
    #: how an answer in another notation (LaTeX, NumPy, Unicode) was read, in the spec language
    reading: str = ""

    @property
    def correct(self) -> bool:
        return self.verdict

    @property
    def status(self) -> str:
        """``correct``, ``wrong`` or ``unusable``."""
        return "correct" if self.verdict else "unusable" if self.unusable else "wrong"

    def line_text(self) -> str:
        """``✓ dW1 = ...  correct``, ``✗ dW1 = ...  wrong: DIAGNOSIS`` or ``? ... unusable: ERROR``."""
        read = f"  (read as {self.reading})" if self.reading else ""
        if self.verdict:
            return f"✓ {self.claim_text}{read}  correct"
        if self.unusable:
            return f"? {self.claim_text}{read}  unusable: {self.diagnosis}"
        return f"✗ {self.claim_text}{read}  wrong: {self.diagnosis}"

    def __str__(self) -> str:
        return self.line_text()

    def _repr_markdown_(self) -> str:
        mark = "✓ correct" if self.verdict else f"✗ wrong: {self.diagnosis}"
        return f"{markdown_code(self.claim_text)} {mark}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "claim": self.claim_text,
            **({"reading": self.reading} if self.reading else {}),
            "correct": self.verdict,
            "verdict": self.status,
            "mistake": self.mistake,
            "diagnosis": self.diagnosis,
            "error": float(f"{self.error:.3g}") if math.isfinite(self.error) else None,  # stable across BLAS builds
            "exact_checked": self.exact_checked,
            "exact_note": self.exact_note,
            "source": f"{self.file}:{self.line}",
        }


@dataclass
class VerifyReport:
    """Every claim's result, printable as text, JSON, Markdown or an HTML table."""

    model: str
    results: list[ClaimResult]
    sizes: list[dict[str, int]] = field(default_factory=list)
    exact_sizes: dict[str, int] | None = None
    #: the located errors of the unusable claims, in order (compiler-style, for stderr)
    errors: list[Any] = field(default_factory=list)

    @property
    def all_correct(self) -> bool:
        return all(r.verdict for r in self.results)

    def __iter__(self) -> Iterator[ClaimResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> ClaimResult:
        return self.results[i]

    @property
    def unusable(self) -> list[ClaimResult]:
        """The claims that could not be read; the others were judged all the same."""
        return [r for r in self.results if r.unusable]

    def summary(self) -> str:
        good = sum(r.verdict for r in self.results)
        exact = sum(r.exact_checked for r in self.results)
        how = f"numerically at {len(self.sizes)} sets of sizes"
        if exact and self.exact_sizes is not None:
            at = ", ".join(f"{k}={v}" for k, v in self.exact_sizes.items()) or "its fixed sizes"
            how += f"; exactly at {at} for {exact} of them"
        bad = f", {len(self.unusable)} unusable" if self.unusable else ""
        return f"{good} of {len(self.results)} claim{'s' * (len(self.results) != 1)} correct{bad} ({how})"

    def text(self) -> str:
        return "\n".join([r.line_text() for r in self.results] + [self.summary()]) + "\n"

    __str__ = text

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "all_correct": self.all_correct,
            "unusable": len(self.unusable),
            "claims": [r.to_dict() for r in self.results],
            "sizes": self.sizes,
            "exact_sizes": self.exact_sizes,
        }

    def to_json(self) -> str:
        return json_text(self.to_dict()) + "\n"

    def _repr_markdown_(self) -> str:
        # Left-aligned like the text report (a centred ✓ drifts from its claim in wide tables); headed "verdict"
        # as in the JSON.
        rows = ["| claim | verdict | diagnosis |", "|:---|:---|:---|"]
        for r in self.results:
            code = markdown_code(r.claim_text).replace("|", "\\|")  # a table cell: even a code span's | splits it
            diag = "correct" if r.verdict else (r.diagnosis or "").replace("|", "\\|")
            rows.append(f"| {code} | {_MARKS[r.status]} | {diag} |")
        return "\n".join(rows) + f"\n\n{self.summary()}\n"

    def _repr_html_(self) -> str:
        # Jupyter's stylesheet right-aligns table cells: each cell says left itself.
        left = ' style="text-align:left"'
        rows = []
        for r in self.results:
            color = {"correct": "#1a7f37", "wrong": "#cf222e", "unusable": "#9a6700"}[r.status]
            mark = f'<span style="color:{color}">{_MARKS[r.status]}</span>'
            diag = "correct" if r.verdict else html_text(r.diagnosis or "")
            rows.append(f"<tr><td{left}><code>{html_text(r.claim_text)}</code></td><td{left}>{mark}</td>"
                        f"<td{left}>{diag}</td></tr>")
        head = "<tr>" + "".join(f"<th{left}>{h}</th>" for h in ("claim", "verdict", "diagnosis")) + "</tr>"
        return (f"<table>{head}{''.join(rows)}</table>"
                f"<p><small>{html_text(self.summary())}</small></p>")
