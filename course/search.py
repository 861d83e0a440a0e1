"""Full-text search over the lessons: titles, headings and body text of the rendered HTML.

Quizzes are left out on purpose: their wrong choices ("Redis cannot store numbers") would
match searches with statements the course says are false, and their feedback gives the
answers away (a lesson's HTML holds no quiz: they are cut out when it is rendered). Diagram
sources (Mermaid) are left out too: they are syntax ("flowchart LR", "T4 --> T5"), not
prose. The index is part of the course snapshot: derived from course content only, built
with it, and it never holds anything about a learner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from typing import Any

from django.utils.safestring import SafeString, mark_safe

MAX_QUERY_LENGTH = 200
MAX_TERMS = 8
MIN_TERM_LENGTH = 2
SNIPPET_RADIUS = 80
MAX_SNIPPETS = 2
MAX_HEADINGS = 4

WORD_RE = re.compile(r"\w+")
HEADING_TAGS = {"h1", "h2", "h3", "h4"}
# Not prose: scripts, styles, and the source of diagrams drawn in the browser.
SKIP_TAGS = {"script", "style", "svg", "template"}
SKIP_CLASSES = {"mermaid", "headerlink", "footnote-backref"}
BLOCK_TAGS = HEADING_TAGS | {
    "p",
    "li",
    "pre",
    "blockquote",
    "tr",
    "td",
    "th",
    "div",
    "section",
    "dt",
    "dd",
    "br",
    "h5",
    "h6",
    "figcaption",
    "table",
    "ul",
    "ol",
}
VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "source", "wbr", "col", "area"}


@dataclass
class Heading:
    text: str
    anchor: str


@dataclass
class IndexedLesson:
    slug: str
    title: str
    headings: list[Heading]
    body: str  # all prose, headings included, whitespace collapsed
    title_words: set[str] = field(default_factory=set)
    heading_words: set[str] = field(default_factory=set)
    body_words: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SearchHit:
    slug: str
    title_html: SafeString
    headings: list[tuple[SafeString, str]]  # (highlighted text, anchor)
    snippets: list[SafeString]
    rank: tuple[int, int, int]


@dataclass(frozen=True)
class SearchResult:
    query: str
    terms: tuple[str, ...]
    hits: list[SearchHit]
    message: str = ""  # a hint or a limit, shown instead of results


class _TextExtractor(HTMLParser):
    """Collects headings (text and id) and block-separated text, skipping non-prose."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.headings: list[Heading] = []
        self._skip_stack: list[str] = []
        self._heading: tuple[str, str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            if tag == "br":
                self.parts.append("\n")
            return
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        if self._skip_stack or tag in SKIP_TAGS or classes & SKIP_CLASSES:
            self._skip_stack.append(tag)
            return
        if tag in BLOCK_TAGS:
            self.parts.append("\n")
        if tag in HEADING_TAGS:
            self._heading = (tag, attributes.get("id") or "", [])

    def handle_endtag(self, tag: str) -> None:
        if self._skip_stack:
            if tag == self._skip_stack[-1]:
                self._skip_stack.pop()
            return
        if tag in BLOCK_TAGS:
            self.parts.append("\n")
        if self._heading is not None and tag == self._heading[0]:
            text = _collapse("".join(self._heading[2]))
            if text:
                self.headings.append(Heading(text=text, anchor=self._heading[1]))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._skip_stack:
            return
        self.parts.append(data)
        if self._heading is not None:
            self._heading[2].append(data)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def html_to_text(html: str) -> tuple[str, list[Heading]]:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "\n".join(_collapse(line) for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{2,}", "\n", text).strip(), parser.headings


def _words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def search_index_build(*, lessons: Iterable[Any]) -> tuple[IndexedLesson, ...]:
    """The index of these lessons (course.snapshot builds it once per content version)."""
    return tuple(_indexed(lesson) for lesson in lessons)


def _indexed(lesson: Any) -> IndexedLesson:
    body, headings = html_to_text(str(lesson.html))
    title = str(lesson.title)
    # The lesson's own title may also be its <h1>; it already counts as the title.
    headings = [h for h in headings if h.text != title]
    return IndexedLesson(
        slug=str(lesson.slug),
        title=title,
        headings=headings,
        body=body,
        title_words=set(_words(title)),
        heading_words={w for h in headings for w in _words(h.text)},
        body_words=_words(body),
    )


def query_terms(query: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for word in _words(query):
        if len(word) >= MIN_TERM_LENGTH:
            seen.setdefault(word, None)
    return tuple(seen)[:MAX_TERMS]


def _term_pattern(terms: Sequence[str]) -> re.Pattern[str]:
    # A term matches the start of a word, so results appear while a word is being typed.
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\w*", re.IGNORECASE)


def highlight(text: str, pattern: re.Pattern[str]) -> SafeString:
    """Escape text and wrap the matches in <mark>: the only markup in the result is ours."""
    out: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        out.append(escape(text[position : match.start()]))
        out.append(f"<mark>{escape(match.group(0))}</mark>")
        position = match.end()
    out.append(escape(text[position:]))
    return mark_safe("".join(out))  # every piece of text is escaped above


def _snippets(body: str, pattern: re.Pattern[str]) -> list[SafeString]:
    snippets: list[SafeString] = []
    covered_until = -1
    for match in pattern.finditer(body):
        if match.start() < covered_until:
            continue
        start = max(0, match.start() - SNIPPET_RADIUS)
        end = min(len(body), match.end() + SNIPPET_RADIUS)
        # Cut at word boundaries so a snippet never starts or ends mid-word.
        if start > 0:
            space = body.find(" ", start)
            start = space + 1 if 0 <= space < match.start() else start
        if end < len(body):
            space = body.rfind(" ", match.end(), end)
            end = space if space > match.end() else end
        text = _collapse(body[start:end])
        prefix = "… " if start > 0 else ""
        suffix = " …" if end < len(body) else ""
        snippets.append(mark_safe(escape(prefix) + highlight(text, pattern) + escape(suffix)))
        covered_until = end
        if len(snippets) >= MAX_SNIPPETS:
            break
    return snippets


def _matches(words: Iterable[str], term: str) -> int:
    return sum(1 for w in words if w.startswith(term))


def search_run(*, query: str, index: Iterable[IndexedLesson]) -> SearchResult:
    """Lessons matching every term, best first: title matches, then headings, then body."""
    query = query.strip()
    if not query:
        return SearchResult(query, (), [], "Type a word or two, for example “sticky” or “Redis”.")
    if len(query) > MAX_QUERY_LENGTH:
        return SearchResult(
            query[:MAX_QUERY_LENGTH],
            (),
            [],
            f"That search is too long: use at most {MAX_QUERY_LENGTH} characters.",
        )
    terms = query_terms(query)
    if not terms:
        return SearchResult(query, (), [], f"Type at least {MIN_TERM_LENGTH} letters.")
    pattern = _term_pattern(terms)
    hits: list[SearchHit] = []
    for entry in index:
        title_terms = heading_terms = body_count = 0
        every_term_found = True
        for term in terms:
            in_title = _matches(entry.title_words, term) > 0
            in_headings = _matches(entry.heading_words, term) > 0
            in_body = _matches(entry.body_words, term)
            if not (in_title or in_headings or in_body):
                every_term_found = False
                break
            title_terms += in_title
            heading_terms += in_headings
            body_count += in_body
        if not every_term_found:
            continue
        headings = [
            (highlight(h.text, pattern), h.anchor) for h in entry.headings if pattern.search(h.text)
        ][:MAX_HEADINGS]
        hits.append(
            SearchHit(
                slug=entry.slug,
                title_html=highlight(entry.title, pattern),
                headings=headings,
                snippets=_snippets(entry.body, pattern),
                rank=(title_terms, heading_terms, body_count),
            )
        )
    hits.sort(key=lambda h: h.rank, reverse=True)
    message = "" if hits else "No lesson mentions all of those words."
    return SearchResult(query, terms, hits, message)
