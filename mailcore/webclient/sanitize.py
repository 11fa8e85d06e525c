"""Making a message's HTML harmless to show, and turning text into HTML and back.

clean_html() is the first wall: nh3 (ammonia) keeps a list of tags and attributes,
URLs are limited to http(s)/mailto links and to images that are inline (cid:), data:
or, only when the reader asked, remote; CSS is scrubbed of anything that loads or runs.
The second wall is where the result is shown: a sandboxed iframe (no scripts, no forms)
whose document carries a Content-Security-Policy of default-src 'none' (see
document_policy()). Neither is trusted to be enough alone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import nh3

_TAGS = (set(nh3.ALLOWED_TAGS) | {"style", "font", "center", "big", "tfoot", "caption"}) - {
    "area", "map"}
# Dropped with everything inside them (a script's code must not turn into text).
_CLEAN_CONTENT = {"script", "noscript", "title", "template", "iframe", "object", "embed",
                  "applet", "noframes", "noembed", "xmp", "frameset", "frame", "select",
                  "textarea", "button", "svg", "math"}
_GENERIC = {"style", "title", "dir", "lang", "align", "valign", "width", "height", "bgcolor",
            "class", "id", "border", "cellpadding", "cellspacing", "color", "face", "size",
            "colspan", "rowspan", "nowrap"}
_ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = _GENERIC
_ATTRIBUTES.setdefault("a", set()).update({"href", "name"})
_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "width", "height"})
_URL_SCHEMES = {"http", "https", "mailto", "cid", "data"}
_IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp|bmp);base64,[a-z0-9+/=\s]*$",
                         re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
_CSS_COMMENT = re.compile(r"/\*.*?(\*/|$)", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\r\n\f]?|\\(.)", re.DOTALL)
_CSS_IMPORT = re.compile(r"@import[^;]*(;|$)", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_FORBIDDEN = re.compile(
    r"expression\s*\(|behaviou?r\s*:|-moz-binding|javascript\s*:|vbscript\s*:|"
    r"image-set\s*\(|@namespace|@font-face|src\s*:",
    re.IGNORECASE)
_STYLE_ELEMENT = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.IGNORECASE | re.DOTALL)


@dataclass
class CleanHtml:
    html: str
    blocked_remote: bool  # some remote content was left out (the reader may allow it)


def clean_html(source: str, *, cid_url: Callable[[str], str | None],
               allow_remote: bool = False) -> CleanHtml:
    """Return a message's HTML with nothing left that runs, submits or loads unasked.

    cid_url maps a cid: URL to the URL serving that inline part (None: leave it out).
    """
    blocked = False

    def image_url(value: str) -> str | None:
        nonlocal blocked
        compact = _CONTROL.sub("", value)
        lower = compact.lower()
        if lower.startswith("cid:"):
            return cid_url(compact)
        if lower.startswith("data:"):
            return compact if _IMAGE_DATA.match(compact) else None
        if lower.startswith(("http://", "https://", "//")):
            if allow_remote:
                return "https:" + compact if compact.startswith("//") else compact
            blocked = True
        return None

    def css(value: str) -> str:
        nonlocal blocked
        cleaned, found_remote = scrub_css(value, image_url=image_url)
        blocked = blocked or found_remote
        return cleaned

    def attribute(tag: str, name: str, value: str) -> str | None:
        if name == "href":
            compact = _CONTROL.sub("", value).lower()
            if compact.startswith(("http://", "https://", "mailto:")):
                return value.strip()
            if compact.startswith("#") and tag == "a":
                return value.strip()
            return None
        if name == "src":
            return image_url(value)
        if name == "style":
            return css(value) or None
        return value

    cleaned = nh3.clean(
        source,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=attribute,
        url_schemes=_URL_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    # The text of <style> elements passes nh3 untouched: scrub it as CSS.
    cleaned = _STYLE_ELEMENT.sub(lambda m: m.group(1) + css(m.group(2)) + m.group(3), cleaned)
    return CleanHtml(cleaned, blocked)


def scrub_css(value: str, *, image_url: Callable[[str], str | None]) -> tuple[str, bool]:
    """Return CSS without imports, scripts or unasked remote images, and whether any was cut.

    Escapes are undone first (u\\72l( is url(), e\\78pression is expression): what is
    checked is what the browser would read.
    """
    text = _CSS_COMMENT.sub("", value.replace("\x00", ""))
    text = _CSS_ESCAPE.sub(_unescape, text)
    text = _CSS_IMPORT.sub("", text)
    remote = False
    kept: list[str] = []

    def url(match: re.Match) -> str:
        nonlocal remote
        target = match.group(2).strip()
        allowed = image_url(target)
        if allowed is None:
            if target.lower().startswith(("http://", "https://", "//")):
                remote = True
            return "x-blocked()"
        kept.append('url("' + allowed.replace('"', "%22").replace("\\", "%5C") + '")')
        return f"\x00{len(kept) - 1}\x00"

    text = _CSS_URL.sub(url, text)
    # A url( the pattern could not close is blocked all the same.
    text = re.sub(r"url\s*\(", "x-blocked(", text, flags=re.IGNORECASE)
    text = _CSS_FORBIDDEN.sub("x-blocked:", text)
    text = re.sub("\x00([0-9]+)\x00", lambda m: kept[int(m.group(1))], text)
    return text.replace("<", "").strip(), remote


def _unescape(match: re.Match) -> str:
    if match.group(1):
        code = int(match.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return match.group(2)


def document(body: str) -> str:
    """Return a full HTML document around sanitised body HTML (for the message frame)."""
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        "<meta name=\"referrer\" content=\"no-referrer\">"
        "<style>body{margin:8px;font:15px/1.45 system-ui,sans-serif;color:#1f2937;"
        "overflow-wrap:anywhere}img{max-width:100%;height:auto}"
        "pre{white-space:pre-wrap}blockquote{margin:0 0 0 .5em;padding-left:.7em;"
        "border-left:3px solid #d1d5db}</style></head><body>"
        f"{body}</body></html>"
    )


def document_policy(inline_prefix: str, allow_remote: bool) -> str:
    """Return the Content-Security-Policy of the message frame's document."""
    images = f"data: {inline_prefix}" + (" https: http:" if allow_remote else "")
    # allow-same-origin without allow-scripts: nothing runs in the frame, and the webmail
    # page may measure its document to size the frame to it.
    return (f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; "
            "font-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
            "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox")


# Text <-> HTML ---------------------------------------------------------------------------

_URL = re.compile(r"\b(https?://[^\s<>\"']+)", re.IGNORECASE)


def text_to_html(text: str) -> str:
    """Return plain text as escaped HTML with its web links made clickable."""
    out = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(1).rstrip(".,;:!?)]}")
        start, end = match.start(1), match.start(1) + len(url)
        out.append(html.escape(text[last:start]))
        link = html.escape(url)
        out.append(f'<a href="{link}" target="_blank" rel="noopener noreferrer">{link}</a>')
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
           "blockquote", "pre", "hr", "ul", "ol", "dl", "dt", "dd", "section", "article",
           "header", "footer"}
_SKIPPED = {"script", "style", "head", "title", "noscript", "template", "svg"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag == "pre":
            self.pre += 1
        if tag in _BLOCKS:
            self.chunks.append("\n")
        if tag == "li":
            self.chunks.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCKS and tag not in ("br", "li", "tr", "dt", "dd"):
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.chunks.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(source: str) -> str:
    """Return the readable text of HTML (for quoting in a reply, and for body search)."""
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    lines = [line.strip() for line in "".join(parser.chunks).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
