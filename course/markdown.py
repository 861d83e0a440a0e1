"""Lesson Markdown to safe HTML: one pure function of the text, plus the sanitizer policy.

No Django and no file access here: the result depends on the text alone, which is what lets
a course snapshot reuse it for an unchanged file. Never emit HTML that has not been through
nh3. Runs in the renderer's child process (course.markdown_process), quizzes included.
"""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import markdown
import nh3
from pygments.formatters import HtmlFormatter

from course.experiment import ExperimentSlot, experiment_slots
from course.quiz import QuizSlot, quiz_slots

# Languages that are not Pygments lexers but mean something to this pipeline.
SPECIAL_FENCES = frozenset({"mermaid", "quiz", "experiment", "text"})
# Blocks cut out of the prose and shown by the page (a form each), in page order.
BLOCK_FENCES = frozenset({"quiz", "experiment"})

Slot = QuizSlot | ExperimentSlot

_FENCE_OPEN_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

# What our Markdown features produce, and nothing else (no style, no scripting, no forms).
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details",
        "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
        "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
        "th", "thead", "tr", "ul", "var",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title", "class"},  # class: headerlink, footnote-ref, footnote-backref
    "abbr": {"title"},
    "code": {"class"},
    "div": {"class"},  # highlight, admonition <kind>, footnote
    "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"}, "h5": {"id"}, "h6": {"id"},
    "img": {"src", "alt", "title", "width", "height"},
    "li": {"id"},  # footnote targets
    "ol": {"start"},
    "p": {"class"},  # admonition-title
    "pre": {"class"},  # mermaid
    "span": {"class"},  # Pygments tokens
    "sup": {"id"},  # footnote references
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "details": {"open"},
}  # fmt: skip
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})

# Code colours for static/css/pygments.css (built by `manage.py build_pygments_css`).
PYGMENTS_LIGHT_STYLE = "default"
PYGMENTS_DARK_STYLE = "github-dark"

_cleaner = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes=set(ALLOWED_URL_SCHEMES),
    strip_comments=True,
)
# Quiz text is one line of Markdown: code, emphasis, links; nothing that makes blocks.
_inline_cleaner = nh3.Cleaner(
    tags={"a", "code", "em", "strong", "b", "i", "kbd", "br"},
    attributes={"a": {"href", "title"}},
    url_schemes={"http", "https", "mailto"},
)


@dataclass(frozen=True)
class Fence:
    language: str  # first word of the info string, "" when there is none
    source: str
    line: int  # 1-based line of the opening fence in the file
    end_line: int  # line of the closing fence (the last line when it is never closed)
    closed: bool


@dataclass(frozen=True)
class TocEntry:
    id: str
    title: str  # plain text; templates escape it
    level: int
    children: tuple[TocEntry, ...] = ()


@dataclass(frozen=True)
class RenderedMarkdown:
    # Sanitized HTML cut where the quiz and experiment fences were: one more part than
    # there are slots, so a page puts slots[i] between parts[i] and parts[i + 1].
    parts: tuple[str, ...]
    slots: tuple[Slot, ...]
    toc: tuple[TocEntry, ...]
    toc_html: str  # the table of contents as python-markdown writes it, sanitized
    heading_ids: frozenset[str]
    links: tuple[str, ...]  # authored hrefs, in document order (not permalinks, footnotes)
    has_diagram: bool

    @property
    def html(self) -> str:
        """The prose without the quizzes and experiments (search, checks)."""
        return "".join(self.parts)

    @property
    def quizzes(self) -> tuple[QuizSlot, ...]:
        return tuple(s for s in self.slots if isinstance(s, QuizSlot))

    @property
    def experiments(self) -> tuple[ExperimentSlot, ...]:
        return tuple(s for s in self.slots if isinstance(s, ExperimentSlot))


def html_sanitize(*, html: str) -> str:
    """The allow-list every lesson goes through: no script, handlers, hx-*, style, forms."""
    return _cleaner.clean(html)


def markdown_inline(text: str) -> str:
    """A quiz's question, choice or feedback: one line of Markdown, sanitized."""
    return _inline_cleaner.clean(markdown.markdown(text)).strip()


def pygments_stylesheet() -> str:
    """Light code colours, dark ones for the dark theme: chosen, or the system's."""

    def rules(style: str, scope: str) -> str:
        defs = HtmlFormatter(style=style).get_style_defs(f"{scope}.highlight")
        # Keep only the rules under our scope: the rest style every <pre> on the page.
        return "\n".join(line for line in defs.splitlines() if line.startswith(scope + "."))

    chosen_dark = rules(PYGMENTS_DARK_STYLE, 'html[data-theme="dark"] ')
    system_dark = rules(PYGMENTS_DARK_STYLE, 'html:not([data-theme="light"]) ')
    return (
        "/* Generated by `manage.py build_pygments_css` from course/markdown.py. Do not edit. */\n"
        f"{rules(PYGMENTS_LIGHT_STYLE, '')}\n{chosen_dark}\n"
        f"@media (prefers-color-scheme: dark) {{\n{system_dark}\n}}\n"
    )


