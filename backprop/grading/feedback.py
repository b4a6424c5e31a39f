"""A feedback page per student, in Markdown and HTML: per question the answer, how it was read, the
verdict with its diagnosis, and the points.

Everything on the page that a student or a spec wrote -- the id, the answer, the diagnosis (which
quotes the answer) -- is user text: it goes through :mod:`backprop.support.escape`
(:func:`~backprop.support.escape.markdown_text`, :func:`~backprop.support.escape.markdown_code`,
:func:`~backprop.support.escape.html_text`), so an answer such as ``<script>`` or ``**`` is shown,
never run or rendered. A page names no other student and no file path: it can be sent as is.
"""

from __future__ import annotations

from backprop.grading.grade import ClassGrades, Graded, format_points, partial_kind, question_label
from backprop.grading.manifest import PARTIAL_KINDS
from backprop.support.escape import html_text, markdown_code, markdown_text

_MARK = {"correct": "✓", "partial": "½", "wrong": "✗", "unusable": "?", "missing": "–"}
_VERDICT = {"correct": "correct", "partial": "partly right", "wrong": "wrong", "unusable": "could not be read",
            "missing": "no answer"}


def answer_lines(g: Graded, spec: str) -> list[tuple[str, str, bool]]:
    """The facts about one answer, as (label, text, is_code) -- shared by both formats."""
    out: list[tuple[str, str, bool]] = []
    r = g.result
    if g.answer is None or r is None:
        return [("Your answer", "none", False)]
    out.append(("Your answer", g.answer.text, True))
    if g.reading and g.reading != g.answer.text:
        out.append(("Read as", g.reading, True))
    if r.verdict:
        out.append(("Verdict", "correct", False))
    elif r.unusable:
        out.append(("Verdict", f"could not be read as an answer about {spec}: {r.diagnosis}", False))
    else:
        out.append(("Verdict", f"wrong: {r.diagnosis}", False))
    kind = partial_kind(r.mistake)
    if g.status == "partial" and kind in PARTIAL_KINDS:
        frac = format_points(g.question.partial_credit)
        out.append((f"Partial credit ({frac} of the points)", PARTIAL_KINDS[kind], False))
    return out


def spec_name(graded: ClassGrades, g: Graded) -> str:
    return graded.assignment.derivations[g.question.spec].model.name


def feedback_md(graded: ClassGrades, student: str) -> str:
    a = graded.assignment
    row = graded.grades[student]
    total = f"{format_points(graded.total(student))} of {format_points(a.max_score)}"
    out = [f"# {markdown_text(a.title)}", "", f"Feedback for {markdown_text(student)}: **{total} points**.", "",
           "| question | points | verdict |", "|:---|---:|:---|"]
    for g in row.values():
        label = markdown_text(question_label(g.question)).replace("|", "\\|")
        out.append(f"| {label} | {format_points(g.score)} of {format_points(g.question.weight)} | "
                   f"{_MARK[g.status]} {_VERDICT[g.status]} |")
    for g in row.values():
        spec = spec_name(graded, g)
        out += ["", f"## {markdown_text(question_label(g.question))} ({markdown_text(spec)}): "
                    f"{format_points(g.score)} of {format_points(g.question.weight)}", ""]
        for label, value, code in answer_lines(g, spec):
            out.append(f"- {label}: {markdown_code(value) if code else markdown_text(value)}")
    return "\n".join(out) + "\n"


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
          "table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left}"
          "td.pts{text-align:right}code{background:#f3f3f3;padding:0 .2rem;white-space:pre-wrap}"
          ".correct{color:#1a7f37}.partial{color:#9a6700}.wrong,.unusable{color:#cf222e}.missing{color:#57606a}")


def feedback_html(graded: ClassGrades, student: str) -> str:
    a = graded.assignment
    row = graded.grades[student]
    total = f"{format_points(graded.total(student))} of {format_points(a.max_score)}"
    title = html_text(f"{a.title}: {student}")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{title}</title>",
           f"<style>{_STYLE}</style>", "</head>", "<body>", f"<h1>{html_text(a.title)}</h1>",
           f"<p>Feedback for {html_text(student)}: <strong>{total} points</strong>.</p>",
           "<table>", "<tr><th>question</th><th>points</th><th>verdict</th></tr>"]
    for g in row.values():
        out.append(f'<tr><td>{html_text(question_label(g.question))}</td><td class="pts">{format_points(g.score)} of '
                   f'{format_points(g.question.weight)}</td><td class="{g.status}">{_MARK[g.status]} '
                   f"{_VERDICT[g.status]}</td></tr>")
    out.append("</table>")
    for g in row.values():
        spec = spec_name(graded, g)
        out.append(f"<h2>{html_text(question_label(g.question))} ({html_text(spec)}): "
                   f"{format_points(g.score)} of {format_points(g.question.weight)}</h2>")
        out.append("<ul>")
        for label, value, code in answer_lines(g, spec):
            shown = f"<code>{html_text(value)}</code>" if code else html_text(value)
            cls = f' class="{g.status}"' if label == "Verdict" else ""
            out.append(f"<li>{label}: <span{cls}>{shown}</span></li>")
        out.append("</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
