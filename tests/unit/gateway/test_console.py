"""The gateway's own pages (``gateway.console``): served from the package, strict CSP, no CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.console import CONSOLE_CSP, PAGES, STATIC_PREFIX, ConsoleMiddleware


async def behind(_request: object) -> PlainTextResponse:
    return PlainTextResponse("app")


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/{path:path}", behind, methods=["GET", "POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=ConsoleMiddleware(app)), base_url="http://gw")


class _Refs(HTMLParser):
    """Every script and stylesheet a page loads, and any inline script or handler."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.inline += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self._in_script = True
            if values.get("src"):
                self.refs.append(str(values["src"]))
        if tag in ("link", "img") and (values.get("href") or values.get("src")):
            self.refs.append(str(values.get("href") or values.get("src")))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip()[:40])


@pytest.mark.anyio
@pytest.mark.parametrize("path", sorted(PAGES))
async def test_pages_load_only_this_origins_files_and_run_no_inline_script(path: str) -> None:
    async with client() as c:
        page = await c.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONSOLE_CSP.decode()
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
        refs = _Refs()
        refs.feed(page.text)
        assert refs.inline == []
        assert refs.refs and all(ref.startswith(STATIC_PREFIX) for ref in refs.refs)  # nothing external
        for ref in refs.refs:
            asset = await c.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 100, ref
    assert not re.search(r"https?://", page.text)


@pytest.mark.anyio
async def test_everything_else_reaches_the_app() -> None:
    async with client() as c:
        assert (await c.get("/v1/models")).text == "app"
        assert (await c.get(f"{STATIC_PREFIX}missing.js")).text == "app"  # the app's 404, not ours
        assert (await c.post("/ui")).text == "app"
        head = await c.head("/ui")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0


def test_scripts_write_api_values_as_text_never_as_html() -> None:
    from importlib import resources

    for name in ("console.js", "api.js"):
        source = resources.files("gateway.console").joinpath(name).read_text()
        assert "innerHTML" not in source and "outerHTML" not in source and "eval(" not in source, name
