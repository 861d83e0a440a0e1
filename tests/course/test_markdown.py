"""course.markdown: each Markdown feature, quiz extraction, and the sanitizer's allow-list."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from course.markdown import fences_find, markdown_render, pygments_stylesheet


def render(text: str, first_line: int = 1):  # type: ignore[no-untyped-def]
    return markdown_render(text=text, first_line=first_line)


def test_table_keeps_its_alignment_without_style() -> None:
    html = render("| Name | Count |\n| :--- | ---: |\n| carts | 3 |\n").html
    assert "<table>" in html
    assert '<th align="left">Name</th>' in html
    assert '<td align="right">3</td>' in html
    assert "style=" not in html


def test_fenced_code_is_highlighted_with_pygments_classes() -> None:
    html = render("```python\ndef cart_add():\n    return 1\n```\n").html
    assert '<div class="highlight">' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">cart_add</span>' in html


def test_admonition_becomes_a_titled_box() -> None:
    html = render('!!! warning "Stickiness is not replication"\n    A dead worker loses it.\n').html
    assert '<div class="admonition warning">' in html
    assert '<p class="admonition-title">Stickiness is not replication</p>' in html
    assert "<p>A dead worker loses it.</p>" in html


def test_headings_get_anchors_permalinks_and_a_nested_toc() -> None:
    result = render("## Sticky sessions\n\ntext\n\n### When a worker dies\n\nmore\n")
    assert '<h2 id="sticky-sessions">' in result.html
    assert '<a class="headerlink" href="#sticky-sessions"' in result.html
    assert [(e.id, e.title, e.level) for e in result.toc] == [
        ("sticky-sessions", "Sticky sessions", 2)
    ]
    assert [(c.id, c.level) for c in result.toc[0].children] == [("when-a-worker-dies", 3)]
    assert result.heading_ids == {"sticky-sessions", "when-a-worker-dies"}


def test_toc_titles_are_plain_text_for_the_template_to_escape() -> None:
    (entry,) = render("## Carts & <em>sessions</em>\n").toc
    assert entry.title == "Carts & sessions"


def test_footnote_reference_and_note() -> None:
    html = render("Redis keeps it.[^ttl]\n\n[^ttl]: With a time to live.\n").html
    assert '<sup id="fnref:ttl"><a class="footnote-ref" href="#fn:ttl"' in html
    assert '<li id="fn:ttl">' in html
    assert 'class="footnote-backref" href="#fnref:ttl"' in html


def test_mermaid_fence_becomes_escaped_pre_and_marks_the_page() -> None:
    result = render('```mermaid\ngraph TD\n  A["<b>x</b>"] --> B\n```\n')
    assert (
        '<pre class="mermaid">graph TD\n  A["&lt;b&gt;x&lt;/b&gt;"] --&gt; B</pre>' in result.html
    )
    assert result.has_diagram
    assert not render("```python\nx = 1\n```\n").has_diagram


QUIZ = (
    "question: {q}?\nchoices:\n"
    "  - {{text: a, correct: true, feedback: f}}\n"
    "  - {{text: b, correct: false, feedback: g}}"
)


def test_quiz_fences_cut_the_html_and_are_parsed_with_their_file_line() -> None:
    text = (
        "Intro.\n"
        f"```quiz\nid: first\n{QUIZ.format(q='One')}\n```\n"
        "Middle.\n\n"
        f"```quiz\nid: second\n{QUIZ.format(q='Two')}\n```\n"
    )
    result = render(text, first_line=10)
    assert [(s.quiz and s.quiz.id, s.line) for s in result.quizzes] == [
        ("first", 11),
        ("second", 20),
    ]
    assert [part.strip() for part in result.parts] == ["<p>Intro.</p>", "<p>Middle.</p>", ""]
    assert "question" not in result.html
    assert "QUIZCUT" not in result.html


def test_quiz_text_is_inline_markdown_sanitized() -> None:
    question = "Is `x` <script>bad</script> [ok](http://a)"
    (slot,) = render(f"```quiz\nid: q\n{QUIZ.format(q=question)}\n```\n").quizzes
    assert slot.quiz is not None
    html = slot.quiz.question_html
    assert html.startswith("Is <code>x</code>") and '<a href="http://a"' in html
    assert "script" not in html and "bad" not in html


def test_a_broken_quiz_still_cuts_the_html_and_says_why() -> None:
    result = render("Before.\n\n```quiz\nquestion: [unclosed\n```\n\nAfter.\n", first_line=5)
    (slot,) = result.quizzes
    assert slot.quiz is None and slot.line == 7
    assert "invalid YAML" in slot.problems[0].message
    assert len(result.parts) == 2 and "After." in result.parts[1]


def test_a_quiz_fence_shown_inside_another_fence_is_only_code() -> None:
    result = render("````markdown\n```quiz\nid: shown\n```\n````\n")
    assert result.quizzes == ()
    assert result.parts == (result.html,)
    assert "id: shown" in result.html


def test_authors_cannot_forge_a_quiz_cut_with_raw_text() -> None:
    result = render("QUIZCUT0123456789abcdef and more\n")
    assert result.quizzes == ()
    assert len(result.parts) == 1


HOSTILE = """\
<script>alert("x")</script>

