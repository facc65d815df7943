"""The browser side: the demo shop page, the full-page widget and the widget's static files.

Everything comes from ``kefu/web`` (no CDN, no build step). Pages are ``no-cache`` and carry a strict
Content-Security-Policy (``kefu.api.security`` adds who may frame them and the other security headers); assets
carry an ETag (``304`` on ``If-None-Match``) and a short ``max-age`` so a new release reaches every embedding shop
within minutes. Text files are sent gzip-compressed when the client accepts it.

* ``/``              the demo shop page with the widget open in a corner (``demo_router``: demo mode only)
* ``/widget``        the widget alone, full page (phones, iframes)
* ``/widget.js``     the embeddable widget (one ``<script>`` tag; see docs/widget.md)
* ``/widget.css``    its styles (loaded by widget.js into the widget's shadow root)
* ``/assets/{name}`` the demo page's own files
* ``/desk``          the agent desk (its API is ``/desk/api/…``); ``/desk.js`` and ``/desk.css`` its files
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from kefu.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ASSET_DIR = WEB_DIR / "assets"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
}
# Assets: cached briefly, then revalidated by ETag (cheap 304s); stale copies may serve while revalidating.
ASSET_CACHE = "public, max-age=300, stale-while-revalidate=86400"
PAGE_CACHE = "no-cache"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
# The demo page and /widget (meant for iframes on shop pages) leave framing to KEFU_FRAME_ANCESTORS.
DEMO_PAGE_CSP = _CSP
WIDGET_PAGE_CSP = _CSP
# The desk is never framed (clickjacking of claim/close buttons).
DESK_PAGE_CSP = _CSP + "; frame-ancestors 'none'"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")

router = APIRouter(include_in_schema=False, tags=["web"])
# Mounted only with KEFU_DEMO=1 (next to the visitor-token route).
demo_router = APIRouter(include_in_schema=False, tags=["web"])


@dataclass(frozen=True, slots=True)
class WebFile:
    """A file's bytes (and a gzip copy for text) with its ETag and content type."""

    body: bytes
    etag: str
    media_type: str
    gzipped: bytes | None = None


_cache: dict[Path, tuple[int, WebFile]] = {}


def load(path: Path) -> WebFile:
    """The file at ``path`` (cached until its modification time changes); :class:`NotFound` if missing."""
    media_type = MEDIA_TYPES.get(path.suffix)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = -1
    if media_type is None or mtime < 0 or not path.is_file():
        raise NotFound(f"no such file: {path.name}")
    cached = _cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    body = path.read_bytes()
    compressible = media_type.startswith("text/") or media_type == "image/svg+xml"
    web_file = WebFile(
        body=body,
        etag=f'"{hashlib.sha256(body).hexdigest()[:24]}"',
        media_type=media_type,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0) if compressible and len(body) > 1024 else None,
    )
    _cache[path] = (mtime, web_file)
    return web_file


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def serve(request: Request, path: Path, *, cache_control: str, headers: dict[str, str] | None = None) -> Response:
    """``path`` as a response with ETag and caching headers (gzip when accepted); 304 if unchanged."""
    web_file = load(path)
    body, etag = web_file.body, web_file.etag
    common = {"Cache-Control": cache_control, **(headers or {})}
    if web_file.gzipped is not None:
        common["Vary"] = "Accept-Encoding"
        if _accepts_gzip(request.headers.get("accept-encoding")):
            body, etag = web_file.gzipped, etag[:-1] + '-gz"'  # each representation has its own strong ETag
            common["Content-Encoding"] = "gzip"
    common["ETag"] = etag
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=common)
    return Response(body, media_type=web_file.media_type, headers=common)


def _page_headers(csp: str) -> dict[str, str]:
    return {"Content-Security-Policy": csp}


@demo_router.api_route("/", methods=["GET", "HEAD"])
async def demo_page(request: Request) -> Response:
    """The demo shop page with the chat widget (``KEFU_DEMO=1`` only)."""
    return serve(request, WEB_DIR / "index.html", cache_control=PAGE_CACHE, headers=_page_headers(DEMO_PAGE_CSP))


@router.api_route("/widget", methods=["GET", "HEAD"])
async def widget_page(request: Request) -> Response:
    """The widget alone, filling the page (for phones and iframes)."""
    return serve(request, WEB_DIR / "widget.html", cache_control=PAGE_CACHE, headers=_page_headers(WIDGET_PAGE_CSP))


@router.api_route("/widget.js", methods=["GET", "HEAD"])
async def widget_js(request: Request) -> Response:
    """The embeddable widget script."""
    return serve(request, WEB_DIR / "widget.js", cache_control=ASSET_CACHE)


@router.api_route("/widget.css", methods=["GET", "HEAD"])
async def widget_css(request: Request) -> Response:
    """The widget's styles."""
    return serve(request, WEB_DIR / "widget.css", cache_control=ASSET_CACHE)


def _desk_page(request: Request, name: str) -> Response:
    """A page of the shop's team (never framed)."""
    headers = _page_headers(DESK_PAGE_CSP) | {"X-Frame-Options": "DENY"}
    return serve(request, WEB_DIR / name, cache_control=PAGE_CACHE, headers=headers)


@router.api_route("/desk", methods=["GET", "HEAD"])
async def desk_page(request: Request) -> Response:
    """The agent desk (agents log in there; the page itself is public, its API is not)."""
    return _desk_page(request, "desk.html")


@router.api_route("/desk/report", methods=["GET", "HEAD"])
async def report_page(request: Request) -> Response:
    """The report page (public like the desk; its data needs an API key)."""
    return _desk_page(request, "report.html")


@router.api_route("/report.js", methods=["GET", "HEAD"])
async def report_js(request: Request) -> Response:
    """The report page's script."""
    return serve(request, WEB_DIR / "report.js", cache_control=ASSET_CACHE)


@router.api_route("/report.css", methods=["GET", "HEAD"])
async def report_css(request: Request) -> Response:
    """The report page's styles."""
    return serve(request, WEB_DIR / "report.css", cache_control=ASSET_CACHE)


@router.api_route("/desk.js", methods=["GET", "HEAD"])
async def desk_js(request: Request) -> Response:
    """The agent desk's script."""
    return serve(request, WEB_DIR / "desk.js", cache_control=ASSET_CACHE)


@router.api_route("/desk.css", methods=["GET", "HEAD"])
async def desk_css(request: Request) -> Response:
    """The agent desk's styles."""
    return serve(request, WEB_DIR / "desk.css", cache_control=ASSET_CACHE)


@router.api_route("/assets/{name}", methods=["GET", "HEAD"])
async def asset(name: str, request: Request) -> Response:
    """A file of the demo page (images, styles, its small script)."""
    if not _ASSET_NAME.match(name):
        raise NotFound("no such file")
    return serve(request, ASSET_DIR / name, cache_control=ASSET_CACHE)
