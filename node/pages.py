"""The few HTML pages a browser sees in a login (the OpenID4VCI authorization code flow,
the development identity provider): bilingual, phone-sized, self-contained.

Hand-written on purpose: three small pages do not need a template engine, and every
value goes through :func:`html.escape`. Each answer forbids caching, framing
(clickjacking a consent) and the referrer (the URLs carry one-time values), and allows
only its own inline script, by nonce.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from html import escape

from fastapi.responses import HTMLResponse

__all__ = ["auto_post", "form_page", "message_page"]

_STYLE = (
    "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:0;"
    "padding:1.5rem;max-width:32rem;margin-inline:auto;line-height:1.5;color:#1b1b1b}"
    "h1{font-size:1.35rem}p.zh{color:#333}label{display:block;margin:1rem 0 .25rem}"
    "input[type=text]{width:100%;font-size:1.1rem;padding:.5rem;box-sizing:border-box}"
    "button{font-size:1.1rem;padding:.6rem 1.2rem;margin:.75rem .5rem 0 0}"
    ".who{background:#f3f5f7;padding:.75rem;border-radius:.5rem;word-break:break-all}"
)


def _respond(
    title: str, body: str, *, status: int = 200, script: str | None = None
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    script_tag = f'<script nonce="{nonce}">{script}</script>' if script else ""
    document = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}{script_tag}</body></html>"
    )
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(document, status_code=status, headers=headers)


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )


def message_page(
    title_zh: str, title_en: str, text_zh: str, text_en: str, *, status: int
) -> HTMLResponse:
    """A page that says what happened, in both languages (a refusal)."""
    body = (
        f"<h1>{escape(title_zh)} / {escape(title_en)}</h1>"
        f'<p class="zh">{escape(text_zh)}</p><p lang="en">{escape(text_en)}</p>'
    )
    return _respond(f"{title_zh} / {title_en}", body, status=status)


def form_page(
    title_zh: str,
    title_en: str,
    intro_html: str,
    *,
    action: str,
    hidden: Mapping[str, str],
    fields_html: str = "",
    buttons: tuple[tuple[str, str, str], ...],
) -> HTMLResponse:
    """A page with one POST form: ``intro_html`` (escaped by the caller), visible
    ``fields_html``, hidden fields, and buttons ``(name, value, label)``."""
    # a cancel needs no field filled in: the browser must not block it (formnovalidate)
    button_html = "".join(
        f'<button type="submit" name="{escape(name)}" value="{escape(value)}"'
        f"{' formnovalidate' if value == 'cancel' else ''}>{escape(label)}</button>"
        for name, value, label in buttons
    )
    body = (
        f"<h1>{escape(title_zh)} / {escape(title_en)}</h1>{intro_html}"
        f'<form method="post" action="{escape(action)}">{_hidden(hidden)}{fields_html}'
        f"{button_html}</form>"
    )
    return _respond(f"{title_zh} / {title_en}", body)


def auto_post(action: str, fields: Mapping[str, str]) -> HTMLResponse:
    """The OpenID Connect Form Post Response Mode: a form the browser sends at once to
    ``action`` (a button when scripts are off)."""
    body = (
        f'<form method="post" action="{escape(action)}">{_hidden(fields)}'
        '<noscript><button type="submit">继续 / Continue</button></noscript></form>'
    )
    return _respond("继续 / Continue", body, script="document.forms[0].submit()")