<img src="/static/x.png" onerror="alert(1)" alt="pic">

[click](javascript:alert(1)) and <a href="javascript:alert(2)">this</a>

<button hx-post="/progress/reset/" hx-trigger="load" data-hx-get="/x" onclick="steal()">Go</button>

<p style="position:fixed" hx-on:click="alert(1)">styled</p>

<span hx-get="/progress/reset/" data-hx-post="/x" hx-swap-oob="true">kept text</span>

<iframe src="https://example.com"></iframe>

<form action="/admin/"><input name="q"></form>

<svg onload="alert(1)"><circle r="1"></circle></svg>
"""


def test_hostile_markdown_loses_everything_active() -> None:
    html = render(HOSTILE).html
    lowered = html.lower()
    for banned in (
        "<script",
        "alert(",
        "onerror",
        "onclick",
        "onload",
        "javascript:",
        "hx-",
        "style=",
        "<iframe",
        "<form",
        "<input",
        "<svg",
        "<button",
    ):
        assert banned not in lowered, banned
    # The harmless parts survive.
    assert 'alt="pic"' in html
    assert "styled" in html
    assert "Go" in html
    assert "<span>kept text</span>" in html


def test_fences_find_reports_language_lines_and_unclosed_fences() -> None:
    fences = fences_find(text="a\n```Python title=x\ncode\n```\n\n~~~\nopen\n", first_line=5)
    assert [(f.language, f.line, f.end_line, f.closed) for f in fences] == [
        ("python", 6, 8, True),
        ("", 10, 12, False),  # runs to the last line, as in CommonMark
    ]
    assert fences[0].source == "code"


def test_pygments_stylesheet_in_static_is_current() -> None:
    committed = (Path(settings.BASE_DIR) / "static" / "css" / "pygments.css").read_text()
    assert committed == pygments_stylesheet(), "run: python manage.py build_pygments_css"


def test_pygments_stylesheet_has_light_and_both_dark_variants() -> None:
    css = pygments_stylesheet()
    assert re.search(r"^\.highlight \.k \{", css, re.M)
    assert re.search(r'^html\[data-theme="dark"\] \.highlight \.k \{', css, re.M)
    assert '@media (prefers-color-scheme: dark) {\nhtml:not([data-theme="light"]) .highlight' in css
    assert not re.search(r"^pre \{", css, re.M)  # nothing leaks onto every <pre>


def test_rendering_is_a_pure_function_of_the_text() -> None:
    # course.lessons caches by the file's hash: equal text must give an equal result, even
    # though each render cuts quiz fences out with a fresh random token.
    text = "## A\n\n```quiz\nid: q\n```\n"
    assert render(text) == render(text)
