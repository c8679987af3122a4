"""The pages people use (issue 16), served as static files over the JSON API: no template
engine, no build step. Each page is an HTML file, a stylesheet and an ES module; every
dynamic value is put into the page by its script with ``textContent`` (never as HTML).

- ``/me/``: the resident's page (her score, records, consents, objections, offers,
  attestations), on her home node;
- ``/kiosk/``: a service point's counter (OpenID4VP requests as QR codes, decisions);
- ``/alliance/``: the alliance dashboard, on the alliance host only;
- ``/wallet/``: the web wallet, the ``wallet`` package's own static pages (any static
  host can serve them; a node serves them for the demo);
- ``/common/``: what the node's pages share (stylesheet, language switch, vendored QR
  encoder).

Every answer carries a content security policy without inline scripts or styles and
without third-party sources, forbids framing, the referrer and MIME sniffing. The pages
are revalidated (``no-cache``: the ETag saves the bytes) so that an upgrade shows at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

import wallet

__all__ = ["PAGES", "WALLET_PAGES", "mount_pages", "page_headers"]

PAGES = Path(__file__).parent / "web"
WALLET_PAGES = Path(wallet.__file__).parent / "web"

# The node's own pages talk to the node only. The web wallet talks to any node (its
# resident's home node, the service point's node), so it may connect anywhere.
NODE_CONNECT = "'self'"
WALLET_CONNECT = "'self' http: https:"


def page_headers(connect_src: str = NODE_CONNECT) -> dict[str, str]:
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src {connect_src}; media-src 'self' blob:; manifest-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    }


class StaticPages(StaticFiles):
    """A folder of pages with the headers above. A directory asked without its slash is
    redirected by path only: Starlette's own redirect is built from the Host header."""

    def __init__(self, directory: Path, *, connect_src: str = NODE_CONNECT) -> None:
        super().__init__(directory=directory, html=True)
        self.headers = page_headers(connect_src)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if isinstance(response, RedirectResponse):
            mount = scope.get("root_path", "") or ""
            response = RedirectResponse(f"{mount}/{path.strip('/')}/".replace("//", "/"))
        response.headers.update(self.headers)
        return response


def mount_pages(app: FastAPI, *, alliance_host: bool) -> None:
    """Mount the pages after every API route (a route such as ``POST /me/login`` wins);
    ``/kiosk`` without its slash is sent to ``/kiosk/`` by path."""
    folders = {name: StaticPages(PAGES / name) for name in ("common", "me", "kiosk")}
    if alliance_host:
        folders["alliance"] = StaticPages(PAGES / "alliance")
    folders["wallet"] = StaticPages(WALLET_PAGES, connect_src=WALLET_CONNECT)
    for name, pages in folders.items():
        app.mount(f"/{name}", pages, name=f"pages-{name}")
        if name != "common":
            app.add_api_route(
                f"/{name}", _to_folder(f"/{name}/"), methods=["GET"], include_in_schema=False
            )


def _to_folder(location: str) -> Callable[[], Response]:
    def redirect() -> Response:
        return RedirectResponse(location, headers={"Cache-Control": "no-cache"})

    return redirect
