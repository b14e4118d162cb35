"""HTML mail bodies: sanitized for the console and rendered as plain text."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3

_URL_SCHEMES = set(nh3.ALLOWED_URL_SCHEMES) | {"cid"}


def sanitize_html(markup: str, *, allow_remote_images: bool = False) -> str:
    """HTML safe to show an agent: no script/style, on* handlers or javascript: URLs.

    Inline images (`cid:`) stay. Remote images are tracking pixels as often as not, so they
    are removed unless `allow_remote_images` (a proxy may serve them instead).
    """

    def keep_attribute(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            source = value.strip().lower()
            if source.startswith("cid:"):
                return value
            if allow_remote_images and source.startswith(("https:", "http:")):
                return value
            return None
        return value

    return str(
        nh3.clean(
            markup,
            url_schemes=_URL_SCHEMES,
            attribute_filter=keep_attribute,
            clean_content_tags={"script", "style", "title"},
        )
    )


class _TextRenderer(HTMLParser):
    """Collects readable text: block elements become line breaks, hidden content is skipped."""

    _HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template"})
    _BLOCKS = frozenset(
        {
            "address", "article", "blockquote", "dd", "div", "dl", "dt", "footer",
            "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
            "section", "table", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.hidden = 0  # an unclosed <head> must not hide the whole body
        elif tag in self._HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in self._BLOCKS:
            self.parts.append("\n\n" if tag == "p" else "\n")
            if tag == "li":
                self.parts.append("- ")
        elif tag == "td":
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self._HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n\n" if tag == "p" else "\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def _tidy_lines(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML: paragraphs and line breaks kept, tags dropped."""
    renderer = _TextRenderer()
    try:
        renderer.feed(markup)
        renderer.close()
        text = "".join(renderer.parts)
    except (AssertionError, ValueError, IndexError):  # HTMLParser on hopeless markup
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return _tidy_lines(text)
