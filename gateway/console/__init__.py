"""The gateway's own pages: the API reference at ``/`` and the console at ``/ui`` (issue 17).

Static files in this package, served from memory by a pure-ASGI layer in front of BentoML
(so BentoML's default page, with its boilerplate and external badge images, is never shown).
No build step and nothing from a CDN: the pages use the public ``/v1`` API with the user's
own key, like any client, under the same auth and limits. Each page is sent with a policy
that allows only this origin's scripts and styles (no inline script at all), on top of the
headers ``GatewayMiddleware`` adds to every response.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

__all__ = ["CONSOLE_CSP", "ConsoleMiddleware", "PAGES", "STATIC_PREFIX"]

STATIC_PREFIX = "/ui/static/"
#: Path -> file of this package.
PAGES = {"/": "index.html", "/ui": "console.html", "/ui/": "console.html"}
_ASSETS = {"console.js": b"text/javascript", "api.js": b"text/javascript", "console.css": b"text/css"}
CONSOLE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


class ConsoleMiddleware:
    """Answers GET/HEAD for the pages and their assets; everything else goes to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._files: dict[str, tuple[bytes, bytes]] = {}
        for path, name in PAGES.items():
            self._files[path] = (_read(name), b"text/html; charset=utf-8")
        for name, kind in _ASSETS.items():
            self._files[STATIC_PREFIX + name] = (_read(name), kind + b"; charset=utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        found = self._files.get(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body, kind = found
        headers = [
            (b"content-type", kind),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
            (b"content-security-policy", CONSOLE_CSP),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