def fences_find(*, text: str, first_line: int = 1) -> list[Fence]:
    """Fenced code blocks of a Markdown text, with their lines (first_line = line of text[0])."""
    fences: list[Fence] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN_RE.match(lines[i])
        # A backtick fence's info string cannot contain a backtick (CommonMark).
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        body = lines[i + 1 : end if end is not None else len(lines)]
        fences.append(
            Fence(
                language=_fence_language(opening["info"]),
                source="\n".join(_dedent(line, indent) for line in body),
                line=first_line + i,
                end_line=first_line + (end if end is not None else len(lines) - 1),
                closed=end is not None,
            )
        )
        i = (end if end is not None else len(lines)) + 1
    return fences


def markdown_render(*, text: str, first_line: int = 1) -> RenderedMarkdown:
    """Render a lesson body; first_line is the file line of text's first line."""
    # Quiz fences are cut out before Markdown sees them and the HTML is cut where they were
    # after sanitizing. The token holds a fresh random part, so no author can forge a cut.
    nonce = secrets.token_hex(8)
    fences = [
        f for f in fences_find(text=text, first_line=first_line) if f.language in BLOCK_FENCES
    ]
    quizzes = iter(
        quiz_slots(
            blocks=((f.source, f.line) for f in fences if f.language == "quiz"),
            inline=markdown_inline,
        )
    )
    experiments = iter(
        experiment_slots(
            blocks=((f.source, f.line) for f in fences if f.language == "experiment"),
            inline=markdown_inline,
        )
    )
    slots: tuple[Slot, ...] = tuple(
        next(quizzes) if f.language == "quiz" else next(experiments) for f in fences
    )
    lines = text.split("\n")
    for index in reversed(range(len(fences))):  # from the end, so earlier line numbers hold
        start, end = fences[index].line - first_line, fences[index].end_line - first_line
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip(" \t"))]
        lines[start : end + 1] = ["", f"{indent}{_cut_token(nonce)}", ""]

    md = _markdown()
    body = html_sanitize(html=md.convert("\n".join(lines)))
    token = _cut_token(nonce)
    parts = tuple(body.replace(f"<p>{token}</p>", token).split(token))
    assert len(parts) == len(slots) + 1, "a quiz or experiment fence was not cut out"

    facts = _HtmlFacts()
    facts.feed(body)
    facts.close()
    return RenderedMarkdown(
        parts=parts,
        slots=slots,
        toc=tuple(_toc_entry(token) for token in md.toc_tokens),  # type: ignore[attr-defined]
        toc_html=html_sanitize(html=md.toc),  # type: ignore[attr-defined]
        heading_ids=frozenset(facts.heading_ids),
        links=tuple(facts.links),
        has_diagram=facts.has_diagram,
    )


def _markdown() -> markdown.Markdown:
    # A new instance per render: Markdown objects keep state and are not thread-safe.
    return markdown.Markdown(
        extensions=[
            "tables",
            "admonition",
            "footnotes",
            "toc",
            "pymdownx.highlight",
            "pymdownx.superfences",
        ],
        extension_configs={
            # Alignment as an attribute: the sanitizer drops style="text-align: ..."
            "tables": {"use_align_attribute": True},
            "toc": {
                "permalink": "#",
                "permalink_title": "Link to this section",
                "toc_depth": "2-3",
            },
            "pymdownx.highlight": {"use_pygments": True, "guess_lang": False},
            "pymdownx.superfences": {
                "custom_fences": [
                    {"name": "mermaid", "class": "mermaid", "format": _mermaid_fence},
                ]
            },
        },
        output_format="html",
    )


def _mermaid_fence(
    source: str, language: str, css_class: str, options: Any, md: Any, **_: Any
) -> str:
    # Mermaid reads the element's text, so the escaped source is exactly what it draws.
    return f'<pre class="mermaid">{html.escape(source, quote=False)}</pre>'


def _cut_token(nonce: str) -> str:
    # Letters and digits only, so Markdown leaves it alone.
    return f"QUIZCUT{nonce}"


def _fence_language(info: str) -> str:
    info = info.strip()
    if info.startswith("{"):  # SuperFences' attribute form: ```{.python title="x"}
        first = info.strip("{}").split()
        return first[0].lstrip(".").lower() if first and first[0].startswith(".") else ""
    return info.split()[0].lstrip(".").lower() if info else ""


def _dedent(line: str, indent: str) -> str:
    return line[len(indent) :] if line.startswith(indent) else line.lstrip(" \t")


def _toc_entry(token: dict[str, Any]) -> TocEntry:
    return TocEntry(
        id=token["id"],
        title=html.unescape(token["name"]),
        level=token["level"],
        children=tuple(_toc_entry(child) for child in token["children"]),
    )


class _HtmlFacts(HTMLParser):
    """What the checks and the page need to know about the final HTML."""

    GENERATED_LINKS = frozenset({"headerlink", "footnote-ref", "footnote-backref"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.heading_ids: list[str] = []
        self.links: list[str] = []
        self.has_diagram = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        classes = set(attributes.get("class", "").split())
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"} and attributes.get("id"):
            self.heading_ids.append(attributes["id"])
        elif tag == "a" and "href" in attributes and not classes & self.GENERATED_LINKS:
            self.links.append(attributes["href"])
        elif tag == "pre" and "mermaid" in classes:
            self.has_diagram = True
