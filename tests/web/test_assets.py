"""What kefu serves for browsers: pages, the widget's files, caching headers, CORS for an embedding shop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import MockLLM
from tests.web.conftest import WebStack
from tests.web.test_widget import answers, ask, expect, open_demo

WEB = Path(__file__).resolve().parents[2] / "kefu" / "web"


def test_widget_files_have_types_and_cache_headers(web_stack: WebStack) -> None:
    with httpx.Client(base_url=web_stack.url) as http:
        js = http.get("/widget.js")
        assert js.status_code == 200
        assert js.headers["content-type"] == "text/javascript; charset=utf-8"
        assert js.headers["cache-control"].startswith("public, max-age=")
        assert js.headers["x-content-type-options"] == "nosniff"
        assert http.get("/widget.js", headers={"If-None-Match": js.headers["etag"]}).status_code == 304
        # httpx asks for gzip: the 50 kB script travels compressed, with its own ETag.
        assert js.headers["content-encoding"] == "gzip" and "Accept-Encoding" in js.headers["vary"]
        assert int(js.headers["content-length"]) < len(js.content) / 2
        plain = http.get("/widget.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == js.content
        assert plain.headers["etag"] != js.headers["etag"]
        css = http.get("/widget.css")
        assert css.headers["content-type"] == "text/css; charset=utf-8" and css.headers["etag"] != js.headers["etag"]
        assert http.get("/assets/shop.css").headers["content-type"].startswith("text/css")
        assert http.get("/assets/favicon.svg").headers["content-type"] == "image/svg+xml"
        for bad in ("/assets/..%2Fwidget.js", "/assets/.hidden", "/assets/nope.js", "/assets/index"):
            assert http.get(bad).status_code == 404, bad


def test_pages_are_no_cache_with_a_content_security_policy(web_stack: WebStack) -> None:
    with httpx.Client(base_url=web_stack.url) as http:
        for path in ("/", "/widget"):
            page = http.get(path)
            assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.headers["cache-control"] == "no-cache"
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert 'src="/widget.js"' in page.text
            # Framing is KEFU_FRAME_ANCESTORS (default: kefu's own pages only), for embedding /widget in a shop.
            assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "SAMEORIGIN"


def test_demo_page_only_in_demo_mode_but_widget_always(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from kefu.app import create_app
    from kefu.config import Settings

    # No lifespan needed: these routes touch no runtime (TestClient runs the app on a thread of its own).
    settings = Settings(demo=False, database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", log_level="warning")
    http = TestClient(create_app(settings))
    page = http.get("/")
    assert page.status_code == 404 and page.json()["error"]["code"] == "not_found"
    assert http.post("/v1/demo/token").status_code == 404
    assert http.get("/widget.js").status_code == 200
    assert http.get("/widget").status_code == 200


def test_cors_lets_the_shop_origin_start_and_resume_turns(web_stack: WebStack) -> None:
    origin = web_stack.host.url
    with httpx.Client(base_url=web_stack.url) as http:
        for method, path, headers in (
            ("POST", "/v1/chat", "authorization,content-type"),
            ("GET", "/v1/chat/turns/t_x/events", "authorization,last-event-id"),
            ("POST", "/v1/chat/turns/t_x/cancel", "authorization"),
            ("GET", "/v1/sessions/s_x", "authorization"),
        ):
            preflight = http.options(
                path,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": headers,
                },
            )
            assert preflight.status_code == 200, (path, preflight.text)
            assert preflight.headers["access-control-allow-origin"] == origin
            allowed = preflight.headers["access-control-allow-headers"].lower()
            assert all(h in allowed for h in headers.split(",")), allowed
        other = http.options(
            "/v1/chat", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_widget_never_parses_html_or_loads_from_elsewhere() -> None:
    """The widget is hand-written, dependency-free ES2020: no HTML parsing sinks, no eval, no remote loads."""
    source = (WEB / "widget.js").read_text()
    sinks = re.compile(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function|\bimport\(")
    assert sinks.findall(source) == []
    for page in ("index.html", "widget.html"):
        html = (WEB / page).read_text()
        urls = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert urls and all(u.startswith(("/", "#")) for u in urls), urls


@pytest.mark.browser
def test_pages_break_no_rule_of_their_content_security_policy(
    page: Any, web_stack: WebStack, fresh_mock: MockLLM
) -> None:
    page.add_init_script(
        """window.__csp = [];
        document.addEventListener('securitypolicyviolation',
            (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`), true);"""
    )
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    for path in ("/desk", "/widget"):
        page.goto(web_stack.url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__csp") == [], path
    # The demo page with a whole answer: styles set from script, Markdown rendered, the stream read.
    open_demo(page, web_stack.url)
    fresh_mock.script({"text": "**好的**，请看 [说明](https://xiaopu.example/faq)。"})
    ask(page, "运费怎么算？")
    expect(answers(page).last).to_have_attribute("data-state", "complete")
    assert page.evaluate("window.__csp") == []
    assert [line for line in console if "Content Security Policy" in line] == []
    assert page.js_errors == []
